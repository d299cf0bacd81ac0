"""System prompts (the seed's "Prompts système", V2): CRUD, one active per user, and the
snapshot of the active prompt's text in the user's active model configurations.

The snapshot is what the seed does: ``ai_provider_configs.system_prompt`` holds a copy of
the text, and ``system_prompt_id`` says which prompt it came from, so a later edit can be
detected as "stale" and refreshed on request. Activating or deactivating a prompt updates
every active configuration of the user (every module) in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.db.models import ProviderConfig, SystemPrompt
from aipilot.db.reader import SessionReader
from aipilot.errors import ConflictError, NotFoundError, UsageError
from aipilot.services.config import prompt_views
from aipilot.services.config.prompt_views import PromptInfo
from aipilot.services.keys.credentials import now
from aipilot.services.locks import CONFIGS, retry_when_locked, serialise
from aipilot.services.runtime import Context

MAX_PROMPT_CHARS = 100_000
MAX_NAME_CHARS = 100


@dataclass(frozen=True)
class SnapshotChange:
    prompt: PromptInfo
    configs_updated: int
    stale_configs: int = 0


def clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise UsageError("the prompt name is empty", hint="give the prompt a name")
    if len(name) > MAX_NAME_CHARS:
        raise UsageError(
            f"the prompt name is {len(name)} characters long; the limit is {MAX_NAME_CHARS}",
            hint="use a shorter name",
        )
    if any(not ch.isprintable() for ch in name):
        raise UsageError("the prompt name contains control characters", hint="use plain text")
    return name


def clean_text(text: str) -> str:
    if "\x00" in text:
        raise UsageError("the prompt text contains a NUL byte", hint="is the file binary?")
    if not text.strip():
        raise UsageError("the prompt text is empty", hint="give --text, --file, or stdin")
    if len(text) > MAX_PROMPT_CHARS:
        raise UsageError(
            f"the prompt text is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}",
            hint="shorten it",
        )
    return text


def _info(row: SystemPrompt, *, content: bool = False) -> PromptInfo:
    return PromptInfo(
        id=str(row.id),
        name=row.name,
        size=len(row.prompt_content),
        is_active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        content=row.prompt_content if content else None,
    )


def _mine(ctx: Context) -> sa.ColumnElement[bool]:
    return SystemPrompt.user_id == ctx.identity.user_id


def _find(session: Session, ctx: Context, ref: str) -> SystemPrompt:
    """A prompt by name, or by id when ``ref`` is a UUID."""
    try:
        match = SystemPrompt.id == uuid.UUID(ref.strip())
    except ValueError:
        match = SystemPrompt.name == ref.strip()
    row = session.scalars(sa.select(SystemPrompt).where(_mine(ctx), match)).first()
    if row is None:
        raise NotFoundError(f"no prompt named {ref.strip()!r}", hint="see `aipilot prompts list`")
    return row


def _name_free(session: Session, ctx: Context, name: str) -> None:
    taken = session.scalars(sa.select(SystemPrompt.id).where(_mine(ctx), SystemPrompt.name == name))
    if taken.first() is not None:
        raise ConflictError(f"you already have a prompt named {name!r}", hint="pick another name")


def list_prompts(ctx: Context) -> list[PromptInfo]:
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        return prompt_views.list_prompts(SessionReader(session), ctx.identity)


def show_prompt(ctx: Context, ref: str) -> PromptInfo:
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        return prompt_views.show_prompt(SessionReader(session), ctx.identity, ref)


def create_prompt(ctx: Context, name: str, text: str) -> PromptInfo:
    name, text = clean_name(name), clean_text(text)
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        _name_free(session, ctx, name)
        row = SystemPrompt(user_id=ctx.identity.user_id, name=name, prompt_content=text)
        session.add(row)
        session.flush()
        return _info(row, content=True)


def edit_prompt(ctx: Context, ref: str, text: str, *, refresh_snapshot: bool) -> SnapshotChange:
    """Replace a prompt's text; refresh the snapshots taken from it only when asked."""
    text = clean_text(text)
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        row = _find(session, ctx, ref)
        row.prompt_content, row.updated_at = text, now()
        configs = _configs_from(session, ctx, row.id)
        for config in configs if refresh_snapshot else []:
            config.system_prompt, config.updated_at = text, now()
        session.flush()
        stale = 0 if refresh_snapshot else len(configs)
        return SnapshotChange(_info(row), len(configs) if refresh_snapshot else 0, stale)


def rename_prompt(ctx: Context, ref: str, new_name: str) -> PromptInfo:
    new_name = clean_name(new_name)
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        row = _find(session, ctx, ref)
        if row.name != new_name:
            _name_free(session, ctx, new_name)
            row.name, row.updated_at = new_name, now()
        session.flush()
        return _info(row)


def delete_prompt(ctx: Context, ref: str) -> PromptInfo:
    """Delete a prompt; snapshots taken from it stay in their configurations (unlinked)."""
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        row = _find(session, ctx, ref)
        info = _info(row)
        for config in _configs_from(session, ctx, row.id):
            config.system_prompt_id = None
        session.delete(row)
        return info


def _active_configs(session: Session, ctx: Context) -> list[ProviderConfig]:
    query = sa.select(ProviderConfig).where(
        ProviderConfig.user_id == ctx.identity.user_id, ProviderConfig.is_active
    )
    return list(session.scalars(query))


def _configs_from(session: Session, ctx: Context, prompt_id: uuid.UUID) -> list[ProviderConfig]:
    return [c for c in _active_configs(session, ctx) if c.system_prompt_id == prompt_id]


def activate_prompt(ctx: Context, ref: str) -> SnapshotChange:
    """One active prompt per user, its text snapshotted into the active configurations."""
    return retry_when_locked(lambda: _activate(ctx, ref))


def _activate(ctx: Context, ref: str) -> SnapshotChange:
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        serialise(session, ctx, CONFIGS)
        row = _find(session, ctx, ref)
        for other in session.scalars(
            sa.select(SystemPrompt).where(_mine(ctx), SystemPrompt.is_active)
        ):
            if other.id != row.id:
                other.is_active = False
        session.flush()  # the partial unique index sees the old one gone first
        row.is_active, row.updated_at = True, now()
        configs = _active_configs(session, ctx)
        for config in configs:
            config.system_prompt, config.system_prompt_id = row.prompt_content, row.id
            config.updated_at = now()
        session.flush()
        return SnapshotChange(_info(row), len(configs))


def deactivate_prompt(ctx: Context) -> SnapshotChange | None:
    """No active prompt; the snapshots in the active configurations are cleared."""
    return retry_when_locked(lambda: _deactivate(ctx))


def _deactivate(ctx: Context) -> SnapshotChange | None:
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        serialise(session, ctx, CONFIGS)
        row = session.scalars(
            sa.select(SystemPrompt).where(_mine(ctx), SystemPrompt.is_active)
        ).first()
        if row is None:
            return None
        row.is_active = False
        configs = _active_configs(session, ctx)
        for config in configs:
            config.system_prompt, config.system_prompt_id, config.updated_at = None, None, now()
        session.flush()
        return SnapshotChange(_info(row), len(configs))
