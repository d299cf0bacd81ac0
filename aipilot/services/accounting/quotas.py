"""Quotas and budgets: per-user limits, and the reserve/settle protocol around a provider call.

Two kinds of counted scope share one protocol:

- ``ai_user_limits`` rows: a user's daily request quota and monthly cost limit, for one
  provider or (``provider_key`` NULL) for all providers; both rows apply when both exist.
- an organisation's ``openai_connexion`` row, when a call uses the organisation's key.

**Reserve** (before the provider call), in one short write transaction: lock the rows
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write session already holds the database
write lock from ``BEGIN IMMEDIATE``), roll counters whose day or month has passed, refuse
when a limit is reached, otherwise count the request. Concurrent calls therefore queue on
the row lock and cannot slip past the request quota. **Settle** (after the call, inside the
transaction that writes the usage row) adds the real cost with an atomic ``UPDATE … SET
x = x + cost``. No transaction is open during the provider call.

The cost limit is checked against the spend recorded so far: calls already in flight when
it is reached still settle, so the spend can pass the limit by at most their cost. A
request that reached the provider counts against the quota even if it failed.

Days and months are UTC. ``openai_connexion`` has no "counted month" column: its monthly
counter belongs to the month of the day the daily counter last started
(``openai_reset_quota_at`` − 1 day), and is reset when that month is over.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from aipilot.db.identity import user_filter
from aipilot.db.models import OpenAIConnexion, Organisation, User, UserLimit
from aipilot.db.reader import SessionReader
from aipilot.errors import NotFoundError, PermissionDeniedError, QuotaExceededError, UsageError
from aipilot.services import locks
from aipilot.services.accounting import limits_view
from aipilot.services.accounting.limits_view import (
    Clock,
    LimitInfo,
    month_start,
    next_day,
    next_month,
    utcnow,
)
from aipilot.services.catalog.catalog import get_provider
from aipilot.services.orgs.audit import append_audit
from aipilot.services.runtime import Context
from aipilot.services.validate import money


def _usd(value: Decimal | None) -> str:
    return "—" if value is None else f"${value.normalize():f}"


# ---------------------------------------------------------------- the protocol
@dataclass(frozen=True)
class Reservation:
    """What a reserve counted, so that settle adds the cost to the same rows."""

    limit_ids: tuple[uuid.UUID, ...] = ()
    connexion_id: uuid.UUID | None = None


@dataclass(frozen=True)
class _Refusal:
    message: str
    connexion: bool  # the organisation's limit (its status becomes quota_exceeded)
    hint: str | None = None


def reserve(
    ctx: Context,
    *,
    provider_key: str,
    user_limits: bool,
    connexion_id: uuid.UUID | None,
    clock: Clock = utcnow,
    model: str | None = None,
    priced: bool = True,
) -> Reservation:
    """Count one request against every applicable limit, or raise QuotaExceededError.

    A call whose cost cannot be known (``priced`` False: the model has no input or output
    price in the catalog) is refused under any cost limit, rather than passing it for free.
    """
    if not user_limits and connexion_id is None:
        return Reservation()
    now = clock()
    unpriced = None if priced else _Unpriced(provider_key, model or "this model")

    def attempt() -> tuple[Reservation, _Refusal | None]:
        with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
            return _reserve_in(session, ctx, provider_key, user_limits, connexion_id, now, unpriced)

    reservation, refusal = locks.retry_when_locked(attempt)
    if refusal is not None:
        raise QuotaExceededError(
            refusal.message,
            hint=refusal.hint
            or (
                "an admin can raise it with `aipilot org-openai limits`"
                if refusal.connexion
                else "see `aipilot limits show`; raise it with `aipilot limits set`"
            ),
        )
    return reservation


@dataclass(frozen=True)
class _Unpriced:
    """The provider and model of a call whose cost cannot be computed."""

    provider_key: str
    model: str

    def refusal(self, limit: str, *, connexion: bool) -> _Refusal:
        message = (
            f"the model {self.model} ({self.provider_key}) has no price in the catalog "
            f"(nor in the reference price catalog), so {limit} cannot count what a call "
            "costs; the call is refused"
        )
        hint = (
            f"an admin can price it: `aipilot models update {self.provider_key} {self.model} "
            "--input-price USD --output-price USD` (USD per million tokens; "
            "`aipilot models add` if it is not in the catalog)"
        )
        return _Refusal(message, connexion=connexion, hint=hint)


def _reserve_in(
    session: Session,
    ctx: Context,
    provider_key: str,
    user_limits: bool,
    connexion_id: uuid.UUID | None,
    now: datetime,
    unpriced: _Unpriced | None = None,
) -> tuple[Reservation, _Refusal | None]:
    rows = _locked_limits(session, ctx.identity.user_id, provider_key) if user_limits else []
    for row in rows:
        _roll_limit(row, now)
    message = next((m for m in (_limit_refusal(r, now) for r in rows) if m), None)
    if message is not None:
        return Reservation(), _Refusal(message, connexion=False)
    costed = next((r for r in rows if r.monthly_cost_usd is not None), None)
    if unpriced is not None and costed is not None:
        limit = f"the monthly cost limit {_scope_name(costed)} ({_usd(costed.monthly_cost_usd)})"
        return Reservation(), unpriced.refusal(limit, connexion=False)
    connexion = _locked_connexion(session, connexion_id) if connexion_id else None
    if connexion is not None:
        _roll_connexion(connexion, now)
        message = _connexion_refusal(session, connexion, now)
        if message is not None:
            _set_status(connexion, "quota_exceeded", ctx, now, message)
            return Reservation(), _Refusal(message, connexion=True)
        if unpriced is not None and connexion.openai_limite_cout_mois is not None:
            budget = _usd(connexion.openai_limite_cout_mois)
            limit = f"the organisation's monthly OpenAI cost limit ({budget})"
            return Reservation(), unpriced.refusal(limit, connexion=True)
        if connexion.openai_statut_connexion == "quota_exceeded":
            _set_status(connexion, "active", ctx, now, "quota available again")
        connexion.openai_usage_quotidien = (connexion.openai_usage_quotidien or 0) + 1
    for row in rows:
        row.requests_today += 1
        row.updated_at = now
    session.flush()
    return Reservation(tuple(r.id for r in rows), connexion_id if connexion else None), None


def settle(
    executor: Session | Connection,
    reservation: Reservation,
    cost: Decimal | None,
) -> None:
    """Add the call's real cost to the reserved rows, atomically, in the caller's transaction."""
    if cost is not None and cost > 0 and reservation.limit_ids:
        executor.execute(
            sa.update(UserLimit)
            .where(UserLimit.id.in_(reservation.limit_ids))
            .values(cost_this_month=UserLimit.cost_this_month + cost)
        )
    if reservation.connexion_id is None:
        return
    if cost is not None and cost > 0:
        column = OpenAIConnexion.openai_cout_actuel_mois
        executor.execute(
            sa.update(OpenAIConnexion)
            .where(OpenAIConnexion.openai_connexion_id == reservation.connexion_id)
            .values(openai_cout_actuel_mois=sa.func.coalesce(column, 0) + cost)
        )


# ---------------------------------------------------------------- per-user limit rows
def _limit_scope(provider_key: str) -> sa.ColumnElement[bool]:
    return sa.or_(UserLimit.provider_key.is_(None), UserLimit.provider_key == provider_key)


def has_limits(session: Session, user_id: uuid.UUID, provider_key: str) -> bool:
    query = sa.select(UserLimit.id).where(UserLimit.user_id == user_id, _limit_scope(provider_key))
    return session.execute(query.limit(1)).first() is not None


def _locked_limits(session: Session, user_id: uuid.UUID, provider_key: str) -> list[UserLimit]:
    query = (
        sa.select(UserLimit)
        .where(UserLimit.user_id == user_id, _limit_scope(provider_key))
        .order_by(UserLimit.id)
        .with_for_update()
    )
    return list(session.scalars(query))


def _roll_limit(row: UserLimit, now: datetime) -> None:
    today = now.astimezone(UTC).date()
    if row.requests_day != today:
        row.requests_today, row.requests_day = 0, today
    if row.cost_month != month_start(today):
        row.cost_this_month, row.cost_month = Decimal(0), month_start(today)


def _scope_name(row: UserLimit) -> str:
    return f"for {row.provider_key}" if row.provider_key else "for all providers"


def _limit_refusal(row: UserLimit, now: datetime) -> str | None:
    if row.daily_requests is not None and row.requests_today >= row.daily_requests:
        return (
            f"daily request limit {_scope_name(row)} reached "
            f"({row.requests_today}/{row.daily_requests}); resets at {next_day(now).isoformat()}"
        )
    if row.monthly_cost_usd is not None and row.cost_this_month >= row.monthly_cost_usd:
        return (
            f"monthly cost limit {_scope_name(row)} reached ({_usd(row.cost_this_month)} of "
            f"{_usd(row.monthly_cost_usd)}); resets at {next_month(now).isoformat()}"
        )
    return None


# ---------------------------------------------------------------- the organisation's row
def _locked_connexion(session: Session, connexion_id: uuid.UUID) -> OpenAIConnexion | None:
    query = (
        sa.select(OpenAIConnexion)
        .where(OpenAIConnexion.openai_connexion_id == connexion_id)
        .with_for_update()
    )
    return session.scalars(query).first()


def _roll_connexion(row: OpenAIConnexion, now: datetime) -> None:
    reset_at = row.openai_reset_quota_at
    if reset_at is not None and reset_at.tzinfo is None:
        reset_at = reset_at.replace(tzinfo=UTC)  # SQLite returns naive UTC
    if reset_at is not None and now < reset_at:
        return
    counted = (reset_at - timedelta(days=1)).astimezone(UTC).date() if reset_at else None
    if counted is None or month_start(counted) != month_start(now.astimezone(UTC).date()):
        row.openai_cout_actuel_mois = Decimal(0)
    row.openai_usage_quotidien = 0
    row.openai_reset_quota_at = next_day(now)


def _connexion_refusal(session: Session, row: OpenAIConnexion, now: datetime) -> str | None:
    used, limit = row.openai_usage_quotidien or 0, row.openai_limite_quotidienne
    spent, budget = row.openai_cout_actuel_mois or Decimal(0), row.openai_limite_cout_mois
    if limit is None and budget is None:
        return None
    name = session.scalar(
        sa.select(Organisation.name).where(Organisation.organisation_id == row.organisation_id)
    )
    if limit is not None and used >= limit:
        return (
            f"organisation {name}'s daily OpenAI request quota is used up ({used}/{limit}); "
            f"resets at {next_day(now).isoformat()}"
        )
    if budget is not None and spent >= budget:
        return (
            f"organisation {name}'s monthly OpenAI cost limit is reached ({_usd(spent)} of "
            f"{_usd(budget)}); resets at {next_month(now).isoformat()}"
        )
    return None


def _set_status(row: OpenAIConnexion, status: str, ctx: Context, now: datetime, why: str) -> None:
    if row.openai_statut_connexion == status:
        return
    previous = row.openai_statut_connexion
    row.openai_statut_connexion = status
    details = {"from": previous, "to": status, "reason": why}
    append_audit(row, by=ctx.identity.username, action="status", details=details, at=now)


# ---------------------------------------------------------------- `aipilot limits`
def _target(session: Session, ctx: Context, user: str | None) -> User:
    """The acting user, or (admins only) another one: RLS lets admins manage every limit."""
    if user is None:
        target = session.get(User, ctx.identity.user_id)
    else:
        ctx.identity.require_admin("managing another user's limits")
        target = session.scalars(sa.select(User).where(user_filter(user))).first()
    if target is None:
        raise NotFoundError(f"no user named {user!r}", hint="see `aipilot users list`")
    return target


def _above(new: int | Decimal | None, old: int | Decimal | None) -> bool:
    return new is not None and old is not None and new > old


def _refuse_loosening(
    ctx: Context, row: UserLimit, daily: int | None, monthly: Decimal | None, *, clear: bool
) -> None:
    """A member may tighten a limit an admin set, never raise or clear it."""
    if not row.set_by_admin or ctx.identity.is_admin:
        return
    raised = _above(daily, row.daily_requests) or _above(monthly, row.monthly_cost_usd)
    if clear or raised:
        scope = "all providers" if row.provider_key is None else row.provider_key
        raise PermissionDeniedError(
            f"the limit for {scope} was set by an admin: only an admin "
            f"{'clears' if clear else 'raises'} it",
            hint="ask an admin (`aipilot limits set --for USER …`); you may lower it",
        )


def _provider(session: Session, provider: str | None) -> str | None:
    return (
        None
        if provider is None
        else get_provider(session, provider, require_active=False).provider_key
    )


def _find_limit(session: Session, user_id: uuid.UUID, provider: str | None) -> UserLimit | None:
    scope = (
        UserLimit.provider_key.is_(None) if provider is None else UserLimit.provider_key == provider
    )
    return session.scalars(sa.select(UserLimit).where(UserLimit.user_id == user_id, scope)).first()


def _info(row: UserLimit, username: str, now: datetime) -> LimitInfo:
    today = now.astimezone(UTC).date()
    return LimitInfo(
        user=username,
        provider=row.provider_key,
        daily_requests=row.daily_requests,
        monthly_cost_usd=row.monthly_cost_usd,
        requests_today=row.requests_today if row.requests_day == today else 0,
        cost_this_month=row.cost_this_month if row.cost_month == month_start(today) else Decimal(0),
        day_resets_at=next_day(now),
        month_resets_at=next_month(now),
        set_by_admin=row.set_by_admin,
    )


def set_limit(
    ctx: Context,
    *,
    provider: str | None = None,
    daily_requests: int | None = None,
    monthly_cost: Decimal | str | None = None,
    user: str | None = None,
    clock: Clock = utcnow,
) -> LimitInfo:
    """Create or change a limit; options not given keep their current value."""
    if daily_requests is None and monthly_cost is None:
        raise UsageError(
            "give --daily-requests and/or --monthly-cost", hint="or use `limits clear`"
        )
    _check_values(daily_requests)
    monthly_cost = money(monthly_cost)
    now = clock()

    def attempt() -> LimitInfo:
        with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
            target = _target(session, ctx, user)
            key = _provider(session, provider)
            row = _find_limit(session, target.users_id, key)
            if row is None:
                row = UserLimit(user_id=target.users_id, provider_key=key, set_by_admin=False)
                row.requests_today, row.cost_this_month = 0, Decimal(0)
                session.add(row)
            _refuse_loosening(ctx, row, daily_requests, monthly_cost, clear=False)
            if ctx.identity.is_admin:
                row.set_by_admin = True
            if daily_requests is not None:
                row.daily_requests = daily_requests
            if monthly_cost is not None:
                row.monthly_cost_usd = monthly_cost
            row.updated_at = now
            session.flush()
            return _info(row, target.username, now)

    return locks.retry_when_locked(attempt)


def _check_values(daily_requests: int | None) -> None:
    if daily_requests is not None and not 0 <= daily_requests <= 100_000_000:
        raise UsageError("--daily-requests must be between 0 and 100000000")


def show_limits(ctx: Context, *, user: str | None = None, clock: Clock = utcnow) -> list[LimitInfo]:
    """:func:`limits_view.show_limits` in a read session of ``ctx``."""
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        return limits_view.show_limits(SessionReader(session), ctx.identity, user=user, clock=clock)


def clear_limit(ctx: Context, *, provider: str | None = None, user: str | None = None) -> bool:
    """Remove the limit of one scope; False when there was none."""

    def attempt() -> bool:
        with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
            target = _target(session, ctx, user)
            row = _find_limit(session, target.users_id, _provider(session, provider))
            if row is None:
                return False
            _refuse_loosening(ctx, row, None, None, clear=True)
            session.delete(row)
            return True

    return locks.retry_when_locked(attempt)
