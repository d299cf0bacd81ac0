"""An organisation's OpenAI connection: the seed's ``openai_connexion`` (seed 002), for real.

- One connection per organisation is managed (created by ``set-key`` with
  ``client_id = organisation_id`` and the seed's default ``client_type``); if a shared
  database holds several rows for an organisation, the oldest is used.
- ``openai_api_key`` holds aipilot's ciphertext (``vault.Sealed.to_text()``), sealed with
  the associated data (``org:<organisation_id>``, ``openai``): never plaintext. Its display
  hint lives in ``openai_ia_extensions.aipilot.key_hint``.
- Every change appends ``{at, by, action, details}`` to ``openai_audit_log.entries`` (the
  newest ``MAX_AUDIT`` are kept); no entry ever holds a key.
- Writes are admin only. A member may read their own organisation's connection; on
  PostgreSQL row-level security (``organisation_only_access_openai_connexion``) enforces
  the same thing below aipilot.

Key resolution for a call (the user's own key, else this connection: status, allowed
models, headers) is :func:`aipilot.services.keys.resolve.resolve_key`'s, for every path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot import vault
from aipilot.db.identity import Identity
from aipilot.db.models import OpenAIConnexion, Organisation, User
from aipilot.errors import (
    NotConfiguredError,
    PermissionDeniedError,
    UsageError,
)
from aipilot.redaction import hint, redact
from aipilot.services import locks
from aipilot.services.accounting import calls
from aipilot.services.catalog.catalog import get_provider, settings_for
from aipilot.services.keys import credentials, keys
from aipilot.services.keys.resolve import (
    PROVIDER,
    find_connexion,
    open_org_key,
    org_headers,
    with_headers,
)
from aipilot.services.keys.sealing import is_plaintext
from aipilot.services.orgs.audit import append_audit
from aipilot.services.orgs.orgs import find_org
from aipilot.services.runtime import Context
from aipilot.services.validate import model_key, money

DEFAULT_MODELS = ("gpt-3.5-turbo", "gpt-4")  # the seed's column default


@dataclass(frozen=True)
class AuditEntry:
    at: str
    by: str
    action: str
    details: dict[str, Any]


@dataclass(frozen=True)
class ConnexionInfo:
    organisation: str
    organisation_id: str
    connexion_id: str | None
    configured: bool  # a key aipilot can use is stored
    key_hint: str | None = None
    key_state: str = "not configured"  # sealed | plaintext (stored by another system)
    active: bool = False
    status: str | None = None
    client_type: str | None = None
    daily_requests: int | None = None
    requests_today: int = 0
    quota_resets_at: datetime | None = None
    monthly_cost_usd: Decimal | None = None
    cost_this_month: Decimal = Decimal(0)
    allowed_models: tuple[str, ...] = ()
    last_sync: datetime | None = None
    last_error: str | None = None
    audit: tuple[AuditEntry, ...] = field(default=())


@dataclass(frozen=True)
class ConnexionTest:
    organisation: str
    ok: bool
    latency_ms: int
    status: str
    error: str | None = None


def now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- rows and audit
def _key_hint(row: OpenAIConnexion) -> str | None:
    ext = row.openai_ia_extensions if isinstance(row.openai_ia_extensions, dict) else {}
    own = ext.get("aipilot")
    return own.get("key_hint") if isinstance(own, dict) else None


def _info(org: Organisation, row: OpenAIConnexion | None) -> ConnexionInfo:
    if row is None:
        return ConnexionInfo(org.name, str(org.organisation_id), None, False)
    log = row.openai_audit_log if isinstance(row.openai_audit_log, dict) else {}
    return ConnexionInfo(
        organisation=org.name,
        organisation_id=str(org.organisation_id),
        connexion_id=str(row.openai_connexion_id),
        configured=row.openai_api_key is not None and not is_plaintext(row.openai_api_key),
        key_hint=_key_hint(row),
        key_state=_key_state(row.openai_api_key),
        active=row.openai_actif,
        status=row.openai_statut_connexion,
        client_type=row.client_type,
        daily_requests=row.openai_limite_quotidienne,
        requests_today=row.openai_usage_quotidien or 0,
        quota_resets_at=row.openai_reset_quota_at,
        monthly_cost_usd=row.openai_limite_cout_mois,
        cost_this_month=row.openai_cout_actuel_mois or Decimal(0),
        allowed_models=tuple(row.openai_modeles_autorises or ()),
        last_sync=row.openai_derniere_synchro,
        last_error=row.openai_derniere_erreur,
        audit=tuple(AuditEntry(**e) for e in log.get("entries", [])),
    )


def _require(session: Session, org: Organisation) -> OpenAIConnexion:
    row = find_connexion(session, org.organisation_id)
    if row is None:
        raise NotConfiguredError(
            f"organisation {org.name} has no OpenAI connection",
            hint=f"an admin creates it with `aipilot org-openai set-key {org.name}`",
        )
    return row


def _change(
    ctx: Context, org_name: str, action: str, change: Any, *, create: bool = False
) -> ConnexionInfo:
    """One admin write: ``change(row) -> details`` then an audit entry, in one transaction."""
    ctx.identity.require_admin(f"changing an organisation's OpenAI connection ({action})")

    def attempt() -> ConnexionInfo:
        with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
            org = find_org(session, org_name)
            row = find_connexion(session, org.organisation_id)
            if row is None and create:
                row = _new_row(session, ctx, org)
            elif row is None:
                row = _require(session, org)
            at = now()
            details = change(row)
            row.openai_updated_at, row.openai_updated_by = at, ctx.identity.user_id
            append_audit(row, by=ctx.identity.username, action=action, details=details, at=at)
            session.flush()
            return _info(org, row)

    return locks.retry_when_locked(attempt)


def _new_row(session: Session, ctx: Context, org: Organisation) -> OpenAIConnexion:
    row = OpenAIConnexion(
        openai_connexion_id=uuid.uuid4(),
        organisation_id=org.organisation_id,
        client_id=org.organisation_id,
        client_type="reseau",
        openai_actif=True,
        openai_statut_connexion="active",
        openai_usage_quotidien=0,
        openai_cout_actuel_mois=Decimal(0),
        openai_modeles_autorises=list(DEFAULT_MODELS),
        openai_created_by=ctx.identity.user_id,
        openai_updated_by=ctx.identity.user_id,
        openai_created_at=now(),
        openai_updated_at=now(),
        openai_date_activation=now(),
        openai_audit_log={"entries": []},
        openai_ia_extensions={},
    )
    session.add(row)
    return row


# ---------------------------------------------------------------- admin commands
def set_key(ctx: Context, org_name: str, raw: str, *, test: bool = True) -> ConnexionInfo:
    """Store (or replace) the organisation's OpenAI key, encrypted; then test it."""
    ctx.identity.require_admin("setting an organisation's OpenAI key")
    secret = vault.validate_api_key_input(raw, provider_key=PROVIDER)
    mk = vault.load_master_key()

    def change(row: OpenAIConnexion) -> dict[str, Any]:
        sealed = vault.seal(
            mk,
            secret,
            user_id=credentials.org_key_owner(row.organisation_id),
            provider_key=PROVIDER,
        )
        row.openai_api_key = sealed.to_text()
        ext = dict(row.openai_ia_extensions or {})
        ext["aipilot"] = {**dict(ext.get("aipilot") or {}), "key_hint": hint(secret)}
        row.openai_ia_extensions = ext
        return {"key_hint": hint(secret), "master_key_id": mk.key_id}

    info = _change(ctx, org_name, "set_key", change, create=True)
    if test:
        test_connexion(ctx, org_name)
        return show(ctx, org_name)
    return info


