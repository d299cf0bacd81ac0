"""`aipilot models list | show | add | update | enable | disable | remove | sync`.

`list` is the seed's union: the catalog's active models plus your custom models, the
catalog row winning a duplicate, your active model marked `*`; a model without a price in
the catalog shows the reference catalog's, marked `~`. Writes are admin only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json

if TYPE_CHECKING:
    from aipilot.services.catalog.catalog_admin import CatalogModel
    from aipilot.services.catalog.listing import ModelDetails, ModelListing

app = typer.Typer(
    help="Models: the catalog plus your custom ones (admins add, edit and sync the catalog).",
    no_args_is_help=True,
)

ProviderArg = Annotated[str, typer.Argument(help="Provider key, e.g. openai.")]
ModelArg = Annotated[str, typer.Argument(help="The provider's model id, e.g. gpt-4o-mini.")]
InPriceOpt = Annotated[
    str | None,
    typer.Option("--input-price", metavar="USD_PER_MTOK", help="Input price per 1M tokens."),
]
OutPriceOpt = Annotated[
    str | None,
    typer.Option("--output-price", metavar="USD_PER_MTOK", help="Output price per 1M tokens."),
]
ContextOpt = Annotated[
    int | None, typer.Option("--context", metavar="N", help="Context window in tokens.")
]
CacheReadOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-read-price", metavar="USD_PER_MTOK", help="Cached input read price per 1M."
    ),
]
CacheWriteOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-write-price", metavar="USD_PER_MTOK", help="Cache write price per 1M tokens."
    ),
]


def _money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    exact = value.normalize()
    return f"${exact:f}" if exact.as_tuple().exponent < -2 else f"${value:.2f}"  # type: ignore[operator]


def _row(m: ModelListing) -> tuple[object, ...]:
    mark = "~" if m.reference else ""
    return (
        "*" if m.is_current else "",
        m.provider,
        m.model_key,
        m.name,
        m.source,
        "yes" if m.is_active else "no",
        mark + _money(m.input_price_per_mtok) if m.input_price_per_mtok is not None else "—",
        mark + _money(m.output_price_per_mtok) if m.output_price_per_mtok is not None else "—",
        m.context_window or "—",
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include disabled and hidden ones.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """List catalog and custom models; * marks your active one. Example: aipilot models list"""
    from aipilot.services.catalog import listing

    with state(ctx).reading() as (reader, identity, _database):
        rows = listing.list_models(reader, identity, provider=provider, include_inactive=all_)
    if wants_json(ctx, json_output):
        render.emit_json({"models": render.to_plain(rows)})
        return
    columns = ["", "provider", "model", "name", "source", "active", "in $/M", "out $/M", "context"]
    render.table("Models", columns, [_row(m) for m in rows])
    references = sorted({_dated(m.price_source, m.price_as_of) for m in rows if m.reference})
    if references:
        render.note("~ no price in the catalog: reference price from " + ", ".join(references))


def _dated(source: str | None, as_of: str | None) -> str:
    if as_of and as_of not in (source or ""):
        return f"{source} (data as of {as_of})"
    return str(source)


@app.command("show")
def show(
    ctx: typer.Context, provider: ProviderArg, model: ModelArg, json_output: JsonOpt = False
) -> None:
    """Every fact of one model, and the rates a call would use with their source.

    Example: aipilot models show openai gpt-4o-mini
    """
    from aipilot.services.catalog import listing

    with state(ctx).reading() as (reader, identity, _database):
        info = listing.show_model(reader, identity, provider, model)
    if wants_json(ctx, json_output):
        render.emit_json({"model": render.to_plain(info)})
        return
    render.table(f"Model {info.provider}/{info.model_key}", ["field", "value"], _facts(info))


def _facts(info: ModelDetails) -> list[tuple[str, object]]:
    rates = info.rates
    fields: list[tuple[str, object]] = [
        ("provider", info.provider),
        ("model", info.model_key),
        ("name", info.name),
        ("source", info.source),
        ("active", "yes" if info.is_active else "no"),
        ("your active model", "yes" if info.is_current else "no"),
        ("context window", info.context_window or "—"),
        ("max output tokens", info.max_output_tokens or "—"),
        ("deprecation date", info.deprecation_date or "—"),
    ]
    if info.source == "catalog":
        fields += [
            ("catalog input $/M", _money(info.input_price_per_mtok)),
            ("catalog output $/M", _money(info.output_price_per_mtok)),
            ("catalog cache read $/M", _money(info.cache_read_price_per_mtok)),
            ("catalog cache write $/M", _money(info.cache_write_price_per_mtok)),
            ("catalog price source", _row_source(info)),
        ]
    fields.append(("rates used", info.rates_source))
    if rates is not None:
        fields += [
            ("input $/M", _money(rates.input)),
            ("output $/M", _money(rates.output)),
            ("cache read $/M", _money(rates.cache_read) + _fallback(rates.cache_read)),
            ("cache write $/M", _money(rates.cache_write) + _fallback(rates.cache_write)),
        ]
    return fields


def _row_source(info: ModelDetails) -> str:
    if info.price_source:
        return info.price_source
    own = (info.input_price_per_mtok, info.output_price_per_mtok)
    return "set by hand or by the seed" if any(p is not None for p in own) else "—"


def _fallback(rate: Decimal | None) -> str:
    return " (billed at the input rate)" if rate is None else ""


def _done(info: CatalogModel, ctx: typer.Context, json_output: bool, verb: str) -> None:
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "model": render.to_plain(info)})
    else:
        render.success(f"{verb} {info.provider}/{info.model_key} ({info.name})")


@app.command("add")
def add(
    ctx: typer.Context,
    provider: ProviderArg,
    model: ModelArg,
    name: Annotated[str, typer.Option("--name", help="Display label.")],
    input_price: InPriceOpt = None,
    output_price: OutPriceOpt = None,
    context: ContextOpt = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Add it disabled.")] = False,
    cache_read_price: CacheReadOpt = None,
    cache_write_price: CacheWriteOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Add a catalog model (admin only; exit 8 if it exists).

    Example: aipilot models add openai gpt-4.1 --name "GPT-4.1" --input-price 2 --output-price 8
    """
    from aipilot.services.catalog import catalog_admin
    from aipilot.services.catalog.catalog_admin import ModelSpec

    spec = ModelSpec(
        name=name,
        input_price=input_price,
        output_price=output_price,
        context_window=context,
        is_active=not inactive,
        cache_read_price=cache_read_price,
        cache_write_price=cache_write_price,
    )
    info = catalog_admin.add_model(state(ctx).context(), provider, model, spec)
    _done(info, ctx, json_output, "added")


