"""One key resolution for every path (``aipilot.services.keys.resolve.resolve_key``).

bob has no key of his own, only his organisation's OpenAI connection (with its
OpenAI-Organization / -Project ids). Checked through the real CLI and a real `aipilot serve`
against the fake provider, on SQLite and PostgreSQL: `ask`, `aipilot test`, `keys test`,
``ai-config-test``, ``assist_flut``, the ``test-key`` action and ``/v1/chat/completions``
(plain and streamed) all send the organisation's key with its headers; a model outside the
organisation's allowed list is refused the same way (exit 9 / HTTP 403) on every path,
before anything reaches the provider; once bob stores his own key, every path sends it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from aipilot.errors import ExitCode
from tests.conftest import CliFn
from tests.fakeprovider import FakeProvider, RecordedRequest
from tests.memkeyring import find_leaks
from tests.providers_catalog import activate_directly, point_catalog_at, sql
from tests.serve_support import ServeProcess

MODEL = "gpt-4o-mini"
ORG_HEADERS = {"openai-organization": "org-acme", "openai-project": "proj_42"}
CONFIG_TEST = "/functions/v1/ai-config-test"
ASSIST = "/functions/v1/assist_flut"
KEYS = "/functions/v1/ai-keys-manager"


def canary() -> str:
    return f"sk-aipilot-CANARY-{uuid.uuid4()}"


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


@pytest.fixture
def org_key(cli: CliFn, fake: FakeProvider, database_url: str) -> str:
    """acme with bob as its member; its key (a canary), MODEL allowed, the organisation and
    project ids set as the seed's app sets them; bob has MODEL active and no key of his own."""
    secret = canary()
    assert cli("users", "add", "bob").exit_code == 0
    assert cli("orgs", "add", "acme").exit_code == 0
    assert cli("orgs", "add-member", "acme", "bob").exit_code == 0
    stored = cli("org-openai", "set-key", "acme", "--stdin", "--no-test", input=secret)
    assert stored.exit_code == 0, stored.stderr
    assert cli("org-openai", "allow-models", "acme", MODEL, "gpt-4").exit_code == 0
    sql(
        database_url,
        "UPDATE openai_connexion SET openai_organisation_id = 'org-acme', "
        "openai_project_id = 'proj_42'",
    )
    activate_directly(database_url, "openai", MODEL, user="bob")
    return secret


