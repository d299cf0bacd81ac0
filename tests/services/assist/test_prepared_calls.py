"""A long-running process keeps prepared calls and re-reads only what changed.

`aipilot serve` and `aipilot.Assistant` cache, per (user, module), the active config, the
provider's settings, the decrypted key, the prices and whether limits apply. Each call then
reads one number, the configuration generation that triggers bump on every change (migration
0003), whoever makes the change: the CLI, or another client writing the shared tables. On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from aipilot.config import Settings
from aipilot.errors import NotConfiguredError, QuotaExceededError
from aipilot.services.assist import assist
from aipilot.services.runtime import Context, PreparedCalls, connect
from tests.conftest import MASTER_KEY, CliFn
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import activate_directly, point_catalog_at, sql

HI = assist.AssistRequest(messages=assist.user_message("hi"))


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


@pytest.fixture
def key(cli: CliFn, fake: FakeProvider, database_url: str) -> str:
    secret = f"sk-first-{uuid.uuid4().hex}"
    assert cli("keys", "set", "openai", "--stdin", "--no-test", input=secret).exit_code == 0
    activate_directly(database_url, "openai", "gpt-4o-mini")
    return secret


@pytest.fixture
def ctx(database_url: str, key: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """alice's context as a long-running process holds it: with prepared calls."""
    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    plain = connect(Settings.resolve(db=database_url, user="alice"))
    yield replace(plain, prepared=PreparedCalls())
    plain.db.dispose()


def generation(database_url: str) -> int:
    return int(sql(database_url, "SELECT generation FROM aipilot_config_generation")[0][0])


def statements(ctx: Context) -> list[str]:
    """Every SQL statement this context's engine sends from now on (an event listener)."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(ctx.db.engine, "before_cursor_execute", record)
    return seen


def reads(seen: list[str]) -> list[str]:
    """The SELECTs, without PostgreSQL's per-transaction identity (set_config)."""
    return [s for s in seen if s.upper().startswith("SELECT") and "set_config" not in s]


def test_a_warm_call_reads_one_number_and_decrypts_nothing(
    ctx: Context, fake: FakeProvider, key: str, database_url: str
) -> None:
    first = assist.ask(ctx, HI)
    seen = statements(ctx)
    second = assist.ask(ctx, HI)
    assert (first.model, second.model) == ("gpt-4o-mini", "gpt-4o-mini")
    assert reads(seen) == ["SELECT generation FROM aipilot_config_generation WHERE id = 1"]
    assert [s for s in seen if s.upper().startswith("INSERT")] == [
        s for s in seen if s.startswith("INSERT INTO ai_usage_logs")
    ]
    assert len([s for s in seen if s.startswith("INSERT")]) == 1
    assert fake.last_request.headers["authorization"] == f"Bearer {key}"
    # the same call without prepared calls reads the config, provider, key, prices, limits
    uncached = replace(ctx, prepared=None)
    seen.clear()
    assist.ask(uncached, HI)
    assert len(reads(seen)) >= 5
    rows = sql(database_url, "SELECT count(*) FROM ai_usage_logs WHERE kind = 'chat'")
    assert rows[0][0] == 3  # one usage row per call, cached or not


def test_a_model_switch_by_another_writer_is_seen_on_the_next_call(
    ctx: Context, fake: FakeProvider, database_url: str
) -> None:
    assert assist.ask(ctx, HI).model == "gpt-4o-mini"
    # what the Flutter app does: write the shared table directly
    activate_directly(database_url, "openai", "gpt-4o", system_prompt="Answer in French.")
    result = assist.ask(ctx, HI)
    assert result.model == "gpt-4o"
    sent = fake.last_request.json
    assert sent["model"] == "gpt-4o" and sent["messages"][0]["content"] == "Answer in French."


def test_a_switch_by_the_cli_and_a_new_key_are_seen(
    ctx: Context, cli: CliFn, fake: FakeProvider
) -> None:
    assist.ask(ctx, HI)
    assert cli("model", "activate", "openai", "gpt-4o").exit_code == 0
    assert assist.ask(ctx, HI).model == "gpt-4o"
    new = f"sk-second-{uuid.uuid4().hex}"
    assert cli("keys", "set", "openai", "--stdin", "--no-test", input=new).exit_code == 0
    assist.ask(ctx, HI)
    assert fake.last_request.headers["authorization"] == f"Bearer {new}"
    assert cli("keys", "delete", "openai", "--yes").exit_code == 0
    with pytest.raises(NotConfiguredError):
        assist.ask(ctx, HI)


def test_price_and_limit_changes_are_seen(ctx: Context, cli: CliFn, database_url: str) -> None:
    before = assist.ask(ctx, HI).cost_usd
    assert before is not None
    sql(
        database_url,
        "UPDATE ai_models SET input_price_per_mtok = :p, output_price_per_mtok = :p "
        "WHERE model_key = 'gpt-4o-mini'",
        p=100000,
    )
    assert assist.ask(ctx, HI).cost_usd == Decimal("1.7")  # 17 tokens at $0.10 each
    assert cli("limits", "set", "--daily-requests", "1").exit_code == 0
    assist.ask(ctx, HI)  # the first request of the day under the new limit
    with pytest.raises(QuotaExceededError):
        assist.ask(ctx, HI)