@app.command("update")
def update(
    ctx: typer.Context,
    provider: ProviderArg,
    model: ModelArg,
    name: Annotated[str | None, typer.Option("--name", help="Display label.")] = None,
    input_price: InPriceOpt = None,
    output_price: OutPriceOpt = None,
    context: ContextOpt = None,
    cache_read_price: CacheReadOpt = None,
    cache_write_price: CacheWriteOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Change a catalog model's label, prices or context (admin only).

    A price set here is yours: `models sync` no longer replaces the row's prices.

    Example: aipilot models update openai gpt-4o --input-price 2.50 --output-price 10
    """
    from aipilot.services.catalog import catalog_admin
    from aipilot.services.catalog.catalog_admin import ModelSpec

    spec = ModelSpec(
        name=name,
        input_price=input_price,
        output_price=output_price,
        context_window=context,
        cache_read_price=cache_read_price,
        cache_write_price=cache_write_price,
    )
    info = catalog_admin.update_model(state(ctx).context(), provider, model, spec)
    _done(info, ctx, json_output, "updated")


@app.command("enable")
def enable(
    ctx: typer.Context, provider: ProviderArg, model: ModelArg, json_output: JsonOpt = False
) -> None:
    """Enable a catalog model (admin only). Example: aipilot models enable openai gpt-4.1"""
    from aipilot.services.catalog import catalog_admin

    info = catalog_admin.set_model_active(state(ctx).context(), provider, model, True)
    _done(info, ctx, json_output, "enabled")


@app.command("disable")
def disable(
    ctx: typer.Context, provider: ProviderArg, model: ModelArg, json_output: JsonOpt = False
) -> None:
    """Disable a catalog model (admin only). Example: aipilot models disable openai gpt-4o"""
    from aipilot.services.catalog import catalog_admin

    info = catalog_admin.set_model_active(state(ctx).context(), provider, model, False)
    _done(info, ctx, json_output, "disabled")


@app.command("remove")
def remove(
    ctx: typer.Context, provider: ProviderArg, model: ModelArg, json_output: JsonOpt = False
) -> None:
    """Delete a catalog model (admin only). Example: aipilot models remove openai gpt-4o"""
    from aipilot.services.catalog import catalog_admin

    info = catalog_admin.remove_model(state(ctx).context(), provider, model)
    _done(info, ctx, json_output, "removed")


@app.command("sync")
def sync(
    ctx: typer.Context,
    provider: ProviderArg,
    activate_new: Annotated[
        bool, typer.Option("--activate-new", help="Add new models enabled (default: disabled).")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Add the models the provider lists that the catalog lacks, with your key (admin only).

    Refreshes context window, output limit and deprecation date from the list, and the
    list's prices (OpenRouter) where a row has none of its own. Models gone upstream are
    reported, not deleted. Example: aipilot models sync openai
    """
    from aipilot.services.catalog import model_sync

    with render.progress(f"listing {provider} models"):
        result = model_sync.sync_models(state(ctx).context(), provider, activate_new=activate_new)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, **render.to_plain(result)})
        return
    state_word = "enabled" if result.activated else "disabled until `aipilot models enable`"
    render.success(
        f"{result.provider}: {len(result.added)} added ({state_word}), "
        f"{len(result.present)} already present ({len(result.updated)} updated), "
        f"{len(result.gone)} gone upstream"
    )
    updated = [f"{m} ({', '.join(cols)})" for m, cols in sorted(result.updated.items())]
    for label, names in (
        ("added", result.added),
        ("updated", updated),
        ("priced from the list", result.priced),
        (f"priced by {result.reference_source}", result.reference_priced),
        ("no price known (cost NULL until priced with `aipilot models update`)", result.unpriced),
        ("gone upstream (kept)", result.gone),
    ):
        if names:
            render.note(f"{label}: " + ", ".join(names))
    if result.skipped:
        render.note("skipped (ids aipilot cannot store): " + ", ".join(result.skipped))
