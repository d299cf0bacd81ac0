"""Access tokens for `aipilot serve`: create, list, revoke, and authenticate a bearer.

A token is ``aip_`` + 32 random bytes (urlsafe base64). It is shown once, at creation; the
database keeps only its SHA-256 hex digest (unique, so a lookup is one indexed query) and a
short display prefix. ``aipilot_api_tokens`` has no row-level security: a request is
authenticated before any identity exists, so every query here filters by user explicitly.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from aipilot.db.engine import Database
from aipilot.db.identity import Identity, find_user
from aipilot.db.models import ApiToken, User
from aipilot.db.reader import SessionReader
from aipilot.errors import NotFoundError, PermissionDeniedError, UsageError
from aipilot.services.runtime import Context

TOKEN_PREFIX = "aip_"
TOKEN_BYTES = 32
DISPLAY_CHARS = 12  # "aip_" + 8 random characters
MAX_NAME = 100
LAST_USED_GRANULARITY = timedelta(minutes=1)  # at most one write per token per minute
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class InvalidTokenError(PermissionDeniedError):
    """No, a malformed, unknown, expired or revoked bearer token (HTTP 401)."""


@dataclass(frozen=True)
class TokenInfo:
    id: str
    prefix: str
    name: str
    created_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and aware(self.expires_at) <= now():
            return "expired"
        return "active"


@dataclass(frozen=True)
class CreatedToken:
    token: str  # shown once, never stored
    info: TokenInfo


def now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` → a timedelta (positive)."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise UsageError(
            f"cannot read the duration {text!r}", hint="use a number and a unit: 90m, 12h, 30d, 2w"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        str(row.id),
        row.prefix,
        row.name,
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )


def create_token(
    ctx: Context, *, name: str | None = None, expires_in: timedelta | None = None
) -> CreatedToken:
    """A new token for the current user; the plaintext is returned once and never stored."""
    label = (name or "default").strip()
    if not label or len(label) > MAX_NAME or not label.isprintable():
        raise UsageError(f"a token name is 1 to {MAX_NAME} printable characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    created = now()
    row = ApiToken(
        user_id=ctx.identity.user_id,
        name=label,
        token_hash=hash_token(token),
        prefix=token[:DISPLAY_CHARS],
        created_at=created,
        expires_at=created + expires_in if expires_in is not None else None,
    )
    with ctx.db.session(write=True) as session:
        session.add(row)
        session.flush()
        return CreatedToken(token, _info(row))


def list_tokens(ctx: Context) -> list[TokenInfo]:
    query = (
        sa.select(ApiToken)
        .where(ApiToken.user_id == ctx.identity.user_id)
        .order_by(ApiToken.created_at, ApiToken.prefix)
    )
    with ctx.db.session() as session:
        return [_info(row) for row in session.scalars(query)]


def revoke_token(ctx: Context, ref: str) -> TokenInfo:
    """Revoke one of the current user's tokens by id or display prefix (idempotent)."""
    ref = ref.strip()
    mine = sa.select(ApiToken).where(ApiToken.user_id == ctx.identity.user_id)
    try:
        query = mine.where(ApiToken.id == uuid.UUID(ref))
    except ValueError:
        query = mine.where(ApiToken.prefix == ref)
    with ctx.db.session(write=True) as session:
        rows = list(session.scalars(query))
        if not rows:
            raise NotFoundError(
                f"you have no token {ref!r}", hint="see yours with `aipilot tokens list`"
            )
        if len(rows) > 1:
            raise UsageError(f"{ref!r} matches several tokens", hint="revoke it by id")
        row = rows[0]
        if row.revoked_at is None:
            row.revoked_at = now()
        return _info(row)


@dataclass(frozen=True)
class Authenticated:
    identity: Identity
    valid_until: datetime | None  # the token's expiry, for callers that cache the answer


def authenticate_token(db: Database, token: str) -> Authenticated:
    """The user a bearer access token belongs to; InvalidTokenError otherwise.

    One indexed query (token hash joined to its user); ``last_used_at`` is written at most
    once a minute per token so the hot path stays a read.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise InvalidTokenError("invalid access token")
    digest = hash_token(token)
    query = (
        sa.select(ApiToken, User)
        .join(User, User.users_id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest)
    )
    with db.session() as session:
        found = session.execute(query).first()
    if found is None or not hmac.compare_digest(found[0].token_hash, digest):
        raise InvalidTokenError("invalid access token")
    row, user = found
    moment = now()
    if row.revoked_at is not None:
        raise InvalidTokenError("this access token was revoked")
    if row.expires_at is not None and aware(row.expires_at) <= moment:
        raise InvalidTokenError("this access token has expired")
    if row.last_used_at is None or moment - aware(row.last_used_at) >= LAST_USED_GRANULARITY:
        _touch(db, row.id, moment)
    with db.session() as session:
        identity = find_user(SessionReader(session), str(user.users_id))
    if identity is None:
        raise InvalidTokenError("invalid access token")
    return Authenticated(
        identity,
        aware(row.expires_at) if row.expires_at is not None else None,
    )


def _touch(db: Database, token_id: uuid.UUID, moment: datetime) -> None:
    with db.session(write=True) as session:
        session.execute(
            sa.update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=moment)
        )


def identity_of_user_id(db: Database, user_id: str) -> Identity:
    """The user a verified JWT's ``sub`` names; InvalidTokenError when there is none."""
    try:
        key = uuid.UUID(user_id)
    except (ValueError, TypeError, AttributeError):
        raise InvalidTokenError("the token's subject is not a user id") from None
    with db.session() as session:
        found = find_user(SessionReader(session), str(key))
    if found is None:
        raise InvalidTokenError("the token's subject is not a registered user")
    return found