@pytest.fixture
def served(database_url: str, fake: FakeProvider, tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(database_url, tmp_path / "serve").start()
    yield server
    assert server.stop() == 0, server.output()


def since(fake: FakeProvider, mark: int) -> list[RecordedRequest]:
    return fake.requests[mark:]


def assert_sent_with(requests: list[RecordedRequest], secret: str, *, org: bool) -> None:
    """Every request carried ``secret``, and the organisation's headers exactly when ``org``."""
    assert requests, "nothing reached the provider"
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {secret}", request.path
        sent = {name: request.headers.get(name) for name in ORG_HEADERS}
        assert sent == (ORG_HEADERS if org else dict.fromkeys(ORG_HEADERS)), request.path


def org_requests_today(database_url: str) -> int:
    return int(sql(database_url, "SELECT openai_usage_quotidien FROM openai_connexion")[0][0] or 0)


def connexion_status(database_url: str) -> str:
    return str(sql(database_url, "SELECT openai_statut_connexion FROM openai_connexion")[0][0])


def serve_paths(http: httpx.Client) -> dict[str, httpx.Response]:
    """One request on each of serve's paths that resolve a key."""
    messages = [{"role": "user", "content": "hi"}]
    responses = {
        "ai-config-test": http.post(CONFIG_TEST, json={}),
        "assist_flut": http.post(ASSIST, json={"messages": messages}),
        "test-key": http.post(KEYS, json={"action": "test-key", "provider": "openai"}),
        "/v1": http.post("/v1/chat/completions", json={"model": "active", "messages": messages}),
    }
    body = {"model": "active", "messages": messages, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as stream:
        stream.read()
        responses["/v1 stream"] = stream
    return responses


def stream_text(response: httpx.Response) -> str:
    parts = []
    for line in response.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices", []):
                parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


# ---------------------------------------------------------------- the CLI
def test_cli_paths_use_the_organisation_key_then_the_own_key(
    cli: CliFn, fake: FakeProvider, database_url: str, org_key: str
) -> None:
    mark = len(fake.requests)
    asked = cli("ask", "hi", user="bob")
    assert asked.exit_code == 0, asked.stderr
    assert_sent_with(since(fake, mark), org_key, org=True)

    mark = len(fake.requests)
    tested = cli("test", "--json", user="bob")
    assert tested.exit_code == 0, tested.stderr + tested.stdout
    assert tested.json()["success"] is True
    assert_sent_with(since(fake, mark), org_key, org=True)
    assert len(since(fake, mark)) == 3  # key, model, round trip
    assert org_requests_today(database_url) == 2  # the ask and the test's round trip
    # the organisation's monthly spend is the sum of the two rows' costs: the config test's
    # row carries the round trip's cost it was charged
    costs = sql(
        database_url,
        "SELECT kind, cost_usd FROM ai_usage_logs WHERE kind IN ('chat', 'config_test')",
    )
    spent = sql(database_url, "SELECT openai_cout_actuel_mois FROM openai_connexion")[0][0]
    assert {kind for kind, _ in costs} == {"chat", "config_test"}
    assert all(cost is not None for _, cost in costs), costs
    # (the seed's counter keeps 4 decimals: each call's cost is rounded there)
    total = sum(Decimal(str(cost)) for _, cost in costs)
    assert total > 0
    assert abs(total - Decimal(str(spent))) <= Decimal("0.00005") * len(costs)

    # `keys test openai` tests the key a call would use: the organisation's, counted nowhere
    mark = len(fake.requests)
    checked = cli("keys", "test", "openai", "--json", user="bob")
    assert checked.exit_code == 0, checked.stderr
    assert checked.json()["valid"]["ok"] is True
    assert_sent_with(since(fake, mark), org_key, org=True)
    assert org_requests_today(database_url) == 2
    # --all tests bob's own stored keys: he has none
    assert cli("keys", "test", "--all", user="bob").exit_code == ExitCode.USAGE
    for result in (asked, tested, checked):
        assert find_leaks(result.stdout + result.stderr, org_key) == []

    own = canary()
    stored = cli("keys", "set", "openai", "--stdin", "--no-test", input=own, user="bob")
    assert stored.exit_code == 0, stored.stderr
    mark = len(fake.requests)
    for args in (("ask", "hi"), ("test",), ("keys", "test", "openai"), ("keys", "test", "--all")):
        result = cli(*args, user="bob")
        assert result.exit_code == 0, (args, result.stderr)
    assert_sent_with(since(fake, mark), own, org=False)
    assert org_requests_today(database_url) == 2  # the organisation's key was not used


def test_a_model_outside_the_allowed_list_is_refused_on_every_cli_path(
    cli: CliFn, fake: FakeProvider, database_url: str, org_key: str
) -> None:
    assert cli("org-openai", "allow-models", "acme", "gpt-4").exit_code == 0
    mark = len(fake.requests)
    for args in (("ask", "hi"), ("ask", "hi", "--no-stream"), ("test",), ("test", "--json")):
        refused = cli(*args, user="bob")
        assert refused.exit_code == ExitCode.PERMISSION, (args, refused.stdout, refused.stderr)
        assert f"model {MODEL} is not allowed" in refused.stderr + refused.stdout
    assert since(fake, mark) == []
    assert org_requests_today(database_url) == 0
    # a key test names no model: the key itself is checked
    assert cli("keys", "test", "openai", user="bob").exit_code == 0


def test_the_config_test_counts_against_the_organisation_and_a_401_marks_it(
    cli: CliFn, fake: FakeProvider, database_url: str, org_key: str
) -> None:
    assert cli("org-openai", "limits", "acme", "--daily-requests", "1").exit_code == 0
    assert cli("test", user="bob").exit_code == 0
    mark = len(fake.requests)
    refused = cli("test", user="bob")
    assert refused.exit_code == ExitCode.QUOTA, refused.stderr
    assert "daily" in refused.stderr and since(fake, mark) == []
    assert cli("org-openai", "limits", "acme", "--daily-requests", "10").exit_code == 0
    # OpenAI refuses the key: the test fails (exit 4) and the connection is marked 'error'
    fake.set_keys(["sk-something-else-entirely"])
    failed = cli("test", user="bob")
    assert failed.exit_code == ExitCode.UNHEALTHY, failed.stdout + failed.stderr
    assert find_leaks(failed.stdout + failed.stderr, org_key) == []
    assert connexion_status(database_url) == "error"
    unusable = cli("test", user="bob")
    assert unusable.exit_code == ExitCode.NOT_CONFIGURED and "error" in unusable.stderr
    assert cli("keys", "test", "openai", user="bob").exit_code == ExitCode.NOT_CONFIGURED
    # a member's key test leaves the status alone; the admin's test sets it again
    fake.set_keys(None)
    assert cli("org-openai", "test", "acme").exit_code == 0
    assert connexion_status(database_url) == "active"
    assert cli("test", user="bob").exit_code == 0


# ---------------------------------------------------------------- aipilot serve
def test_serve_paths_use_the_organisation_key_refuse_alike_then_the_own_key(
    cli: CliFn,
    fake: FakeProvider,
    database_url: str,
    org_key: str,
    served: ServeProcess,
) -> None:
    token = cli("tokens", "create", user="bob").stdout.strip()
    with served.client(token) as http:
        mark = len(fake.requests)
        responses = serve_paths(http)
        for path, response in responses.items():
            assert response.status_code == 200, (path, response.text)
        config: dict[str, Any] = responses["ai-config-test"].json()
        assert config["success"] is True, config
        assert responses["assist_flut"].json()["success"] is True
        assert responses["test-key"].json()["valid"]["ok"] is True
        assert responses["/v1"].json()["choices"][0]["message"]["content"]
        assert stream_text(responses["/v1 stream"])
        assert_sent_with(since(fake, mark), org_key, org=True)
        # config test's round trip, assist_flut, /v1 and the stream: 4 requests counted
        assert org_requests_today(database_url) == 4

        # outside the allowed list: refused alike, before the provider, nothing counted
        assert cli("org-openai", "allow-models", "acme", "gpt-4").exit_code == 0
        mark = len(fake.requests)
        refused = serve_paths(http)
        assert refused.pop("test-key").status_code == 200  # names no model
        for path, response in refused.items():
            assert response.status_code == 403, (path, response.text)
            assert f"model {MODEL} is not allowed" in response.text, path
        assert [r.path for r in since(fake, mark) if "chat" in r.path] == []
        assert org_requests_today(database_url) == 4

        own = canary()
        stored = cli("keys", "set", "openai", "--stdin", "--no-test", input=own, user="bob")
        assert stored.exit_code == 0, stored.stderr
        mark = len(fake.requests)
        for path, response in serve_paths(http).items():
            assert response.status_code == 200, (path, response.text)
        assert_sent_with(since(fake, mark), own, org=False)
        assert org_requests_today(database_url) == 4
    assert find_leaks(served.output(), org_key) == []
    assert find_leaks(served.output(), own) == []
