"""Plain-SQL reads that run the same over SQLAlchemy or straight over the driver.

The read-only views (``aipilot status``, ``model show``, ``keys status``; see
:mod:`aipilot.services.config.views`) are written once, as SQL text with ``:name`` parameters,
against this small protocol. A :class:`SessionReader` runs them inside an ORM session (the
server, and every command that also writes); :mod:`aipilot.db.direct` runs them on a bare
``sqlite3`` or ``psycopg`` connection, so that a command that only looks does not pay for
importing SQLAlchemy (about 220 ms here, most of such a command's start-up).

Values come back as the driver gives them: SQLite has text timestamps, 0/1 booleans and
UUIDs as 32 hex digits (SQLAlchemy's storage); PostgreSQL has the native types. The
``as_*`` helpers below read either.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

Row = dict[str, Any]


class Reader(Protocol):
    dialect: str  # "sqlite" | "postgresql"

    def rows(self, sql: str, **params: object) -> list[Row]:
        """Run one SELECT with ``:name`` parameters; the rows as dicts."""
        ...


def id_param(reader: Reader, value: uuid.UUID) -> object:
    """A UUID as a statement parameter: SQLAlchemy stores 32 hex digits on SQLite."""
    return value.hex if reader.dialect == "sqlite" else value


def uuid_of(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def as_uuid(value: object) -> uuid.UUID | None:
    return None if value is None else uuid_of(value)


def as_time(value: object) -> datetime | None:
    """A timestamp column: SQLite's text (as SQLAlchemy wrote it) or a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def as_bool(value: object) -> bool | None:
    return None if value is None else bool(value)


class SessionReader:
    """The protocol over an open SQLAlchemy session (its transaction and identity)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        bind = session.get_bind()
        self.dialect = bind.dialect.name

    def rows(self, sql: str, **params: object) -> list[Row]:
        import sqlalchemy as sa

        result = self._session.execute(sa.text(sql), params)
        return [dict(row) for row in result.mappings()]