def set_limits(
    ctx: Context,
    org_name: str,
    *,
    daily_requests: int | None = None,
    monthly_cost: Decimal | str | None = None,
    clear: bool = False,
) -> ConnexionInfo:
    if clear and (daily_requests is not None or monthly_cost is not None):
        raise UsageError("--clear removes both limits: give it alone")
    if not clear and daily_requests is None and monthly_cost is None:
        raise UsageError("give --daily-requests and/or --monthly-cost, or --clear")
    if daily_requests is not None and daily_requests < 0:
        raise UsageError("--daily-requests must be 0 or more")
    monthly_cost = money(monthly_cost, below=1_000_000)  # numeric(10,4)

    def change(row: OpenAIConnexion) -> dict[str, Any]:
        if clear:
            row.openai_limite_quotidienne, row.openai_limite_cout_mois = None, None
        if daily_requests is not None:
            row.openai_limite_quotidienne = daily_requests
        if monthly_cost is not None:
            row.openai_limite_cout_mois = monthly_cost
        return {
            "daily_requests": row.openai_limite_quotidienne,
            "monthly_cost_usd": None
            if row.openai_limite_cout_mois is None
            else str(row.openai_limite_cout_mois),
        }

    return _change(ctx, org_name, "limits", change)


def allow_models(ctx: Context, org_name: str, models: list[str]) -> ConnexionInfo:
    """Replace the list of models the organisation's key may be used with."""
    if not models:
        raise UsageError("give at least one MODEL")
    chosen = list(dict.fromkeys(model_key(m) for m in models))

    def change(row: OpenAIConnexion) -> dict[str, Any]:
        before = list(row.openai_modeles_autorises or [])
        row.openai_modeles_autorises = chosen
        return {"from": before, "to": chosen}

    return _change(ctx, org_name, "allow_models", change)


