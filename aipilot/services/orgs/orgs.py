"""Organisations: list, add, show, members, add a member, the current user's organisation.

Writes are admin only. An admin sees every organisation; a member sees their own (the
``organisations`` and ``users`` tables have no row-level security, so aipilot checks).
A user belongs to at most one organisation (``users.organisation_id``); adding a member
who belongs to another organisation moves them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.db.identity import user_filter
from aipilot.db.models import OpenAIConnexion, Organisation, User
from aipilot.errors import ConflictError, NotFoundError, PermissionDeniedError
from aipilot.services import locks
from aipilot.services.runtime import Context
from aipilot.services.validate import identifier


@dataclass(frozen=True)
class Member:
    username: str
    role: str


@dataclass(frozen=True)
class OrgInfo:
    organisation_id: str
    name: str
    created_at: datetime | None
    members: int
    is_mine: bool
    openai_status: str | None = None  # the connection's status, None without one


@dataclass(frozen=True)
class OrgDetail:
    org: OrgInfo
    members: tuple[Member, ...]


def find_org(session: Session, name: str) -> Organisation:
    """By name, or by id when ``name`` parses as a UUID."""
    try:
        where = Organisation.organisation_id == uuid.UUID(name)
    except ValueError:
        where = Organisation.name == name
    org = session.scalars(sa.select(Organisation).where(where)).first()
    if org is None:
        raise NotFoundError(f"no organisation named {name!r}", hint="see `aipilot orgs list`")
    return org


def _my_org_id(session: Session, ctx: Context) -> uuid.UUID | None:
    query = sa.select(User.organisation_id).where(User.users_id == ctx.identity.user_id)
    return session.scalar(query)


def _info(session: Session, org: Organisation, mine: uuid.UUID | None) -> OrgInfo:
    count = session.scalar(
        sa.select(sa.func.count())
        .select_from(User)
        .where(User.organisation_id == org.organisation_id)
    )
    status = session.scalar(
        sa.select(OpenAIConnexion.openai_statut_connexion)
        .where(OpenAIConnexion.organisation_id == org.organisation_id)
        .order_by(OpenAIConnexion.openai_created_at)
        .limit(1)
    )
    return OrgInfo(
        organisation_id=str(org.organisation_id),
        name=org.name,
        created_at=org.created_at,
        members=int(count or 0),
        is_mine=org.organisation_id == mine,
        openai_status=status,
    )


def _visible(session: Session, ctx: Context, org: Organisation) -> uuid.UUID | None:
    mine = _my_org_id(session, ctx)
    if not ctx.identity.is_admin and org.organisation_id != mine:
        raise PermissionDeniedError(
            f"{ctx.identity.username} is not a member of organisation {org.name}",
            hint="members see their own organisation only (`aipilot orgs mine`)",
        )
    return mine


def list_orgs(ctx: Context) -> list[OrgInfo]:
    """Every organisation for an admin; a member's own one otherwise."""
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        mine = _my_org_id(session, ctx)
        query = sa.select(Organisation).order_by(Organisation.name)
        if not ctx.identity.is_admin:
            query = query.where(Organisation.organisation_id == mine)
        return [_info(session, o, mine) for o in session.scalars(query)]


def add_org(ctx: Context, name: str) -> OrgInfo:
    ctx.identity.require_admin("adding organisations")
    name = identifier("organisation name", name)

    def attempt() -> OrgInfo:
        with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
            if session.scalars(sa.select(Organisation).where(Organisation.name == name)).first():
                raise ConflictError(f"organisation {name!r} already exists")
            org = Organisation(organisation_id=uuid.uuid4(), name=name)
            session.add(org)
            session.flush()
            session.refresh(org)
            return _info(session, org, _my_org_id(session, ctx))

    return locks.retry_when_locked(attempt)


def show_org(ctx: Context, name: str) -> OrgDetail:
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        org = find_org(session, name)
        mine = _visible(session, ctx, org)
        users = session.scalars(
            sa.select(User)
            .where(User.organisation_id == org.organisation_id)
            .order_by(User.username)
        )
        members = tuple(Member(u.username, u.role) for u in users)
        return OrgDetail(_info(session, org, mine), members)


def add_member(ctx: Context, name: str, user: str) -> OrgDetail:
    ctx.identity.require_admin("adding organisation members")

    def attempt() -> None:
        with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
            org = find_org(session, name)
            target = session.scalars(sa.select(User).where(user_filter(user))).first()
            if target is None:
                raise NotFoundError(f"no user named {user!r}", hint="see `aipilot users list`")
            target.organisation_id = org.organisation_id

    locks.retry_when_locked(attempt)
    return show_org(ctx, name)


def my_org(ctx: Context) -> OrgDetail | None:
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        mine = _my_org_id(session, ctx)
        if mine is None:
            return None
        org = session.get(Organisation, mine)
        name = org.name if org is not None else None
    return show_org(ctx, name) if name is not None else None
