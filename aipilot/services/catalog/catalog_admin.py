"""The provider and model catalogs: reads for everyone, writes for admins only.

A model's prices: its catalog row's when it has an input and an output price (set by hand,
by the seed, or read from a provider's list by ``models sync``: ``price_source``), else the
reference catalog's (aipilot/services/catalog/pricing.py), shown as such. Setting a price by hand
clears ``price_source``: the row's prices are then the admin's, and sync leaves them alone.

Endpoints are data (docs/design.md §5): a provider row says where the API lives, which
wire protocol it speaks and how the key travels. Keys never travel in URLs
(docs/security.md §1), so the ``query_param`` auth method is refused, and so are base URLs
carrying credentials.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.db.models import Credential, Model, Provider
from aipilot.db.reader import SessionReader
from aipilot.errors import ConflictError, NotFoundError, UsageError
from aipilot.services.catalog import listing
from aipilot.services.catalog.catalog import get_provider
from aipilot.services.catalog.listing import ModelDetails, ModelListing, ProviderInfo
from aipilot.services.runtime import Context
from aipilot.services.validate import (
    AUTH_METHODS,
    PROTOCOLS,
    apply_headers,
    base_url,
    choice,
    context_window,
    header_name,
    label,
    model_key,
    price,
    provider_key,
    test_endpoint,
)


@dataclass(frozen=True)
class ProviderSpec:
    """Provider fields to set; ``None`` leaves a field unchanged on update."""

    name: str | None = None
    base_url: str | None = None
    protocol: str | None = None
    auth: str | None = None
    auth_header: str | None = None
    headers: tuple[str, ...] = ()  # "K=V"; on update "K=" removes K
    test_endpoint: str | None = None
    is_active: bool | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Model fields to set; ``None`` leaves a field unchanged on update."""

    name: str | None = None
    input_price: str | Decimal | None = None
    output_price: str | Decimal | None = None
    context_window: int | None = None
    is_active: bool | None = None
    cache_read_price: str | Decimal | None = None
    cache_write_price: str | Decimal | None = None


@dataclass(frozen=True)
class CatalogModel:
    provider: str
    model_key: str
    name: str
    is_active: bool
    context_window: int | None
    input_price_per_mtok: Decimal | None
    output_price_per_mtok: Decimal | None
    cache_read_price_per_mtok: Decimal | None = None
    cache_write_price_per_mtok: Decimal | None = None
    price_source: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- providers
def _provider_info(session: Session, row: Provider) -> ProviderInfo:
    """A provider as `providers show` reads it, in the session's transaction (after a write)."""
    return listing.show_provider(SessionReader(session), row.provider_key)


def list_providers(ctx: Context, *, include_inactive: bool = False) -> list[ProviderInfo]:
    with ctx.db.session() as session:
        return listing.list_providers(SessionReader(session), include_inactive=include_inactive)


def show_provider(ctx: Context, key: str) -> ProviderInfo:
    with ctx.db.session() as session:
        return listing.show_provider(SessionReader(session), key)


def _apply_provider(row: Provider, spec: ProviderSpec, *, update: bool) -> None:
    if spec.name is not None:
        row.provider_name = label("provider name", spec.name)
    if spec.base_url is not None:
        row.base_url = base_url(spec.base_url)
    if spec.protocol is not None:
        row.api_kind = choice("protocol", spec.protocol, PROTOCOLS)
    if spec.auth is not None:
        row.api_auth_method = choice("auth method", spec.auth, AUTH_METHODS)
    if spec.auth_header is not None:
        row.api_auth_header = header_name(spec.auth_header)
    if row.api_auth_method != "api_key_header":
        row.api_auth_header = None
    elif not row.api_auth_header:
        raise UsageError(
            "the api_key_header auth method needs --auth-header NAME", hint="e.g. x-api-key"
        )
    headers = dict(row.api_headers or {})
    apply_headers(headers, spec.headers, update=update)
    row.api_headers = headers
    if spec.test_endpoint is not None:
        row.test_endpoint = test_endpoint(spec.test_endpoint) if spec.test_endpoint else None
    if spec.is_active is not None:
        row.is_active = spec.is_active


def add_provider(ctx: Context, key: str, spec: ProviderSpec) -> ProviderInfo:
    ctx.identity.require_admin("adding a provider")
    key = provider_key(key)
    if spec.name is None or spec.base_url is None:
        raise UsageError("a new provider needs --name and --base-url", hint="see --help")
    row = Provider(
        id=uuid.uuid4(),
        provider_key=key,
        api_kind="openai",
        api_auth_method="bearer",
        api_headers={},
        is_active=True,
    )
    _apply_provider(row, spec, update=False)  # validate everything before the transaction
    with ctx.db.session(write=True) as session:
        if session.scalars(sa.select(Provider).where(Provider.provider_key == key)).first():
            raise ConflictError(
                f"provider {key!r} already exists",
                hint=f"change it with `aipilot providers update {key}`",
            )
        session.add(row)
        session.flush()
        return _provider_info(session, row)


def update_provider(
    ctx: Context, key: str, spec: ProviderSpec, *, action: str = "changing a provider"
) -> ProviderInfo:
    ctx.identity.require_admin(action)
    with ctx.db.session(write=True) as session:
        row = get_provider(session, key, require_active=False)
        _apply_provider(row, spec, update=True)
        row.updated_at = _now()
        session.flush()
        return _provider_info(session, row)


def set_provider_active(ctx: Context, key: str, active: bool) -> ProviderInfo:
    verb = "enabling" if active else "disabling"
    return update_provider(ctx, key, ProviderSpec(is_active=active), action=f"{verb} a provider")


