"""`aipilot test`, `aipilot history`, `aipilot status`: health of the active configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import render
from aipilot.cli.model import ModuleOpt, active_doc, describe_rows
from aipilot.cli.state import JsonOpt, state, wants_json
from aipilot.errors import ExitCode
from aipilot.services import documents

if TYPE_CHECKING:
    from aipilot.services.config.config_test import ConfigTestResult
    from aipilot.services.config.overview import HistoryEntry
    from aipilot.services.config.views import KeyStatus, Overview

BADGES = {
    "healthy": "[bold white on green] Healthy [/]",
    "unhealthy": "[bold white on red] Unhealthy [/]",
    "untested": "[black on yellow] untested [/]",
    "not configured": "[dim]not configured[/dim]",
}


def test(ctx: typer.Context, module: ModuleOpt = "global", json_output: JsonOpt = False) -> None:
    """Test the active configuration: key, model access, one round trip (exit 0 only if healthy).

    Exit 3: no active model or no key; exit 4: a check failed.
    Example: aipilot test --json
    """
    from aipilot.services.config import config_test

    context = state(ctx).context()
    with render.progress("testing the active model"):
        result = config_test.run(context, module=module)
    if wants_json(ctx, json_output):
        render.emit_json(documents.config_test(result))
    else:
        _print_test(result)
    if not result.success:
        raise typer.Exit(int(ExitCode.UNHEALTHY))


def _print_test(result: ConfigTestResult) -> None:
    console = render.stdout()
    console.print(f"{render.escape(result.provider)} / {render.escape(result.model)}")
    for check in result.checks:
        label = check.name.replace("_", " ")
        if check.latency_ms is None:
            console.print(f"  [dim]- {label}: skipped[/dim]")
        elif check.ok:
            console.print(f"  [green]✓[/green] {label} ({check.latency_ms} ms)")
        else:
            error = render.escape(check.error or "failed")
            console.print(f"  [red]✗[/red] {label} ({check.latency_ms} ms): {error}")
    if result.success:
        console.print(BADGES["healthy"])
    else:
        console.print(f"{BADGES['unhealthy']} {render.escape(result.reason or '')}")


def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many entries.")] = 20,
    json_output: JsonOpt = False,
) -> None:
    """List recent key tests, configuration tests, model syncs and failed calls, newest first.

    Example: aipilot history --limit 5
    """
    from aipilot.services.config import overview

    with state(ctx).reading() as (reader, identity, _database):
        entries = overview.history(reader, identity, limit=limit)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "entries": render.to_plain(entries)})
        return
    render.table(
        "History",
        ["time", "kind", "provider", "model", "outcome", "latency", "error"],
        [_history_row(e) for e in entries],
    )


def _history_row(entry: HistoryEntry) -> tuple[str, ...]:
    latency = f"{entry.latency_ms} ms" if entry.latency_ms is not None else "—"
    error = f"{entry.error_code}: {entry.error}" if entry.error else "—"
    return (
        render.when(entry.at),
        entry.kind,
        entry.provider,
        entry.model or "—",
        entry.outcome,
        latency,
        error,
    )


def status(ctx: typer.Context, module: ModuleOpt = "global", json_output: JsonOpt = False) -> None:
    """Show the control centre: keys per provider, the active model and its health, the prompt.

    Works without a master key (key states read "locked").
    Example: aipilot status --json
    """
    from aipilot.services.config import views

    with state(ctx).reading() as (reader, identity, database):
        view = views.overview(reader, identity, database=database, module=module)
    if wants_json(ctx, json_output):
        render.emit_json(_status_doc(view))
        return
    _print_status(view)


def _status_doc(view: Overview) -> dict[str, object]:
    return {
        "success": True,
        "user": view.user,
        "role": view.role,
        "database": view.database,
        "module": view.module,
        "keys": {k.provider: k.configured for k in view.keys},
        "providers": render.to_plain(list(view.keys)),
        "active_model": active_doc(view.active) if view.active is not None else None,
        "health": view.health,
        "prompt": render.to_plain(view.prompt),
        "warnings": list(view.warnings),
    }


def _print_status(view: Overview) -> None:
    console = render.stdout()
    console.print(
        f"[bold]Centre de Pilotage IA[/bold] — {render.escape(view.user)} ({view.role}), "
        f"{render.escape(view.database)}"
    )
    render.table(
        "Keys", ["provider", "key", "state", "last test", "result"], map(_key_row, view.keys)
    )
    console.print(f"[bold]Active model ({view.module})[/bold] {BADGES[view.health]}")
    if view.active is None:
        console.print("  none — choose one with `aipilot model activate PROVIDER MODEL`")
    else:
        for name, value in describe_rows(view.active):
            console.print(f"  {name:<10} {render.escape(value)}")
    prompt = "none" if view.prompt is None else f"{view.prompt.name}: {view.prompt.summary}"
    console.print(f"[bold]Active prompt[/bold] {render.escape(prompt)}")
    for warning in view.warnings:
        console.print(f"[yellow]Warning:[/yellow] {render.escape(warning)}")


def _key_row(row: KeyStatus) -> tuple[str, ...]:
    result = "—" if row.last_test_ok is None else ("ok" if row.last_test_ok else "failed")
    return (row.provider, row.hint or "—", row.state, render.when(row.last_tested_at), result)
