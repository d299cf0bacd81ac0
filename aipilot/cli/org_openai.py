"""`aipilot org-openai set-key | show | limits | allow-models | enable | disable | test`.

An organisation's OpenAI connection (the seed's ``openai_connexion``). The key enters only by
a hidden prompt (on a terminal), ``--stdin`` or ``--from-env NAME``, and is stored encrypted;
output shows its hint only. Writes and tests are admin only; members may `show` their own
organisation's connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import inputs, render
from aipilot.cli.state import JsonOpt, state, wants_json
from aipilot.errors import ExitCode

if TYPE_CHECKING:
    from aipilot.services.orgs.org_openai import ConnexionInfo

app = typer.Typer(
    help="An organisation's OpenAI connection: key, status, quotas, allowed models.",
    no_args_is_help=True,
)

OrgArg = Annotated[str, typer.Argument(help="Organisation name (or id).")]


def _emit(ctx: typer.Context, info: ConnexionInfo, json_output: bool, done: str) -> None:
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "connection": render.to_plain(info)})
    else:
        render.success(done)


@app.command("set-key")
def set_key(
    ctx: typer.Context,
    org: OrgArg,
    stdin: inputs.StdinOpt = False,
    from_env: inputs.FromEnvOpt = None,
    no_test: Annotated[
        bool, typer.Option("--no-test", help="Store without testing it against OpenAI.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Store (or replace) the organisation's OpenAI key, encrypted, then test it (admin only).

    Creates the connection if missing. A failed test keeps the key and exits 5.
    Example: printf %s "$KEY" | aipilot org-openai set-key acme --stdin
    """
    from aipilot.services.orgs import org_openai

    context = state(ctx).context()
    raw = inputs.read_secret(
        label=f"{org} OpenAI API key",
        stdin=stdin,
        from_env=from_env,
        stdin_example=f"aipilot org-openai set-key {org} --stdin",
    )
    with render.progress("testing the key"):
        info = org_openai.set_key(context, org, raw, test=not no_test)
    failed = not no_test and info.last_error is not None
    if wants_json(ctx, json_output):
        doc = {"success": not failed, "tested": not no_test, "connection": render.to_plain(info)}
        render.emit_json(doc)
    else:
        render.success(f"stored {info.organisation}'s OpenAI key {info.key_hint} (encrypted)")
        if not no_test:
            _print_status(info)
    if failed:
        raise typer.Exit(int(ExitCode.PROVIDER))


def _print_status(info: ConnexionInfo) -> None:
    if info.last_error:
        render.failure(f"{info.organisation}: {info.last_error} (status {info.status})")
    else:
        render.success(f"{info.organisation}: key works (status {info.status})")


@app.command("show")
def show(ctx: typer.Context, org: OrgArg, json_output: JsonOpt = False) -> None:
    """Show the connection: key hint, status, limits, usage, allowed models, last sync."""
    from aipilot.services.orgs import org_openai

    info = org_openai.show(state(ctx).context(), org)
    if wants_json(ctx, json_output):
        render.emit_json({"connection": render.to_plain(info)})
        return
    if info.connexion_id is None:
        render.note(f"{info.organisation} has no OpenAI connection (`org-openai set-key`)")
        return
    daily = "—" if info.daily_requests is None else str(info.daily_requests)
    budget = "—" if info.monthly_cost_usd is None else f"${info.monthly_cost_usd}"
    lines = [
        ("organisation", info.organisation),
        ("key", info.key_hint or ("stored" if info.configured else info.key_state)),
        ("enabled", "yes" if info.active else "no"),
        ("status", info.status or "—"),
        ("requests today", f"{info.requests_today} of {daily}"),
        ("quota resets", render.when(info.quota_resets_at)),
        ("cost this month", f"${info.cost_this_month} of {budget}"),
        ("allowed models", ", ".join(info.allowed_models) or "none"),
        ("last sync", render.when(info.last_sync)),
        ("last error", info.last_error or "—"),
        ("audit entries", str(len(info.audit))),
    ]
    for label, value in lines:
        typer.echo(f"{label:<16}{value}")


@app.command("limits")
def limits(
    ctx: typer.Context,
    org: OrgArg,
    daily_requests: Annotated[
        int | None, typer.Option("--daily-requests", metavar="N", help="Requests per UTC day.")
    ] = None,
    monthly_cost: Annotated[
        str | None, typer.Option("--monthly-cost", metavar="USD", help="Spend per UTC month.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove both limits.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Set the daily request quota and/or monthly cost limit (admin only)."""
    from aipilot.services.orgs import org_openai

    info = org_openai.set_limits(
        state(ctx).context(),
        org,
        daily_requests=daily_requests,
        monthly_cost=monthly_cost,
        clear=clear,
    )
    _emit(ctx, info, json_output, f"limits of {info.organisation} updated")


@app.command("allow-models")
def allow_models(
    ctx: typer.Context,
    org: OrgArg,
    models: Annotated[list[str], typer.Argument(help="Model ids (replaces the list).")],
    json_output: JsonOpt = False,
) -> None:
    """Set the models the organisation's key may be used with (admin only)."""
    from aipilot.services.orgs import org_openai

    info = org_openai.allow_models(state(ctx).context(), org, models)
    _emit(ctx, info, json_output, f"{info.organisation} allows {', '.join(info.allowed_models)}")


@app.command("enable")
def enable(ctx: typer.Context, org: OrgArg, json_output: JsonOpt = False) -> None:
    """Enable the connection (status active) (admin only)."""
    from aipilot.services.orgs import org_openai

    info = org_openai.set_enabled(state(ctx).context(), org, True)
    _emit(ctx, info, json_output, f"{info.organisation}'s OpenAI connection is enabled")


@app.command("disable")
def disable(ctx: typer.Context, org: OrgArg, json_output: JsonOpt = False) -> None:
    """Disable the connection (status inactive): members' calls stop using it (admin only)."""
    from aipilot.services.orgs import org_openai

    info = org_openai.set_enabled(state(ctx).context(), org, False)
    _emit(ctx, info, json_output, f"{info.organisation}'s OpenAI connection is disabled")


@app.command("test")
def test(ctx: typer.Context, org: OrgArg, json_output: JsonOpt = False) -> None:
    """Test the key against OpenAI; updates status, last sync and last error (exit 5 if bad)."""
    from aipilot.services.orgs import org_openai

    with render.progress("testing the key"):
        result = org_openai.test_connexion(state(ctx).context(), org)
    if wants_json(ctx, json_output):
        render.emit_json({"success": result.ok, "test": render.to_plain(result)})
    elif result.ok:
        render.success(f"{result.organisation}: key works ({result.latency_ms} ms)")
    else:
        render.failure(f"{result.organisation}: {result.error} (status {result.status})")
    if not result.ok:
        raise typer.Exit(int(ExitCode.PROVIDER))