def remove_provider(ctx: Context, key: str) -> str:
    """Delete a provider no model or stored key references; returns its key."""
    ctx.identity.require_admin("removing a provider")
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        row = get_provider(session, key, require_active=False)
        models = session.scalar(
            sa.select(sa.func.count()).select_from(Model).where(Model.provider_id == row.id)
        )
        keys = session.scalar(
            sa.select(sa.func.count())
            .select_from(Credential)
            .where(Credential.provider_key == row.provider_key)
        )
        if models or keys:
            disable = f"aipilot providers disable {row.provider_key}"
            raise ConflictError(
                f"provider {row.provider_key!r} is still referenced by {models} catalog "
                f"model(s) and {keys} stored key(s)",
                hint=f"remove them first, or disable it: `{disable}`",
            )
        session.delete(row)
        try:
            session.flush()
        except sa.exc.IntegrityError as exc:  # a key RLS hid from the count
            raise ConflictError(
                f"provider {row.provider_key!r} is still referenced",
                hint=f"disable it instead: `aipilot providers disable {row.provider_key}`",
            ) from exc
        return row.provider_key


# ---------------------------------------------------------------- models
def list_models(
    ctx: Context, *, provider: str | None = None, include_inactive: bool = False
) -> list[ModelListing]:
    """Catalog models plus the user's custom ones (catalog wins), the active one marked."""
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        reader = SessionReader(session)
        return listing.list_models(
            reader, ctx.identity, provider=provider, include_inactive=include_inactive
        )


def show_model(ctx: Context, provider: str, key: str) -> ModelDetails:
    """One model the user can see (the catalog row first, else a custom model of theirs)."""
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        return listing.show_model(SessionReader(session), ctx.identity, provider, key)


def _catalog_model(row: Model, provider: str) -> CatalogModel:
    return CatalogModel(
        provider=provider,
        model_key=row.model_key,
        name=row.model_name,
        is_active=row.is_active,
        context_window=row.context_window,
        input_price_per_mtok=row.input_price_per_mtok,
        output_price_per_mtok=row.output_price_per_mtok,
        cache_read_price_per_mtok=row.cache_read_price_per_mtok,
        cache_write_price_per_mtok=row.cache_write_price_per_mtok,
        price_source=row.price_source,
    )


def _apply_model(row: Model, spec: ModelSpec) -> None:
    if spec.name is not None:
        row.model_name = label("model name", spec.name)
    prices = (
        ("input", "input_price_per_mtok", spec.input_price),
        ("output", "output_price_per_mtok", spec.output_price),
        ("cache read", "cache_read_price_per_mtok", spec.cache_read_price),
        ("cache write", "cache_write_price_per_mtok", spec.cache_write_price),
    )
    for kind, column, value in prices:
        if value is not None:
            setattr(row, column, price(kind, value))
            row.price_source = None  # set by hand now: sync leaves the row's prices alone
    if spec.context_window is not None:
        row.context_window = context_window(spec.context_window)
    if spec.is_active is not None:
        row.is_active = spec.is_active


def find_model(session: Session, provider: Provider, key: str) -> Model | None:
    query = sa.select(Model).where(Model.provider_id == provider.id, Model.model_key == key)
    return session.scalars(query).first()


def _not_found(provider: Provider, key: str) -> NotFoundError:
    return NotFoundError(
        f"no model {key!r} in the {provider.provider_key} catalog",
        hint=f"see `aipilot models list --provider {provider.provider_key} --all`",
    )


def _require_model(session: Session, provider: Provider, key: str) -> Model:
    row = find_model(session, provider, key)
    if row is None:
        raise _not_found(provider, key)
    return row


def add_model(ctx: Context, provider: str, key: str, spec: ModelSpec) -> CatalogModel:
    ctx.identity.require_admin("adding a catalog model")
    key = model_key(key)
    if spec.name is None:
        raise UsageError("a new model needs --name LABEL", hint="e.g. --name 'GPT-4o mini'")
    row = Model(id=uuid.uuid4(), model_key=key, is_active=True)
    _apply_model(row, spec)
    with ctx.db.session(write=True) as session:
        owner = get_provider(session, provider, require_active=False)
        if find_model(session, owner, key) is not None:
            raise ConflictError(
                f"model {key!r} is already in the {owner.provider_key} catalog",
                hint=f"change it with `aipilot models update {owner.provider_key} {key}`",
            )
        row.provider_id = owner.id
        session.add(row)
        try:
            session.flush()
        except sa.exc.IntegrityError as exc:  # a concurrent add won the race
            raise ConflictError(f"model {key!r} was just added by someone else") from exc
        return _catalog_model(row, owner.provider_key)


def update_model(
    ctx: Context, provider: str, key: str, spec: ModelSpec, *, action: str = "changing a model"
) -> CatalogModel:
    ctx.identity.require_admin(action)
    with ctx.db.session(write=True) as session:
        owner = get_provider(session, provider, require_active=False)
        row = _require_model(session, owner, key.strip())
        _apply_model(row, spec)
        row.updated_at = _now()
        session.flush()
        return _catalog_model(row, owner.provider_key)


def set_model_active(ctx: Context, provider: str, key: str, active: bool) -> CatalogModel:
    action = "enabling a model" if active else "disabling a model"
    return update_model(ctx, provider, key, ModelSpec(is_active=active), action=action)


def remove_model(ctx: Context, provider: str, key: str) -> CatalogModel:
    ctx.identity.require_admin("removing a catalog model")
    with ctx.db.session(write=True) as session:
        owner = get_provider(session, provider, require_active=False)
        row = _require_model(session, owner, key.strip())
        info = _catalog_model(row, owner.provider_key)
        session.delete(row)
        return info
