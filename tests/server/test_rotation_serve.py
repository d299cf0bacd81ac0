"""After `aipilot keys rotate-master`, a running `aipilot serve` never seals a key
with the retired master key.

The server was started with AIPILOT_MASTER_KEY=A; an admin rotates to B from the CLI. Before,
the server's `set-key` sealed the new key under A (the key it holds in memory): that row
could not be opened with B, and every later rotation failed with exit 10. Now the server
sees that keys were sealed under another master key since it started, and refuses (HTTP 409,
code "vault") with a hint to restart it with the current key; nothing is written, and the
next rotation succeeds. A server started with the current key stores keys as before.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from aipilot.errors import ExitCode
from aipilot.vault import parse_master_key
from tests import holes_support
from tests.conftest import MASTER_KEY, CliFn, Run
from tests.fakeprovider import FakeProvider
from tests.holes_support import KEYS, Server, canary, store_key, token_for
from tests.providers_catalog import sql

fake, server = holes_support.fake, holes_support.server  # fixtures


def new_master() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def key_ids(database_url: str) -> set[str]:
    return {str(r[0]) for r in sql(database_url, "SELECT key_id FROM user_provider_credentials")}


def rotate(cli: CliFn, current: str, new: str) -> Run:
    """`keys rotate-master` (exit 10 when a row is sealed under neither key)."""
    env = {"AIPILOT_MASTER_KEY": current, "NEW": new}
    result = cli("keys", "rotate-master", "--new-from-env", "NEW", env=env)
    assert result.exit_code in (0, ExitCode.VAULT), result.stderr
    return result


def set_key(
    http_server: Server, token: str, provider: str = "openai"
) -> tuple[int, dict[str, object]]:
    with http_server.client(token) as http:
        answer = http.post(
            KEYS,
            json={"action": "set-key", "provider": provider, "apiKey": canary(), "test": False},
        )
    return answer.status_code, answer.json()


def test_a_running_server_never_seals_with_the_retired_master_key(
    server: Server, cli: CliFn, fake: FakeProvider, database_url: str, tmp_path: Path
) -> None:
    assert cli("users", "add", "carol").exit_code == 0
    server.canaries += [store_key(cli, "alice"), store_key(cli, "alice", "anthropic")]
    alice, carol = token_for(cli, "alice"), token_for(cli, "carol")
    assert set_key(server, alice, "mistral")[0] == 200  # under A, the current key: fine
    old_id, second = parse_master_key(MASTER_KEY).key_id, new_master()
    assert rotate(cli, MASTER_KEY, second).exit_code == 0
    assert key_ids(database_url) == {parse_master_key(second).key_id}
    for token, provider in ((alice, "openai"), (alice, "xai"), (carol, "openai")):
        status, doc = set_key(server, token, provider)
        assert status == 409 and doc["code"] == "vault", doc
        assert old_id in str(doc["error"]) and "restart" in str(doc["hint"]), doc
    assert key_ids(database_url) == {parse_master_key(second).key_id}
    rows = sql(database_url, "SELECT count(*) FROM user_provider_credentials")
    assert int(str(rows[0][0])) == 3  # nothing was written
    # the next rotation works: every row is under the current key
    third = new_master()
    assert rotate(cli, second, third).exit_code == 0
    # a server started with the current key stores keys as before
    fresh = Server(database_url, tmp_path / "fresh", env={"AIPILOT_MASTER_KEY": third}).start()
    try:
        assert set_key(fresh, carol)[0] == 200
        assert set_key(fresh, alice, "xai")[0] == 200
    finally:
        assert fresh.stop() == 0
    assert key_ids(database_url) == {parse_master_key(third).key_id}
    assert rotate(cli, third, new_master()).exit_code == 0


def test_a_key_that_needs_re_entry_can_still_be_re_entered(cli: CliFn, database_url: str) -> None:
    """Rows sealed under another master key before the command began are no reason to
    refuse: a lost master key's keys are re-entered one by one."""
    store_key(cli, "alice")
    store_key(cli, "alice", "anthropic")
    replacement = {"AIPILOT_MASTER_KEY": new_master()}
    status = cli("keys", "status", "--json", env=replacement)
    assert "needs re-entry" in status.stdout
    for provider in ("openai", "anthropic"):
        again = cli(
            "keys", "set", provider, "--stdin", "--no-test", input=canary(), env=replacement
        )
        assert again.exit_code == 0, again.stderr
    assert key_ids(database_url) == {parse_master_key(replacement["AIPILOT_MASTER_KEY"]).key_id}
