"""`aipilot usage`: calls, errors, tokens and cost per day, provider, model or kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json

if TYPE_CHECKING:
    from aipilot.services.accounting.usage_report import UsageReport, UsageRow

BAR_WIDTH = 20
COLUMNS = (
    "calls",
    "errors",
    "in tokens",
    "out tokens",
    "reasoning",
    "cost (USD)",
    "unpriced",
    "avg ms",
)


def usage(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option("--since", help="Start: 7d, 12h, 30m (ago) or an ISO date (UTC).")
    ] = "7d",
    until: Annotated[
        str | None,
        typer.Option("--until", help="End (exclusive; a date includes that whole day)."),
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="Group by day (UTC), provider, model or kind.")
    ] = "day",
    kind: Annotated[
        str,
        typer.Option("--kind", help="all, chat, key_test, config_test or model_sync."),
    ] = "all",
    module: Annotated[
        str | None, typer.Option("--module", "-m", help="Only this module (default: all).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Your calls, errors, tokens and cost, aggregated per day, provider, model or kind.

    Unknown prices are never counted as zero: they are shown as "unpriced" calls.
    Output tokens include reasoning ("thinking") tokens, which are billed as output;
    "reasoning" shows that part.
    Examples: aipilot usage | aipilot usage --since 30d --by model --json
    """
    from aipilot.services.accounting import usage_report

    with state(ctx).reading() as (reader, identity, _database):
        report = usage_report.report(
            reader, identity, since=since, until=until, by=by, kind=kind, module=module
        )
    if wants_json(ctx, json_output):
        render.emit_json(_doc(report))
    else:
        _print(report)


def _plain(row: UsageRow, *, keyed: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"key": row.key} if keyed else {}
    if row.provider is not None:
        doc["provider"] = row.provider
    doc.update(
        calls=row.calls,
        errors=row.errors,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        reasoning_tokens=row.reasoning_tokens,
        cost_usd=None if row.cost_usd is None else float(row.cost_usd),
        unknown_cost_calls=row.unknown_cost_calls,
        avg_latency_ms=row.avg_latency_ms,
    )
    return doc


def _doc(report: UsageReport) -> dict[str, Any]:
    return {
        "since": report.since.isoformat(),
        "until": None if report.until is None else report.until.isoformat(),
        "by": report.by,
        "kind": report.kind or "all",
        "module": report.module,
        "rows": [_plain(row) for row in report.rows],
        "total": _plain(report.total, keyed=False),
    }


def bar(value: int, largest: int) -> str:
    """A bar of at most BAR_WIDTH blocks, proportional to value; one block for any non-zero."""
    if value <= 0 or largest <= 0:
        return ""
    return "█" * max(1, round(BAR_WIDTH * value / largest))


def _cells(row: UsageRow) -> list[str]:
    cost = "?" if row.cost_usd is None else f"${row.cost_usd:,.4f}"
    latency = "—" if row.avg_latency_ms is None else f"{row.avg_latency_ms:,.0f}"
    return [
        f"{row.calls:,}",
        f"{row.errors:,}",
        f"{row.input_tokens:,}",
        f"{row.output_tokens:,}",
        f"{row.reasoning_tokens:,}",
        cost,
        f"{row.unknown_cost_calls:,}",
        latency,
    ]


def _label(report: UsageReport, row: UsageRow) -> str:
    if report.by == "model":
        return f"{row.provider}/{row.key or '—'}"
    return row.key or "—"


def _print(report: UsageReport) -> None:
    from rich.table import Table

    window = f"since {report.since:%Y-%m-%d %H:%M}"
    if report.until is not None:
        window += f" until {report.until:%Y-%m-%d %H:%M}"
    tbl = Table(title=f"Usage {window} UTC, by {report.by}", title_justify="left")
    tbl.add_column(report.by)
    for name in COLUMNS:
        tbl.add_column(name, justify="right")
    tbl.add_column("", style="cyan", no_wrap=True)  # the bar chart of calls
    largest = max((row.calls for row in report.rows), default=0)
    for row in report.rows:
        tbl.add_row(render.escape(_label(report, row)), *_cells(row), bar(row.calls, largest))
    tbl.add_section()
    tbl.add_row("total", *_cells(report.total), "", style="bold")
    render.stdout().print(tbl)
    if report.total.calls == 0:
        render.note("No calls in this period.")