def test_what_changes_on_every_call_does_not_bump_the_generation(
    ctx: Context, cli: CliFn, database_url: str
) -> None:
    assert cli("limits", "set", "--daily-requests", "100").exit_code == 0
    assist.ask(ctx, HI)
    start = generation(database_url)
    for _ in range(3):
        assist.ask(ctx, HI)  # a usage row, requests_today + 1, cost this month
    assert cli("keys", "test", "openai").exit_code == 0  # last test result on the key row
    assert cli("test").exit_code == 0  # last test result on the config row
    assert generation(database_url) == start
    counted = sql(database_url, "SELECT requests_today FROM ai_user_limits")
    assert counted[0][0] == 4


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE ai_providers SET base_url = base_url || '/' WHERE provider_key = 'mistral'",
        "UPDATE ai_models SET is_active = is_active WHERE model_key = 'gpt-4o'",
        "UPDATE ai_provider_configs SET system_prompt = 'x'",
        "UPDATE user_provider_credentials SET key_id = key_id",
        "DELETE FROM ai_user_limits",
        "UPDATE users SET organisation_id = NULL",
    ],
)
def test_every_watched_table_bumps_the_generation(
    ctx: Context, cli: CliFn, database_url: str, change: str
) -> None:
    assert cli("limits", "set", "--daily-requests", "9").exit_code == 0  # a row to delete
    before = generation(database_url)
    sql(database_url, change)
    assert generation(database_url) > before


