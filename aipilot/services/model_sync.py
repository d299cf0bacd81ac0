"""`models sync`: add the models a provider lists that the catalog lacks (admin only).

The provider is called with the admin's own stored key, outside any database transaction;
the result (and the call, in ``ai_usage_logs``) is written afterwards in one transaction.
Models gone upstream are reported, never deleted: an admin decides. Running it twice adds
nothing the second time.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from aipilot.db.models import Model
from aipilot.errors import AipilotError, ConflictError
from aipilot.providers.types import ModelInfo, ProviderSettings
from aipilot.services import calls, credentials
from aipilot.services.catalog import get_provider, settings_for
from aipilot.services.runtime import Context
from aipilot.services.sealing import master_keys, open_row
from aipilot.services.validate import MAX_LABEL, label, model_key


@dataclass(frozen=True)
class SyncResult:
    provider: str
    added: list[str]
    present: list[str]
    gone: list[str]  # in the catalog, not listed upstream (kept)
    skipped: list[str]  # upstream ids aipilot cannot store as model keys
    activated: bool
    latency_ms: int


def _fetch(settings: ProviderSettings, secret: str) -> list[ModelInfo]:
    from aipilot.providers import client_for

    with client_for(settings, secret) as client:
        return client.list_models()


def _usable(models: list[ModelInfo]) -> tuple[dict[str, str], list[str]]:
    """Upstream id → label, and the ids that are not valid model keys."""
    usable: dict[str, str] = {}
    skipped: list[str] = []
    for info in models:
        try:
            key = model_key(info.id)
        except AipilotError:
            skipped.append(info.id[:MAX_LABEL])
            continue
        try:
            usable.setdefault(key, label("model name", (info.display_name or key)[:MAX_LABEL]))
        except AipilotError:
            usable.setdefault(key, key)
    return usable, sorted(skipped)


def sync_models(ctx: Context, provider: str, *, activate_new: bool = False) -> SyncResult:
    ctx.identity.require_admin("syncing the model catalog")
    keys = master_keys()
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        row = get_provider(session, provider, require_active=False)
        settings, key = settings_for(row), row.provider_key
        secret = open_row(credentials.require(session, ctx.identity, key), keys)
    started = time.monotonic()
    try:
        upstream = _fetch(settings, secret)
    except AipilotError as err:
        ms = int((time.monotonic() - started) * 1000)
        _record(ctx, key, calls.outcome_of_error(err, latency_ms=ms, secrets=[secret]))
        raise
    ms = int((time.monotonic() - started) * 1000)
    usable, skipped = _usable(upstream)
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        owner = get_provider(session, key, require_active=False)
        known = set(
            session.scalars(sa.select(Model.model_key).where(Model.provider_id == owner.id))
        )
        added = sorted(set(usable) - known)
        for model in added:
            session.add(
                Model(
                    id=uuid.uuid4(),
                    provider_id=owner.id,
                    model_key=model,
                    model_name=usable[model],
                    is_active=activate_new,
                )
            )
        calls.record(
            session,
            ctx.identity,
            kind="model_sync",
            provider_key=key,
            outcome=calls.CallOutcome(True, ms),
        )
        try:
            session.flush()
        except sa.exc.IntegrityError as exc:  # a concurrent sync added the same model
            raise ConflictError(
                f"another sync of {key} ran at the same time", hint="run it again"
            ) from exc
    return SyncResult(
        provider=key,
        added=added,
        present=sorted(known & set(usable)),
        gone=sorted(known - set(usable)),
        skipped=skipped,
        activated=activate_new,
        latency_ms=ms,
    )


def _record(ctx: Context, provider: str, outcome: calls.CallOutcome) -> None:
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        calls.record(
            session, ctx.identity, kind="model_sync", provider_key=provider, outcome=outcome
        )
