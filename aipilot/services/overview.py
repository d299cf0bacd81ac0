"""Read-only views: the diagnostics history and the control centre ("Centre de Pilotage IA")."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from aipilot.db.models import SystemPrompt, UsageLog
from aipilot.errors import UsageError
from aipilot.services import activation
from aipilot.services.keys import KeyStatus, key_status
from aipilot.services.runtime import Context
from aipilot.services.validate import DEFAULT_MODULE, module_name

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


@dataclass(frozen=True)
class PromptInfo:
    id: uuid.UUID
    name: str
    summary: str | None


@dataclass(frozen=True)
class Overview:
    user: str
    role: str
    database: str
    module: str
    keys: tuple[KeyStatus, ...]
    active: activation.ActiveModel | None
    prompt: PromptInfo | None  # the user's active system prompt

    @property
    def health(self) -> str:
        return self.active.health if self.active is not None else "not configured"


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


def _active_prompt(ctx: Context) -> PromptInfo | None:
    query = sa.select(SystemPrompt).where(
        SystemPrompt.user_id == ctx.identity.user_id, SystemPrompt.is_active
    )
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        row = session.scalars(query).first()
        if row is None:
            return None
        return PromptInfo(row.id, row.name, activation.summary(row.prompt_content))


def overview(ctx: Context, *, module: str = DEFAULT_MODULE) -> Overview:
    """Keys per provider, the active model with its last test, and the active prompt.

    Works without a master key: key states then read "locked" (nothing is decrypted).
    Three short read transactions (keys, model, prompt); nothing is written.
    """
    module = module_name(module)
    return Overview(
        user=ctx.identity.username,
        role=ctx.identity.role,
        database=ctx.db.describe(),
        module=module,
        keys=tuple(key_status(ctx)),
        active=activation.current(ctx, module=module),
        prompt=_active_prompt(ctx),
    )
