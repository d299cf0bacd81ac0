"""Database URLs without SQLAlchemy: what a URL names, and the words for failing to use it.

Shared by the SQLAlchemy engine (:mod:`aipilot.db.engine`) and the direct read path
(:mod:`aipilot.db.direct`), so an error reads the same whichever path met it. URLs are
the normalised ones of :func:`aipilot.config.normalise_database_url`.
"""

from __future__ import annotations

from urllib.parse import SplitResult, unquote, urlsplit

from aipilot.errors import DatabaseError, UsageError
from aipilot.redaction import redact

CONNECT_TIMEOUT_S = 5
SERVER_HINT = "check that the server is running and the URL (--db / AIPILOT_DATABASE_URL)"
NOT_OURS_HINT = "is it an aipilot database? restore it from a backup, or point --db elsewhere"


def psycopg_options() -> dict[str, object]:
    """Keyword arguments of every psycopg connection aipilot opens (engine and direct path).

    ``prepare_threshold=None``: psycopg never prepares a statement (by default it does on a
    statement's sixth execution on a connection). Behind a pooler in transaction mode —
    Supabase's port 6543, PgBouncer before 1.21 — each transaction may run on another
    server connection, where the prepared statement is missing or another client's of the
    same name exists. A pooler cannot be told from the URL, and preparing saves well under
    a millisecond a call (docs/benchmarks.md, "prepared statements"), so: never, on every
    URL.
    """
    return {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": "aipilot",
        "prepare_threshold": None,
    }


def backend(url: str) -> str:
    """ "sqlite" or "postgresql" (the part of the scheme before any "+driver")."""
    return url.split(":", 1)[0].split("+", 1)[0]


def _split(url: str) -> SplitResult:
    return urlsplit(url, allow_fragments=False)  # "#" may be part of a path or a password


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL ("" for an in-memory database)."""
    return unquote(_split(url).path[1:])


def password(url: str) -> str | None:
    found = _split(url).password
    return unquote(found) if found else None


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if backend(url) == "sqlite":
        return f"SQLite file {sqlite_path(url) or None}"
    parts = _split(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    database = unquote(parts.path[1:]) or None
    return f"PostgreSQL database {database!r} on {host}{port}"


def first_line(orig: BaseException | None, url: str) -> str:
    """A driver error's first line, with the URL's password taken out."""
    text = (str(orig) if orig is not None else "").strip()
    line = text.splitlines()[0] if text else type(orig).__name__
    return redact(line, [password(url) or ""])


def unusable(url: str, orig: BaseException | None, *, hint: str = SERVER_HINT) -> DatabaseError:
    """The database cannot be used: unreachable, locked, not a database."""
    return DatabaseError(f"cannot use the {describe_url(url)}: {first_line(orig, url)}", hint=hint)


def refused_value(exc: BaseException | None, url: str) -> UsageError:
    """A value the database cannot hold (a NUL byte in text, a number out of range): the
    caller's input, worded the same on the ORM and the direct read paths."""
    return UsageError(
        f"the database refused a value: {first_line(exc, url)}",
        hint="remove control characters or out-of-range numbers from the input",
    )
