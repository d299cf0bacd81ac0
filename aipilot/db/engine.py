"""Engine and sessions.

- SQLite: every connection gets WAL, ``busy_timeout=10000`` and ``foreign_keys=ON``; write
  transactions start with ``BEGIN IMMEDIATE`` (a deferred BEGIN fails with "database is
  locked" under concurrent writers despite the busy timeout — see docs/security.md §3), read
  transactions with a plain ``BEGIN``. The file is created 0600 in a 0700 directory.
  Write transactions of one process also take a lock of the process's own, so its threads
  queue in order rather than in SQLite's busy handler (which sleeps up to 100 ms a try).
- PostgreSQL: psycopg 3 with a bounded connect timeout; the current user is set per
  transaction with ``set_config('request.jwt.claims', …, true)`` (never per session: a
  session-level setting would outlive the transaction on a pooled connection), which the
  row-level-security policies read through ``auth.uid()``. Nothing outlives a transaction
  (no session setting, session advisory lock, temporary table, LISTEN, server-side cursor
  or prepared statement: see :func:`aipilot.db.urls.psycopg_options`), so a pooler in
  transaction mode (Supabase's port 6543) may hand each transaction another server
  connection.

Each public service function is one unit of work: ``with db.session(user_id=…, write=True)``;
hot paths that need no ORM objects use ``db.connection(…)`` (Core), and may give up waiting
for the disk on records that can be lost in a power cut (``durable=False``, see there).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

from aipilot.db.urls import CONNECT_TIMEOUT_S as CONNECT_TIMEOUT_S
from aipilot.db.urls import (
    NOT_OURS_HINT,
    backend,
    describe_url,
    first_line,
    psycopg_options,
    refused_value,
    unusable,
)
from aipilot.errors import DatabaseError, PermissionDeniedError

SQLITE_BUSY_TIMEOUT_MS = 10000
WRITE_OPTION = "aipilot_write"
RELAXED_OPTION = "aipilot_relaxed_durability"


def _prepare_sqlite_file(path: str) -> None:
    """Create the database file 0600 in a 0700 directory before SQLite opens it."""
    if path in ("", ":memory:") or path.startswith("file:"):
        return
    file = Path(path).expanduser()
    if not file.parent.exists():
        file.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(file.parent, 0o700)
    if not file.exists():
        fd = os.open(file, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        os.close(fd)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        # the safety level cannot change inside a transaction: set it before each BEGIN
        level = "NORMAL" if options.get(RELAXED_OPTION, False) else "FULL"
        info = conn.connection.info
        if info.get("synchronous", "FULL") != level:
            conn.exec_driver_sql(f"PRAGMA synchronous={level}")
            info["synchronous"] = level
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION, False) else "BEGIN")


# Connections kept by a process's pool. `aipilot serve` runs at most this many database
# transactions at once (services.runtime.in_thread), so its pool never opens and closes
# overflow connections under load (each SQLite open re-runs its PRAGMAs); a command uses one.
POOL_SIZE = 10
POOL_OVERFLOW = 10  # token lookups on the server's other threads


def create_engine(url: str) -> Engine:
    parsed = make_url(url)
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite_file(parsed.database or "")
        timeout = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = sa.create_engine(parsed, connect_args=timeout, **pool)
        _install_sqlite_hooks(engine)
        return engine
    return sa.create_engine(parsed, connect_args=psycopg_options(), pool_pre_ping=False, **pool)


class Database:
    """A database URL with a lazily created engine and the session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._variants: dict[tuple[bool, bool], Engine] = {}  # (write, durable) -> options
        # SQLite: this process's writers queue here instead of in SQLite's busy handler,
        # which sleeps in growing steps (up to 100 ms) and so starves threads under load
        self._sqlite_writer = threading.RLock()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.url)
        return self._engine

    @property
    def dialect(self) -> str:
        return backend(self.url)

    def describe(self) -> str:
        return describe_url(self.url)

    @contextmanager
    def session(
        self, *, user_id: uuid.UUID | None = None, write: bool = False
    ) -> Iterator[Session]:
        """One transaction: commits on success, rolls back on error."""
        with (
            self._writer(write),
            translate_db_errors(self),
            Session(bind=self._bind(write), expire_on_commit=False) as session,
            session.begin(),
        ):
            if self.dialect == "postgresql":
                set_identity(session, user_id)
            yield session

    @contextmanager
    def connection(
        self, *, user_id: uuid.UUID | None = None, write: bool = False, durable: bool = True
    ) -> Iterator[Connection]:
        """One transaction on a Core connection, for hot paths that need no ORM objects.

        ``durable=False`` is for records that may be lost in a power cut, an OS crash or a
        crash of the PostgreSQL server (never in a crash of this process), for the sake of not
        waiting for the disk: the usage row written after every call. SQLite commits it with
        ``synchronous=NORMAL`` (WAL: no fsync; the next durable commit or checkpoint syncs it,
        in order), PostgreSQL with ``synchronous_commit = off``. Every other transaction stays
        fully durable.
        """
        bind = self._bind(write, durable=durable)
        with self._writer(write), translate_db_errors(self), bind.begin() as conn:
            if self.dialect == "postgresql":
                set_identity(conn, user_id)
                if not durable:
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield conn

    def _writer(self, write: bool) -> AbstractContextManager[object]:
        return self._sqlite_writer if write and self.dialect == "sqlite" else nullcontext()

    def _bind(self, write: bool, *, durable: bool = True) -> Engine:
        if not write and durable:
            return self.engine
        key = (write, durable)
        if key not in self._variants:  # made once: execution_options() builds a new proxy
            options = {WRITE_OPTION: write, RELAXED_OPTION: not durable}
            self._variants[key] = self.engine.execution_options(**options)
        return self._variants[key]

    def config_generation(self) -> int | None:
        """The configuration generation (migration 0003): changes whenever configuration does.

        One statement on a pooled connection, no identity needed: the row holds no user data.
        None if its row is missing (nothing can be cached then).
        """
        with translate_db_errors(self), self.engine.connect() as conn:
            value = conn.exec_driver_sql(
                "SELECT generation FROM aipilot_config_generation WHERE id = 1"
            ).scalar()
            conn.rollback()
        return None if value is None else int(value)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._variants.clear()


def set_identity(executor: Session | Connection, user_id: uuid.UUID | None) -> None:
    """Set the transaction-local JWT claims that ``auth.uid()`` reads (PostgreSQL only)."""
    claims = json.dumps({"sub": str(user_id), "role": "authenticated"}) if user_id else ""
    executor.execute(
        sa.text("SELECT set_config('request.jwt.claims', :claims, true)"), {"claims": claims}
    )


@contextmanager
def translate_db_errors(db: Database) -> Iterator[None]:
    """Turn driver-level failures into one-line DatabaseErrors without the DSN password."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        raise unusable(db.url, exc.orig) from exc
    except sa.exc.InterfaceError as exc:
        raise DatabaseError(f"database connection failed: {first_line(exc.orig, db.url)}") from exc
    except sa.exc.DataError as exc:
        raise refused_value(exc.orig, db.url) from exc
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":
            raise  # our bugs' business
        # row-level security, a guard trigger (migration 0004) or a missing grant said no
        raise PermissionDeniedError(
            f"the database refused the change: {first_line(exc.orig, db.url)}",
            hint="only an admin may do this; see `aipilot users list` for who is one",
        ) from exc
    except sa.exc.DatabaseError as exc:
        if type(exc) is not sa.exc.DatabaseError:
            raise  # integrity and programming errors are the services' and our bugs' business
        raise unusable(db.url, exc.orig, hint=NOT_OURS_HINT) from exc
