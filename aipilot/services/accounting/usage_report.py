"""`aipilot usage`: the current user's calls, errors, tokens and cost, aggregated in SQL.

Cost is the sum of the *known* costs only; calls whose price is unknown (``cost_usd`` NULL)
are counted apart, never as zero. Days are UTC days. The report is one read transaction,
opened with the user's identity (PostgreSQL row-level security) and filtered by ``user_id``
as well (SQLite has no RLS). Plain SQL over :class:`aipilot.db.reader.Reader`: `aipilot
usage` runs it on the direct driver connection (no SQLAlchemy import), a service inside a
session through :class:`aipilot.db.reader.SessionReader`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from aipilot.db.identity import Identity
from aipilot.db.reader import Reader, Row, SessionReader, as_decimal, id_param, time_param
from aipilot.errors import UsageError

if TYPE_CHECKING:
    from aipilot.services.runtime import Context

GROUPINGS = ("day", "provider", "model", "kind")
KINDS = ("chat", "key_test", "config_test", "model_sync")
_RELATIVE = re.compile(r"^\s*(\d+)\s*([dhm])\s*$", re.IGNORECASE)
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_MAX_AGO = timedelta(days=36500)


@dataclass(frozen=True)
class UsageRow:
    key: str | None  # the day (YYYY-MM-DD), provider, model or kind; None for "total"
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int  # reasoning included
    cost_usd: Decimal | None  # sum of the known costs; None when every call's cost is unknown
    unknown_cost_calls: int
    avg_latency_ms: float | None
    provider: str | None = None  # set when grouped by model
    reasoning_tokens: int = 0  # the part of output_tokens that was reasoning ("thinking")


@dataclass(frozen=True)
class UsageReport:
    since: datetime
    until: datetime | None
    by: str
    kind: str | None
    module: str | None
    rows: tuple[UsageRow, ...]
    total: UsageRow


def parse_moment(text: str, *, option: str, now: datetime, end_of_day: bool = False) -> datetime:
    """``7d`` / ``12h`` / ``30m`` (ago), or an ISO date or date-time (UTC when naive)."""
    match = _RELATIVE.match(text)
    if match:
        ago = timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
        if ago > _MAX_AGO:
            raise UsageError(f"{option} {text!r} is too far back", hint="use at most 36500d")
        return now - ago
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            day = date.fromisoformat(text.strip())
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is neither a duration nor an ISO date",
            hint=f"e.g. `{option} 7d`, `{option} 12h`, `{option} 30m` or `{option} 2025-01-31`",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


COST_SCALE = 6  # ai_usage_logs.cost_usd is NUMERIC(14, 6)
# the UTC day of ``created_at``, per dialect (SQLite stores UTC text)
_DAY = {
    "postgresql": "CAST(timezone('UTC', created_at) AS DATE)",
    "sqlite": "date(created_at)",
}
_MEASURES = (
    "count(*) AS calls, "
    "sum(CASE WHEN outcome != 'ok' THEN 1 ELSE 0 END) AS errors, "
    "sum(input_tokens) AS input_tokens, "
    "sum(output_tokens) AS output_tokens, "
    "sum(reasoning_tokens) AS reasoning_tokens, "
    "sum(cost_usd) AS cost_usd, "
    "sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unknown_cost_calls, "
    "sum(latency_ms) AS latency_sum, "
    "count(latency_ms) AS latency_n"
)


_COUNTS = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "unknown_cost_calls",
    "reasoning_tokens",
)


@dataclass(frozen=True)
class _Sums:
    """One group's SQL aggregates; additive, so the total is their sum (no second scan)."""

    counts: tuple[int, ...]  # in _COUNTS order
    cost: Decimal | None
    latency_sum: int
    latency_n: int

    @classmethod
    def of(cls, values: Row) -> _Sums:
        cost = as_decimal(values["cost_usd"], COST_SCALE)
        counts = tuple(int(values[name] or 0) for name in _COUNTS)
        return cls(counts, cost, int(values["latency_sum"] or 0), int(values["latency_n"] or 0))

    def __add__(self, other: _Sums) -> _Sums:
        costs = [c for c in (self.cost, other.cost) if c is not None]
        return _Sums(
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            sum(costs, Decimal(0)) if costs else None,
            self.latency_sum + other.latency_sum,
            self.latency_n + other.latency_n,
        )

    def row(self, key: str | None, provider: str | None = None) -> UsageRow:
        calls, errors, input_tokens, output_tokens, unknown, reasoning = self.counts
        cost = self.cost if self.cost is not None or unknown else Decimal(0)
        return UsageRow(
            key=key,
            calls=calls,
            errors=errors,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=None if cost is None else cost.quantize(Decimal("0.000001")),
            unknown_cost_calls=unknown,
            avg_latency_ms=round(self.latency_sum / self.latency_n, 1) if self.latency_n else None,
            provider=provider,
            reasoning_tokens=reasoning,
        )


