"""What psycopg's prepared statements buy aipilot on PostgreSQL, to decide whether to keep them.

Behind a pooler in transaction mode (Supabase's port 6543, PgBouncer before 1.21) a
statement prepared on one server connection is missing on the next, so aipilot connects
with ``prepare_threshold=None`` (never prepare). This measures what that costs on a direct
connection to the local server, in three modes of psycopg's ``prepare_threshold``:

- ``5`` (psycopg's default: a statement is prepared on its sixth execution on a connection;
  a ROLLBACK forgets the counts),
- ``0`` (every statement prepared on its first execution: the most preparation can give),
- ``None`` (never: what aipilot does).

Two workloads, on a fresh database with an active model and a stored key, the fake provider
on 127.0.0.1 answering at once:

- ``Assistant.ask()`` warm, in-process: the serve hot path (configuration generation read,
  the provider call, the usage row), end to end;
- the database part alone: the statements one warm call sends (recorded from a real call),
  replayed on one connection; and the usage-row transaction alone, which is what a server
  connection that only writes usage rows sees (the best case for preparation).

The mode is imposed on every connection aipilot opens through a SQLAlchemy ``connect``
event of this script (the benchmark's own hook, not a setting of aipilot's). PostgreSQL is
``AIPILOT_BENCH_DATABASE_URL`` or ``postgresql://postgres@127.0.0.1:5432/postgres``; a
database is created and dropped for the run. Without a reachable server the script says so
and exits 0 without touching docs/benchmarks.md.
"""

from __future__ import annotations

import base64
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from bench._report import machine, write_section
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import activate_directly, point_catalog_at

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
KEY = "sk-bench-0123456789abcdef"
MODES: dict[str, int | None] = {"5": 5, "0": 0, "None": None}
ASKS = 500
REPLAYS = 2000
_mode: list[int | None] = [None]  # the prepare_threshold imposed on new connections


@event.listens_for(Engine, "connect")
def _impose_mode(dbapi_connection: Any, _record: Any) -> None:
    if hasattr(dbapi_connection, "prepare_threshold"):  # psycopg, not sqlite3
        dbapi_connection.prepare_threshold = _mode[0]


@contextmanager
def _database(server_url: str) -> Iterator[str]:
    from aipilot.config import normalise_database_url

    admin_url = make_url(normalise_database_url(server_url))
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"aipilot_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def _setup(url: str, fake: FakeProvider) -> None:
    from aipilot.config import Settings
    from aipilot.services.keys import keys
    from aipilot.services.runtime import connect
    from aipilot.services.setup import initialise

    initialise(Settings.resolve(db=url, user="bench"))
    point_catalog_at(fake, url)
    ctx = connect(Settings.resolve(db=url, user="bench"))
    keys.set_key(ctx, "openai", KEY, test=False)
    ctx.db.dispose()
    activate_directly(url, "openai", "gpt-4o-mini", user="bench")


Step = tuple[str, Any]  # (SQL, parameters) or ("COMMIT" | "ROLLBACK", None)


def _record_one_warm_call(url: str) -> list[Step]:
    """The statements and transaction ends of one warm ``Assistant.ask()``, as sent."""
    from aipilot.api import Assistant

    steps: list[Step] = []

    def on_execute(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _m: Any) -> None:
        steps.append((statement, dict(params) if params else None))

    def on_commit(_conn: Any) -> None:
        steps.append(("COMMIT", None))

    def on_rollback(_conn: Any) -> None:
        steps.append(("ROLLBACK", None))

    with Assistant(db=url, user="bench") as assistant:
        assistant.ask("warm-up")
        assistant.ask("warm-up")
        listeners = [
            ("before_cursor_execute", on_execute),
            ("commit", on_commit),
            ("rollback", on_rollback),
        ]
        for name, fn in listeners:
            event.listen(Engine, name, fn)
        try:
            assistant.ask("recorded")
        finally:
            for name, fn in listeners:
                event.remove(Engine, name, fn)
    return steps


def _replay(conn: Connection, steps: list[Step]) -> None:
    for statement, params in steps:
        if statement == "COMMIT":
            conn.commit()
        elif statement == "ROLLBACK":
            conn.rollback()
        else:
            if params and "id" in params:
                params = {**params, "id": uuid.uuid4()}  # a new usage row each time
            conn.exec_driver_sql(statement, params)


def _prepared_count(conn: Connection) -> int:
    driver = conn.connection.driver_connection  # psycopg's own, to ask without preparing
    assert driver is not None
    row = driver.execute("SELECT count(*) FROM pg_prepared_statements", prepare=False).fetchone()
    conn.rollback()
    return int(row[0])


