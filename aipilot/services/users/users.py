"""Users of a team database: list, add, import from Supabase Auth, change role (admin only).

On a Supabase project the apps' user ids are ``auth.users`` ids, and so are aipilot's there:
``users add`` takes a user's id (``--id``) or finds it by e-mail, and ``users import``
registers every ``auth.users`` row aipilot does not know yet, as a member. Without an
``auth.users`` table (SQLite, plain PostgreSQL) any UUID may be given, or a new one is drawn.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.db.identity import user_filter
from aipilot.db.models import User
from aipilot.errors import (
    ConflictError,
    DatabaseError,
    NotFoundError,
    PermissionDeniedError,
    UsageError,
)
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


def _info(user: User, ctx: Context, *, admin: bool | None = None) -> UserInfo:
    role = user.role if admin is None else ("admin" if admin else "member")
    return UserInfo(
        user_id=str(user.users_id),
        username=user.username or str(user.users_id),
        role=role,
        created_at=user.created_at,
        is_current=user.users_id == ctx.identity.user_id,
    )


def list_users(ctx: Context) -> list[UserInfo]:
    """Every user; on PostgreSQL the role is what ``is_admin_presenca()`` says (see
    aipilot.db.identity), which on an adopted database is the app's role scheme."""
    with ctx.db.session() as session:
        users = session.scalars(sa.select(User).order_by(User.username)).all()
        if ctx.db.dialect != "postgresql":  # as aipilot.db.identity reads it
            return [_info(u, ctx, admin=u.role in ("admin", "admin_presenca")) for u in users]
        admins = set(
            session.scalars(
                sa.select(User.users_id).where(sa.func.public.is_admin_presenca(User.users_id))
            )
        )
        return [_info(u, ctx, admin=u.users_id in admins) for u in users]


def _adopted(session: Session) -> bool:
    from aipilot.db.adopt import is_adopted

    return is_adopted(session.connection())


def _refuse_on_adopted(session: Session, what: str) -> None:
    if _adopted(session):
        raise PermissionDeniedError(
            f"{what} is the app's on an adopted database: aipilot's admins are who "
            "is_admin_presenca() says they are",
            hint="change the role in the app (its users table), not with aipilot",
        )


def _role(role: str) -> str:
    role = role.strip().lower()
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}", hint="use 'admin' or 'member'")
    return role


def add_user(
    ctx: Context, name: str, *, role: str = "member", user_id: str | None = None
) -> UserInfo:
    """Register a user; on a Supabase project, by its ``auth.users`` id or e-mail."""
    ctx.identity.require_admin("adding users")
    name, role = identifier("user name", name), _role(role)
    wanted = _uuid_option(user_id) if user_id is not None else _as_uuid(name)
    with ctx.db.session(write=True) as session:
        if has_auth_users(session):
            wanted, email = _auth_user(session, name, wanted)
            if user_id is None and _as_uuid(name) is not None and email:
                name = identifier("user name", email)  # `users add <uuid>`: named by e-mail
        if _adopted(session):
            return _name_app_user(session, ctx, name, wanted, role)
        _refuse_duplicates(session, name, wanted)
        user = User(username=name, role=role, users_id=wanted or uuid.uuid4())
        session.add(user)
        session.flush()
        return _info(user, ctx)


def _name_app_user(
    session: Session, ctx: Context, name: str, wanted: uuid.UUID | None, role: str
) -> UserInfo:
    """Adopted: the app's users are aipilot's already (by id); `users add` gives one a name."""
    if role == "admin":
        _refuse_on_adopted(session, "an admin role")
    if session.scalars(sa.select(User).where(User.username == name)).first():
        raise ConflictError(f"user {name!r} already exists", hint="see `aipilot users list`")
    user = session.get(User, wanted) if wanted is not None else None
    if user is None:
        raise NotFoundError(
            f"the app has no user with id {wanted}" if wanted else "give the user's id",
            hint="on an adopted database users come from the app: "
            "`aipilot users add NAME --id UUID` names one of them",
        )
    if user.username:
        raise ConflictError(
            f"user {wanted} is already named {user.username!r}", hint="see `aipilot users list`"
        )
    user.username = name
    session.flush()
    return _info(user, ctx)


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _uuid_option(value: str) -> uuid.UUID:
    found = _as_uuid(value.strip())
    if found is None:
        raise UsageError(
            f"--id {value[:40]!r} is not a UUID",
            hint="give the user's id as shown in Supabase (Authentication → Users)",
        )
    return found


