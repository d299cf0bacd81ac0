"""Catalog lookups shared by the services: provider rows and their client settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.db.models import Provider
from aipilot.errors import NotFoundError, UsageError
from aipilot.services.validate import identifier

if TYPE_CHECKING:
    from aipilot.providers.types import ProviderSettings


def get_provider(session: Session, key: str, *, require_active: bool = True) -> Provider:
    key = identifier("provider", key).lower()
    provider = session.scalars(sa.select(Provider).where(Provider.provider_key == key)).first()
    if provider is None:
        known = ", ".join(
            session.scalars(sa.select(Provider.provider_key).order_by("provider_key"))
        )
        raise NotFoundError(f"unknown provider {key!r}", hint=f"known providers: {known}")
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
    """The provider client's view of a catalog row (endpoints are data, not code)."""
    from aipilot.providers.types import ProviderSettings

    return ProviderSettings(
        provider_key=provider.provider_key,
        provider_name=provider.provider_name,
        base_url=provider.base_url,
        api_kind=provider.api_kind,  # type: ignore[arg-type]
        auth_method=provider.api_auth_method,  # type: ignore[arg-type]
        auth_header=provider.api_auth_header,
        extra_headers=dict(provider.api_headers or {}),
        test_endpoint=provider.test_endpoint,
    )
