"""`aipilot models list | add | update | enable | disable | remove | sync`.

`list` is the seed's union: the catalog's active models plus your custom models, the
catalog row winning a duplicate, your active model marked `*`. Writes are admin only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json

if TYPE_CHECKING:
    from aipilot.services.catalog_admin import CatalogModel, ModelListing

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


def _money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    exact = value.normalize()
    return f"${exact:f}" if exact.as_tuple().exponent < -2 else f"${value:.2f}"  # type: ignore[operator]


def _row(m: ModelListing) -> tuple[object, ...]:
    return (
        "*" if m.is_current else "",
        m.provider,
        m.model_key,
        m.name,
        m.source,
        "yes" if m.is_active else "no",
        _money(m.input_price_per_mtok),
        _money(m.output_price_per_mtok),
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
    from aipilot.services import catalog_admin

    rows = catalog_admin.list_models(state(ctx).context(), provider=provider, include_inactive=all_)
    if wants_json(ctx, json_output):
        render.emit_json({"models": render.to_plain(rows)})
        return
    columns = ["", "provider", "model", "name", "source", "active", "in $/M", "out $/M", "context"]
    render.table("Models", columns, [_row(m) for m in rows])


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
    json_output: JsonOpt = False,
) -> None:
    """Add a catalog model (admin only; exit 8 if it exists).

    Example: aipilot models add openai gpt-4.1 --name "GPT-4.1" --input-price 2 --output-price 8
    """
    from aipilot.services import catalog_admin
    from aipilot.services.catalog_admin import ModelSpec

    spec = ModelSpec(name, input_price, output_price, context, not inactive)
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
    json_output: JsonOpt = False,
) -> None:
    """Change a catalog model's label, prices or context (admin only).

    Example: aipilot models update openai gpt-4o --input-price 2.50 --output-price 10
    """
    from aipilot.services import catalog_admin
    from aipilot.services.catalog_admin import ModelSpec

    spec = ModelSpec(name, input_price, output_price, context)
    info = catalog_admin.update_model(state(ctx).context(), provider, model, spec)
    _done(info, ctx, json_output, "updated")


@app.command("enable")
def enable(
    ctx: typer.Context, provider: ProviderArg, model: ModelArg, json_output: JsonOpt = False
) -> None:
    """Enable a catalog model (admin only). Example: aipilot models enable openai gpt-4.1"""
    from aipilot.services import catalog_admin

    info = catalog_admin.set_model_active(state(ctx).context(), provider, model, True)
    _done(info, ctx, json_output, "enabled")


@app.command("disable")
def disable(
    ctx: typer.Context, provider: ProviderArg, model: ModelArg, json_output: JsonOpt = False
) -> None:
    """Disable a catalog model (admin only). Example: aipilot models disable openai gpt-4o"""
    from aipilot.services import catalog_admin

    info = catalog_admin.set_model_active(state(ctx).context(), provider, model, False)
    _done(info, ctx, json_output, "disabled")


@app.command("remove")
def remove(
    ctx: typer.Context, provider: ProviderArg, model: ModelArg, json_output: JsonOpt = False
) -> None:
    """Delete a catalog model (admin only). Example: aipilot models remove openai gpt-4o"""
    from aipilot.services import catalog_admin

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

    Models gone upstream are reported, not deleted. Example: aipilot models sync openai
    """
    from aipilot.services import model_sync

    with render.progress(f"listing {provider} models"):
        result = model_sync.sync_models(state(ctx).context(), provider, activate_new=activate_new)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, **render.to_plain(result)})
        return
    state_word = "enabled" if result.activated else "disabled until `aipilot models enable`"
    render.success(
        f"{result.provider}: {len(result.added)} added ({state_word}), "
        f"{len(result.present)} already present, {len(result.gone)} gone upstream"
    )
    for label, names in (("added", result.added), ("gone upstream (kept)", result.gone)):
        if names:
            render.note(f"{label}: " + ", ".join(names))
    if result.skipped:
        render.note("skipped (ids aipilot cannot store): " + ", ".join(result.skipped))
