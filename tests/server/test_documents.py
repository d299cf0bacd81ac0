"""The CLI's ``--json`` and ``aipilot serve``'s ``/functions/v1/*`` print the same document.

For each operation and outcome — config test (healthy, failing), key status, key test (ok,
failing), set-key (tested or not), delete-key, assist (an answer, a refusal) and errors
(unknown provider, no active model) — the test runs the real ``aipilot`` command with
``--json`` and the same call against a real ``aipilot serve`` process, for the same user
and the same database state, and checks the two documents are equal: the same fields, in
the same order, with the same values. The HTTP status code and the CLI's exit code are
checked against what the README says (an error's ``exit_code`` is the CLI's).

Ignored, and only these: ``latency_ms`` and ``ttft_ms`` (timed per call, anywhere in the
document). Timestamps are compared as they are: both sides read the same rows and no
operation compared here writes one between the two calls. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aipilot.errors import ExitCode
from tests.conftest import CliFn, Run
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import activate_directly, point_catalog_at
from tests.replay_server import ReplayServer
from tests.replay_support import PROVIDERS, point
from tests.serve_support import ServeProcess

KEY = "sk-fake-documents-0123456789"
KEYS = "/functions/v1/ai-keys-manager"
ASSIST = "/functions/v1/assist_flut"
CONFIG_TEST = "/functions/v1/ai-config-test"
PER_CALL = frozenset({"latency_ms", "ttft_ms"})
ERROR_FIELDS = ["success", "error", "hint", "code", "type", "exit_code"]


def stable(doc: Any) -> Any:
    """The document without its per-call timings."""
    if isinstance(doc, dict):
        return {k: stable(v) for k, v in doc.items() if k not in PER_CALL}
    if isinstance(doc, list):
        return [stable(v) for v in doc]
    return doc


def same(run: Run, answer: httpx.Response, *, status: int, exit_code: int) -> dict[str, Any]:
    """The CLI's document equals the route's body (timings aside); returns it."""
    assert answer.status_code == status, answer.text
    assert run.exit_code == exit_code, run.stderr
    cli_doc, http_doc = run.json(), answer.json()
    assert list(cli_doc) == list(http_doc)  # the same fields, in the same order
    assert stable(cli_doc) == stable(http_doc)
    if cli_doc["success"] is False and "exit_code" in cli_doc:
        assert cli_doc["exit_code"] == exit_code  # an error says the CLI's exit code
    assert isinstance(cli_doc, dict)
    return cli_doc


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


@pytest.fixture
def http(database_url: str, tmp_path: Path, cli: CliFn) -> Iterator[httpx.Client]:
    """A client of a running `aipilot serve`, with a token of alice's (the `cli` user)."""
    srv = ServeProcess(database_url, tmp_path / "serve").start()
    created = cli("tokens", "create")
    assert created.exit_code == 0, created.stderr
    with srv.client(created.stdout.strip()) as client:
        yield client
    assert srv.stop() == 0, srv.output()


def set_key(cli: CliFn, *flags: str) -> Run:
    return cli("keys", "set", "openai", "--stdin", *flags, "--json", input=KEY)