def _refuse_duplicates(session: Session, name: str, wanted: uuid.UUID | None) -> None:
    if session.scalars(sa.select(User).where(User.username == name)).first():
        raise ConflictError(f"user {name!r} already exists", hint="use `aipilot users set-role`")
    if wanted is not None and session.get(User, wanted) is not None:
        raise ConflictError(
            f"a user with id {wanted} is already registered", hint="see `aipilot users list`"
        )


def has_auth_users(session: Session) -> bool:
    """True on a database with Supabase Auth's ``auth.users`` table (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    return bool(session.scalar(sa.text("SELECT to_regclass('auth.users') IS NOT NULL")))


AUTH_USERS_HINT = (
    "grant aipilot's role read access: GRANT SELECT ON auth.users TO aipilot_service "
    "(as the postgres role, in the SQL editor)"
)


def _auth_rows(
    session: Session, where: str = "", **params: object
) -> list[sa.Row[tuple[object, ...]]]:
    # to_jsonb: older Supabase Auth versions have no is_anonymous column
    sql = (
        "SELECT id, email, coalesce((to_jsonb(u) ->> 'is_anonymous')::boolean, false) "
        "AS anonymous FROM auth.users u"
    )
    order = "ORDER BY to_jsonb(u) ->> 'created_at', id"
    try:
        return list(session.execute(sa.text(f"{sql} {where} {order}"), params))
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42501":
            raise DatabaseError(
                "this database role may not read auth.users", hint=AUTH_USERS_HINT
            ) from None
        raise


def _auth_user(
    session: Session, name: str, wanted: uuid.UUID | None
) -> tuple[uuid.UUID, str | None]:
    """The ``auth.users`` row to register: by id when given, else by e-mail."""
    if wanted is not None:
        rows = _auth_rows(session, "WHERE id = :id", id=wanted)
        if not rows:
            raise NotFoundError(
                f"no Supabase Auth user has id {wanted}",
                hint="copy the id from Authentication → Users, or run `aipilot users import`",
            )
    else:
        rows = _auth_rows(session, "WHERE lower(email) = lower(:e)", e=name)
        if len(rows) != 1:
            raise UsageError(
                f"no Supabase Auth user has the e-mail {name!r}",
                hint="register one by its id: `aipilot users add NAME --id UUID`, "
                "or every one with `aipilot users import`",
            )
    row = rows[0]
    return uuid.UUID(str(row.id)), row.email


@dataclass(frozen=True)
class ImportResult:
    added: list[UserInfo] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def import_users(ctx: Context, *, dry_run: bool = False) -> ImportResult:
    """Register every Supabase Auth user aipilot does not know yet, as a member.

    Named by e-mail; anonymous sign-ins and users whose e-mail is already another user's
    name are skipped and reported. One transaction: all or nothing.
    """
    ctx.identity.require_admin("importing users")
    result = ImportResult()
    with contextlib.suppress(_DryRun):  # a dry run rolls its transaction back
        _import_into(ctx, result, dry_run=dry_run)
    return result


class _DryRun(Exception):
    """Raised at the end of a dry run: the transaction rolls back."""


def _import_into(ctx: Context, result: ImportResult, *, dry_run: bool) -> None:
    with ctx.db.session(write=True) as session:
        if _adopted(session):
            raise UsageError(
                "on an adopted database the app's users are aipilot's already (by id): "
                "there is nothing to import",
                hint="give one a name with `aipilot users add NAME --id UUID`",
            )
        if not has_auth_users(session):
            raise UsageError(
                f"the {ctx.db.describe()} has no auth.users table (it is not a Supabase project)",
                hint="register users one by one with `aipilot users add NAME`",
            )
        known = set(session.scalars(sa.select(User.users_id)))
        names = set(session.scalars(sa.select(User.username)))
        for row in _auth_rows(session):
            user_id = uuid.UUID(str(row.id))
            if user_id in known:
                continue
            reason = _skip_reason(row.email, row.anonymous, names)
            if reason:
                result.skipped.append({"user_id": str(user_id), "reason": reason})
                continue
            user = User(users_id=user_id, username=str(row.email), role="member")
            session.add(user)
            names.add(user.username)
            session.flush()
            result.added.append(_info(user, ctx))
        if dry_run:
            raise _DryRun


def _skip_reason(email: str | None, anonymous: bool, names: set[str]) -> str | None:
    if anonymous or not email:
        return "anonymous sign-in (no e-mail)"
    try:
        identifier("user name", email)
    except UsageError:
        return "its e-mail is not usable as a user name"
    if email in names:
        return f"the name {email!r} is another user's"
    return None


def set_role(ctx: Context, name: str, role: str) -> UserInfo:
    ctx.identity.require_admin("changing roles")
    role = _role(role)
    with ctx.db.session(write=True) as session:
        _refuse_on_adopted(session, "a user's role")
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