def set_enabled(ctx: Context, org_name: str, enabled: bool) -> ConnexionInfo:
    def change(row: OpenAIConnexion) -> dict[str, Any]:
        before = row.openai_statut_connexion
        row.openai_actif = enabled
        row.openai_statut_connexion = "active" if enabled else "inactive"
        if enabled:
            row.openai_date_activation = now()
        return {"from": before, "to": row.openai_statut_connexion}

    return _change(ctx, org_name, "enable" if enabled else "disable", change)


def show(ctx: Context, org_name: str) -> ConnexionInfo:
    """The connection (key hint only); admins see any, members their own organisation's."""
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        org = find_org(session, org_name)
        _require_member_or_admin(session, ctx.identity, org)
        return _info(org, find_connexion(session, org.organisation_id))


def _require_member_or_admin(session: Session, identity: Identity, org: Organisation) -> None:
    if identity.is_admin:
        return
    mine = session.scalar(sa.select(User.organisation_id).where(User.users_id == identity.user_id))
    if mine != org.organisation_id:
        raise PermissionDeniedError(
            f"{identity.username} is not a member of organisation {org.name}",
            hint="members see their own organisation only (`aipilot orgs mine`)",
        )


# ---------------------------------------------------------------- testing the key
def test_connexion(ctx: Context, org_name: str) -> ConnexionTest:
    """Check the key against the catalog's openai provider; record status, sync and error.

    Success sets ``active`` (``inactive`` stays while disabled); an authentication failure
    sets ``error``; other failures (timeout, outage) record the error, status unchanged.
    """
    ctx.identity.require_admin("testing an organisation's OpenAI key")
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        org = find_org(session, org_name)
        row = _require(session, org)
        secret = open_org_key(row)
        settings = with_headers(
            settings_for(get_provider(session, PROVIDER, require_active=False)), org_headers(row)
        )
    result = keys.check_key(settings, secret)
    ok, ms, error, auth_failed = result.ok, result.latency_ms, result.error, result.auth_failed

    def change(row: OpenAIConnexion) -> dict[str, Any]:
        before = row.openai_statut_connexion
        row.openai_derniere_synchro = now()
        row.openai_derniere_erreur = error
        if ok:
            row.openai_statut_connexion = "active" if row.openai_actif else "inactive"
        elif auth_failed:
            row.openai_statut_connexion = "error"
        return {"ok": ok, "error": error, "from": before, "to": row.openai_statut_connexion}

    info = _change(ctx, org_name, "test", change)
    _record_test(ctx, ok, ms, error)
    return ConnexionTest(info.organisation, ok, ms, info.status or "active", error)


def _record_test(ctx: Context, ok: bool, ms: int, error: str | None) -> None:
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        outcome = calls.CallOutcome(ok, ms, None if ok else "org_key_test", error)
        calls.record(session, ctx.identity, kind="key_test", provider_key=PROVIDER, outcome=outcome)


def _key_state(value: str | None) -> str:
    if value is None:
        return "not configured"
    return "plaintext (stored by another system)" if is_plaintext(value) else "sealed"


def mark_auth_failure(session: Session, connexion_id: uuid.UUID, error: str) -> None:
    """OpenAI refused the organisation's key during a call: status 'error' until a test."""
    row = session.get(OpenAIConnexion, connexion_id)
    if row is None or row.openai_statut_connexion == "error":
        return
    before = row.openai_statut_connexion
    row.openai_statut_connexion, row.openai_derniere_erreur = "error", redact(error)
    details = {"from": before, "to": "error", "reason": "authentication failed during a call"}
    append_audit(row, by="aipilot", action="status", details=details, at=now())
