"""`aipilot serve` as a real process, driven by real HTTP clients, on both databases.

Every test starts `python -m aipilot serve` on a free port (with AIPILOT_DEBUG=1, so the
debug loggers are on), waits for /readyz, and stops it with SIGTERM: exit 0 is a graceful
shutdown. Its stdout and stderr are swept for the test's canary keys at the end.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from tests import serve_routes
from tests.conftest import CliFn
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.providers_catalog import activate_directly, sql
from tests.serve_routes import (
    ASSIST,
    CONFIG_TEST,
    INTERNAL,
    KEYS,
    ORIGIN,
    Server,
    add_user,
    canary,
    chat_count,
    make_jwt,
    store_key,
    token_for,
    user_id,
)

fake = serve_routes.fake  # a fixture, shared through the support module
server = serve_routes.server  # a fixture, shared through the support module


def test_health_ready_and_graceful_stop(server: Server) -> None:
    with server.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz").json()
        assert ready["status"] == "ready" and isinstance(ready["warnings"], list)
        assert http.get("/nowhere").status_code == 404
    assert server.stop() == 0  # SIGTERM → graceful shutdown → exit 0
    assert "Application shutdown complete" in server.output()


def test_readyz_503_when_the_database_is_down(tmp_path: Path) -> None:
    down = "postgresql://aipilot:s3cret-pw@127.0.0.1:1/aipilot"  # nothing listens on port 1
    srv = Server(down, tmp_path / "srv").start(wait_for="/healthz")
    try:
        with srv.client() as http:
            assert http.get("/healthz").status_code == 200
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
            assert "s3cret-pw" not in ready.text
            response = http.post(
                KEYS,
                json={"action": "get-status"},
                headers={"Authorization": "Bearer aip_" + "x" * 43},
            )
            assert response.status_code == 503 and response.json()["code"] == "database"
    finally:
        assert srv.stop() == 0
    assert "s3cret-pw" not in srv.output()


# ---------------------------------------------------------------- authentication
def test_auth_failures_are_401_never_a_default_user(
    server: Server, cli: CliFn, database_url: str
) -> None:
    add_user(cli, "carol")
    revoked = token_for(cli, "alice", "--name", "old")
    assert cli("tokens", "revoke", revoked[:12]).exit_code == 0
    carol = token_for(cli, "carol")
    carol_jwt = make_jwt(user_id(database_url, "carol"))
    sql(
        database_url,
        "DELETE FROM aipilot_api_tokens WHERE user_id IN (SELECT users_id FROM users WHERE username = 'carol')",
    )
    sql(database_url, "DELETE FROM users WHERE username = 'carol'")
    expired = token_for(cli, "alice")
    sql(
        database_url,
        "UPDATE aipilot_api_tokens SET expires_at = :t WHERE prefix = :p",
        t=datetime.now(UTC) - timedelta(minutes=1),
        p=expired[:12],
    )
    alice_id = user_id(database_url, "alice")
    bad = {
        "none": {},
        "not bearer": {"Authorization": "Basic YWxpY2U6eA=="},
        "empty bearer": {"Authorization": "Bearer"},
        "unknown token": {"Authorization": "Bearer aip_" + "x" * 43},
        "garbage": {"Authorization": "Bearer hello"},
        "revoked": {"Authorization": f"Bearer {revoked}"},
        "expired token": {"Authorization": f"Bearer {expired}"},
        "deleted user's token": {"Authorization": f"Bearer {carol}"},
        "deleted user's jwt": {"Authorization": f"Bearer {carol_jwt}"},
        "expired jwt": {"Authorization": f"Bearer {make_jwt(alice_id, expires_in=-60)}"},
        "jwt wrong secret": {"Authorization": f"Bearer {make_jwt(alice_id, secret='nope' * 8)}"},
        "jwt unknown sub": {"Authorization": f"Bearer {make_jwt(str(uuid.uuid4()))}"},
        "jwt none alg": {
            "Authorization": "Bearer "
            + jwt.encode({"sub": alice_id, "exp": time.time() + 60}, None, algorithm="none")
        },
    }
    with server.client() as http:
        for case, headers in bad.items():
            for method, path, body in (
                ("POST", KEYS, {"action": "get-status"}),
                ("POST", ASSIST, {"messages": [{"role": "user", "content": "hi"}]}),
                ("POST", CONFIG_TEST, {}),
                ("POST", "/v1/chat/completions", {"model": "active", "messages": []}),
                ("GET", "/v1/models", None),
            ):
                response = http.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (case, path, response.text)
                assert "alice" not in response.text
        ok = http.post(
            KEYS,
            json={"action": "get-status"},
            headers={"Authorization": f"Bearer {make_jwt(alice_id)}"},
        )
        assert ok.status_code == 200 and ok.json()["success"] is True
    listed = cli("tokens", "list", "--json").json()
    assert {t["prefix"]: t["state"] for t in listed}[revoked[:12]] == "revoked"


# ---------------------------------------------------------------- ai-keys-manager
def test_keys_manager_actions(server: Server, cli: CliFn, fake: FakeProvider) -> None:
    secret = canary()
    server.canaries.append(secret)
    token = token_for(cli, "alice")
    with server.client(token) as http:
        set_key = http.post(
            KEYS, json={"action": "set-key", "provider": "openai", "apiKey": secret}
        )
        assert set_key.status_code == 200, set_key.text
        doc = set_key.json()
        assert doc["success"] is True and doc["valid"]["ok"] is True
        assert doc["hint"].endswith(secret[-4:]) and secret not in set_key.text
        status = http.post(KEYS, json={"action": "get-status"}).json()
        assert status["data"]["openai"] is True and status["data"]["anthropic"] is False
        assert (
            http.post(KEYS, json={"action": "test-key", "provider": "openai"}).json()["valid"]["ok"]
            is True
        )
        fake.fail("401")
        failed = http.post(KEYS, json={"action": "test-key", "provider": "openai"})
        assert failed.status_code == 200 and failed.json()["valid"]["ok"] is False
        # get-key: refused without, or with a wrong, internal token; allowed with the right one
        for headers in ({}, {"x-internal-token": "wrong"}, {"x-internal-token": INTERNAL + "x"}):
            refused = http.post(
                KEYS, json={"action": "get-key", "provider": "openai"}, headers=headers
            )
            assert refused.status_code == 403 and secret not in refused.text
        got = http.post(
            KEYS,
            json={"action": "get-key", "provider": "openai"},
            headers={"x-internal-token": INTERNAL},
        )
        assert got.status_code == 200 and got.json() == {
            "success": True,
            "provider": "openai",
            "apiKey": secret,
        }
        bad_input = http.post(
            KEYS, json={"action": "set-key", "provider": "openai", "apiKey": f"{secret}\x01x"}
        )
        assert bad_input.status_code == 400 and find_leaks(bad_input.text, secret) == []
        unknown = http.post(KEYS, json={"action": "set-key", "provider": "nope", "apiKey": secret})
        assert unknown.status_code == 400 and secret not in unknown.text
        assert http.post(KEYS, json={"action": "explode"}).status_code == 400
        assert http.post(KEYS, content=b"{not json").status_code == 400
        deleted = http.post(KEYS, json={"action": "delete-key", "provider": "openai"}).json()
        assert deleted == {"success": True, "provider": "openai", "deleted": True}
        again = http.post(KEYS, json={"action": "delete-key", "provider": "openai"}).json()
        assert again["deleted"] is False
        assert http.post(KEYS, json={"action": "get-status"}).json()["data"]["openai"] is False
        missing = http.post(KEYS, json={"action": "test-key", "provider": "openai"})
        assert missing.status_code == 409 and missing.json()["code"] == "not_configured"


def test_get_key_always_refused_without_internal_token_configured(
    database_url: str, cli: CliFn, tmp_path: Path
) -> None:
    secret = store_key(cli, "alice")
    srv = Server(database_url, tmp_path / "srv", env={"AIPILOT_INTERNAL_TOKEN": "<unset>"}).start()
    try:
        with srv.client(token_for(cli, "alice")) as http:
            for headers in ({}, {"x-internal-token": ""}, {"x-internal-token": INTERNAL}):
                refused = http.post(
                    KEYS, json={"action": "get-key", "provider": "openai"}, headers=headers
                )
                assert refused.status_code == 403 and secret not in refused.text
    finally:
        assert srv.stop() == 0
    assert find_leaks(srv.output(), secret) == []


# ---------------------------------------------------------------- assist_flut, config test
def test_assist_flut_and_config_test(
    server: Server, cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    token = token_for(cli, "alice")
    with server.client(token) as http:
        not_configured = http.post(ASSIST, json={"messages": [{"role": "user", "content": "hi"}]})
        assert not_configured.status_code == 409 and not_configured.json()["success"] is False
        server.canaries.append(store_key(cli, "alice"))
        activate_directly(database_url, "openai", "gpt-4o-mini")
        fake.set_reply("gpt-4o-mini", "Paris.")
        doc = http.post(
            ASSIST,
            json={
                "module_name": "global",
                "messages": [{"role": "user", "content": "Capital of France?"}],
            },
        ).json()
        assert doc["success"] is True and doc["text"] == "Paris."
        assert (doc["provider"], doc["model"]) == ("openai", "gpt-4o-mini")
        assert doc["usage"] == {
            "input_tokens": 12,
            "output_tokens": 5,
            "total_tokens": 17,
            "reasoning_tokens": doc["usage"]["reasoning_tokens"],  # None or 0, as the wire says
            "cache_read_tokens": doc["usage"]["cache_read_tokens"],
            "cache_write_tokens": doc["usage"]["cache_write_tokens"],
        }
        assert doc["cost_usd"] is not None
        fake.set_reply("gpt-4o-mini", '{"city": "Paris"}', verbatim=True)
        strict = http.post(
            ASSIST,
            json={
                "messages": [{"role": "user", "content": "JSON please"}],
                "response_format": "json",
            },
        ).json()
        assert strict["data"] == {"city": "Paris"}
        assert fake.last_request.json["response_format"] == {"type": "json_object"}
        bad = http.post(ASSIST, json={"messages": [{"role": "robot", "content": "x"}]})
        assert bad.status_code == 400 and bad.json()["code"] == "usage"
        assert http.post(ASSIST, json={"messages": "hi"}).status_code == 400
        fake.fail("500", times=5)
        failing = http.post(ASSIST, json={"messages": [{"role": "user", "content": "hi"}]})
        assert failing.status_code == 502 and failing.json()["code"] == "provider"
        fake.clear()
        healthy = http.post(CONFIG_TEST, json={"module": "global"}).json()
        assert healthy["success"] is True
        assert healthy["api_key_ok"] is True and healthy["model_accessible"] is True
        fake.fail("401")
        sick = http.post(CONFIG_TEST, json={})
        assert sick.status_code == 200
        assert sick.json()["success"] is False and sick.json()["api_key_ok"] is False
        assert http.post(CONFIG_TEST, json={"module": "bad module!"}).status_code == 400
    assert chat_count(database_url, "alice") == 3  # two answers and one provider failure


# ---------------------------------------------------------------- isolation
def test_user_a_never_reaches_user_b_key_or_config(
    server: Server, cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    add_user(cli, "bob")
    bob_key = store_key(cli, "bob")
    server.canaries.append(bob_key)
    activate_directly(database_url, "openai", "gpt-4o-mini", user="bob")
    alice = token_for(cli, "alice")
    bob = token_for(cli, "bob")
    fake.clear()
    with server.client(alice) as http:
        calls = [
            http.post(ASSIST, json={"messages": [{"role": "user", "content": "hi"}]}),
            http.post(CONFIG_TEST, json={}),
            http.post(
                "/v1/chat/completions",
                json={"model": "active", "messages": [{"role": "user", "content": "hi"}]},
            ),
            http.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            ),
            http.post(KEYS, json={"action": "test-key", "provider": "openai"}),
            http.post(
                KEYS,
                json={"action": "get-key", "provider": "openai"},
                headers={"x-internal-token": INTERNAL},
            ),
        ]
        for response in calls:
            assert response.status_code == 409, response.text
            assert find_leaks(response.text, bob_key) == []
        assert http.post(KEYS, json={"action": "get-status"}).json()["data"]["openai"] is False
        assert (
            http.post(KEYS, json={"action": "delete-key", "provider": "openai"}).json()["deleted"]
            is False
        )
    assert fake.requests == []  # nothing reached the provider on alice's behalf
    with server.client(bob) as http:
        ok = http.post(ASSIST, json={"messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 200
    assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {bob_key}"]
    assert chat_count(database_url, "alice") == 0 and chat_count(database_url, "bob") == 1
    # bob's key is still there after alice's delete-key
    assert len(sql(database_url, "SELECT 1 FROM user_provider_credentials")) == 1


# ---------------------------------------------------------------- CORS, size limit
def test_cors_only_for_listed_origins(server: Server, cli: CliFn) -> None:
    token = token_for(cli, "alice")
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with server.client(token) as http:
        allowed = http.post(KEYS, json={"action": "get-status"}, headers={"Origin": ORIGIN})
        assert allowed.headers.get("access-control-allow-origin") == ORIGIN
        denied = http.post(
            KEYS, json={"action": "get-status"}, headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in denied.headers
        ok = http.options(KEYS, headers={"Origin": ORIGIN, **preflight})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
        assert "x-internal-token" not in ok.headers.get("access-control-allow-headers", "").lower()
        refused = http.options(KEYS, headers={"Origin": "https://evil.example", **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


def test_huge_body_is_413(server: Server, cli: CliFn) -> None:
    huge = b'{"messages": "' + b"x" * (2 * 1024 * 1024) + b'"}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for start in range(0, len(huge), 65536):
            yield huge[start : start + 65536]

    with server.client(token_for(cli, "alice")) as http:
        for path in (ASSIST, KEYS, "/v1/chat/completions"):
            declared = http.post(path, content=huge, headers={"Content-Type": "application/json"})
            assert declared.status_code == 413, path
            streamed = http.post(
                path, content=chunks(), headers={"Content-Type": "application/json"}
            )
            assert streamed.status_code == 413, path
        assert http.post(KEYS, json={"action": "get-status"}).status_code == 200


# ---------------------------------------------------------------- leak sweep
def test_leak_sweep_over_every_route(
    server: Server, cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    """Canary keys appear in no response (but the internal get-key) and no log line."""
    token = token_for(cli, "alice")
    secrets = {p: canary() for p in ("openai", "anthropic", "google")}
    server.canaries.extend(secrets.values())
    bodies: list[str] = []
    with server.client(token) as http:
        for provider, secret in secrets.items():
            response = http.post(
                KEYS, json={"action": "set-key", "provider": provider, "apiKey": secret}
            )
            bodies.append(response.text)
        activate_directly(database_url, "openai", "gpt-4o-mini")
        requests: list[tuple[str, str, Any]] = [
            ("POST", KEYS, {"action": "get-status"}),
            ("POST", KEYS, {"action": "test-key", "provider": "anthropic"}),
            ("POST", KEYS, {"action": "get-key", "provider": "openai"}),  # no internal token
            ("POST", ASSIST, {"messages": [{"role": "user", "content": "hi"}]}),
            ("POST", CONFIG_TEST, {}),
            ("GET", "/v1/models", None),
            (
                "POST",
                "/v1/chat/completions",
                {"model": "active", "messages": [{"role": "user", "content": "hi"}]},
            ),
            (
                "POST",
                "/v1/chat/completions",
                {
                    "model": "active",
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            ),
        ]
        for fault in (None, "401", "403", "429", "500", "malformed", "stream_break"):
            if fault:
                fake.fail(fault, times=3)
            for method, path, body in requests:
                bodies.append(http.request(method, path, json=body).text)
            fake.clear()
        internal = http.post(
            KEYS,
            json={"action": "get-key", "provider": "google"},
            headers={"x-internal-token": INTERNAL},
        )
        assert internal.json()["apiKey"] == secrets["google"]
    for secret in secrets.values():
        for body in bodies:
            assert find_leaks(body, secret) == [], body[:300]
    assert any('"valid"' in b for b in bodies) and any("data: [DONE]" in b for b in bodies)


def test_importing_the_cli_does_not_import_the_server_stack() -> None:
    code = (
        "import sys, aipilot.cli.app; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn', 'jwt'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