_ZERO = _Sums((0,) * len(_COUNTS), None, 0, 0)


_Group = tuple[str | None, str | None, _Sums]  # key, provider (by model), aggregates


def _grouped(reader: Reader, where: str, params: dict[str, object], by: str) -> list[_Group]:
    base = f"FROM ai_usage_logs WHERE {where} GROUP BY"
    if by == "day":
        day = _DAY.get(reader.dialect, _DAY["sqlite"])
        sql = f"SELECT {day} AS key, {_MEASURES} {base} {day} ORDER BY key DESC"
        return [(str(r["key"]), None, _Sums.of(r)) for r in reader.rows(sql, **params)]
    if by == "model":
        columns = "provider_key, model_name"
        sql = f"SELECT {columns}, {_MEASURES} {base} {columns} ORDER BY calls DESC, {columns}"
        rows = reader.rows(sql, **params)
        return [(r["model_name"], r["provider_key"], _Sums.of(r)) for r in rows]
    column = "provider_key" if by == "provider" else "kind"
    sql = f"SELECT {column} AS key, {_MEASURES} {base} {column} ORDER BY calls DESC, {column}"
    return [(r["key"], None, _Sums.of(r)) for r in reader.rows(sql, **params)]


def _filters(
    reader: Reader,
    identity: Identity,
    *,
    since: datetime,
    until: datetime | None,
    kind: str | None,
    module: str | None,
) -> tuple[str, dict[str, object]]:
    where = ["user_id = :uid", "created_at >= :since"]
    params: dict[str, object] = {
        "uid": id_param(reader, identity.user_id),
        "since": time_param(reader, since),
    }
    if until is not None:
        where.append("created_at < :until")
        params["until"] = time_param(reader, until)
    if kind is not None:
        where.append("kind = :kind")
        params["kind"] = kind
    if module is not None:
        where.append("module_name = :module")
        params["module"] = module
    return " AND ".join(where), params


def _check(by: str, kind: str | None) -> str | None:
    if by not in GROUPINGS:
        raise UsageError(f"unknown grouping {by!r}", hint=f"use --by {' | '.join(GROUPINGS)}")
    if kind is None or kind == "all":
        return None
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}", hint=f"use --kind all | {' | '.join(KINDS)}")
    return kind


def usage_report(
    ctx: Context,
    *,
    since: str = "7d",
    until: str | None = None,
    by: str = "day",
    kind: str | None = None,
    module: str | None = None,
    now: datetime | None = None,
) -> UsageReport:
    """:func:`report` in a read session of ``ctx``."""
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        return report(
            SessionReader(session),
            ctx.identity,
            since=since,
            until=until,
            by=by,
            kind=kind,
            module=module,
            now=now,
        )


def report(
    reader: Reader,
    identity: Identity,
    *,
    since: str = "7d",
    until: str | None = None,
    by: str = "day",
    kind: str | None = None,
    module: str | None = None,
    now: datetime | None = None,
) -> UsageReport:
    """Totals per day, provider, model or kind for the current user, plus the overall total."""
    kind = _check(by, kind)
    now = now or datetime.now(UTC)
    start = parse_moment(since, option="--since", now=now)
    end = None if until is None else parse_moment(until, option="--until", now=now, end_of_day=True)
    if end is not None and end <= start:
        raise UsageError("--until is not after --since", hint="swap them, or widen the window")
    where, params = _filters(reader, identity, since=start, until=end, kind=kind, module=module)
    groups = _grouped(reader, where, params, by)
    rows = tuple(sums.row(key, provider) for key, provider, sums in groups)
    total = sum((sums for _, _, sums in groups), _ZERO)
    return UsageReport(start, end, by, kind, module, rows, total.row(None))
