"""`aipilot users list | add | import | set-role`."""

from __future__ import annotations

from typing import Annotated

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json

app = typer.Typer(
    help="Users of a team database (admins add users and set roles).", no_args_is_help=True
)


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """List the users and their roles."""
    from aipilot.services.users import users

    rows = users.list_users(state(ctx).context())
    if wants_json(ctx, json_output):
        render.emit_json({"users": render.to_plain(rows)})
        return
    render.table(
        "Users",
        ["", "user", "role", "id", "since"],
        [
            ("*" if u.is_current else "", u.username, u.role, u.user_id, render.when(u.created_at))
            for u in rows
        ],
    )


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The new user's name (on Supabase: its e-mail).")],
    user_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            metavar="UUID",
            help="The user's id; on Supabase, its auth.users id (Authentication → Users).",
        ),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Register a user (admin only).

    Examples:

      aipilot users add bob --admin

      aipilot users add ana@example.com --id 6f1c…   # a Supabase Auth user
    """
    from aipilot.services.users import users

    info = users.add_user(
        state(ctx).context(), name, role="admin" if admin else "member", user_id=user_id
    )
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "user": render.to_plain(info)})
    else:
        render.success(f"added {info.username} ({info.role}, id {info.user_id})")


@app.command("import")
def import_(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would be added; change nothing.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Register every Supabase Auth user not known yet, as a member (admin only).

    Example: aipilot users import --dry-run
    """
    from aipilot.services.users import users

    result = users.import_users(state(ctx).context(), dry_run=dry_run)
    if wants_json(ctx, json_output):
        render.emit_json(
            {
                "success": True,
                "dry_run": dry_run,
                "added": render.to_plain(result.added),
                "skipped": result.skipped,
            }
        )
        return
    verb = "would add" if dry_run else "added"
    for info in result.added:
        render.success(f"{verb} {info.username} (member, id {info.user_id})")
    for skipped in result.skipped:
        render.failure(f"skipped {skipped['user_id']}: {skipped['reason']}")
    render.note(f"{len(result.added)} {verb}, {len(result.skipped)} skipped")


@app.command("set-role")
def set_role(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name or id.")],
    role: Annotated[str, typer.Argument(help="admin or member.")],
    json_output: JsonOpt = False,
) -> None:
    """Change a user's role (admin only). Example: aipilot users set-role alice member"""
    from aipilot.services.users import users

    info = users.set_role(state(ctx).context(), name, role)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "user": render.to_plain(info)})
    else:
        render.success(f"{info.username} is now {info.role}")
