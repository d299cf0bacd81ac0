"""The diagnostics history, and the control centre ("Centre de Pilotage IA") over a session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from aipilot.db.models import UsageLog
from aipilot.errors import UsageError
from aipilot.services.runtime import Context

HISTORY_KINDS = ("key_test", "config_test", "model_sync")
MAX_HISTORY = 1000


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime | None
    kind: str
    provider: str
    model: str | None
    module: str
    outcome: str
    latency_ms: int | None
    error_code: str | None
    error: str | None


def history(ctx: Context, *, limit: int = 20) -> list[HistoryEntry]:
    """Recent key tests, config tests, model syncs and failed chats, newest first."""
    if not 1 <= limit <= MAX_HISTORY:
        raise UsageError(f"--limit must be between 1 and {MAX_HISTORY}", hint="e.g. `--limit 20`")
    query = (
        sa.select(UsageLog)
        .where(
            UsageLog.user_id == ctx.identity.user_id,
            sa.or_(
                UsageLog.kind.in_(HISTORY_KINDS),
                sa.and_(UsageLog.kind == "chat", UsageLog.outcome == "error"),
            ),
        )
        .order_by(UsageLog.created_at.desc())
        .limit(limit)
    )
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        return [
            HistoryEntry(
                at=row.created_at,
                kind=row.kind,
                provider=row.provider_key,
                model=row.model_name,
                module=row.module_name,
                outcome=row.outcome,
                latency_ms=row.latency_ms,
                error_code=row.error_code,
                error=row.error_message,
            )
            for row in session.scalars(query)
        ]
