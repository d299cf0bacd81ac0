"""`aipilot init` and `aipilot db upgrade | current | check`."""

from __future__ import annotations

from typing import Annotated

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json
from aipilot.errors import UsageError

db_app = typer.Typer(help="Schema migrations (wrapping alembic).", no_args_is_help=True)


def init(
    ctx: typer.Context,
    adopt: Annotated[
        bool,
        typer.Option("--adopt", help="Take over a database that already holds the seed's tables."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --adopt: print the plan, change nothing.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Create or upgrade the schema, seed the catalogs, register you (admin on a new database).

    Safe to run again: it only adds what is missing. On a database that already holds the
    existing system's tables (the seed's apps on Supabase), use --adopt.

    Examples:

      aipilot init

      aipilot --db "$SUPABASE_DB_URL" init --adopt --dry-run
    """
    from aipilot.services.setup import initialise

    current = state(ctx)
    if dry_run and not adopt:
        raise UsageError("--dry-run goes with --adopt", hint="aipilot init --adopt --dry-run")
    if adopt:
        _adopt(ctx, dry_run=dry_run, json_output=json_output)
        return
    report = initialise(current.settings, db=current.database())
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, **render.to_plain(report)})
        return
    changed = report.revision_before != report.revision_after
    render.success(
        f"schema {report.revision_after} on the {report.database}"
        + (f" (was {report.revision_before or 'empty'})" if changed else " (already current)")
    )
    render.note(
        f"providers added: {', '.join(report.providers_added) or 'none'}; "
        f"models added: {len(report.models_added)}"
    )
    if report.user_created:
        render.success(f"registered {report.user} as the first admin")
    elif report.user_role is None:
        render.note(f"user {report.user!r} is not registered: an admin runs `aipilot users add`")
    else:
        render.note(f"you are {report.user} ({report.user_role})")
    if report.master_key_note:
        render.note(report.master_key_note)
    else:
        render.note(f"master key: from {report.master_key_source}")


def _adopt(ctx: typer.Context, *, dry_run: bool, json_output: bool) -> None:
    from aipilot.db.adopt import describe_plan
    from aipilot.services.setup import AdoptionRefused, adopt_existing

    current = state(ctx)
    try:
        plan = adopt_existing(current.settings, db=current.database(), dry_run=dry_run)
    except AdoptionRefused as refused:
        if not wants_json(ctx, json_output):
            for reason in refused.plan.refusals:
                render.failure(reason)
        raise
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "dry_run": dry_run, **render.to_plain(plan)})
        return
    for line in describe_plan(plan):
        render.note(("would " if dry_run else "") + line)
    for warning in plan.warnings:
        render.note(f"note: {warning}")
    if dry_run:
        render.note(f"dry run: nothing changed ({len(plan.steps)} steps planned)")
    else:
        render.success(f"adopted the {plan.database}: {len(plan.steps)} steps in one transaction")


@db_app.command("upgrade")
def upgrade(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Migrate the schema to the newest revision (back up a shared database first)."""
    from aipilot.db import migrate

    db = state(ctx).database()
    before, after = migrate.upgrade(db)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "before": before, "after": after})
    else:
        render.success(f"{db.describe()}: {before or 'empty'} → {after}")


@db_app.command("current")
def current(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Show the schema revision of the database and the one this aipilot needs."""
    from aipilot.db import migrate

    db = state(ctx).database()
    revision = migrate.current_revision(db)
    doc = {
        "current": revision,
        "head": migrate.HEAD_REVISION,
        "up_to_date": revision == migrate.HEAD_REVISION,
    }
    if wants_json(ctx, json_output):
        render.emit_json(doc)
    else:
        typer.echo(f"{revision or '(no schema)'} (head: {migrate.HEAD_REVISION})")


@db_app.command("check")
def check(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Fail (database error exit code) if the schema drifts from aipilot's models."""
    from aipilot.db import migrate

    db = state(ctx).database()
    migrate.require_current_schema(db)
    migrate.check(db)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "drift": False})
    else:
        render.success("no drift between the schema and aipilot's models")
