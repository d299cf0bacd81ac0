"""Who is acting: the current user, resolved from ``--user`` / ``AIPILOT_USER`` / OS login.

A name that parses as a UUID is looked up by ``users_id`` (the ids Supabase's apps use);
anything else by ``username``. The ``users`` table has no row-level security: it is read
without an identity to find the one to set. Importing this module costs no SQLAlchemy: the
lookup is plain SQL (:mod:`aipilot.db.reader`), shared by the ORM path and the direct one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aipilot.db.reader import Reader, SessionReader, id_param, uuid_of
from aipilot.errors import NotConfiguredError, PermissionDeniedError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from aipilot.db.engine import Database


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


def _as_id(name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(name)
    except ValueError:
        return None


def user_filter(name: str) -> sa.ColumnElement[bool]:
    from aipilot.db.models import User

    user_id = _as_id(name)
    return User.users_id == user_id if user_id is not None else User.username == name


# On PostgreSQL an admin is who ``is_admin_presenca()`` says is one: aipilot's own reads
# ``users.role = 'admin'``; on an adopted database it is the app's (the seed's role scheme).
# A user of the app that aipilot never named has no username: its id stands for it.
# On SQLite (no functions) the seed's role name for its administrators counts as admin too.
_COLUMNS = {
    "sqlite": "users_id, username, "
    "CASE WHEN role IN ('admin', 'admin_presenca') THEN 'admin' ELSE 'member' END AS role",
    "postgresql": "users_id, coalesce(username, users_id::text) AS username, "
    "CASE WHEN public.is_admin_presenca(users_id) THEN 'admin' ELSE 'member' END AS role",
}


def find_user(reader: Reader, name: str) -> Identity | None:
    user_id = _as_id(name)
    if user_id is not None:
        where, value = "users_id = :v", id_param(reader, user_id)
    else:
        where, value = "username = :v", name
    columns = _COLUMNS.get(reader.dialect, _COLUMNS["sqlite"])
    found = reader.rows(f"SELECT {columns} FROM users WHERE {where}", v=value)
    if not found:
        return None
    row = found[0]
    return Identity(uuid_of(row["users_id"]), row["username"], row["role"])


def unregistered(name: str, described: str) -> NotConfiguredError:
    return NotConfiguredError(
        f"user {name!r} is not registered in the {described}",
        hint=f"an admin adds it with `aipilot users add {name}` "
        "(or pass --user / AIPILOT_USER for another user)",
    )


def resolve_identity(db: Database, name: str) -> Identity:
    with db.session() as session:
        found = find_user(SessionReader(session), name)
    if found is None:
        raise unregistered(name, db.describe())
    return found
