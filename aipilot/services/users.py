"""Users of a team database: list, add, change role (admin only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from aipilot.db.identity import user_filter
from aipilot.db.models import User
from aipilot.errors import ConflictError, NotFoundError, UsageError
from aipilot.services.runtime import Context
from aipilot.services.validate import identifier

ROLES = ("admin", "member")


@dataclass(frozen=True)
class UserInfo:
    user_id: str
    username: str
    role: str
    created_at: datetime | None
    is_current: bool


def _info(user: User, ctx: Context) -> UserInfo:
    return UserInfo(
        user_id=str(user.users_id),
        username=user.username,
        role=user.role,
        created_at=user.created_at,
        is_current=user.users_id == ctx.identity.user_id,
    )


def list_users(ctx: Context) -> list[UserInfo]:
    with ctx.db.session() as session:
        users = session.scalars(sa.select(User).order_by(User.username)).all()
        return [_info(u, ctx) for u in users]


def _role(role: str) -> str:
    role = role.strip().lower()
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}", hint="use 'admin' or 'member'")
    return role


def add_user(ctx: Context, name: str, *, role: str = "member") -> UserInfo:
    ctx.identity.require_admin("adding users")
    name, role = identifier("user name", name), _role(role)
    with ctx.db.session(write=True) as session:
        if session.scalars(sa.select(User).where(User.username == name)).first():
            raise ConflictError(
                f"user {name!r} already exists", hint="use `aipilot users set-role`"
            )
        user = User(username=name, role=role)
        session.add(user)
        session.flush()
        return _info(user, ctx)


def set_role(ctx: Context, name: str, role: str) -> UserInfo:
    ctx.identity.require_admin("changing roles")
    role = _role(role)
    with ctx.db.session(write=True) as session:
        user = session.scalars(sa.select(User).where(user_filter(name))).first()
        if user is None:
            raise NotFoundError(f"no user named {name!r}", hint="see `aipilot users list`")
        if user.role == "admin" and role != "admin":
            admins = session.scalar(
                sa.select(sa.func.count()).select_from(User).where(User.role == "admin")
            )
            if admins == 1:
                raise ConflictError(
                    f"{user.username} is the last admin",
                    hint="make another user admin first",
                )
        user.role = role
        session.flush()
        return _info(user, ctx)
