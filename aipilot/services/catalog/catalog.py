"""Catalog lookups shared by the services: provider rows and their client settings."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.db.models import Provider
from aipilot.db.reader import SessionReader
from aipilot.errors import NotConfiguredError, UsageError
from aipilot.services.catalog import listing
from aipilot.services.catalog.listing import AvailableModel as AvailableModel
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


def available_models(
    session: Session,
    user_id: uuid.UUID,
    *,
    provider_key: str | None = None,
    include_inactive: bool = False,
) -> list[AvailableModel]:
    """The seed's model union inside a session: :func:`listing.available_models`."""
    return listing.available_models(
        SessionReader(session),
        user_id,
        provider_key=provider_key,
        include_inactive=include_inactive,
    )
