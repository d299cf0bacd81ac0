"""`aipilot tokens create | list | revoke`: access tokens for `aipilot serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json

app = typer.Typer(
    help="Access tokens for `aipilot serve` (Authorization: Bearer aip_…).", no_args_is_help=True
)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="A label to recognise it by.")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime: 90m, 12h, 30d, 2w (default: none).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a token for yourself; it is printed once on stdout and stored only hashed.

    Example: TOKEN=$(aipilot tokens create --name laptop --expires 30d)
    """
    from aipilot.services.users import tokens

    lifetime = tokens.parse_duration(expires) if expires else None
    created = tokens.create_token(state(ctx).context(), name=name, expires_in=lifetime)
    if wants_json(ctx, json_output):
        render.emit_json({"token": created.token, **render.to_plain(created.info)})
        return
    typer.echo(created.token)
    until = render.when(created.info.expires_at) if created.info.expires_at else "never"
    render.note(
        f"token {created.info.prefix}… ({created.info.name}) expires {until}; "
        "it is shown only this once"
    )


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """List your tokens: prefix, name, created, expires, last used, state."""
    from aipilot.services.users import tokens

    rows = tokens.list_tokens(state(ctx).context())
    if wants_json(ctx, json_output):
        render.emit_json([{**render.to_plain(r), "state": r.state} for r in rows])
        return
    render.table(
        "Access tokens",
        ["id", "prefix", "name", "created", "expires", "last used", "state"],
        [
            (
                r.id,
                r.prefix,
                r.name,
                render.when(r.created_at),
                render.when(r.expires_at) if r.expires_at else "never",
                render.when(r.last_used_at),
                r.state,
            )
            for r in rows
        ],
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="ID|PREFIX", help="The token's id or prefix.")],
    json_output: JsonOpt = False,
) -> None:
    """Revoke one of your tokens (by id or display prefix); it stops working.

    A running `aipilot serve` may accept it for up to its auth cache time (30 s default).
    """
    from aipilot.services.users import tokens

    info = tokens.revoke_token(state(ctx).context(), ref)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, **render.to_plain(info), "state": info.state})
        return
    render.success(f"revoked token {info.prefix}… ({info.name})")
