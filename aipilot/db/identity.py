"""Who is acting: the current user, resolved from ``--user`` / ``AIPILOT_USER`` / OS login.

A name that parses as a UUID is looked up by ``users_id`` (the ids Supabase's apps use);
anything else by ``username``. The ``users`` table has no row-level security: it is read
without an identity to find the one to set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from aipilot.db.engine import Database
from aipilot.db.models import User
from aipilot.errors import NotConfiguredError, PermissionDeniedError


@dataclass(frozen=True)
class Identity:
    user_id: uuid.UUID
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_admin(self, action: str) -> None:
        if not self.is_admin:
            raise PermissionDeniedError(
                f"{action} is admin only, and {self.username} is a member",
                hint="ask an admin to run it, or to run `aipilot users set-role "
                f"{self.username} admin`",
            )


def user_filter(name: str) -> sa.ColumnElement[bool]:
    try:
        return User.users_id == uuid.UUID(name)
    except ValueError:
        return User.username == name


def resolve_identity(db: Database, name: str) -> Identity:
    with db.session() as session:
        user = session.scalars(sa.select(User).where(user_filter(name))).first()
    if user is None:
        raise NotConfiguredError(
            f"user {name!r} is not registered in the {db.describe()}",
            hint=f"an admin adds it with `aipilot users add {name}` "
            "(or pass --user / AIPILOT_USER for another user)",
        )
    return Identity(user.users_id, user.username, user.role)
