"""Reading a user's limits (`aipilot limits show`): plain SQL over a Reader, no SQLAlchemy.

The counters are shown as the enforcement in :mod:`aipilot.services.accounting.quotas`
counts them: today's requests and this month's cost, zero once the UTC day or month they
were counted in is over. Also the calendar helpers both modules use.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import cast

from aipilot.db.identity import Identity
from aipilot.db.reader import Reader, Row, as_bool, as_date, as_decimal, id_param
from aipilot.errors import NotFoundError

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def next_day(now: datetime) -> datetime:
    """The next UTC midnight after ``now``."""
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(now: datetime) -> datetime:
    first = month_start(now.astimezone(UTC).date())
    following = (first + timedelta(days=32)).replace(day=1)
    return datetime.combine(following, time(), UTC)


@dataclass(frozen=True)
class LimitInfo:
    user: str
    provider: str | None  # None: all providers
    daily_requests: int | None
    monthly_cost_usd: Decimal | None
    requests_today: int
    cost_this_month: Decimal
    day_resets_at: datetime
    month_resets_at: datetime
    set_by_admin: bool = False  # then only an admin raises or clears it


def _target(reader: Reader, identity: Identity, user: str | None) -> Row:
    """The acting user, or (admins only) another one: RLS lets admins see every limit."""
    if user is None:
        where, value = "users_id = :v", id_param(reader, identity.user_id)
    else:
        identity.require_admin("managing another user's limits")
        try:
            where, value = "users_id = :v", id_param(reader, uuid.UUID(user))
        except ValueError:
            where, value = "username = :v", user
    found = reader.rows(f"SELECT users_id, username FROM users WHERE {where}", v=value)
    if not found:
        raise NotFoundError(f"no user named {user!r}", hint="see `aipilot users list`")
    return found[0]


def show_limits(
    reader: Reader, identity: Identity, *, user: str | None = None, clock: Clock = utcnow
) -> list[LimitInfo]:
    now = clock()
    target = _target(reader, identity, user)
    rows = reader.rows(
        "SELECT provider_key, daily_requests, monthly_cost_usd, requests_today, requests_day, "
        "cost_this_month, cost_month, set_by_admin FROM ai_user_limits WHERE user_id = :uid "
        "ORDER BY provider_key IS NOT NULL, provider_key",
        uid=target["users_id"],
    )
    today = now.astimezone(UTC).date()
    return [
        LimitInfo(
            user=target["username"],
            provider=row["provider_key"],
            daily_requests=row["daily_requests"],
            monthly_cost_usd=as_decimal(row["monthly_cost_usd"], 4),  # NUMERIC(12, 4)
            requests_today=row["requests_today"] if as_date(row["requests_day"]) == today else 0,
            cost_this_month=(
                cast(Decimal, as_decimal(row["cost_this_month"], 6))  # NUMERIC(14, 6), NOT NULL
                if as_date(row["cost_month"]) == month_start(today)
                else Decimal(0)
            ),
            day_resets_at=next_day(now),
            month_resets_at=next_month(now),
            set_by_admin=bool(as_bool(row["set_by_admin"])),
        )
        for row in rows
    ]
