"""Serialising read-modify-write transactions per user (docs/security.md §3).

On PostgreSQL a transaction-scoped advisory lock keyed on (scope, user) makes concurrent
switches queue instead of failing on a partial unique index. On SQLite the write session
already began with ``BEGIN IMMEDIATE``, which holds the database's write lock; the busy
timeout covers ordinary contention, and :func:`retry_when_locked` covers a loaded machine
where dozens of processes queue longer than that (a switch must not fail for it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.errors import DatabaseError
from aipilot.services.runtime import Context

T = TypeVar("T")
LOCK_RETRY_S = 60.0
# One scope for everything that writes a user's active configurations: a model switch and
# a prompt (de)activation both rewrite ai_provider_configs' snapshot, so they must queue
# behind the same lock (two scopes let a prompt land on the config being switched away).
CONFIGS = "configs"


def serialise(session: Session, ctx: Context, scope: str) -> None:
    if ctx.db.dialect == "postgresql":
        key = f"aipilot:{scope}:{ctx.identity.user_id}"
        session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


def retry_when_locked(action: Callable[[], T], *, budget_s: float = LOCK_RETRY_S) -> T:
    """Run a whole write transaction again while SQLite reports its write lock busy, or
    PostgreSQL chose it as the victim of a deadlock (both leave nothing written)."""
    deadline = time.monotonic() + budget_s
    delay = 0.05
    while True:
        try:
            return action()
        except DatabaseError as err:
            if not (_sqlite_busy(err) or _pg_deadlock(err)) or time.monotonic() > deadline:
                raise
        time.sleep(random.uniform(delay / 2, delay))
        delay = min(delay * 2, 1.0)


def _pg_deadlock(err: DatabaseError) -> bool:
    cause = err.__cause__
    orig = cause.orig if isinstance(cause, sa.exc.DBAPIError) else None
    return getattr(orig, "sqlstate", None) == "40P01"


def _sqlite_busy(err: DatabaseError) -> bool:
    cause = err.__cause__
    return isinstance(cause, sa.exc.OperationalError) and "database is locked" in str(cause)
