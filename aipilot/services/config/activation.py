"""The one active model per (user, module): activate, deactivate, show.

The seed's "Modèle actif (global)": the user's one config row of the module (the seed's
upsert on ``(user_id, module_name)``; migration 0005) is pointed at the chosen (provider,
model) and switched on, in one write transaction serialised per (user, module) — an
advisory transaction lock on PostgreSQL, the write session's ``BEGIN IMMEDIATE`` on SQLite —
so there is never a moment without an active model, as the seed's two calls leave one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.db.identity import Identity
from aipilot.db.models import Model, Provider, ProviderConfig, SystemPrompt, UserModel
from aipilot.db.reader import SessionReader
from aipilot.errors import NotFoundError
from aipilot.services import locks
from aipilot.services.catalog.catalog import active_providers, available_models, get_provider
from aipilot.services.config import views
from aipilot.services.config.views import ActiveModel
from aipilot.services.runtime import Context
from aipilot.services.validate import DEFAULT_MODULE, model_key, module_name


@dataclass(frozen=True)
class ActivationResult:
    active: ActiveModel
    changed: bool  # False when this model was already active (no-op)
    reused: bool  # the user's config row of the module existed (it is switched, not added)
    previous_provider: str | None
    previous_model: str | None


@dataclass(frozen=True)
class DeactivationResult:
    module: str
    previous: ActiveModel | None  # None: nothing was active (idempotent no-op)


@dataclass(frozen=True)
class ModelChoice:
    model: str
    label: str
    source: str


@dataclass(frozen=True)
class ProviderChoice:
    provider: str
    provider_name: str
    models: tuple[ModelChoice, ...]


# ---------------------------------------------------------------- queries (take a session)
def active_config(session: Session, identity: Identity, module: str) -> ProviderConfig | None:
    query = sa.select(ProviderConfig).where(
        ProviderConfig.user_id == identity.user_id,
        ProviderConfig.module_name == module,
        ProviderConfig.is_active,
    )
    return session.scalars(query).first()


def _catalog_model(session: Session, provider: Provider, key: str) -> Model | None:
    query = sa.select(Model).where(
        Model.provider_id == provider.id, Model.model_key == key, Model.is_active
    )
    return session.scalars(query).first()


def _custom_model(
    session: Session, identity: Identity, provider: str, key: str
) -> UserModel | None:
    query = sa.select(UserModel).where(
        UserModel.user_id == identity.user_id,
        UserModel.provider_key == provider,
        UserModel.model_key == key,
        UserModel.is_active,
    )
    return session.scalars(query).first()


def _resolve_model(
    session: Session, identity: Identity, provider: Provider, key: str
) -> tuple[str, str]:
    """(label, source) of a usable model, or NotFoundError."""
    found = _catalog_model(session, provider, key)
    if found is not None:
        return found.model_name, "catalog"
    custom = _custom_model(session, identity, provider.provider_key, key)
    if custom is not None:
        return custom.model_name, "custom"
    raise NotFoundError(
        f"unknown model {key!r} for provider {provider.provider_key}",
        hint=f"see `aipilot models list --provider {provider.provider_key}`, or add your own "
        f"with `aipilot custom add {provider.provider_key} MODEL`",
    )


def _describe(session: Session, identity: Identity, row: ProviderConfig) -> ActiveModel:
    config = {column: getattr(row, column) for column in views.CONFIG_COLUMNS.split(", ")}
    return views.describe(SessionReader(session), identity, config)


def _snapshot(
    session: Session, identity: Identity, current: ProviderConfig | None
) -> tuple[str | None, uuid.UUID | None]:
    """The prompt snapshot that follows into the new active config."""
    if current is not None and (current.system_prompt or current.system_prompt_id):
        return current.system_prompt, current.system_prompt_id
    query = sa.select(SystemPrompt).where(
        SystemPrompt.user_id == identity.user_id, SystemPrompt.is_active
    )
    prompt = session.scalars(query).first()
    return (prompt.prompt_content, prompt.id) if prompt is not None else (None, None)


def config_row(session: Session, identity: Identity, module: str) -> ProviderConfig | None:
    """The user's one config row of the module, active or not (migration 0005)."""
    query = sa.select(ProviderConfig).where(
        ProviderConfig.user_id == identity.user_id, ProviderConfig.module_name == module
    )
    return session.scalars(query).first()


