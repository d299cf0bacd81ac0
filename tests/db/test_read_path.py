"""The one read path: every read-only command reads plain SQL over the direct driver path.

Checks, on SQLite and PostgreSQL: that the read commands (providers, models, custom models,
prompts, usage, history, limits) start without importing SQLAlchemy; that the direct
connection and an ORM session read the same values through the same functions; that those
values are what SQLAlchemy itself reads back from the rows it wrote (SQLite's storage rules
in aipilot/db/reader.py: UUIDs, timestamps, dates, numerics at their scale, JSON); and, on
PostgreSQL as a role without BYPASSRLS, that row-level security keeps another user's rows
out of the direct connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from aipilot.config import normalise_database_url
from aipilot.db.direct import open_direct
from aipilot.db.engine import Database
from aipilot.db.identity import resolve_identity
from aipilot.db.models import USER_TABLES, Model, Provider, UsageLog, User, UserLimit
from aipilot.db.reader import Reader, SessionReader
from aipilot.services.accounting import limits_view, usage_report
from aipilot.services.catalog import listing
from aipilot.services.config import overview, prompt_views
from tests.conftest import MASTER_KEY, CliFn

READ_COMMANDS = (
    ["providers", "list"],
    ["providers", "show", "openai"],
    ["models", "list"],
    ["models", "show", "openai", "gpt-4o-mini"],
    ["custom", "list"],
    ["prompts", "list"],
    ["prompts", "show", "terse"],
    ["usage"],
    ["usage", "--by", "model"],
    ["history"],
    ["limits", "show"],
)
RLS_ROLE = "aipilot_read_path_tester"
NOW = datetime.now(UTC)


def _furnish(cli: CliFn, url: str, user: str = "alice") -> None:
    """A prompt, a custom model, a limit with counters, an active model, usage rows with
    costs of six decimals, a model with a deprecation date and extra provider headers."""
    assert cli("prompts", "create", "terse", "--text", "Be terse.", user=user).exit_code == 0
    assert cli("prompts", "activate", "terse", user=user).exit_code == 0
    assert cli("custom", "add", "openai", "my-tuned", user=user).exit_code == 0
    assert cli("limits", "set", "--monthly-cost", "20.5", user=user).exit_code == 0
    assert cli("model", "activate", "openai", "gpt-4o-mini", user=user).exit_code == 0
    engine = sa.create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        uid = conn.execute(sa.select(User.users_id).where(User.username == user)).scalar_one()
        conn.execute(
            sa.update(UserLimit)
            .where(UserLimit.user_id == uid)
            .values(
                requests_today=3,
                requests_day=now.date(),
                cost_this_month=Decimal("1.250000"),
                cost_month=now.date().replace(day=1),
            )
        )
        conn.execute(
            sa.update(Model)
            .where(Model.model_key == "gpt-4o-mini")
            .values(deprecation_date=date(2027, 1, 31), cache_read_price_per_mtok=Decimal("0.075"))
        )
        conn.execute(
            sa.update(Provider)
            .where(Provider.provider_key == "openai")
            .values(api_headers={"OpenAI-Beta": "assistants=v2"})
        )
        conn.execute(
            sa.insert(UsageLog.__table__),
            [
                {
                    "id": uuid.uuid4(),
                    "user_id": uid,
                    "kind": ("chat", "key_test", "config_test")[n % 3],
                    "provider_key": "openai",
                    "model_name": "gpt-4o-mini",
                    "input_tokens": 100 + n,
                    "output_tokens": 10 + n,
                    "cost_usd": None if n % 5 == 0 else Decimal(n) / 10**6 + Decimal("0.1"),
                    "latency_ms": 200 + n,
                    "outcome": "error" if n % 4 == 0 else "ok",
                    "error_code": "rate_limited" if n % 4 == 0 else None,
                    "created_at": now - timedelta(hours=n * 7),
                }
                for n in range(60)
            ],
        )
    engine.dispose()


@pytest.fixture
def url(database_url: str) -> str:
    return normalise_database_url(database_url)


@pytest.fixture
def furnished(cli: CliFn, url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    _furnish(cli, url)
    return url


def _reads(reader: Reader, url: str) -> dict[str, object]:
    identity = resolve_identity(Database(url), "alice")
    return {
        "providers": listing.list_providers(reader, include_inactive=True),
        "provider": listing.show_provider(reader, "OpenAI"),
        "models": listing.list_models(reader, identity, include_inactive=True),
        "model": listing.show_model(reader, identity, "openai", "gpt-4o-mini"),
        "custom": listing.list_custom(reader, identity, include_hidden=True),
        "prompts": prompt_views.list_prompts(reader, identity),
        "prompt": prompt_views.show_prompt(reader, identity, "terse"),
        "usage": [
            usage_report.report(reader, identity, since="30d", by=by, now=NOW)
            for by in usage_report.GROUPINGS
        ]
        + [usage_report.report(reader, identity, since="3d", kind="chat", until="1d", now=NOW)],
        "history": overview.history(reader, identity, limit=1000),
        "limits": limits_view.show_limits(reader, identity),
    }


def test_the_direct_path_and_a_session_read_alike(furnished: str) -> None:
    db = Database(furnished)
    with db.session() as session:
        via_orm = _reads(SessionReader(session), furnished)
    db.dispose()
    direct = open_direct(furnished, "alice")
    assert direct is not None
    with direct:
        via_driver = _reads(direct, furnished)
    assert via_driver == via_orm
    tests, failed_chats = 40, 5  # n % 3 != 0; chats (n % 3 == 0) failing (n % 4 == 0)
    assert len(via_driver["history"]) == tests + failed_chats  # type: ignore[arg-type]


def test_the_storage_rules_read_what_sqlalchemy_wrote(furnished: str) -> None:
    """The reader's helpers give the values SQLAlchemy's own types read back."""
    engine = sa.create_engine(furnished)
    with engine.connect() as conn:
        model = conn.execute(sa.select(Model).where(Model.model_key == "gpt-4o-mini")).one()
        provider = conn.execute(sa.select(Provider).where(Provider.provider_key == "openai")).one()
        limit = conn.execute(sa.select(UserLimit)).one()
        logs = conn.execute(sa.select(UsageLog).order_by(UsageLog.created_at.desc())).all()
        cost = conn.execute(sa.select(sa.func.sum(UsageLog.cost_usd))).scalar_one()
    engine.dispose()
    direct = open_direct(furnished, "alice")
    assert direct is not None
    with direct:
        details = listing.show_model(direct, direct.identity, "openai", "gpt-4o-mini")
        shown = listing.show_provider(direct, "openai")
        (limits,) = limits_view.show_limits(direct, direct.identity)
        history = overview.history(direct, direct.identity, limit=1000)
        report = usage_report.report(direct, direct.identity, since="30d")
    assert (details.input_price_per_mtok, details.cache_read_price_per_mtok) == (
        model.input_price_per_mtok,
        model.cache_read_price_per_mtok,
    )
    assert str(details.input_price_per_mtok) == str(model.input_price_per_mtok)  # the scale too
    assert details.deprecation_date == model.deprecation_date.isoformat() == "2027-01-31"
    assert shown.headers == provider.api_headers == {"OpenAI-Beta": "assistants=v2"}
    assert str(limits.monthly_cost_usd) == str(limit.monthly_cost_usd)
    assert str(limits.cost_this_month) == str(limit.cost_this_month) == "1.250000"
    assert limits.requests_today == 3
    assert [h.at for h in history] == [
        r.created_at for r in logs if r.kind != "chat" or r.outcome == "error"
    ]
    assert report.total.cost_usd == cost.quantize(Decimal("0.000001"))
    assert report.total.calls == 60  # the oldest row is 413 hours old
    assert report.total.unknown_cost_calls == 12


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_the_read_commands_import_no_sqlalchemy(furnished: str, command: list[str]) -> None:
    code = (
        "import sys\n"
        "from aipilot.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'alembic')), code)\n"
    )
    env = {
        **os.environ,
        "AIPILOT_DATABASE_URL": furnished,
        "AIPILOT_USER": "alice",
        "AIPILOT_MASTER_KEY": MASTER_KEY,
        "AIPILOT_QUIET_BYPASSRLS": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", code, *command, "--json"], capture_output=True, text=True, env=env
    )
    body, _, tail = out.stdout.rpartition("HEAVY ")
    assert tail.strip() == "[] 0", out.stderr
    assert json.loads(body)  # and the command did its job


@pytest.fixture
def rls_url(url: str, backend: str) -> Iterator[str]:
    """PostgreSQL as a role that is neither a superuser nor BYPASSRLS (RLS applies to it)."""
    if backend != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    owner = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.exec_driver_sql(
            f"DO $$ BEGIN CREATE ROLE {RLS_ROLE} LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        conn.exec_driver_sql(f"GRANT aipilot_service TO {RLS_ROLE}")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public, auth TO {RLS_ROLE}")
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {RLS_ROLE}")
    owner.dispose()
    yield make_url(url).set(username=RLS_ROLE, password=None).render_as_string(hide_password=False)


def test_row_level_security_keeps_other_users_rows_out(
    furnished: str, cli: CliFn, rls_url: str
) -> None:
    """bob, on the direct connection, sees his own rows and none of alice's prompts, usage,
    limits or custom models, even in statements without a user filter."""
    assert cli("users", "add", "bob").exit_code == 0
    assert cli("prompts", "create", "his", "--text", "Be brief.", user="bob").exit_code == 0
    direct = open_direct(rls_url, "bob")
    assert direct is not None
    with direct:
        bob = direct.identity
        for table in USER_TABLES:
            owners = direct.rows(f"SELECT DISTINCT user_id FROM {table}")
            assert {str(r["user_id"]) for r in owners} <= {str(bob.user_id)}, table
        mine = direct.rows("SELECT name FROM ai_system_prompts")  # no user filter
        assert [r["name"] for r in mine] == ["his"]  # his claims are set: he sees his own
        assert [p.name for p in prompt_views.list_prompts(direct, bob)] == ["his"]
        assert listing.list_custom(direct, bob, include_hidden=True) == []
        assert limits_view.show_limits(direct, bob) == []
        assert overview.history(direct, bob) == []
        assert usage_report.report(direct, bob, since="30d").total.calls == 0
        assert len(listing.list_providers(direct)) > 0  # the catalog is everyone's
