"""Plain-SQL reads that run the same over SQLAlchemy or straight over the driver.

The one read path: every read-only command (``status``, ``history``, ``usage``, every
``list`` and ``show``; docs/benchmarks.md "Read commands" measured the choice) reads with SQL
text and ``:name`` parameters against this small protocol. :mod:`aipilot.db.direct` runs
it on a bare ``sqlite3`` or ``psycopg`` connection, so a command that only looks does not
pay for importing SQLAlchemy (about 220 ms here, most of such a command's start-up); a
:class:`SessionReader` runs the same statements inside an ORM session (the server, and the
services that also write).

Values come back as the driver gives them. This module is where SQLite's storage rules are
known (they are SQLAlchemy's, which writes the rows): UUIDs as 32 hex digits without dashes,
timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` text without a zone, dates as ISO text,
booleans as 0/1, NUMERIC columns as floats (read back at the column's scale), JSON as text.
PostgreSQL has the native types. The ``*_param`` helpers write a statement parameter, the
``as_*`` helpers read a value from either database; nothing else in aipilot spells them.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

Row = dict[str, Any]


class Reader(Protocol):
    dialect: str  # "sqlite" | "postgresql"

    def rows(self, sql: str, **params: object) -> list[Row]:
        """Run one SELECT with ``:name`` parameters; the rows as dicts."""
        ...


def stored_id(dialect: str, value: uuid.UUID) -> object:
    """A UUID as ``dialect`` stores it: SQLAlchemy writes 32 hex digits (no dashes) on SQLite."""
    return value.hex if dialect == "sqlite" else value


def id_param(reader: Reader, value: uuid.UUID) -> object:
    """A UUID as a statement parameter (:func:`stored_id`)."""
    return stored_id(reader.dialect, value)


SQLITE_TIME_FORMAT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def time_param(reader: Reader, value: datetime) -> object:
    """A timestamp as a statement parameter, compared with stored ones: on SQLite the text
    SQLAlchemy writes (the clock fields as given, the zone dropped), so that text order is
    time order; on PostgreSQL the datetime."""
    if reader.dialect != "sqlite":
        return value
    v = value
    return SQLITE_TIME_FORMAT % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)


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


def as_date(value: object) -> date | None:
    """A date column: SQLite's ISO text or a date."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def as_decimal(value: object, scale: int) -> Decimal | None:
    """A NUMERIC column (or a SUM of one) of ``scale`` decimal places: PostgreSQL's Decimal
    as it is; SQLite's float (or integer) rounded to the scale, as SQLAlchemy reads it."""
    if value is None or isinstance(value, Decimal):
        return value
    if not isinstance(value, int | float):
        raise TypeError(f"not a number: {type(value).__name__}")
    return Decimal(f"{value:.{scale}f}")


def as_json(value: object) -> Any:
    """A JSON column: SQLite's text, or what psycopg decoded."""
    return json.loads(value) if isinstance(value, str | bytes) else value


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