# ---------------------------------------------------------------- use cases
def activate(
    ctx: Context, provider_key: str, model: str, *, module: str = DEFAULT_MODULE
) -> ActivationResult:
    """Make (provider, model) the one active model of the user's module, atomically."""
    module, model = module_name(module), model_key(model)
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        # refuse bad input before taking the write lock (and warm the statement caches,
        # so the locked transaction below stays short)
        provider = get_provider(session, provider_key)
        _resolve_model(session, ctx.identity, provider, model)
        active_config(session, ctx.identity, module)
        key = provider.provider_key
    return locks.retry_when_locked(lambda: _switch(ctx, key, model, module))


def _switch(ctx: Context, provider_key: str, model: str, module: str) -> ActivationResult:
    identity = ctx.identity
    with ctx.db.session(user_id=identity.user_id, write=True) as session:
        locks.serialise(session, ctx, locks.CONFIGS)
        provider = get_provider(session, provider_key)  # again: it may have changed since
        _resolve_model(session, identity, provider, model)
        row = config_row(session, identity, module)
        current = row if row is not None and row.is_active else None
        if current is not None and (current.provider_name, current.model_name) == (
            provider.provider_key,
            model,
        ):
            described = _describe(session, identity, current)
            return ActivationResult(described, False, True, *_pm(current))
        previous = _pm(current)
        prompt, prompt_id = _snapshot(session, identity, current)
        now = datetime.now(UTC)
        reused = row is not None
        if row is None:
            row = ProviderConfig(user_id=identity.user_id, module_name=module)
            session.add(row)
        if (row.provider_name, row.model_name) != (provider.provider_key, model):
            # the last test was of another model
            row.last_test_at, row.last_test_ok, row.last_test_error = None, None, None
        row.provider_name, row.model_name = provider.provider_key, model
        row.is_active, row.activated_at, row.updated_at = True, now, now
        row.system_prompt, row.system_prompt_id = prompt, prompt_id
        session.flush()
        return ActivationResult(_describe(session, identity, row), True, reused, *previous)


def _pm(row: ProviderConfig | None) -> tuple[str | None, str | None]:
    return (row.provider_name, row.model_name) if row is not None else (None, None)


def deactivate(ctx: Context, *, module: str = DEFAULT_MODULE) -> DeactivationResult:
    """Leave the module without an active model (idempotent)."""
    module = module_name(module)
    return locks.retry_when_locked(lambda: _deactivate(ctx, module))


def _deactivate(ctx: Context, module: str) -> DeactivationResult:
    identity = ctx.identity
    with ctx.db.session(user_id=identity.user_id, write=True) as session:
        locks.serialise(session, ctx, locks.CONFIGS)
        current = active_config(session, identity, module)
        if current is None:
            return DeactivationResult(module, None)
        previous = _describe(session, identity, current)
        current.is_active, current.updated_at = False, datetime.now(UTC)
        return DeactivationResult(module, previous)


def choices(ctx: Context) -> list[ProviderChoice]:
    """Active providers with their usable models (catalog ∪ the user's custom), for a picker."""
    identity = ctx.identity
    with ctx.db.session(user_id=identity.user_id) as session:
        models = available_models(session, identity.user_id)
        return [
            ProviderChoice(
                provider.provider_key,
                provider.provider_name,
                tuple(
                    ModelChoice(m.model_key, m.name, m.source)
                    for m in models
                    if m.provider == provider.provider_key
                ),
            )
            for provider in active_providers(session)
        ]
