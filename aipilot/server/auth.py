"""Bearer authentication: an aipilot access token (``aip_…``) or an HS256 JWT.

A JWT is verified with ``AIPILOT_JWT_SECRET`` (signature, ``exp`` required and checked);
its ``sub`` must be the ``users_id`` of an existing user, and its ``role`` claim is ignored
(the user's role comes from the database). Answers are cached per process for a short time
(``AIPILOT_AUTH_CACHE_SECONDS``, 30 s by default, never past the token's own expiry), keyed
by the token's SHA-256: a revoked token or deleted user stops working within that time.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import jwt

from aipilot.db.engine import Database
from aipilot.db.identity import Identity
from aipilot.services import tokens
from aipilot.services.tokens import InvalidTokenError

MAX_CACHE_ENTRIES = 10_000


class Authenticator:
    def __init__(self, db: Database, *, jwt_secret: str | None, cache_s: float) -> None:
        self._db, self._jwt_secret, self._cache_s = db, jwt_secret, cache_s
        self._cache: dict[str, tuple[Identity, float]] = {}
        self._lock = threading.Lock()

    def cached(self, authorization: str | None) -> Identity | None:
        """The cached answer for this header, without any I/O (None: ask :meth:`identity`)."""
        token = _bearer(authorization)
        with self._lock:
            cached = self._cache.get(tokens.hash_token(token))
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    def identity(self, authorization: str | None) -> Identity:
        """The user behind an ``Authorization`` header value; InvalidTokenError otherwise."""
        found = self.cached(authorization)
        if found is not None:
            return found
        token = _bearer(authorization)
        key = tokens.hash_token(token)
        identity, valid_until = self._verify(token)
        self._remember(key, identity, valid_until)
        return identity

    def _verify(self, token: str) -> tuple[Identity, datetime | None]:
        if token.startswith(tokens.TOKEN_PREFIX):
            found = tokens.authenticate_token(self._db, token)
            return found.identity, found.valid_until
        if self._jwt_secret is None or token.count(".") != 2:
            raise InvalidTokenError("invalid access token")
        try:
            claims = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the token has expired") from None
        except jwt.PyJWTError:
            raise InvalidTokenError("invalid token") from None
        identity = tokens.identity_of_user_id(self._db, claims["sub"])
        return identity, datetime.fromtimestamp(float(claims["exp"]), UTC)

    def _remember(self, key: str, identity: Identity, valid_until: datetime | None) -> None:
        if self._cache_s <= 0:
            return
        ttl = self._cache_s
        if valid_until is not None:
            ttl = min(ttl, (valid_until - datetime.now(UTC)).total_seconds())
        if ttl <= 0:
            return
        with self._lock:
            if len(self._cache) >= MAX_CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = (identity, time.monotonic() + ttl)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise InvalidTokenError("missing Authorization: Bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 8192:
        raise InvalidTokenError("the Authorization header must be `Bearer <token>`")
    return token
