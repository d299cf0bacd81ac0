"""`models sync`: add the models a provider lists that the catalog lacks (admin only),
and keep the facts the list gives up to date.

The provider is called with the admin's own stored key, outside any database transaction;
the result (and the call, in ``ai_usage_logs``) is written afterwards in one transaction.
Models gone upstream are reported, never deleted: an admin decides.

What the list says (aipilot/providers/model_lists.py) is stored:

- new rows get the label, context window, output limit, deprecation date and, where the
  list carries them (OpenRouter), the prices, with ``price_source`` = "<provider> model
  list <UTC date>";
- rows already present get their context window, output limit and deprecation date
  refreshed from the list, which is the authority on them; a fact the list does not give
  leaves the row's value alone. Labels are not touched (an admin may have renamed one);
- listed prices go into a present row only if it has no price at all, or if its prices
  came from a list before (``price_source`` set) and the numbers changed. Prices set by
  hand or by the seed (``price_source`` NULL) are never overwritten.

Running it twice changes nothing the second time (only differing values are written).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa

from aipilot.db.models import Model
from aipilot.errors import AipilotError, ConflictError
from aipilot.providers.types import ModelInfo, ProviderSettings
from aipilot.services.accounting import calls
from aipilot.services.catalog import pricing
from aipilot.services.catalog.catalog import get_provider, settings_for
from aipilot.services.keys import credentials
from aipilot.services.keys.sealing import master_keys, open_row
from aipilot.services.runtime import Context
from aipilot.services.validate import MAX_CONTEXT, MAX_LABEL, label, model_key

FACTS = ("context_window", "max_output_tokens", "deprecation_date")
PRICES = (
    "input_price_per_mtok",
    "output_price_per_mtok",
    "cache_read_price_per_mtok",
    "cache_write_price_per_mtok",
)


@dataclass(frozen=True)
class SyncResult:
    provider: str
    added: list[str]
    present: list[str]
    gone: list[str]  # in the catalog, not listed upstream (kept)
    skipped: list[str]  # upstream ids aipilot cannot store as model keys
    activated: bool
    latency_ms: int
    # present model → the columns this sync changed (facts, "prices")
    updated: dict[str, list[str]] = field(default_factory=dict)
    priced: list[str] = field(default_factory=list)  # rows (new or present) given list prices
    # added rows without a price of their own: priced by the reference catalog, or by nothing
    reference_priced: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    reference_source: str | None = None


def _fetch(settings: ProviderSettings, secret: str) -> list[ModelInfo]:
    from aipilot.providers import client_for

    with client_for(settings, secret) as client:
        return client.list_models()


@dataclass(frozen=True)
class _Listed:
    name: str
    info: ModelInfo


def _usable(models: list[ModelInfo]) -> tuple[dict[str, _Listed], list[str]]:
    """Upstream id → label and facts, and the ids that are not valid model keys."""
    usable: dict[str, _Listed] = {}
    skipped: list[str] = []
    for info in models:
        try:
            key = model_key(info.id)
        except AipilotError:
            skipped.append(info.id[:MAX_LABEL])
            continue
        try:
            name = label("model name", (info.display_name or key)[:MAX_LABEL])
        except AipilotError:
            name = key
        usable.setdefault(key, _Listed(name, info))
    return usable, sorted(skipped)


def _facts(info: ModelInfo) -> dict[str, int | date | None]:
    context = info.context_window
    return {
        "context_window": context if context is not None and 0 < context <= MAX_CONTEXT else None,
        "max_output_tokens": info.max_output_tokens,
        "deprecation_date": info.deprecation_date,
    }


def _prices(info: ModelInfo) -> dict[str, Decimal | None] | None:
    """The list's prices, when it gives both an input and an output price."""
    if info.input_price_per_mtok is None or info.output_price_per_mtok is None:
        return None
    return {
        "input_price_per_mtok": info.input_price_per_mtok,
        "output_price_per_mtok": info.output_price_per_mtok,
        "cache_read_price_per_mtok": info.cache_read_price_per_mtok,
        "cache_write_price_per_mtok": info.cache_write_price_per_mtok,
    }


def _hand_priced(row: Model) -> bool:
    """Prices set by hand or by the seed: some price, and no recorded source."""
    return row.price_source is None and any(getattr(row, c) is not None for c in PRICES)


def refresh(row: Model, info: ModelInfo, source: str) -> list[str]:
    """Write what the list says into ``row``; returns the columns that changed."""
    changed: list[str] = []
    for column, fact in _facts(info).items():
        if fact is not None and getattr(row, column) != fact:
            setattr(row, column, fact)
            changed.append(column)
    prices = _prices(info)
    # Decimal equality is by value: 2.5 == 2.500000 as NUMERIC(12, 6) returns it
    if (
        prices is not None
        and not _hand_priced(row)
        and any(getattr(row, c) != v for c, v in prices.items())
    ):
        for column, price in prices.items():
            setattr(row, column, price)
        row.price_source = source
        changed.append("prices")
    return changed


def list_source(provider: str, today: date | None = None) -> str:
    """The ``price_source`` of prices read from a provider's list today (UTC)."""
    return f"{provider} model list {(today or datetime.now(UTC).date()).isoformat()}"


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
        rows = {
            r.model_key: r
            for r in session.scalars(sa.select(Model).where(Model.provider_id == owner.id))
        }
        known = set(rows)
        added = sorted(set(usable) - known)
        source = list_source(key)
        updated: dict[str, list[str]] = {}
        priced: list[str] = []
        for model in added:
            new = Model(
                id=uuid.uuid4(),
                provider_id=owner.id,
                model_key=model,
                model_name=usable[model].name,
                is_active=activate_new,
            )
            if "prices" in refresh(new, usable[model].info, source):
                priced.append(model)
            session.add(new)
        for model in sorted(known & set(usable)):
            changed = refresh(rows[model], usable[model].info, source)
            if changed:
                rows[model].updated_at = datetime.now(UTC)
                updated[model] = changed
                if "prices" in changed:
                    priced.append(model)
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
    # after the write transaction: the reference catalog's first use imports it
    own = set(priced) | {m for m in added if _has_own_price(usable[m].info)}
    reference = {m: pricing.reference_rates(key, m) for m in added if m not in own}
    return SyncResult(
        provider=key,
        added=added,
        present=sorted(known & set(usable)),
        gone=sorted(known - set(usable)),
        skipped=skipped,
        activated=activate_new,
        latency_ms=ms,
        updated=updated,
        priced=sorted(priced),
        reference_priced=sorted(m for m, r in reference.items() if r is not None),
        unpriced=sorted(m for m, r in reference.items() if r is None),
        reference_source=next(
            (pricing.describe(r) for r in reference.values() if r is not None), None
        ),
    )


def _has_own_price(info: ModelInfo) -> bool:
    return info.input_price_per_mtok is not None and info.output_price_per_mtok is not None


def _record(ctx: Context, provider: str, outcome: calls.CallOutcome) -> None:
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        calls.record(
            session, ctx.identity, kind="model_sync", provider_key=provider, outcome=outcome
        )
