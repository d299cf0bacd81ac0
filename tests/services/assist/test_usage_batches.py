"""``write_rows``: the usage rows of many users' calls in one transaction (``aipilot serve``'s
group commit), on SQLite and PostgreSQL.

- a batch mixing users writes every row with its own user_id and settles each row's
  reservation on that user's limits;
- on PostgreSQL, connected as the role the README recommends (a member of
  ``aipilot_service`` without BYPASSRLS), the same batch passes row-level security: each
  row is written as its own user. Written as any single one of them, the others' rows are
  refused (checked here, so the test shows what the identity switch does);
- a row the database refuses keeps only itself out: the other rows are written and
  settled, and the refusal comes back in that row's slot.

The limits are real (`aipilot limits set` through the CLI) and the reservations are made by
``quotas.reserve``, as a call makes them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest

from aipilot.config import Settings
from aipilot.errors import AipilotError, PermissionDeniedError
from aipilot.services.accounting import calls, quotas
from aipilot.services.assist import assist
from aipilot.services.runtime import Batcher, Context, connect
from tests.conftest import CliFn
from tests.providers_catalog import sql

MEMBERS = ("bob", "carol")


@pytest.fixture
def team(cli: CliFn) -> None:
    """alice (admin), bob and carol (members), each with a limit on every provider."""
    for name in MEMBERS:
        assert cli("users", "add", name).exit_code == 0
    for name in ("alice", *MEMBERS):
        result = cli(
            "limits", "set", "--for", name, "--daily-requests", "100", "--monthly-cost", "50"
        )
        assert result.exit_code == 0, result.stderr


@contextmanager
def contexts(url: str) -> Iterator[dict[str, Context]]:
    """Every user's context on one Database, as one `aipilot serve` process holds them."""
    first = connect(Settings.resolve(db=url, user="alice"))
    try:
        found = {"alice": first}
        for name in MEMBERS:
            found[name] = connect(Settings.resolve(db=url, user=name), database=first.db)
        yield found
    finally:
        first.db.dispose()


@pytest.fixture
def users(team: None, database_url: str) -> Iterator[dict[str, Context]]:
    with contexts(database_url) as found:
        yield found


def usage_row(ctx: Context, note: str, cost: str, **values: object) -> assist.UsageRow:
    """A chat's row, its quota reserved as a call reserves it."""
    reservation = quotas.reserve(ctx, provider_key="openai", user_limits=True, connexion_id=None)
    assert reservation.limit_ids  # a real limit row counted it
    row = calls.usage_values(
        ctx.identity,
        kind="chat",
        provider_key="openai",
        outcome=calls.CallOutcome(True, 40),
        model="gpt-4o-mini",
        tokens=calls.Tokens(12, 5),
        cost=Decimal(cost),
        request_content=note,
    )
    row.update(values)
    return assist.UsageRow(ctx.identity.user_id, row, reservation, Decimal(cost))


def written(database_url: str) -> dict[str, str]:
    """note → the username its row was written for."""
    rows = sql(
        database_url,
        "SELECT l.request_content, u.username FROM ai_usage_logs l "
        "LEFT JOIN users u ON u.users_id = l.user_id WHERE l.request_content LIKE 'note %'",
    )
    return {str(note): str(name) for note, name in rows}


def spent(database_url: str) -> dict[str, tuple[int, Decimal]]:
    """username → (requests today, cost this month) on its limit."""
    rows = sql(
        database_url,
        "SELECT u.username, l.requests_today, l.cost_this_month FROM ai_user_limits l "
        "JOIN users u ON u.users_id = l.user_id",
    )
    return {str(name): (int(n), Decimal(str(cost))) for name, n, cost in rows}


def check_mixed_batch(users: dict[str, Context], owner_url: str) -> None:
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    rows = [
        usage_row(alice, "note a1", "0.10"),
        usage_row(bob, "note b1", "0.20"),
        usage_row(carol, "note c1", "0.40"),
        usage_row(bob, "note b2", "0.80"),  # back to a user seen earlier in the batch
        usage_row(bob, "note b3", "1.60"),
    ]
    assert assist.write_rows(alice.db, rows) == [None] * 5
    assert written(owner_url) == {
        "note a1": "alice",
        "note b1": "bob",
        "note c1": "carol",
        "note b2": "bob",
        "note b3": "bob",
    }
    assert spent(owner_url) == {
        "alice": (1, Decimal("0.10")),
        "bob": (3, Decimal("2.60")),
        "carol": (1, Decimal("0.40")),
    }


