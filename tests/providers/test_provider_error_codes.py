"""A provider error's `code` field is redacted like its message.

The fake provider answers a 401 whose `error.code` is the key it received (fault
``401_code``). Neither `keys set`/`keys test`/`ask` output, `history --json`, the usage log
(`ai_usage_logs.error_code` / `error_message`), the stored last test error, nor the HTTP
`test-key` answer of a real `aipilot serve` may hold that key, whether it looks like a key
(masked by shape) or not (masked because it is the key that was sent).
"""

from __future__ import annotations

import uuid

import pytest

from aipilot.errors import ExitCode
from tests import holes_support
from tests.conftest import CliFn
from tests.fakeprovider import FakeProvider
from tests.holes_support import KEYS, Server, token_for
from tests.memkeyring import find_leaks
from tests.providers_catalog import activate_directly, sql

fake, server = holes_support.fake, holes_support.server  # fixtures

SHAPES = {
    "key-shaped": lambda: f"sk-aipilot-CANARY-{uuid.uuid4()}",
    "not key-shaped": lambda: f"CANARY{uuid.uuid4().hex}",  # a valid error-code shape too
}


def stored_errors(database_url: str) -> str:
    rows = sql(database_url, "SELECT error_code, error_message FROM ai_usage_logs")
    rows += sql(database_url, "SELECT last_test_error, key_hint FROM user_provider_credentials")
    return repr(rows)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_key_echoed_in_the_error_code_goes_nowhere(
    shape: str,
    cli: CliFn,
    fake: FakeProvider,
    server: Server,
    database_url: str,
) -> None:
    secret = SHAPES[shape]()
    server.canaries.append(secret)
    fake.fail("401_code")
    stored = cli("keys", "set", "openai", "--stdin", input=secret)
    assert stored.exit_code == ExitCode.PROVIDER, stored.stderr
    assert fake.last_request.headers["authorization"] == f"Bearer {secret}"
    fake.fail("401_code")
    tested = cli("keys", "test", "openai", "--json")
    assert tested.exit_code == ExitCode.PROVIDER
    activate_directly(database_url, "openai", "gpt-4o-mini")
    fake.fail("401_code", only="chat")
    asked = cli("ask", "hi", "--json")
    assert asked.exit_code == ExitCode.PROVIDER
    history = cli("history", "--json")
    assert history.exit_code == 0
    entries = history.json()["entries"]
    assert len(entries) == 3 and all(e.get("error_code") for e in entries), entries
    with server.client(token_for(cli)) as http:
        fake.fail("401_code")
        answer = http.post(KEYS, json={"action": "test-key", "provider": "openai"})
    assert answer.status_code == 200 and answer.json()["valid"]["ok"] is False
    assert answer.json()["valid"]["error_code"], answer.text
    outputs = [stored, tested, asked, history]
    everything = "".join(r.stdout + r.stderr for r in outputs) + answer.text
    everything += stored_errors(database_url)
    assert find_leaks(everything, secret) == []
    assert "HTTP 401" in answer.json()["valid"]["error_code"]
