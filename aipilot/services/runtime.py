"""The runtime context every service receives: the database and the acting identity.

It depends on nothing else in :mod:`aipilot.services` (a test checks the import graph): the
cache of prepared calls that long-running processes keep is defined here, generic over what
a service stores in it.

Built lazily by the CLI from :class:`aipilot.config.Settings`; the schema revision is
checked before any command touches a table (never migrated silently).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from aipilot.config import Settings
from aipilot.db.engine import Database
from aipilot.db.identity import Identity, resolve_identity
from aipilot.db.migrate import require_current_schema

Entry = TypeVar("Entry")
T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Blocking work (a database transaction) off the event loop, finished even if the
    awaiting task is cancelled meanwhile: the cancellation is then delivered at that task's
    next await, so what the work wrote (a reservation, a usage row) is never lost."""
    import anyio

    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(fn, *args)
    return result


class PreparedCalls(Generic[Entry]):
    """What a call prepared for each (user, module), kept while the configuration is unchanged
    (:mod:`aipilot.services.assist.assist` stores its prepared calls here).

    For long-running processes (``aipilot serve``, :class:`aipilot.Assistant`): a call then
    reads one number, the database's configuration generation (bumped by triggers on every
    change to configs, providers, prices, keys, organisation connections, limits and
    membership, whoever writes them), instead of five rows, and decrypts nothing. A cached
    entry holds a decrypted key in this process's memory only, as a call in flight does; it
    is never logged or written anywhere. Quotas are still reserved on every call.
    """

    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: int | None = None
        # a key sealed under another master key after this means the process's is retired
        self.started_at = datetime.now(UTC)
        self._entries: dict[tuple[uuid.UUID, str], Entry] = {}

    def get(self, key: tuple[uuid.UUID, str], generation: int | None) -> Entry | None:
        """The entry, if it was stored under this generation. Any other generation (newer,
        older after a restore, or None when the counter's row is missing) drops every entry:
        no decrypted key outlives a change. (A restore followed by exactly as many changes,
        all before the next call, would go unseen: restart long-running processes after
        restoring a backup.)"""
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._generation = generation
            return self._entries.get(key)

    def put(self, key: tuple[uuid.UUID, str], generation: int | None, prep: Entry) -> None:
        with self._lock:
            if generation is None or generation != self._generation:
                return  # the configuration moved on while this was read: do not keep it
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = prep


@dataclass(frozen=True)
class Context:
    db: Database
    identity: Identity
    # long-running processes keep prepared calls between calls (see PreparedCalls)
    prepared: PreparedCalls[Any] | None = None


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
