"""A limit an admin set (`limits set --for`) holds against the member it binds.

On SQLite and PostgreSQL: the member may tighten it, never raise or clear it (exit 9, the
limit unchanged); the admin still can. On PostgreSQL a trigger (migration 0004) refuses the
same changes when they come straight from SQL as the member, whatever aipilot's code does.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from aipilot.config import normalise_database_url
from aipilot.errors import ExitCode
from tests.conftest import CliFn
from tests.providers_catalog import sql


@pytest.fixture
def limited(cli: CliFn) -> CliFn:
    """bob (a member) with an admin-set limit: 10 requests a day, $5 a month."""
    assert cli("users", "add", "bob").exit_code == 0
    done = cli("limits", "set", "--for", "bob", "--daily-requests", "10", "--monthly-cost", "5")
    assert done.exit_code == 0, done.stderr
    return cli


def _bob_limits(cli: CliFn) -> list[dict[str, object]]:
    shown = cli("--json", "limits", "show", user="bob")
    assert shown.exit_code == 0, shown.stderr
    limits: list[dict[str, object]] = shown.json()["limits"]
    return limits


@pytest.mark.parametrize(
    "attempt",
    [
        ("limits", "clear"),
        ("limits", "set", "--daily-requests", "11"),
        ("limits", "set", "--monthly-cost", "5.01"),
        ("limits", "set", "--daily-requests", "5", "--monthly-cost", "50"),
    ],
)
def test_a_member_cannot_raise_or_clear_an_admin_limit(
    limited: CliFn, attempt: tuple[str, ...]
) -> None:
    before = _bob_limits(limited)
    refused = limited(*attempt, user="bob")
    assert refused.exit_code == ExitCode.PERMISSION, refused.stderr
    assert refused.stderr.startswith("Error:") and "set by an admin" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _bob_limits(limited) == before
    assert before[0]["set_by_admin"] is True and before[0]["daily_requests"] == 10


def test_a_member_may_tighten_it_and_the_admin_may_lift_it(limited: CliFn) -> None:
    tightened = limited("limits", "set", "--daily-requests", "3", user="bob")
    assert tightened.exit_code == 0, tightened.stderr
    (row,) = _bob_limits(limited)
    assert row["daily_requests"] == 3 and row["set_by_admin"] is True  # still the admin's
    assert limited("limits", "set", "--for", "bob", "--daily-requests", "50").exit_code == 0
    assert _bob_limits(limited)[0]["daily_requests"] == 50
    assert limited("limits", "clear", "--for", "bob").exit_code == 0
    assert _bob_limits(limited) == []


def test_a_members_own_limit_stays_its_own(cli: CliFn) -> None:
    assert cli("users", "add", "bob").exit_code == 0
    assert cli("limits", "set", "--daily-requests", "10", user="bob").exit_code == 0
    assert cli("limits", "set", "--daily-requests", "20", user="bob").exit_code == 0
    (row,) = _bob_limits(cli)
    assert row["daily_requests"] == 20 and row["set_by_admin"] is False
    assert cli("limits", "clear", user="bob").exit_code == 0


def test_the_database_refuses_the_member_too(
    limited: CliFn, backend: str, database_url: str
) -> None:
    """PostgreSQL: the same change made in SQL as bob (his claims set, as aipilot sets
    them) fails with 42501 in the guard trigger; an admin's identity passes."""
    if backend != "postgresql":
        pytest.skip("triggers with identities are PostgreSQL's")
    bob = sql(database_url, "SELECT users_id FROM users WHERE username = 'bob'")[0][0]
    alice = sql(database_url, "SELECT users_id FROM users WHERE username = 'alice'")[0][0]
    engine = sa.create_engine(normalise_database_url(database_url))
    raise_it = sa.text("UPDATE ai_user_limits SET daily_requests = 1000 WHERE user_id = :u")
    claims = sa.text("SELECT set_config('request.jwt.claims', :c, true)")
    try:
        with pytest.raises(DBAPIError) as refused, engine.begin() as conn:
            conn.execute(claims, {"c": json.dumps({"sub": str(bob)})})
            conn.execute(raise_it, {"u": bob})
        assert getattr(refused.value.orig, "sqlstate", None) == "42501"
        with engine.begin() as conn:
            conn.execute(claims, {"c": json.dumps({"sub": str(alice)})})
            assert conn.execute(raise_it, {"u": bob}).rowcount == 1
    finally:
        engine.dispose()