def _replay_median_ms(url: str, steps: list[Step]) -> tuple[dict[str, float], dict[str, int]]:
    """One connection per mode, each opened in its mode; the replays take turns."""
    from aipilot.db.engine import create_engine

    engines, conns = {}, {}
    for label, threshold in MODES.items():
        _mode[0] = threshold
        engines[label] = create_engine(url)
        conns[label] = engines[label].connect()
    samples: dict[str, list[float]] = {m: [] for m in MODES}
    try:
        for _ in range(10):
            for conn in conns.values():
                _replay(conn, steps)
        for _ in range(REPLAYS):
            for label, conn in conns.items():
                started = time.perf_counter()
                _replay(conn, steps)
                samples[label].append(time.perf_counter() - started)
        prepared = {label: _prepared_count(conn) for label, conn in conns.items()}
    finally:
        for label in MODES:
            conns[label].close()
            engines[label].dispose()
    return {m: statistics.median(s) * 1000 for m, s in samples.items()}, prepared


def _ask_median_ms(url: str) -> dict[str, float]:
    """One Assistant per mode (its connection opened in that mode); the asks take turns."""
    from aipilot.api import Assistant

    assistants = {}
    for label, threshold in MODES.items():
        _mode[0] = threshold
        assistants[label] = Assistant(db=url, user="bench")
        assistants[label].ask("warm-up")  # opens its connection now, in this mode
    samples: dict[str, list[float]] = {m: [] for m in MODES}
    try:
        for _ in range(10):
            for assistant in assistants.values():
                assistant.ask("warm-up")
        for _ in range(ASKS):
            for label, assistant in assistants.items():
                started = time.perf_counter()
                assistant.ask("hi")
                samples[label].append(time.perf_counter() - started)
    finally:
        for assistant in assistants.values():
            assistant.close()
    return {m: statistics.median(s) * 1000 for m, s in samples.items()}


def _prepared_note(counts: dict[str, int]) -> str:
    shown = " / ".join(str(counts[m]) for m in MODES)
    return f"; statements prepared on the connection at the end: {shown}"


def _server_reachable(server_url: str) -> str | None:
    from aipilot.config import normalise_database_url

    engine = sa.create_engine(
        normalise_database_url(server_url),
        poolclass=sa.NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW server_version").scalar_one()).split()[0]
    except sa.exc.OperationalError:
        return None
    finally:
        engine.dispose()


def main() -> int:
    server = os.environ.get("AIPILOT_BENCH_DATABASE_URL") or DEFAULT_SERVER
    version = _server_reachable(server)
    if version is None:
        print("pg_prepare: no PostgreSQL server reachable (AIPILOT_BENCH_DATABASE_URL): skipped")
        return 0
    os.environ["AIPILOT_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    os.environ["AIPILOT_QUIET_BYPASSRLS"] = "1"
    with _database(server) as url, FakeProvider() as fake:
        _setup(url, fake)
        _mode[0] = None
        steps = _record_one_warm_call(url)
        record_only = steps[steps.index(("ROLLBACK", None)) + 1 :]
        asks = _ask_median_ms(url)
        call, call_prepared = _replay_median_ms(url, steps)
        usage, prepared = _replay_median_ms(url, record_only)
    statements = sum(1 for s, _ in steps if s not in ("COMMIT", "ROLLBACK"))
    gain = max(0.0, usage["None"] - min(usage["5"], usage["0"]))  # the best case, in ms
    spread = max(asks.values()) - min(asks.values())
    rows = [
        ("`Assistant.ask()` warm, end to end (in-process)", asks, ""),
        (
            f"one warm call's {statements} statements, replayed (2 transactions)",
            call,
            _prepared_note(call_prepared),
        ),
        (
            f"the usage-row transaction alone ({len(record_only) - 1} statements), replayed",
            usage,
            _prepared_note(prepared),
        ),
    ]
    table = "\n".join(
        f"| {what}{note} | {r['5']:.3f} ms | {r['0']:.3f} ms | {r['None']:.3f} ms |"
        for what, r, note in rows
    )
    body = f"""## prepared statements on PostgreSQL (`python bench/pg_prepare.py`)

psycopg's `prepare_threshold` on a direct connection to a local PostgreSQL {version}
(127.0.0.1, no pooler), the fake provider answering at once; medians of {ASKS} asks and
{REPLAYS} replays per mode, one connection per mode, the modes taking turns call by call;
{machine()}; load average {os.getloadavg()[0]:.1f} at the end (a shared machine).

| what | `5` (psycopg's default) | `0` (always prepared) | `None` (never: aipilot) |
| --- | --- | --- | --- |
{table}

At best (the usage-row transaction, every statement prepared) preparation saves
{gain * 1000:.0f} µs a call on a local server; end to end the three modes are within
{spread:.1f} ms of each other. Under psycopg's default a warm call prepares nothing at all:
the configuration-generation read ends in a ROLLBACK, and psycopg forgets its counts on
every rollback (preparing everything costs more than it saves there: each rollback
discards the statements). Over the network to Supabase a prepared statement saves no round
trip (psycopg sends Parse/Bind/Execute at once), only the server's parsing and planning of
these one-row statements. Behind a transaction pooler the same preparation fails outright
(`prepared statement "_pg3_0" does not exist` / `already exists`). So aipilot never
prepares, on every PostgreSQL URL: nothing to configure, and no pooler to detect."""
    write_section("pg-prepare", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
