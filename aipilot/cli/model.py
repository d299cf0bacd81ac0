"""`aipilot model activate | show | deactivate`: the one active model per module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json
from aipilot.errors import UsageError

if TYPE_CHECKING:
    from aipilot.services.config.activation import ProviderChoice
    from aipilot.services.config.views import ActiveModel
    from aipilot.services.runtime import Context

app = typer.Typer(
    help="The active model: activate (switch), show, deactivate.", no_args_is_help=True
)

ModuleOpt = Annotated[
    str, typer.Option("--module", "-m", help="Module name (the seed uses only 'global').")
]


def active_doc(active: ActiveModel) -> dict[str, object]:
    doc: dict[str, object] = render.to_plain(active)
    doc["health"] = active.health
    return doc


@app.command("activate")
def activate(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Argument(help="Provider key, e.g. openai.")] = None,
    model: Annotated[str | None, typer.Argument(help="Model key, e.g. gpt-4o-mini.")] = None,
    module: ModuleOpt = "global",
    json_output: JsonOpt = False,
) -> None:
    """Make a catalog or custom model the active one (asks with a picker on a terminal).

    Example: aipilot model activate openai gpt-4o-mini
    """
    from aipilot.services.config import activation

    context = state(ctx).context()
    if provider is None or model is None:
        provider, model = _pick(context, provider)
    result = activation.activate(context, provider, model, module=module)
    if wants_json(ctx, json_output):
        doc = {"success": True, "changed": result.changed, "reused": result.reused}
        render.emit_json({**doc, "active": active_doc(result.active)})
        return
    name = f"{result.active.provider} / {result.active.model}"
    if not result.changed:
        render.note(f"{name} is already the active model of {result.active.module}")
        return
    previous = f" (was {result.previous_provider} / {result.previous_model})"
    render.success(
        f"active model of {result.active.module}: {name}"
        + (previous if result.previous_model else "")
    )


def _pick(context: Context, provider: str | None) -> tuple[str, str]:
    from aipilot.services.config import activation

    if not render.is_terminal():
        raise UsageError(
            "give PROVIDER and MODEL (the picker needs a terminal)",
            hint="e.g. `aipilot model activate openai gpt-4o-mini`; "
            "see `aipilot models list` for the choices",
        )
    options = activation.choices(context)
    if provider is None:
        labels = [f"{p.provider} — {p.provider_name}" for p in options]
        chosen: ProviderChoice = options[_choose("Provider", labels)]
    else:
        found = [p for p in options if p.provider == provider.strip().lower()]
        if not found:
            raise UsageError(f"unknown or disabled provider {provider!r}")
        chosen = found[0]
    if not chosen.models:
        raise UsageError(
            f"{chosen.provider} has no usable models",
            hint=f"add one with `aipilot custom add {chosen.provider} MODEL`",
        )
    labels = [f"{m.model} — {m.label} ({m.source})" for m in chosen.models]
    return chosen.provider, chosen.models[_choose("Model", labels)].model


def _choose(what: str, labels: list[str]) -> int:
    if not labels:
        raise UsageError(f"no {what.lower()} to choose from")
    console = render.stderr()
    for number, label in enumerate(labels, 1):
        console.print(f"  {number:>2}. {render.escape(label)}")
    while True:
        choice = int(typer.prompt(what, type=int))
        if 1 <= choice <= len(labels):
            return choice - 1
        render.note(f"choose a number from 1 to {len(labels)}")


@app.command("show")
def show(ctx: typer.Context, module: ModuleOpt = "global", json_output: JsonOpt = False) -> None:
    """Show the active model: provider, model, since when, prompt snapshot, last test.

    Example: aipilot model show --json
    """
    from aipilot.services.config import views
    from aipilot.services.validate import module_name

    with state(ctx).reading() as (reader, identity, _database):
        active = views.active_model(reader, identity, module)
    if active is None:
        raise views.no_active_model(module_name(module))
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "active": active_doc(active)})
        return
    console = render.stdout()
    console.print(f"[bold]Active model ({render.escape(active.module)})[/bold]")
    for name, value in describe_rows(active):
        console.print(f"  {name:<10} {render.escape(value)}")


def describe_rows(active: ActiveModel) -> list[tuple[str, str]]:
    prompt = "—"
    if active.prompt_summary:
        origin = f"prompt {active.prompt_name!r}" if active.prompt_name else "snapshot"
        prompt = f"{active.prompt_summary} (from {origin})"
        if active.prompt_stale:
            prompt += " — stale: the prompt changed since; `aipilot prompts activate` refreshes it"
    test = active.health
    if active.last_test_at is not None:
        test = f"{test} at {render.when(active.last_test_at)}"
        if active.last_test_error:
            test += f": {active.last_test_error}"
    return [
        ("provider", f"{active.provider} ({active.provider_name})"),
        ("model", f"{active.model} — {active.label or '?'} ({active.source})"),
        ("since", render.when(active.activated_at)),
        ("prompt", prompt),
        ("last test", test),
    ]


@app.command("deactivate")
def deactivate(
    ctx: typer.Context, module: ModuleOpt = "global", json_output: JsonOpt = False
) -> None:
    """Leave the module without an active model (does nothing if none is active).

    Example: aipilot model deactivate
    """
    from aipilot.services.config import activation

    result = activation.deactivate(state(ctx).context(), module=module)
    previous = result.previous
    if wants_json(ctx, json_output):
        doc = active_doc(previous) if previous is not None else None
        render.emit_json({"success": True, "changed": previous is not None, "previous": doc})
    elif previous is None:
        render.note(f"no model was active for {result.module}: nothing to do")
    else:
        render.success(f"deactivated {previous.provider} / {previous.model} ({result.module})")