def test_a_batch_of_several_users_writes_each_row_for_its_user(
    users: dict[str, Context], database_url: str
) -> None:
    check_mixed_batch(users, database_url)


def test_a_mixed_batch_passes_row_level_security(
    team: None, backend: str, database_url: str, request: pytest.FixtureRequest
) -> None:
    """As a non-owner role without BYPASSRLS: each row must be written as its own user."""
    if backend != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    tester_url = request.getfixturevalue("tester_url")
    assert sql(
        tester_url, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ) == [(False,)]
    with contexts(tester_url) as users:
        # the wall is there: as bob, carol's row is refused, and so is bob's row as alice
        # (an admin, but usage rows are their own user's only)
        carol_row = usage_row(users["carol"], "note refused", "0")
        for identity in (users["bob"].identity, users["alice"].identity):
            with (
                pytest.raises(PermissionDeniedError),
                users["alice"].db.connection(user_id=identity.user_id, write=True) as conn,
            ):
                conn.execute(calls.USAGE_INSERT, carol_row.values)
        sql(database_url, "UPDATE ai_user_limits SET requests_today = 0")
        check_mixed_batch(users, database_url)


# a value no integer column holds: PostgreSQL refuses it (integer out of range), and so does
# SQLite's driver (larger than its 64-bit INTEGER)
HUGE = 2**64


@pytest.mark.parametrize("refusal", ["user deleted meanwhile", "tokens out of range"])
def test_a_row_the_database_refuses_keeps_only_itself_out(
    users: dict[str, Context],
    database_url: str,
    backend: str,
    refusal: str,
    request: pytest.FixtureRequest,
) -> None:
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    first = usage_row(alice, "note a1", "0.10")
    if refusal == "user deleted meanwhile":
        bad = usage_row(carol, "note c1", "0.40")  # reserved, then the user goes away
        sql(database_url, "DELETE FROM users WHERE username = 'carol'")
    else:
        bad = usage_row(carol, "note c1", "0.40", input_tokens=HUGE)
    last = usage_row(bob, "note b1", "0.20")
    errors = assist.write_rows(alice.db, [first, bad, last])
    assert errors[0] is None and errors[2] is None, errors
    assert isinstance(errors[1], AipilotError), errors
    assert written(database_url) == {"note a1": "alice", "note b1": "bob"}
    settled = spent(database_url)
    assert settled["alice"] == (1, Decimal("0.10")) and settled["bob"] == (1, Decimal("0.20"))
    if refusal == "tokens out of range":
        assert settled["carol"] == (1, Decimal("0"))  # reserved, but nothing settled


def test_a_lone_row_the_database_refuses_returns_its_error(
    users: dict[str, Context], database_url: str, backend: str, request: pytest.FixtureRequest
) -> None:
    row = usage_row(users["bob"], "note b1", "0.20", output_tokens=HUGE)
    [error] = assist.write_rows(users["alice"].db, [row])
    assert isinstance(error, AipilotError)
    assert written(database_url) == {}
    assert spent(database_url)["bob"] == (1, Decimal("0"))


def test_the_servers_batcher_writes_concurrent_users_rows(
    users: dict[str, Context], database_url: str
) -> None:
    """``aipilot serve``'s pairing: a Batcher over write_rows, submits from concurrent calls."""
    rows = [usage_row(users[name], f"note {name} {i}", "0.01") for i in range(4) for name in users]

    async def main() -> list[None]:
        batcher = Batcher(functools.partial(assist.write_rows, users["alice"].db))
        return await asyncio.gather(*(batcher.submit(row) for row in rows))

    assert asyncio.run(main()) == [None] * len(rows)
    assert sorted(written(database_url).values()) == sorted(["alice", "bob", "carol"] * 4)
    assert {name: n for name, (n, _) in spent(database_url).items()} == dict.fromkeys(users, 4)
    assert {cost for _, cost in spent(database_url).values()} == {Decimal("0.04")}
