"""``aipilot init``: schema, catalog seed, first user, master key — idempotent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot import vault
from aipilot.config import Settings
from aipilot.db import migrate
from aipilot.db.engine import Database
from aipilot.db.identity import user_filter
from aipilot.db.models import Model, Provider, User
from aipilot.db.seed import MODELS, PROVIDERS
from aipilot.errors import UsageError
from aipilot.services.runtime import open_database

if TYPE_CHECKING:
    from aipilot.db.adopt import Plan


@dataclass(frozen=True)
class InitReport:
    database: str
    revision_before: str | None
    revision_after: str | None
    providers_added: list[str] = field(default_factory=list)
    models_added: list[str] = field(default_factory=list)
    user: str = ""
    user_created: bool = False
    user_role: str | None = None
    master_key_source: str = "none"
    master_key_note: str | None = None


def adopt_existing(settings: Settings, *, db: Database, dry_run: bool) -> Plan:
    """``init --adopt``: take over the existing system's tables (see aipilot.db.adopt).

    Refusals raise a usage error after the plan is built, so nothing has changed. The
    catalog is the app's: adoption adds no provider or model, and registers no user (the
    app's users are aipilot's, by their ids).
    """
    from aipilot.db import adopt

    plan = adopt.adopt(db, dry_run=dry_run)
    if plan.refusals:
        raise AdoptionRefused(plan)
    vault.ensure_master_key()
    return plan


class AdoptionRefused(UsageError):
    def __init__(self, plan: Plan) -> None:
        more = f" (and {len(plan.refusals) - 1} more)" if len(plan.refusals) > 1 else ""
        super().__init__(
            f"cannot adopt the {plan.database}: {plan.refusals[0]}{more}",
            hint="nothing was changed; `aipilot init --adopt --dry-run` lists every reason",
        )
        self.plan = plan


def initialise(settings: Settings, *, db: Database | None = None) -> InitReport:
    db = db or open_database(settings, check_schema=False)
    before, after = migrate.upgrade(db)
    with db.session(write=True) as session:
        from aipilot.db.adopt import is_adopted

        if is_adopted(session.connection()):  # the catalog and the users are the app's
            providers_added: list[str] = []
            models_added: list[str] = []
            created, role = False, None
        else:
            providers_added, models_added = seed_catalog(session)
            created, role = _ensure_first_user(session, settings.user)
    master_key, note = vault.ensure_master_key()
    return InitReport(
        database=db.describe(),
        revision_before=before,
        revision_after=after,
        providers_added=providers_added,
        models_added=models_added,
        user=settings.user,
        user_created=created,
        user_role=role,
        master_key_source=vault.master_key_source() if master_key else "none",
        master_key_note=note,
    )


def seed_catalog(session: Session) -> tuple[list[str], list[str]]:
    """Insert the providers and starter models that are missing; never overwrite."""
    existing = {p.provider_key: p for p in session.scalars(sa.select(Provider))}
    added: list[str] = []
    for seed in PROVIDERS:
        if seed.provider_key in existing:
            continue
        row = Provider(
            provider_key=seed.provider_key,
            provider_name=seed.provider_name,
            base_url=seed.base_url,
            api_kind=seed.api_kind,
            api_auth_method=seed.api_auth_method,
            api_auth_header=seed.api_auth_header,
            api_headers=dict(seed.api_headers),
            test_endpoint=seed.test_endpoint,
            is_active=seed.is_active,
        )
        session.add(row)
        existing[seed.provider_key] = row
        added.append(seed.provider_key)
    session.flush()
    return added, _seed_models(session, existing)


def _seed_models(session: Session, providers: dict[str, Provider]) -> list[str]:
    have = {(r[0], r[1]) for r in session.execute(sa.select(Model.provider_id, Model.model_key))}
    added: list[str] = []
    for seed in MODELS:
        provider = providers[seed.provider_key]
        if (provider.id, seed.model_key) in have:
            continue
        session.add(
            Model(
                provider_id=provider.id,
                model_key=seed.model_key,
                model_name=seed.model_name,
                context_window=seed.context_window,
                input_price_per_mtok=seed.input_price,
                output_price_per_mtok=seed.output_price,
            )
        )
        added.append(f"{seed.provider_key}/{seed.model_key}")
    return added


def _ensure_first_user(session: Session, name: str) -> tuple[bool, str | None]:
    """On a database without users, the current user becomes its first admin."""
    user = session.scalars(sa.select(User).where(user_filter(name))).first()
    if user is not None:
        return False, user.role
    if session.scalar(sa.select(sa.func.count()).select_from(User)):
        return False, None
    try:
        user_id = uuid.UUID(name)
    except ValueError:
        user_id = _supabase_user_id(session, name) or uuid.uuid4()
    session.add(User(users_id=user_id, username=name, role="admin"))
    return True, "admin"


def _supabase_user_id(session: Session, email: str) -> uuid.UUID | None:
    """On a Supabase project, the first admin is the Supabase Auth user with that e-mail
    when there is one (else a local operator who never signs in to the apps)."""
    from aipilot.services.users.users import has_auth_users

    if not has_auth_users(session):
        return None
    try:
        with session.begin_nested():
            found = session.scalar(
                sa.text("SELECT id FROM auth.users WHERE lower(email) = lower(:e) LIMIT 2"),
                {"e": email},
            )
    except sa.exc.ProgrammingError:  # not allowed to read auth.users: a local operator
        return None
    return uuid.UUID(str(found)) if found is not None else None
