"""Never seal a key with a master key the database has moved away from.

A long-running process (``aipilot serve``, :class:`aipilot.Assistant`) holds the master key
it started with: ``AIPILOT_MASTER_KEY`` cannot change under a running process. After
``aipilot keys rotate-master`` in another process, every row is sealed under the new key;
a key this process sealed with the old one could be opened by nobody else, and every later
rotation would stop at it (exit 10). So, before sealing, the rows the sealing transaction
can see are checked: a key sealed under another master key *since this process took its
own* (a long-running process: since it started; a command: since it read the key) means
the master key changed under it, and the seal is refused.

Rows sealed under another key *before* that are not a reason to refuse: they are what
"needs re-entry" means (a master key that was lost or replaced by hand), and re-entering
them is the way out. Under PostgreSQL's row-level security a user sees only their own
rows: a user with no key of their own yet cannot be protected this way (see the README).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot import vault
from aipilot.db.models import Credential
from aipilot.services.runtime import Context


def since(ctx: Context) -> datetime:
    """From when on a key sealed under another master key means this one is retired."""
    return ctx.prepared.started_at if ctx.prepared is not None else datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value  # SQLite: naive UTC


def refuse_retired(session: Session, ctx: Context, mk: vault.MasterKey, *, since: datetime) -> None:
    """Raise MasterKeyMismatchError when a visible key was sealed under another master key
    at or after ``since``."""
    query = (
        sa.select(Credential.key_id, sa.func.max(Credential.updated_at))
        # every row this connection sees: a user's first key is sealed after another
        # user's rotated one (under row-level security: the user's own rows only)
        .where(Credential.key_id != mk.key_id)
        .group_by(Credential.key_id)
    )
    newer = [
        (key_id, _utc(when))
        for key_id, when in session.execute(query)
        if when is not None and _utc(when) >= since
    ]
    if not newer:
        return
    key_id, when = max(newer, key=lambda found: found[1])
    long_running = ctx.prepared is not None
    process = "this server (or program) started" if long_running else "this command began"
    raise vault.MasterKeyMismatchError(
        f"master key mismatch: keys have been sealed with master key {key_id} since "
        f"{process} with master key {mk.key_id} (the latest at {when.isoformat()}): the "
        "master key was rotated; nothing was stored",
        hint=(
            "restart it with the current master key (AIPILOT_MASTER_KEY), then retry"
            if long_running
            else f"retry (with AIPILOT_MASTER_KEY, set it to the master key with id {key_id} first)"
        ),
        stored_key_id=key_id,
        current_key_id=mk.key_id,
    )