def test_key_documents(cli: CliFn, http: httpx.Client, fake: FakeProvider) -> None:
    # set-key, not tested, then tested (the fake takes any key)
    untested = same(
        set_key(cli, "--no-test"),
        http.post(
            KEYS, json={"action": "set-key", "provider": "openai", "apiKey": KEY, "test": False}
        ),
        status=200,
        exit_code=0,
    )
    assert untested["tested"] is False and "valid" not in untested
    tested = same(
        set_key(cli),
        http.post(KEYS, json={"action": "set-key", "provider": "openai", "apiKey": KEY}),
        status=200,
        exit_code=0,
    )
    assert tested["valid"]["ok"] is True and tested["hint"] == untested["hint"]

    # key status: all providers, then one
    status = same(
        cli("keys", "status", "--json"),
        http.post(KEYS, json={"action": "get-status"}),
        status=200,
        exit_code=0,
    )
    assert status["data"]["openai"] is True and status["data"]["anthropic"] is False
    openai_row = next(p for p in status["providers"] if p["provider"] == "openai")
    assert openai_row["last_test_ok"] is True and openai_row["last_tested_at"]
    same(
        cli("keys", "status", "openai", "--json"),
        http.post(KEYS, json={"action": "get-status", "provider": "openai"}),
        status=200,
        exit_code=0,
    )

    # key test: ok, then refused by the provider (set-key's own test passed before)
    ok = same(
        cli("keys", "test", "openai", "--json"),
        http.post(KEYS, json={"action": "test-key", "provider": "openai"}),
        status=200,
        exit_code=0,
    )
    assert ok["success"] is True and ok["valid"]["ok"] is True
    fake.set_keys(["sk-fake-some-other-key-000000"])
    failing = same(
        cli("keys", "test", "openai", "--json"),
        http.post(KEYS, json={"action": "test-key", "provider": "openai"}),
        status=200,
        exit_code=ExitCode.PROVIDER,
    )
    assert failing["success"] is False and failing["valid"]["error_code"]
    assert failing["valid"]["error"]

    # delete-key: each side deletes a stored key, then finds none
    deleted = cli("keys", "delete", "openai", "--yes", "--json")
    assert set_key(cli, "--no-test").exit_code == 0
    same(
        deleted,
        http.post(KEYS, json={"action": "delete-key", "provider": "openai"}),
        status=200,
        exit_code=0,
    )
    gone = same(
        cli("keys", "delete", "openai", "--yes", "--json"),
        http.post(KEYS, json={"action": "delete-key", "provider": "openai"}),
        status=200,
        exit_code=0,
    )
    assert gone == {"success": True, "provider": "openai", "deleted": False}

    # an unknown provider: the one error document
    unknown = same(
        cli("keys", "test", "nosuch", "--json"),
        http.post(KEYS, json={"action": "test-key", "provider": "nosuch"}),
        status=400,
        exit_code=ExitCode.USAGE,
    )
    assert list(unknown) == ERROR_FIELDS and unknown["code"] == "usage"
    assert "nosuch" in unknown["error"] and unknown["type"] == "NotFoundError"


def test_config_test_and_assist_documents(
    cli: CliFn, http: httpx.Client, fake: FakeProvider, database_url: str
) -> None:
    # no active model yet: the same error from `aipilot test` and `ai-config-test`, `ask`
    # and `assist_flut`
    for run, answer in (
        (cli("test", "--json"), http.post(CONFIG_TEST, json={})),
        (
            cli("ask", "hi", "--json"),
            http.post(ASSIST, json={"messages": [{"role": "user", "content": "hi"}]}),
        ),
    ):
        missing = same(run, answer, status=409, exit_code=ExitCode.NOT_CONFIGURED)
        assert list(missing) == ERROR_FIELDS and missing["code"] == "not_configured"
        assert "no active model" in missing["error"] and missing["hint"]

    assert set_key(cli, "--no-test").exit_code == 0
    activate_directly(database_url, "openai", "gpt-4o-mini")
    healthy = same(
        cli("test", "--json"),
        http.post(CONFIG_TEST, json={"module": "global"}),
        status=200,
        exit_code=0,
    )
    assert list(healthy)[:3] == ["success", "api_key_ok", "model_accessible"]
    assert healthy["success"] is True and healthy["error"] is None and healthy["reply"]
    assert [c["error_code"] for c in healthy["checks"]] == [None, None, None]

    answer = same(
        cli("ask", "hi", "--json"),
        http.post(ASSIST, json={"messages": [{"role": "user", "content": "hi"}]}),
        status=200,
        exit_code=0,
    )
    assert answer["success"] is True and answer["text"] and answer["refusal"] is None
    assert "error" not in answer and answer["usage"]["input_tokens"]

    fake.set_keys(["sk-fake-some-other-key-000000"])
    sick = same(
        cli("test", "--json"),
        http.post(CONFIG_TEST, json={}),
        status=200,
        exit_code=ExitCode.UNHEALTHY,
    )
    assert sick["success"] is False and sick["api_key_ok"] is False and sick["error"]
    assert sick["checks"][0]["error_code"] and sick["usage"] == {
        "input_tokens": None,
        "output_tokens": None,
    }


def test_assist_refusal_document(
    cli: CliFn, database_url: str, tmp_path: Path, http: httpx.Client
) -> None:
    with ReplayServer() as replay:
        point(replay, database_url, "openai", "chat_refusal")
        assert set_key(cli, "--no-test").exit_code == 0
        activate_directly(database_url, *PROVIDERS["openai"])
        hello = {"messages": [{"role": "user", "content": "hello"}]}
        refused = same(
            cli("ask", "hello", "--json"),
            http.post(ASSIST, json=hello),
            status=200,  # a refusal is the provider's answer, not the gateway's failure
            exit_code=ExitCode.PROVIDER,
        )
    assert refused["success"] is False and refused["finish_reason"] == "refusal"
    assert refused["refusal"] and refused["refusal"] in refused["error"]
    assert (refused["code"], refused["type"]) == ("refusal", "RefusedError")
