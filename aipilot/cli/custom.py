"""`aipilot custom add | list | hide | show | remove`: your own models (ai_user_models_flut)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import inputs, render
from aipilot.cli.state import JsonOpt, state, wants_json

if TYPE_CHECKING:
    from aipilot.services.catalog.listing import CustomModel

app = typer.Typer(
    help="Your custom models, added beside the catalog (only you see them).",
    no_args_is_help=True,
)

ProviderArg = Annotated[str, typer.Argument(help="Provider key, e.g. openai.")]
ModelArg = Annotated[str, typer.Argument(help="The provider's model id, e.g. gpt-4o-latest.")]


def _done(info: CustomModel, ctx: typer.Context, json_output: bool, verb: str) -> None:
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "custom_model": render.to_plain(info)})
    else:
        render.success(f"{verb} custom model {info.provider}/{info.model_key} ({info.name})")


@app.command("add")
def add(
    ctx: typer.Context,
    provider: ProviderArg,
    model: ModelArg,
    name: Annotated[
        str | None, typer.Option("--name", help="Display label (default: the model id).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Add a custom model for a provider (exit 8 if you already have it).

    Example: aipilot custom add openai gpt-4o-latest --name "GPT-4o Latest (Custom)"
    """
    from aipilot.services.catalog import custom_models

    info = custom_models.add_custom(state(ctx).context(), provider, model, name=name)
    _done(info, ctx, json_output, "added")


@app.command("list")
def list_(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include hidden models.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """List your custom models (--all: hidden ones too). Example: aipilot custom list --all"""
    from aipilot.services.catalog import listing

    with state(ctx).reading() as (reader, identity, _database):
        rows = listing.list_custom(reader, identity, provider=provider, include_hidden=all_)
    if wants_json(ctx, json_output):
        render.emit_json({"custom_models": render.to_plain(rows)})
        return
    render.table(
        "Your custom models",
        ["provider", "model", "name", "visible", "added"],
        [
            (
                r.provider,
                r.model_key,
                r.name,
                "yes" if r.is_active else "hidden",
                render.when(r.created_at),
            )
            for r in rows
        ],
    )


@app.command("hide")
def hide(
    ctx: typer.Context, provider: ProviderArg, model: ModelArg, json_output: JsonOpt = False
) -> None:
    """Hide a custom model from lists (kept). Example: aipilot custom hide openai gpt-4o-latest"""
    from aipilot.services.catalog import custom_models

    info = custom_models.set_visible(state(ctx).context(), provider, model, False)
    _done(info, ctx, json_output, "hid")


@app.command("show")
def show(
    ctx: typer.Context, provider: ProviderArg, model: ModelArg, json_output: JsonOpt = False
) -> None:
    """Show a hidden custom model again. Example: aipilot custom show openai gpt-4o-latest"""
    from aipilot.services.catalog import custom_models

    info = custom_models.set_visible(state(ctx).context(), provider, model, True)
    _done(info, ctx, json_output, "showing")


@app.command("remove")
def remove(
    ctx: typer.Context,
    provider: ProviderArg,
    model: ModelArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Delete a custom model (asks on a terminal; scripts pass --yes).

    Example: aipilot custom remove openai gpt-4o-latest --yes
    """
    from aipilot.services.catalog import custom_models

    context = state(ctx).context()
    inputs.confirm_or_yes(
        f"Remove your custom model {provider}/{model}?", yes=yes, action="removing a custom model"
    )
    info = custom_models.remove_custom(context, provider, model)
    _done(info, ctx, json_output, "removed")
