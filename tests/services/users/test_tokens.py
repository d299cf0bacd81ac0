"""`aipilot tokens create | list | revoke` and bearer-token authentication."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from aipilot.config import Settings
from aipilot.errors import ExitCode, UsageError
from aipilot.services.runtime import connect
from aipilot.services.users import tokens
from tests.conftest import MASTER_KEY, CliFn
from tests.providers_catalog import sql

TOKEN = re.compile(r"^aip_[A-Za-z0-9_-]{43}$")


def test_create_prints_the_token_once_and_stores_only_its_hash(
    cli: CliFn, database_url: str
) -> None:
    result = cli("tokens", "create", "--name", "laptop", "--expires", "30d")
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert TOKEN.match(token) and result.stdout.count("aip_") == 1
    assert token not in result.stderr and "laptop" in result.stderr
    rows = sql(database_url, "SELECT * FROM aipilot_api_tokens")
    assert len(rows) == 1
    row = rows[0]._mapping
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["prefix"] == token[:12] and row["name"] == "laptop"
    assert all(token not in str(value) for value in row.values())
    expires = row["expires_at"]
    expires = datetime.fromisoformat(expires) if isinstance(expires, str) else expires
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)
    listed = cli("tokens", "list", "--json").json()
    assert [(t["prefix"], t["name"], t["state"]) for t in listed] == [
        (token[:12], "laptop", "active")
    ]
    assert token not in cli("tokens", "list").stdout
    second = cli("tokens", "create").stdout.strip()
    assert second != token and TOKEN.match(second)


@pytest.mark.parametrize("bad", ["0d", "30", "3y", "-1d", "soon"])
def test_bad_expiry_is_a_usage_error(cli: CliFn, bad: str, database_url: str) -> None:
    result = cli("tokens", "create", "--expires", bad)
    assert result.exit_code == ExitCode.USAGE
    assert sql(database_url, "SELECT 1 FROM aipilot_api_tokens") == []


def test_parse_duration() -> None:
    assert tokens.parse_duration("90m") == timedelta(minutes=90)
    assert tokens.parse_duration(" 12h ") == timedelta(hours=12)
    assert tokens.parse_duration("2w") == timedelta(weeks=2)
    with pytest.raises(UsageError):
        tokens.parse_duration("1 fortnight")


def test_revoke_by_prefix_or_id_only_your_own(cli: CliFn, database_url: str) -> None:
    assert cli("users", "add", "bob").exit_code == 0
    first = cli("tokens", "create", "--name", "a").stdout.strip()
    cli("tokens", "create", "--name", "b")
    bobs = cli("tokens", "create", user="bob").stdout.strip()
    assert cli("tokens", "revoke", first[:12]).exit_code == 0
    listed = {t["name"]: t for t in cli("tokens", "list", "--json").json()}
    assert listed["a"]["state"] == "revoked" and listed["b"]["state"] == "active"
    assert cli("tokens", "revoke", listed["b"]["id"], "--json").json()["state"] == "revoked"
    assert cli("tokens", "revoke", first[:12]).exit_code == 0  # idempotent
    refused = cli("tokens", "revoke", bobs[:12])  # alice cannot touch bob's token
    assert refused.exit_code == ExitCode.USAGE and "no token" in refused.stderr
    assert [t["state"] for t in cli("tokens", "list", "--json", user="bob").json()] == ["active"]


def test_authenticate(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    ctx = connect(Settings.resolve(db=database_url, user="alice"))
    try:
        created = tokens.create_token(ctx, name="t", expires_in=timedelta(hours=1))
        found = tokens.authenticate_token(ctx.db, created.token)
        assert found.identity == ctx.identity and found.valid_until is not None
        used = tokens.list_tokens(ctx)[0].last_used_at
        assert used is not None
        for bad in ("", "aip_", "aip_" + "x" * 43, created.token + "x", created.token[4:]):
            with pytest.raises(tokens.InvalidTokenError):
                tokens.authenticate_token(ctx.db, bad)
        old = tokens.create_token(ctx, expires_in=timedelta(seconds=-1))
        with pytest.raises(tokens.InvalidTokenError, match="expired"):
            tokens.authenticate_token(ctx.db, old.token)
        tokens.revoke_token(ctx, created.info.id)
        with pytest.raises(tokens.InvalidTokenError, match="revoked"):
            tokens.authenticate_token(ctx.db, created.token)
        assert tokens.identity_of_user_id(ctx.db, str(ctx.identity.user_id)) == ctx.identity
        for sub in (str(uuid.uuid4()), "alice", ""):
            with pytest.raises(tokens.InvalidTokenError):
                tokens.identity_of_user_id(ctx.db, sub)
    finally:
        ctx.db.dispose()
