"""`aipilot limits set | show | clear`: your daily request quota and monthly cost limit.

A limit applies to one provider (``--provider KEY``) or to all providers (no option); when
both exist, both are enforced. Users manage their own; an admin manages another user's with
``--for NAME`` (the root ``--user`` option selects who is acting, not whose limits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json

if TYPE_CHECKING:
    from aipilot.services.accounting.limits_view import LimitInfo

app = typer.Typer(
    help="Per-user limits: daily requests and monthly cost, per provider or for all.",
    no_args_is_help=True,
)

ProviderOpt = Annotated[
    str | None,
    typer.Option("--provider", metavar="KEY", help="One provider (default: all providers)."),
]
ForOpt = Annotated[
    str | None,
    typer.Option("--for", metavar="USER", help="Another user's limits (admin only)."),
]


def _usd(value: object) -> str:
    return "—" if value is None else f"${value}"


def _rows(rows: list[LimitInfo]) -> list[tuple[str, ...]]:
    return [
        (
            r.user,
            r.provider or "(all)",
            "—" if r.daily_requests is None else f"{r.requests_today}/{r.daily_requests}",
            f"{_usd(r.cost_this_month)} of {_usd(r.monthly_cost_usd)}",
            render.when(r.day_resets_at),
            render.when(r.month_resets_at),
        )
        for r in rows
    ]


def _print(title: str, rows: list[LimitInfo]) -> None:
    columns = [
        "user",
        "provider",
        "requests today",
        "cost this month",
        "day resets",
        "month resets",
    ]
    render.table(title, columns, _rows(rows))


@app.command("set")
def set_(
    ctx: typer.Context,
    provider: ProviderOpt = None,
    daily_requests: Annotated[
        int | None, typer.Option("--daily-requests", metavar="N", help="Requests per UTC day.")
    ] = None,
    monthly_cost: Annotated[
        str | None, typer.Option("--monthly-cost", metavar="USD", help="Spend per UTC month.")
    ] = None,
    for_user: ForOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Set a limit; an option not given keeps its value (exit 6 when a call would pass one).

    Examples: aipilot limits set --daily-requests 100 | aipilot limits set --provider openai
    --monthly-cost 20
    """
    from aipilot.services.accounting import quotas

    info = quotas.set_limit(
        state(ctx).context(),
        provider=provider,
        daily_requests=daily_requests,
        monthly_cost=monthly_cost,
        user=for_user,
    )
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "limit": render.to_plain(info)})
    else:
        render.success(f"limit set for {info.user} ({info.provider or 'all providers'})")


@app.command("show")
def show(ctx: typer.Context, for_user: ForOpt = None, json_output: JsonOpt = False) -> None:
    """Show your limits with today's and this month's usage."""
    from aipilot.services.accounting import limits_view

    with state(ctx).reading() as (reader, identity, _database):
        rows = limits_view.show_limits(reader, identity, user=for_user)
    if wants_json(ctx, json_output):
        render.emit_json({"limits": render.to_plain(rows)})
    elif rows:
        _print("Limits", rows)
    else:
        render.note("no limits are set")


@app.command("clear")
def clear(
    ctx: typer.Context,
    provider: ProviderOpt = None,
    for_user: ForOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Remove the limit for one provider (--provider) or the all-providers one."""
    from aipilot.services.accounting import quotas

    removed = quotas.clear_limit(state(ctx).context(), provider=provider, user=for_user)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "provider": provider, "removed": removed})
    elif removed:
        render.success(f"removed the limit for {provider or 'all providers'}")
    else:
        render.note("no such limit: nothing removed")
