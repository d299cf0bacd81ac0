"""Catalog lookups shared by the services: provider rows and their client settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.db.models import Model, Provider, UserModel
from aipilot.errors import NotConfiguredError, UsageError
from aipilot.services.config.views import unknown_provider
from aipilot.services.validate import identifier

if TYPE_CHECKING:
    from aipilot.providers.types import ProviderSettings


def get_provider(session: Session, key: str, *, require_active: bool = True) -> Provider:
    key = identifier("provider", key).lower()
    provider = session.scalars(sa.select(Provider).where(Provider.provider_key == key)).first()
    if provider is None:
        known = session.scalars(sa.select(Provider.provider_key).order_by("provider_key"))
        raise unknown_provider(key, known)
    if require_active and not provider.is_active:
        raise UsageError(
            f"provider {key!r} is disabled",
            hint=f"an admin enables it with `aipilot providers enable {key}`",
        )
    return provider


def active_providers(session: Session) -> list[Provider]:
    query = sa.select(Provider).where(Provider.is_active).order_by(Provider.provider_key)
    return list(session.scalars(query))


def settings_for(provider: Provider) -> ProviderSettings:
    """The provider client's view of a catalog row (endpoints are data, not code).

    A row of an adopted catalog has no endpoint columns of its own (the app's rows predate
    them: NULL): a provider aipilot knows gets aipilot's built-in settings for what is
    empty; another one must be given its endpoint by an admin.
    """
    from aipilot.db.seed import PROVIDERS
    from aipilot.providers.types import ProviderSettings

    seed = next((p for p in PROVIDERS if p.provider_key == provider.provider_key), None)
    base_url = provider.base_url or (seed.base_url if seed else None)
    if not base_url:
        raise NotConfiguredError(
            f"provider {provider.provider_key!r} has no endpoint (base_url) in the catalog",
            hint=f"an admin sets it: `aipilot providers update {provider.provider_key} "
            "--base-url URL --protocol openai`",
        )
    adopted = provider.api_kind is None  # the app's row: aipilot's endpoint columns empty
    fallback = seed if adopted and seed is not None else None
    return ProviderSettings(
        provider_key=provider.provider_key,
        provider_name=provider.provider_name,
        base_url=base_url,
        api_kind=cast(Any, fallback.api_kind if fallback else provider.api_kind or "openai"),
        auth_method=cast(
            Any, fallback.api_auth_method if fallback else provider.api_auth_method or "bearer"
        ),
        auth_header=fallback.api_auth_header if fallback else provider.api_auth_header,
        extra_headers=dict(fallback.api_headers if fallback else provider.api_headers or {}),
        test_endpoint=fallback.test_endpoint if fallback else provider.test_endpoint,
    )


@dataclass(frozen=True)
class AvailableModel:
    """One model a user can choose: a catalog row or one of the user's custom models."""

    provider: str
    model_key: str
    name: str
    source: str  # "catalog" | "custom"
    is_active: bool
    context_window: int | None = None
    input_price_per_mtok: Decimal | None = None
    output_price_per_mtok: Decimal | None = None
    max_output_tokens: int | None = None
    deprecation_date: date | None = None
    cache_read_price_per_mtok: Decimal | None = None
    cache_write_price_per_mtok: Decimal | None = None
    price_source: str | None = None  # NULL: set by hand or by the seed


def available_models(
    session: Session,
    user_id: uuid.UUID,
    *,
    provider_key: str | None = None,
    include_inactive: bool = False,
) -> list[AvailableModel]:
    """The seed's model union: catalog models + the user's custom ones, catalog row first.

    Deduplicated by (provider, model_key) and sorted by provider then model key. Without
    ``include_inactive`` only active models of active providers and visible custom models.
    """
    catalog = sa.select(Model, Provider.provider_key).join(
        Provider, Model.provider_id == Provider.id
    )
    custom = sa.select(UserModel).where(UserModel.user_id == user_id)
    if provider_key is not None:
        catalog = catalog.where(Provider.provider_key == provider_key)
        custom = custom.where(UserModel.provider_key == provider_key)
    if not include_inactive:
        catalog = catalog.where(Model.is_active, Provider.is_active)
        active_keys = sa.select(Provider.provider_key).where(Provider.is_active)
        custom = custom.where(UserModel.is_active, UserModel.provider_key.in_(active_keys))
    found: dict[tuple[str, str], AvailableModel] = {}
    for model, key in session.execute(catalog):
        found[(key, model.model_key)] = AvailableModel(
            key,
            model.model_key,
            model.model_name,
            "catalog",
            model.is_active,
            model.context_window,
            model.input_price_per_mtok,
            model.output_price_per_mtok,
            max_output_tokens=model.max_output_tokens,
            deprecation_date=model.deprecation_date,
            cache_read_price_per_mtok=model.cache_read_price_per_mtok,
            cache_write_price_per_mtok=model.cache_write_price_per_mtok,
            price_source=model.price_source,
        )
    for row in session.scalars(custom):
        found.setdefault(
            (row.provider_key, row.model_key),
            AvailableModel(
                row.provider_key, row.model_key, row.model_name, "custom", row.is_active
            ),
        )
    return [found[k] for k in sorted(found)]
