"""Reading straight over the driver, for the commands that only look.

Every read-only command (``status``, ``history``, ``usage``, the ``list`` and ``show``
commands; :mod:`aipilot.db.reader`) runs a handful of SELECTs; importing SQLAlchemy's ORM to
send them costs ~220 ms, most of such a command's start-up (measured in
docs/benchmarks.md "Read commands"). This module opens a bare ``sqlite3`` or ``psycopg``
connection instead, with the same rules as :meth:`aipilot.db.engine.Database.session` for a
read: one transaction (one snapshot), the user's identity set inside it on PostgreSQL
(row-level security applies as on every path), the engine's psycopg options (a 5 s connect
timeout, no prepared statements: see :func:`aipilot.db.urls.psycopg_options`), SQLite's
10 s busy timeout.

It only takes the common case. When anything is unusual (no database file yet, no schema,
another revision, an unknown user, an in-memory or ``file:`` URL), :func:`open_direct`
returns None and the command runs on the SQLAlchemy path, which reports the problem in its
own words. A database that cannot be used at all (an unreachable server, a file locked past
the busy timeout, a file that is not a database) fails here at once, with the message that
path would give (:mod:`aipilot.db.urls`), rather than after a second wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from types import TracebackType
from typing import Any
from urllib.parse import quote

from aipilot.db.identity import Identity, find_user
from aipilot.db.reader import Row
from aipilot.db.revision import HEAD_REVISION
from aipilot.db.urls import (
    NOT_OURS_HINT,
    backend,
    describe_url,
    psycopg_options,
    refused_value,
    sqlite_path,
    unusable,
)

SQLITE_BUSY_TIMEOUT_MS = 10000
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Unavailable(Exception):
    """This database or user needs the SQLAlchemy path."""


class Direct:
    """One read transaction on a bare driver connection, as ``identity``."""

    identity: Identity

    def __init__(self, connection: Any, dialect: str, url: str) -> None:
        self._conn, self.dialect, self._url = connection, dialect, url
        self.described = describe_url(url)

    def rows(self, sql: str, **params: object) -> list[Row]:
        if self.dialect == "postgresql":
            sql = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
        try:
            cursor = self._conn.execute(sql, params)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        except Exception as exc:
            translated = self._translated(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _translated(self, exc: Exception) -> Exception:
        """As :func:`aipilot.db.engine.translate_db_errors` words the same failures."""
        if self.dialect == "postgresql":
            import psycopg

            if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
                return unusable(self._url, exc)
            if isinstance(exc, psycopg.DataError):  # a NUL byte in a name, as the ORM path
                return refused_value(exc, self._url)
        elif isinstance(exc, sqlite3.OperationalError):
            return unusable(self._url, exc)
        elif type(exc) is sqlite3.DatabaseError:  # "file is not a database"
            return unusable(self._url, exc, hint=NOT_OURS_HINT)
        return exc  # anything else is a bug of ours, reported as one

    def close(self) -> None:
        """End the read transaction and let the connection go; never raises (a failure
        here must not hide the error that may have ended the reads; nothing was written)."""
        with contextlib.suppress(Exception):
            if self.dialect == "postgresql":
                self._conn.rollback()
            else:
                self._conn.execute("ROLLBACK")
        with contextlib.suppress(Exception):
            self._conn.close()

    def __enter__(self) -> Direct:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_direct(url: str, user: str) -> Direct | None:
    """A read transaction as ``user`` without SQLAlchemy, or None (use the usual path).

    A database that cannot be used (unreachable, locked past the busy timeout, not a
    database) raises the DatabaseError the usual path would raise, without trying twice.
    """
    try:
        if backend(url) == "sqlite":
            handle = Direct(_sqlite(url), "sqlite", url)
        elif backend(url) == "postgresql":
            handle = Direct(_postgres(url), "postgresql", url)
        else:
            return None
    except Unavailable:
        return None
    try:
        _check(handle, user)
    except Unavailable:
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise
    return handle


def _sqlite(url: str) -> sqlite3.Connection:
    path = sqlite_path(url)
    if not path or path == ":memory:" or path.startswith("file:") or not os.path.isfile(path):
        raise Unavailable(url)
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=rw"  # never creates the file
    try:
        conn = sqlite3.connect(
            uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
        conn.execute("PRAGMA query_only=ON")
        conn.execute("BEGIN")
    except sqlite3.Error as exc:
        raise Unavailable(url) from exc
    return conn


def _postgres(url: str) -> Any:
    import psycopg

    conninfo = "postgresql://" + url.split("://", 1)[1]
    try:
        return psycopg.connect(conninfo, **psycopg_options())  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:  # the SQLAlchemy path would fail the same way
        raise unusable(url, exc) from exc
    except psycopg.Error as exc:
        raise Unavailable(url) from exc


def _check(handle: Direct, user: str) -> None:
    """The schema revision, then the user; on PostgreSQL the user's claims for RLS."""
    try:
        revision = handle.rows("SELECT version_num FROM alembic_version")
    except Exception as exc:
        if _no_such_table(exc):
            raise Unavailable("no schema") from exc
        raise
    if [r["version_num"] for r in revision] != [HEAD_REVISION]:
        raise Unavailable("schema revision")
    identity = find_user(handle, user)
    if identity is None:
        raise Unavailable("user")
    if handle.dialect == "postgresql":
        claims = json.dumps({"sub": str(identity.user_id), "role": "authenticated"})
        handle.rows("SELECT set_config('request.jwt.claims', :claims, true)", claims=claims)
    handle.identity = identity


def _no_such_table(exc: BaseException) -> bool:
    """SQLite's "no such table" (wrapped in a DatabaseError by rows()), PostgreSQL's 42P01."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, sqlite3.OperationalError):
        return str(cause).startswith("no such table")
    return getattr(cause, "sqlstate", None) == "42P01"
