"""`aipilot orgs list | add | show | members | add-member | mine`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json

if TYPE_CHECKING:
    from aipilot.services.orgs.orgs import OrgDetail

app = typer.Typer(
    help="Organisations and their members (admins add them; members see their own).",
    no_args_is_help=True,
)

OrgArg = Annotated[str, typer.Argument(help="Organisation name (or id).")]


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """List organisations (every one for an admin, your own for a member)."""
    from aipilot.services.orgs import orgs

    rows = orgs.list_orgs(state(ctx).context())
    if wants_json(ctx, json_output):
        render.emit_json({"organisations": render.to_plain(rows)})
        return
    render.table(
        "Organisations",
        ["", "name", "members", "openai", "id", "since"],
        [
            (
                "*" if o.is_mine else "",
                o.name,
                o.members,
                o.openai_status or "—",
                o.organisation_id,
                render.when(o.created_at),
            )
            for o in rows
        ],
    )


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The new organisation's name.")],
    json_output: JsonOpt = False,
) -> None:
    """Create an organisation (admin only). Example: aipilot orgs add acme"""
    from aipilot.services.orgs import orgs

    info = orgs.add_org(state(ctx).context(), name)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "organisation": render.to_plain(info)})
    else:
        render.success(f"added organisation {info.name}")


def _print_detail(ctx: typer.Context, detail: OrgDetail | None, json_output: bool) -> None:
    if wants_json(ctx, json_output):
        doc = None if detail is None else render.to_plain(detail.org)
        members = [] if detail is None else render.to_plain(detail.members)
        render.emit_json({"organisation": doc, "members": members})
        return
    if detail is None:
        render.note("you belong to no organisation (an admin runs `aipilot orgs add-member`)")
        return
    org = detail.org
    typer.echo(f"organisation  {org.name}{'  (yours)' if org.is_mine else ''}")
    typer.echo(f"id            {org.organisation_id}")
    typer.echo(f"openai        {org.openai_status or 'no connection'}")
    typer.echo(f"members       {org.members}")
    for member in detail.members:
        typer.echo(f"  {member.username} ({member.role})")


@app.command("show")
def show(ctx: typer.Context, name: OrgArg, json_output: JsonOpt = False) -> None:
    """Show an organisation, its members and its OpenAI connection status."""
    from aipilot.services.orgs import orgs

    _print_detail(ctx, orgs.show_org(state(ctx).context(), name), json_output)


@app.command("members")
def members(ctx: typer.Context, name: OrgArg, json_output: JsonOpt = False) -> None:
    """List an organisation's members."""
    from aipilot.services.orgs import orgs

    detail = orgs.show_org(state(ctx).context(), name)
    if wants_json(ctx, json_output):
        render.emit_json(
            {"organisation": detail.org.name, "members": render.to_plain(detail.members)}
        )
        return
    render.table(
        f"Members of {detail.org.name}",
        ["user", "role"],
        [(m.username, m.role) for m in detail.members],
    )


@app.command("add-member")
def add_member(
    ctx: typer.Context,
    name: OrgArg,
    user: Annotated[str, typer.Argument(help="User name or id (moved from any other org).")],
    json_output: JsonOpt = False,
) -> None:
    """Put a user in an organisation (admin only). Example: aipilot orgs add-member acme bob"""
    from aipilot.services.orgs import orgs

    detail = orgs.add_member(state(ctx).context(), name, user)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "organisation": detail.org.name, "user": user})
    else:
        render.success(f"{user} is now a member of {detail.org.name}")


@app.command("mine")
def mine(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Show your own organisation (JSON: {"organisation": null} when you have none)."""
    from aipilot.services.orgs import orgs

    _print_detail(ctx, orgs.my_org(state(ctx).context()), json_output)
