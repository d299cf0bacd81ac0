"""Per-user limits (`aipilot limits`), enforced by `aipilot ask` for any provider:
reserve before the call, settle the cost after it, reset at day and month boundaries.

Through the real CLI against the fake provider, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from aipilot.errors import ExitCode
from tests import orgs_support
from tests.conftest import MASTER_KEY, CliFn
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.orgs_support import activate, canary, chats, run_many, set_prices
from tests.providers_catalog import sql

fake = orgs_support.fake  # a fixture, shared through the support module


@pytest.fixture
def own_key(cli: CliFn, fake: FakeProvider, database_url: str) -> str:
    """alice has her own openai and anthropic keys and gpt-4o-mini active."""
    secret = canary()
    for provider in ("openai", "anthropic"):
        result = cli("keys", "set", provider, "--stdin", "--no-test", input=secret)
        assert result.exit_code == 0, result.stderr
    activate(database_url, "alice")
    return secret


def limits(cli: CliFn, *args: str, user: str = "alice") -> list[dict[str, object]]:
    result = cli("limits", "show", "--json", *args, user=user)
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, object]] = result.json()["limits"]
    return rows


def test_limits_set_show_clear_and_permissions(cli: CliFn, database_url: str) -> None:
    assert cli("users", "add", "bob").exit_code == 0
    assert limits(cli) == []
    doc = cli("limits", "set", "--daily-requests", "5", "--json").json()["limit"]
    assert doc["provider"] is None and doc["daily_requests"] == 5
    assert doc["monthly_cost_usd"] is None and doc["requests_today"] == 0
    assert cli("limits", "set", "--provider", "openai", "--monthly-cost", "2.5").exit_code == 0
    assert cli("limits", "set", "--daily-requests", "7").exit_code == 0  # changes one value
    rows = limits(cli)
    assert [(r["provider"], r["daily_requests"], r["monthly_cost_usd"]) for r in rows] == [
        (None, 7, None),
        ("openai", None, 2.5),
    ]
    assert cli("limits", "set").exit_code == ExitCode.USAGE
    assert cli("limits", "set", "--provider", "nope", "--daily-requests", "1").exit_code == 2
    assert cli("limits", "set", "--monthly-cost", "-1").exit_code == ExitCode.USAGE
    assert cli("limits", "set", "--monthly-cost", "0.00001").exit_code == ExitCode.USAGE
    # users manage their own; admins anyone's
    assert cli("limits", "set", "--daily-requests", "1", user="bob").exit_code == 0
    assert limits(cli, user="bob")[0]["user"] == "bob"
    denied = cli("limits", "set", "--for", "alice", "--daily-requests", "99", user="bob")
    assert denied.exit_code == ExitCode.PERMISSION
    assert cli("limits", "show", "--for", "alice", user="bob").exit_code == ExitCode.PERMISSION
    assert cli("limits", "set", "--for", "bob", "--daily-requests", "3").exit_code == 0
    assert limits(cli, "--for", "bob")[0]["daily_requests"] == 3
    assert cli("limits", "set", "--for", "nobody", "--daily-requests", "3").exit_code == 2
    assert cli("limits", "clear", "--provider", "openai", "--json").json()["removed"] is True
    assert cli("limits", "clear", "--provider", "openai", "--json").json()["removed"] is False
    assert cli("limits", "clear").exit_code == 0
    assert limits(cli) == [] and len(limits(cli, "--for", "bob")) == 1
    assert "no limits" in cli("limits", "show").stderr


def test_daily_request_limit_and_day_reset(
    cli: CliFn,
    fake: FakeProvider,
    database_url: str,
    own_key: str,
) -> None:
    assert cli("limits", "set", "--provider", "openai", "--daily-requests", "2").exit_code == 0
    assert cli("ask", "one").exit_code == 0
    assert cli("ask", "two").exit_code == 0
    refused = cli("ask", "three")
    assert refused.exit_code == ExitCode.QUOTA
    assert "daily request limit for openai" in refused.stderr and "(2/2)" in refused.stderr
    tomorrow = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(), dt.UTC)
    assert f"resets at {(tomorrow + dt.timedelta(days=1)).isoformat()}" in refused.stderr
    assert len(chats(fake)) == 2
    assert find_leaks(refused.stdout + refused.stderr, own_key) == []
    assert limits(cli)[0]["requests_today"] == 2
    # another provider is not limited by the openai limit
    sql(database_url, "DELETE FROM ai_provider_configs WHERE provider_name = 'openai'")
    activate(database_url, "alice", "anthropic", "claude-sonnet-4-0")
    fake.set_models("anthropic", ["claude-sonnet-4-0"])
    assert cli("ask", "elsewhere").exit_code == 0
    # an all-providers limit applies to it too
    assert cli("limits", "set", "--daily-requests", "1").exit_code == 0
    assert cli("ask", "elsewhere again").exit_code == 0  # counted from when it was set
    over = cli("ask", "x")
    assert over.exit_code == ExitCode.QUOTA and "for all providers" in over.stderr
    # yesterday's counters: a new day starts from zero
    yesterday = dt.date.today() - dt.timedelta(days=2)
    sql(database_url, "UPDATE ai_user_limits SET requests_day = :d", d=yesterday)
    assert cli("ask", "new day").exit_code == 0


def test_monthly_cost_limit_crossing_and_month_reset(
    cli: CliFn,
    fake: FakeProvider,
    database_url: str,
    own_key: str,
) -> None:
    cost = set_prices(database_url)  # 0.017 per call
    assert cli("limits", "set", "--monthly-cost", "0.03").exit_code == 0
    assert cli("ask", "one").exit_code == 0
    assert cli("ask", "two").exit_code == 0  # 0.034 spent: past the limit now
    refused = cli("ask", "three")
    assert refused.exit_code == ExitCode.QUOTA
    assert "monthly cost limit for all providers" in refused.stderr
    assert "$0.034 of $0.03" in refused.stderr and "-01T00:00:00+00:00" in refused.stderr
    assert len(chats(fake)) == 2
    row = limits(cli)[0]
    assert Decimal(str(row["cost_this_month"])) == 2 * cost
    logged = sql(database_url, "SELECT sum(cost_usd) FROM ai_usage_logs WHERE kind = 'chat'")
    assert Decimal(str(logged[0][0])) == 2 * cost  # settled = what the usage rows say
    last_month = (dt.date.today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    sql(database_url, "UPDATE ai_user_limits SET cost_month = :m", m=last_month)
    assert limits(cli)[0]["cost_this_month"] == 0
    assert cli("ask", "new month").exit_code == 0


def test_a_failed_call_counts_but_costs_nothing(
    cli: CliFn,
    fake: FakeProvider,
    database_url: str,
    own_key: str,
) -> None:
    set_prices(database_url)
    assert cli("limits", "set", "--daily-requests", "5", "--monthly-cost", "1").exit_code == 0
    fake.fail("500", times=5, only="chat")
    assert cli("ask", "boom").exit_code == ExitCode.PROVIDER
    row = limits(cli)[0]
    assert row["requests_today"] == 1 and row["cost_this_month"] == 0


def test_user_clock_boundaries(cli: CliFn, database_url: str) -> None:
    """Service-level clock: the daily counter resets at UTC midnight, the cost monthly."""
    from aipilot.config import Settings
    from aipilot.errors import QuotaExceededError
    from aipilot.services import runtime
    from aipilot.services.accounting import quotas

    assert cli("limits", "set", "--provider", "openai", "--daily-requests", "1").exit_code == 0
    ctx = runtime.connect(Settings.resolve(db=database_url, user="alice"))

    def reserve(text: str) -> quotas.Reservation:
        moment = dt.datetime.fromisoformat(text)
        return quotas.reserve(
            ctx, provider_key="openai", user_limits=True, connexion_id=None, clock=lambda: moment
        )

    reservation = reserve("2026-01-31T23:59:59+00:00")
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        quotas.settle(session, reservation, Decimal("0.5"))
    with pytest.raises(QuotaExceededError, match=r"resets at 2026-02-01T00:00:00\+00:00"):
        reserve("2026-01-31T23:59:59.500000+00:00")
    reserve("2026-02-01T00:00:00+00:00")
    rows = quotas.show_limits(ctx, clock=lambda: dt.datetime(2026, 2, 1, 1, tzinfo=dt.UTC))
    assert rows[0].requests_today == 1 and rows[0].cost_this_month == 0
    ctx.db.dispose()


@pytest.mark.slow
def test_thirty_concurrent_calls_against_a_user_quota_of_ten(
    cli: CliFn,
    fake: FakeProvider,
    database_url: str,
    own_key: str,
) -> None:
    assert cli("limits", "set", "--provider", "openai", "--daily-requests", "10").exit_code == 0
    results = run_many(database_url, "alice", 30)
    codes = sorted(r.returncode for r in results)
    unexpected = [r.stderr for r in results if r.returncode not in (0, int(ExitCode.QUOTA))]
    assert codes == [0] * 10 + [int(ExitCode.QUOTA)] * 20, unexpected
    assert len(chats(fake)) == 10
    assert limits(cli)[0]["requests_today"] == 10
    for result in results:
        assert find_leaks(result.stdout + result.stderr, own_key) == []


def test_streamed_calls_reserve_and_settle(
    cli: CliFn,
    fake: FakeProvider,
    database_url: str,
    own_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Python API's AssistStream (used by `chat` and `serve`) goes through the same door."""
    from aipilot.config import Settings
    from aipilot.errors import QuotaExceededError
    from aipilot.services import runtime
    from aipilot.services.assist import assist

    cost = set_prices(database_url)
    assert cli("limits", "set", "--daily-requests", "1").exit_code == 0
    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    ctx = runtime.connect(Settings.resolve(db=database_url, user="alice"))
    request = assist.AssistRequest(messages=assist.user_message("hi"))
    stream = assist.AssistStream(ctx, request)
    assert "".join(stream) == "pong" and stream.result is not None
    assert limits(cli)[0]["cost_this_month"] == float(cost)
    with pytest.raises(QuotaExceededError):
        list(assist.AssistStream(ctx, request))
    with pytest.raises(QuotaExceededError):
        assist.ask(ctx, request)
    assert len(chats(fake)) == 1
    ctx.db.dispose()
