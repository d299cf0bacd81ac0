"""`aipilot usage`: totals per day / provider / model / kind, through the real CLI, both DBs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import CliFn
from tests.providers_catalog import sql

NOW = datetime.now(UTC)


def _user_id(database_url: str, name: str) -> object:
    return sql(database_url, "SELECT users_id FROM users WHERE username = :n", n=name)[0][0]


def _at(database_url: str, moment: datetime) -> str:
    # SQLite stores UTC text without an offset (as SQLAlchemy writes it); PostgreSQL a timestamptz
    if database_url.startswith("sqlite"):
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment.isoformat()


def log(
    database_url: str,
    user_id: object,
    *,
    ago: timedelta,
    provider: str = "openai",
    model: str | None = "gpt-4o-mini",
    kind: str = "chat",
    outcome: str = "ok",
    cost: float | None = 0.001,
    tokens: tuple[int, int] = (100, 20),
    latency: int | None = 200,
    module: str = "global",
) -> None:
    row_id = uuid.uuid4()
    sql(
        database_url,
        "INSERT INTO ai_usage_logs (id, user_id, module_name, kind, provider_key, model_name,"
        " input_tokens, output_tokens, cost_usd, latency_ms, outcome, created_at)"
        " VALUES (:id, :u, :m, :k, :p, :model, :i, :o, :c, :lat, :out, :at)",
        id=row_id.hex if database_url.startswith("sqlite") else str(row_id),
        u=user_id,
        m=module,
        k=kind,
        p=provider,
        model=model,
        i=tokens[0],
        o=tokens[1],
        c=cost,
        lat=latency,
        out=outcome,
        at=_at(database_url, NOW - ago),
    )


@pytest.fixture
def seeded(cli: CliFn, database_url: str) -> str:
    """Alice: 3 calls 1 day ago, 2 calls 3 days ago, 1 call 10 days ago; bob: 2 recent calls."""
    assert cli("users", "add", "bob").exit_code == 0
    alice, bob = _user_id(database_url, "alice"), _user_id(database_url, "bob")
    day = timedelta(days=1)
    log(database_url, alice, ago=day, cost=0.25, tokens=(1000, 200), latency=100)
    log(database_url, alice, ago=day, outcome="error", cost=None, tokens=(0, 0), latency=300)
    log(
        database_url,
        alice,
        ago=day,
        provider="anthropic",
        model="claude-3-5-haiku",
        cost=0.5,
        tokens=(2000, 400),
        latency=200,
    )
    log(
        database_url,
        alice,
        ago=3 * day,
        provider="anthropic",
        model="claude-3-5-haiku",
        outcome="cancelled",
        cost=None,
        tokens=(10, 0),
        latency=None,
    )
    log(database_url, alice, ago=3 * day, kind="key_test", model=None, cost=None, tokens=(0, 0))
    log(database_url, alice, ago=10 * day, cost=100.0, tokens=(99999, 99999))
    log(database_url, bob, ago=day, cost=7.0, tokens=(5000, 5000))
    log(database_url, bob, ago=3 * day, provider="mistral", cost=None)
    return database_url


def _usage(cli: CliFn, *args: str) -> Any:
    result = cli("usage", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_totals_default_window_exclude_old_rows_and_other_users(cli: CliFn, seeded: str) -> None:
    before = datetime.now(UTC)
    doc = _usage(cli)
    after = datetime.now(UTC)
    assert doc["by"] == "day" and doc["until"] is None and doc["kind"] == "all"
    since = datetime.fromisoformat(str(doc["since"]))
    assert before - timedelta(days=7) <= since <= after - timedelta(days=7)
    assert doc["total"] == {
        "calls": 5,
        "errors": 2,  # one error, one cancelled
        "input_tokens": 3010,
        "output_tokens": 600,
        "reasoning_tokens": 0,
        "cost_usd": 0.75,  # known costs only
        "unknown_cost_calls": 3,
        "avg_latency_ms": 200.0,  # (100 + 300 + 200 + 200) / 4, the NULL left out
    }


def test_by_day_newest_first(cli: CliFn, seeded: str) -> None:
    rows = _usage(cli, "--by", "day")["rows"]
    days = [(NOW - timedelta(days=n)).strftime("%Y-%m-%d") for n in (1, 3)]
    assert [r["key"] for r in rows] == days
    assert [r["calls"] for r in rows] == [3, 2]
    assert rows[0]["cost_usd"] == 0.75 and rows[0]["unknown_cost_calls"] == 1
    assert rows[1]["errors"] == 1 and rows[1]["unknown_cost_calls"] == 2


def test_all_unknown_costs_are_null_not_zero(cli: CliFn, seeded: str) -> None:
    rows = _usage(cli, "--by", "day")["rows"]
    assert rows[1]["cost_usd"] is None  # three days ago: no known price at all
    assert set(rows[1]) == {
        "key",
        "calls",
        "errors",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost_usd",
        "unknown_cost_calls",
        "avg_latency_ms",
    }


def test_by_provider_and_model(cli: CliFn, seeded: str) -> None:
    by_provider = {r["key"]: r for r in _usage(cli, "--by", "provider")["rows"]}
    assert set(by_provider) == {"openai", "anthropic"}
    assert by_provider["openai"]["calls"] == 3
    assert by_provider["openai"]["cost_usd"] == 0.25
    assert by_provider["anthropic"]["errors"] == 1
    models = _usage(cli, "--by", "model")["rows"]
    found = {(r["provider"], r["key"]): r["calls"] for r in models}
    assert found == {
        ("openai", "gpt-4o-mini"): 2,
        ("anthropic", "claude-3-5-haiku"): 2,
        ("openai", None): 1,
    }


def test_kind_and_module_filters(cli: CliFn, seeded: str) -> None:
    assert _usage(cli, "--kind", "chat")["total"]["calls"] == 4
    kinds = {r["key"]: r["calls"] for r in _usage(cli, "--by", "kind")["rows"]}
    assert kinds == {"chat": 4, "key_test": 1}
    assert _usage(cli, "--module", "other")["total"]["calls"] == 0


def test_since_and_until(cli: CliFn, seeded: str) -> None:
    assert _usage(cli, "--since", "30d")["total"]["calls"] == 6
    assert _usage(cli, "--since", "48h")["total"]["calls"] == 3
    assert _usage(cli, "--since", "30d", "--until", "2d")["total"]["calls"] == 3
    old = (NOW - timedelta(days=10)).strftime("%Y-%m-%d")
    doc = _usage(cli, "--since", old, "--until", old)
    assert doc["total"]["calls"] == 1
    assert doc["total"]["cost_usd"] == 100.0
    assert _usage(cli, "--since", "90m")["total"]["calls"] == 0


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--since", "7w"], ["--by", "week"]])
def test_bad_options_exit_2(cli: CliFn, args: list[str]) -> None:
    result = cli("usage", *args)
    assert result.exit_code == 2
    assert "Error:" in result.stderr and "Hint:" in result.stderr


def test_until_before_since_exit_2(cli: CliFn) -> None:
    result = cli("usage", "--since", "1d", "--until", "3d")
    assert result.exit_code == 2 and "--until" in result.stderr


def test_empty_result_zero_totals(cli: CliFn) -> None:
    doc = _usage(cli)
    assert doc["rows"] == []
    assert doc["total"] == {
        "calls": 0,
        "errors": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 0.0,
        "unknown_cost_calls": 0,
        "avg_latency_ms": None,
    }
    result = cli("usage")
    assert result.exit_code == 0 and "total" in result.stdout
    assert "No calls" in result.stderr


def test_human_table_has_bars_and_total(cli: CliFn, seeded: str) -> None:
    result = cli("usage", "--by", "provider")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    openai = next(line for line in lines if "openai" in line)
    anthropic = next(line for line in lines if "anthropic" in line)
    assert "█" * 20 in openai and "█" * 13 in anthropic and "█" * 14 not in anthropic
    assert "$0.2500" in openai and "$0.7500" in result.stdout
    assert any(line.lstrip("│ ").startswith("total") for line in lines)
    assert "\x1b[" not in result.stdout  # no colour codes when not on a terminal
