"""`aipilot init` and `aipilot db upgrade | current | check`."""

from __future__ import annotations

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json

db_app = typer.Typer(help="Schema migrations (wrapping alembic).", no_args_is_help=True)


def init(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Create or upgrade the schema, seed the catalogs, register you (admin on a new database).

    Safe to run again: it only adds what is missing.

    Example: aipilot init && aipilot --db postgresql://postgres@127.0.0.1/aipilot init
    """
    from aipilot.services.setup import initialise

    current = state(ctx)
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
