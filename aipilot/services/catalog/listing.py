"""Reading the catalogs: providers, the model union, one model's facts — plain SQL.

The one read path of ``providers list | show`` and ``models list | show``, and of every
service that needs the model union (the server's ``/v1/models``, the activation picker):
SQL text over :class:`aipilot.db.reader.Reader`, so a command that only looks runs it on the
direct driver connection (no SQLAlchemy import, :mod:`aipilot.db.direct`) and a service
inside a session runs the same statements through :class:`aipilot.db.reader.SessionReader`.
Values are read with the reader's helpers (SQLite's storage rules live there). Nothing
here imports SQLAlchemy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import cast

from aipilot.db.identity import Identity
from aipilot.db.reader import (
    Reader,
    Row,
    as_bool,
    as_date,
    as_decimal,
    as_json,
    as_time,
    id_param,
)
from aipilot.errors import NotFoundError, UsageError
from aipilot.services.catalog.pricing import Rates, describe, rates_for, row_rates
from aipilot.services.config.views import unknown_provider
from aipilot.services.validate import identifier

PRICE_SCALE = 6  # ai_models' prices are NUMERIC(12, 6)


@dataclass(frozen=True)
class ProviderInfo:
    key: str
    name: str
    protocol: str
    auth: str
    auth_header: str | None
    headers: dict[str, str]
    base_url: str
    test_endpoint: str | None
    is_active: bool
    models: int


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


@dataclass(frozen=True)
class ModelListing:
    """One row of `models list`: the prices are the rates a call would use."""

    provider: str
    model_key: str
    name: str
    source: str
    is_active: bool
    context_window: int | None
    input_price_per_mtok: Decimal | None
    output_price_per_mtok: Decimal | None
    is_current: bool
    # where the prices come from: "catalog", "<provider> model list <date>", or the
    # reference ("genai-prices 0.2.3", then ``reference`` is true); None: no price
    price_source: str | None = None
    price_as_of: str | None = None
    reference: bool = False


@dataclass(frozen=True)
class ModelDetails:
    """`models show`: every fact of the row, and the rates a call would use."""

    provider: str
    model_key: str
    name: str
    source: str  # "catalog" | "custom"
    is_active: bool
    is_current: bool
    context_window: int | None
    max_output_tokens: int | None
    deprecation_date: str | None  # ISO date
    # the row's own columns (a custom model has none)
    input_price_per_mtok: Decimal | None
    output_price_per_mtok: Decimal | None
    cache_read_price_per_mtok: Decimal | None
    cache_write_price_per_mtok: Decimal | None
    price_source: str | None  # NULL: set by hand or by the seed
    rates: Rates | None  # what a call is priced at; None: its cost is unknown
    rates_source: str  # one line: "catalog", "genai-prices 0.2.3 (data as of …)", "no price"


# ---------------------------------------------------------------- providers
_PROVIDER = (
    "SELECT p.id, p.provider_key, p.provider_name, p.api_kind, p.api_auth_method, "
    "p.api_auth_header, p.api_headers, p.base_url, p.test_endpoint, p.is_active, "
    "(SELECT count(*) FROM ai_models m WHERE m.provider_id = p.id) AS models "
    "FROM ai_providers p"
)


def provider_row(reader: Reader, key: str, *, require_active: bool = True) -> Row:
    """One provider's row (``_PROVIDER``'s columns); unknown or (if asked) disabled: an error."""
    key = identifier("provider", key).lower()
    found = reader.rows(f"{_PROVIDER} WHERE p.provider_key = :key", key=key)
    if not found:
        known = reader.rows("SELECT provider_key FROM ai_providers ORDER BY provider_key")
        raise unknown_provider(key, (r["provider_key"] for r in known))
    if require_active and not as_bool(found[0]["is_active"]):
        raise UsageError(
            f"provider {key!r} is disabled",
            hint=f"an admin enables it with `aipilot providers enable {key}`",
        )
    return found[0]


def _provider_info(row: Row) -> ProviderInfo:
    return ProviderInfo(
        key=row["provider_key"],
        name=row["provider_name"],
        protocol=row["api_kind"],
        auth=row["api_auth_method"],
        auth_header=row["api_auth_header"],
        headers=dict(as_json(row["api_headers"]) or {}),
        base_url=row["base_url"],
        test_endpoint=row["test_endpoint"],
        is_active=_flag(row["is_active"]),
        models=int(row["models"] or 0),
    )


def list_providers(reader: Reader, *, include_inactive: bool = False) -> list[ProviderInfo]:
    where = "" if include_inactive else " WHERE p.is_active"
    return [_provider_info(r) for r in reader.rows(f"{_PROVIDER}{where} ORDER BY p.provider_key")]


def show_provider(reader: Reader, key: str) -> ProviderInfo:
    return _provider_info(provider_row(reader, key, require_active=False))


# ---------------------------------------------------------------- models
_CATALOG = (
    "SELECT p.provider_key, m.model_key, m.model_name, m.is_active, m.context_window, "
    "m.input_price_per_mtok, m.output_price_per_mtok, m.max_output_tokens, "
    "m.deprecation_date, m.cache_read_price_per_mtok, m.cache_write_price_per_mtok, "
    "m.price_source FROM ai_models m JOIN ai_providers p ON m.provider_id = p.id"
)


def _flag(value: object) -> bool:
    """A NOT NULL boolean column (an adopted database's NULL reads None, as the ORM reads it)."""
    return cast(bool, as_bool(value))


def _price(value: object) -> Decimal | None:
    return as_decimal(value, PRICE_SCALE)


def _catalog_model(row: Row) -> AvailableModel:
    return AvailableModel(
        row["provider_key"],
        row["model_key"],
        row["model_name"],
        "catalog",
        _flag(row["is_active"]),
        row["context_window"],
        _price(row["input_price_per_mtok"]),
        _price(row["output_price_per_mtok"]),
        max_output_tokens=row["max_output_tokens"],
        deprecation_date=as_date(row["deprecation_date"]),
        cache_read_price_per_mtok=_price(row["cache_read_price_per_mtok"]),
        cache_write_price_per_mtok=_price(row["cache_write_price_per_mtok"]),
        price_source=row["price_source"],
    )


def available_models(
    reader: Reader,
    user_id: uuid.UUID,
    *,
    provider_key: str | None = None,
    include_inactive: bool = False,
) -> list[AvailableModel]:
    """The seed's model union: catalog models + the user's custom ones, catalog row first.

    Deduplicated by (provider, model_key) and sorted by provider then model key. Without
    ``include_inactive`` only active models of active providers and visible custom models.
    """
    catalog = [_CATALOG, " WHERE 1 = 1"]
    custom = [
        "SELECT provider_key, model_key, model_name, is_active FROM ai_user_models_flut "
        "WHERE user_id = :uid"
    ]
    if provider_key is not None:
        catalog.append(" AND p.provider_key = :pk")
        custom.append(" AND provider_key = :pk")
    if not include_inactive:
        catalog.append(" AND m.is_active AND p.is_active")
        custom.append(
            " AND is_active AND provider_key IN "
            "(SELECT provider_key FROM ai_providers WHERE is_active)"
        )
    found: dict[tuple[str, str], AvailableModel] = {}
    params: dict[str, object] = {} if provider_key is None else {"pk": provider_key}
    for row in reader.rows("".join(catalog), **params):
        found[(row["provider_key"], row["model_key"])] = _catalog_model(row)
    for row in reader.rows("".join(custom), uid=id_param(reader, user_id), **params):
        found.setdefault(
            (row["provider_key"], row["model_key"]),
            AvailableModel(
                row["provider_key"],
                row["model_key"],
                row["model_name"],
                "custom",
                _flag(row["is_active"]),
            ),
        )
    return [found[k] for k in sorted(found)]


def active_choice(reader: Reader, user_id: uuid.UUID) -> tuple[str, str] | None:
    """(provider, model) of the user's active model of the global module, or None."""
    found = reader.rows(
        "SELECT provider_name, model_name FROM ai_provider_configs "
        "WHERE user_id = :uid AND module_name = 'global' AND is_active",
        uid=id_param(reader, user_id),
    )
    return (found[0]["provider_name"], found[0]["model_name"]) if found else None


def _listing(model: AvailableModel, current: tuple[str, str] | None) -> ModelListing:
    # the reference catalog is imported only here, for a row without a price
    rates = rates_for(model, model.provider, model.model_key)
    return ModelListing(
        provider=model.provider,
        model_key=model.model_key,
        name=model.name,
        source=model.source,
        is_active=model.is_active,
        context_window=model.context_window,
        input_price_per_mtok=rates.input if rates else None,
        output_price_per_mtok=rates.output if rates else None,
        is_current=current == (model.provider, model.model_key),
        price_source=rates.source if rates else None,
        price_as_of=rates.as_of if rates else None,
        reference=rates is not None and row_rates(model) is None,
    )


def list_models(
    reader: Reader,
    identity: Identity,
    *,
    provider: str | None = None,
    include_inactive: bool = False,
) -> list[ModelListing]:
    """Catalog models plus the user's custom ones (catalog wins), the active one marked."""
    key = provider_row(reader, provider, require_active=False)["provider_key"] if provider else None
    rows = available_models(
        reader, identity.user_id, provider_key=key, include_inactive=include_inactive
    )
    current = active_choice(reader, identity.user_id)
    return [_listing(m, current) for m in rows]


def show_model(reader: Reader, identity: Identity, provider: str, key: str) -> ModelDetails:
    """One model the user can see (the catalog row first, else a custom model of theirs)."""
    owner = provider_row(reader, provider, require_active=False)
    provider_key, key = owner["provider_key"], key.strip()
    current = active_choice(reader, identity.user_id) == (provider_key, key)
    found = reader.rows(
        f"{_CATALOG} WHERE m.provider_id = :pid AND m.model_key = :m", pid=owner["id"], m=key
    )
    if found:
        return _details(_catalog_model(found[0]), current)
    custom = reader.rows(
        "SELECT model_name, is_active FROM ai_user_models_flut "
        "WHERE user_id = :uid AND provider_key = :p AND model_key = :m",
        uid=id_param(reader, identity.user_id),
        p=provider_key,
        m=key,
    )
    if not custom:
        raise NotFoundError(
            f"no model {key!r} in the {provider_key} catalog",
            hint=f"see `aipilot models list --provider {provider_key} --all`",
        )
    rates = rates_for(None, provider_key, key)
    return ModelDetails(
        provider=provider_key,
        model_key=key,
        name=custom[0]["model_name"],
        source="custom",
        is_active=_flag(custom[0]["is_active"]),
        is_current=current,
        context_window=None,
        max_output_tokens=None,
        deprecation_date=None,
        input_price_per_mtok=None,
        output_price_per_mtok=None,
        cache_read_price_per_mtok=None,
        cache_write_price_per_mtok=None,
        price_source=None,
        rates=rates,
        rates_source=describe(rates),
    )


def _details(row: AvailableModel, current: bool) -> ModelDetails:
    rates = rates_for(row, row.provider, row.model_key)
    return ModelDetails(
        provider=row.provider,
        model_key=row.model_key,
        name=row.name,
        source="catalog",
        is_active=row.is_active,
        is_current=current,
        context_window=row.context_window,
        max_output_tokens=row.max_output_tokens,
        deprecation_date=row.deprecation_date.isoformat() if row.deprecation_date else None,
        input_price_per_mtok=row.input_price_per_mtok,
        output_price_per_mtok=row.output_price_per_mtok,
        cache_read_price_per_mtok=row.cache_read_price_per_mtok,
        cache_write_price_per_mtok=row.cache_write_price_per_mtok,
        price_source=row.price_source,
        rates=rates,
        rates_source=describe(rates),
    )


# ---------------------------------------------------------------- custom models
@dataclass(frozen=True)
class CustomModel:
    provider: str
    model_key: str
    name: str
    is_active: bool
    created_at: datetime | None


def list_custom(
    reader: Reader, identity: Identity, *, provider: str | None = None, include_hidden: bool = False
) -> list[CustomModel]:
    """The user's custom models (visible ones unless ``include_hidden``), by provider, model."""
    sql = [
        "SELECT provider_key, model_key, model_name, is_active, created_at "
        "FROM ai_user_models_flut WHERE user_id = :uid"
    ]
    params: dict[str, object] = {"uid": id_param(reader, identity.user_id)}
    if provider:
        sql.append(" AND provider_key = :pk")
        params["pk"] = provider_row(reader, provider, require_active=False)["provider_key"]
    if not include_hidden:
        sql.append(" AND is_active")
    sql.append(" ORDER BY provider_key, model_key")
    return [
        CustomModel(
            r["provider_key"],
            r["model_key"],
            r["model_name"],
            _flag(r["is_active"]),
            as_time(r["created_at"]),
        )
        for r in reader.rows("".join(sql), **params)
    ]
