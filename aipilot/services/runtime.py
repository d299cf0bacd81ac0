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
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from aipilot.config import Settings
from aipilot.db.engine import POOL_SIZE, Database
from aipilot.db.identity import Identity, resolve_identity
from aipilot.db.migrate import require_current_schema

Entry = TypeVar("Entry")
T = TypeVar("T")


_limiters: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Blocking work (a database transaction) off the event loop, finished even if the
    awaiting task is cancelled meanwhile: the cancellation is then delivered at that task's
    next await, so what the work wrote (a reservation, a usage row) is never lost. At most
    ``POOL_SIZE`` of them run at once, one per pooled connection."""
    import asyncio

    import anyio

    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(POOL_SIZE)
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(fn, *args, limiter=limiter)
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
    # what the calls of one async server share (see Shared)
    shared: Shared | None = None


class SharedRead(Generic[Entry]):
    """One read shared by the concurrent callers that need it (``aipilot serve``'s reads of
    the configuration generation): a caller gets the result of a read that began after it
    asked, so it sees everything committed before it asked, as a read of its own would."""

    def __init__(self, read: Callable[[], Entry]) -> None:
        self._read = read
        self._next: Any = None  # the future of the read not begun yet

    async def current(self) -> Entry:
        import asyncio

        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().create_task(self._run(self._next))
        found: Entry = await asyncio.shield(self._next)
        return found

    async def _run(self, future: Any) -> None:
        self._next = None  # who asks from now on was not there when this read began
        try:
            future.set_result(await in_thread(self._read))
        except BaseException as exc:  # each waiter gets the error
            future.set_exception(exc)
            future.exception()  # retrieved: a waiter may have been cancelled


class Batcher(Generic[Entry]):
    """Writes what concurrent callers submit in batches, on a worker thread: the items that
    arrive while one batch is written go into the next one (a group commit). ``write``
    returns, per item, None or the error that item met. An item submitted is written even
    if its submitter is cancelled while it waits."""

    def __init__(self, write: Callable[[list[Entry]], list[BaseException | None]]) -> None:
        self._write = write
        self._queue: list[tuple[Entry, Any]] = []
        self._task: Any = None

    async def submit(self, item: Entry) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        await asyncio.shield(future)

    async def idle(self) -> None:
        """Wait until everything submitted so far is written."""
        while self._task is not None:
            import asyncio

            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    errors = await in_thread(self._write, [item for item, _ in batch])
                except BaseException as exc:
                    errors = [exc] * len(batch)
                for (_, future), error in zip(batch, errors, strict=True):
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)
                        future.exception()  # retrieved: its submitter may be gone
        finally:
            self._task = None


@dataclass(frozen=True)
class Shared:
    """What the calls of one async server process share: the configuration generation,
    read once for all the calls that need it at the same moment, and the usage rows,
    written in batches."""

    generation: SharedRead[int | None]
    usage: Batcher[Any]


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
