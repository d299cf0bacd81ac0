"""The runtime context every service receives: the database and the acting identity.

Built lazily by the CLI from :class:`aipilot.config.Settings`; the schema revision is
checked before any command touches a table (never migrated silently).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aipilot.config import Settings
from aipilot.db.engine import Database
from aipilot.db.identity import Identity, resolve_identity
from aipilot.db.migrate import require_current_schema

if TYPE_CHECKING:
    from aipilot.services.assist import PreparedCalls


@dataclass(frozen=True)
class Context:
    db: Database
    identity: Identity
    # long-running processes keep prepared calls between calls (see assist.PreparedCalls)
    prepared: PreparedCalls | None = None


def open_database(settings: Settings, *, check_schema: bool = True) -> Database:
    db = Database(settings.database_url)
    if check_schema:
        require_current_schema(db)
    return db


def connect(settings: Settings, *, database: Database | None = None) -> Context:
    """Open the database, check its schema, and resolve the current user."""
    db = database or Database(settings.database_url)
    require_current_schema(db)
    return Context(db=db, identity=resolve_identity(db, settings.user))