def test_an_organisation_connection_change_is_seen(
    ctx: Context, cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    """alice has no key of her own: her organisation's OpenAI connection is used."""
    org_key = f"sk-org-{uuid.uuid4().hex}"
    assert cli("keys", "delete", "openai", "--yes").exit_code == 0
    assert cli("orgs", "add", "Acme").exit_code == 0
    assert cli("orgs", "add-member", "Acme", "alice").exit_code == 0
    setting = cli("org-openai", "set-key", "Acme", "--stdin", "--no-test", input=org_key)
    assert setting.exit_code == 0, setting.stderr
    allowed = cli("org-openai", "allow-models", "Acme", "gpt-4o-mini")
    assert allowed.exit_code == 0, allowed.stderr
    assist.ask(ctx, HI)
    assert fake.last_request.headers["authorization"] == f"Bearer {org_key}"
    sql(database_url, "UPDATE openai_connexion SET openai_project_id = 'proj_9'")  # the app
    assist.ask(ctx, HI)
    assert fake.last_request.headers["openai-project"] == "proj_9"
    assert cli("org-openai", "disable", "Acme").exit_code == 0
    with pytest.raises(NotConfiguredError):
        assist.ask(ctx, HI)


def test_the_generation_is_read_before_the_configuration(ctx: Context, database_url: str) -> None:
    """A change committed between the two reads is picked up on the next call, not lost:
    the cached entry is stored under the generation read before the configuration."""
    seen = statements(ctx)
    assist.ask(ctx, HI)  # a cold call
    selects = reads(seen)
    assert selects[0].startswith("SELECT generation FROM aipilot_config_generation")
    assert any("FROM ai_provider_configs" in s for s in selects[1:])


def test_only_the_usage_row_skips_the_wait_for_the_disk(ctx: Context) -> None:
    """The usage row is committed without an fsync (SQLite synchronous=NORMAL in WAL mode,
    PostgreSQL synchronous_commit=off); every other transaction, on the same pooled
    connections, is back to fully durable."""
    query = "PRAGMA synchronous" if ctx.db.dialect == "sqlite" else "SHOW synchronous_commit"
    relaxed_value, durable_value = (1, 2) if ctx.db.dialect == "sqlite" else ("off", "on")
    seen = statements(ctx)
    assist.ask(ctx, HI)
    usage = next(i for i, s in enumerate(seen) if s.startswith("INSERT INTO ai_usage_logs"))
    if ctx.db.dialect == "sqlite":
        assert seen[usage - 2 : usage] == ["PRAGMA synchronous=NORMAL", "BEGIN IMMEDIATE"]
    else:
        assert "SET LOCAL synchronous_commit TO OFF" in seen[:usage]
    for _ in range(2):  # whichever pooled connection comes next
        with ctx.db.connection(write=True, durable=False) as conn:
            assert conn.exec_driver_sql(query).scalar() == relaxed_value
        with ctx.db.session(write=True) as session:
            assert session.connection().exec_driver_sql(query).scalar() == durable_value
        with ctx.db.connection() as conn:
            assert conn.exec_driver_sql(query).scalar() == durable_value


def switch(database_url: str, model: str) -> None:
    """What another client does: point alice's one config row at ``model`` (the seed's
    deactivate, then its upsert on (user_id, module_name))."""
    sql(database_url, "UPDATE ai_provider_configs SET is_active = :f", f=False)
    sql(
        database_url,
        "UPDATE ai_provider_configs SET is_active = :t, model_name = :m",
        t=True,
        m=model,
    )


def test_without_its_row_or_going_back_the_generation_caches_nothing_stale(
    ctx: Context, database_url: str
) -> None:
    """A missing counter row means no caching at all, and forgets what was cached; a
    counter seen going back (a backup restored under a running server) drops every entry
    rather than matching an old one."""
    activate_directly(database_url, "openai", "gpt-4o")
    switch(database_url, "gpt-4o-mini")
    assert assist.ask(ctx, HI).model == "gpt-4o-mini"  # cached under `high`
    high = generation(database_url)
    sql(database_url, "DELETE FROM aipilot_config_generation")
    switch(database_url, "gpt-4o")  # the triggers bump nothing: there is no row
    assert assist.ask(ctx, HI).model == "gpt-4o"
    sql(
        database_url,
        "INSERT INTO aipilot_config_generation (id, generation) VALUES (1, :g)",
        g=high,
    )
    assert assist.ask(ctx, HI).model == "gpt-4o"  # not the entry cached before the delete
    sql(database_url, "UPDATE aipilot_config_generation SET generation = 1")  # back in time
    assert assist.ask(ctx, HI).model == "gpt-4o"  # generation 1: the entry is dropped
    sql(database_url, "UPDATE ai_provider_configs SET is_active = :f", f=False)  # 1 → 2
    sql(database_url, "UPDATE aipilot_config_generation SET generation = :g", g=high)
    with pytest.raises(NotConfiguredError):  # `high` again, and nothing stale answers to it
        assist.ask(ctx, HI)


def test_a_wrong_model_name_is_refused_before_the_key_is_needed(
    ctx: Context, cli: CliFn, fake: FakeProvider
) -> None:
    assert cli("keys", "delete", "openai", "--yes").exit_code == 0
    for _ in range(2):  # cold, then with the generation unchanged
        with pytest.raises(assist.ModelNotServedError):
            assist.ask(ctx, replace(HI, model="gpt-4o"))
    with pytest.raises(NotConfiguredError):
        assist.ask(ctx, replace(HI, model="gpt-4o-mini"))
    assert fake.requests == []


def test_only_the_triggers_change_the_generation(
    ctx: Context, backend: str, request: pytest.FixtureRequest, database_url: str
) -> None:
    """PostgreSQL: a role aipilot runs as (not the owner) reads the number but cannot
    change it, even with write privileges on every table; only the owner's triggers do."""
    if backend != "postgresql":
        pytest.skip("roles and row-level security are PostgreSQL's")
    tester = request.getfixturevalue("tester_url")
    before = generation(database_url)
    assert sql(tester, "SELECT generation FROM aipilot_config_generation")[0][0] == before
    sql(tester, "UPDATE aipilot_config_generation SET generation = 0")
    sql(tester, "DELETE FROM aipilot_config_generation")
    with pytest.raises(DBAPIError):  # row-level security: no insert for anyone but the owner
        sql(tester, "INSERT INTO aipilot_config_generation (id, generation) VALUES (2, 0)")
    assert generation(database_url) == before


def test_two_writers_locking_rows_in_opposite_orders_do_not_deadlock(
    database_url: str, backend: str
) -> None:
    """PostgreSQL: the counter is bumped at COMMIT (a deferred constraint trigger), so it is
    the last lock a writer takes. Bumped at each statement instead, A holds the counter
    after its first row and waits for B's row, while B (which locked that row first, as a
    quota reservation does) waits for the counter: a deadlock."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    import threading

    import sqlalchemy as sa

    from aipilot.config import normalise_database_url

    engine = sa.create_engine(normalise_database_url(database_url))
    touch = sa.text("UPDATE ai_providers SET provider_name = provider_name WHERE provider_key = :k")
    lock = sa.text("SELECT 1 FROM ai_providers WHERE provider_key = :k FOR UPDATE")
    before = generation(database_url)
    errors: list[BaseException] = []
    with engine.connect() as a, engine.connect() as b:
        a.execute(touch, {"k": "openai"})  # A: a watched row
        b.execute(lock, {"k": "mistral"})  # B: locks another, not changed yet

        def a_takes_the_second_row() -> None:
            try:
                a.execute(touch, {"k": "mistral"})  # waits for B
                a.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)

        waiter = threading.Thread(target=a_takes_the_second_row)
        waiter.start()
        time.sleep(0.5)
        try:
            b.execute(touch, {"k": "mistral"})  # B changes its row: a bump
            b.commit()
        except BaseException as exc:
            errors.append(exc)
        waiter.join(30)
    engine.dispose()
    assert [type(e).__name__ for e in errors] == []
    assert generation(database_url) >= before + 3  # A's two rows and B's one
