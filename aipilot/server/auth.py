"""Bearer authentication: an aipilot access token (``aip_…``) or a Supabase Auth JWT.

A JWT's algorithm is accepted only when its key material is configured: HS256 with
``AIPILOT_JWT_SECRET`` (legacy Supabase projects), ES256 (P-256) and RS256 with the key its
``kid`` header names in the JWKS at ``AIPILOT_JWKS_URL`` (current signing keys, see
:mod:`aipilot.server.jwks`). An HS256 token is never checked against a public key, nor an
ES/RS token against the secret, and ``alg: none`` is always refused. Both may be set at once.

After the signature: ``role: anon`` (the legacy anon key, which names no user) is refused;
``exp`` is required, and ``exp``, ``nbf`` and ``iat`` must be JSON numbers of a real date
(year 9999 at most); ``aud`` must hold one of ``AIPILOT_JWT_AUDIENCE`` (``authenticated``
by default); ``iss`` must equal ``AIPILOT_JWT_ISSUER`` when that is set. Its ``sub`` must be
the ``users_id`` of an existing user; the user's role comes from the database, not the token.
Every refusal is an :class:`InvalidTokenError` (HTTP 401).

Answers are cached per process for a short time (``AIPILOT_AUTH_CACHE_SECONDS``, 30 s by
default, never past the token's own expiry), keyed by the token's SHA-256: a revoked token
or deleted user stops working within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt

from aipilot.db.engine import Database
from aipilot.db.identity import Identity
from aipilot.server.config import DEFAULT_JWT_AUDIENCES
from aipilot.server.jwks import ALGORITHMS, JwksCache
from aipilot.services.users import tokens
from aipilot.services.users.tokens import InvalidTokenError

if TYPE_CHECKING:
    from jwt.types import Options

MAX_CACHE_ENTRIES = 10_000
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime can hold
CLOCK_SKEW_S = 30  # how far in the future an ``iat`` or ``nbf`` may be (unsynchronised clocks)
# PyJWT checks only the signature: its own claim checks accept "123" as a time and let 1e30
# through to an overflow, so every claim is checked here.
_SIGNATURE_ONLY: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
}


class Authenticator:
    def __init__(
        self,
        db: Database,
        *,
        jwt_secret: str | None,
        cache_s: float,
        jwks: JwksCache | None = None,
        audiences: tuple[str, ...] = DEFAULT_JWT_AUDIENCES,
        issuer: str | None = None,
    ) -> None:
        self._db, self._jwt_secret, self._cache_s = db, jwt_secret, cache_s
        self._jwks, self._audiences, self._issuer = jwks, frozenset(audiences), issuer
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
        if token.count(".") != 2:
            raise InvalidTokenError("invalid access token")
        claims = self._verified_claims(token)
        exp = self._check_claims(claims)
        identity = tokens.identity_of_user_id(self._db, claims["sub"])
        return identity, datetime.fromtimestamp(exp, UTC)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token whose signature holds with the key its algorithm calls for."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError("invalid token") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise InvalidTokenError("invalid token")
        key: str | jwt.PyJWK
        if alg == "HS256" and self._jwt_secret is not None:
            key = self._jwt_secret
        elif alg in ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise InvalidTokenError("the token has no key id (kid)")
            key = self._jwks.key(kid)
        else:
            raise InvalidTokenError("the token's signing algorithm is not accepted")
        try:  # algorithms=[alg]: PyJWT also refuses a JWKS key published for another one
            return jwt.decode(token, key, algorithms=[alg], options=_SIGNATURE_ONLY)
        except jwt.PyJWTError:
            raise InvalidTokenError("invalid token") from None

    def _check_claims(self, claims: Mapping[str, Any]) -> float:
        """Refuse what a valid signature does not make acceptable; the token's ``exp``."""
        if claims.get("role") == "anon":
            raise InvalidTokenError(
                "an anon key identifies no user", hint="send a signed-in user's access token"
            )
        now = time.time()
        exp = _time_claim(claims, "exp")
        if exp is None:
            raise InvalidTokenError("the token has no expiry (exp)")
        if exp <= now:
            raise InvalidTokenError("the token has expired")
        for name in ("nbf", "iat"):
            value = _time_claim(claims, name)
            if value is not None and value > now + CLOCK_SKEW_S:
                raise InvalidTokenError("the token is not valid yet")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not self._audiences.intersection(
            a for a in audiences if isinstance(a, str)
        ):
            raise InvalidTokenError("the token's audience (aud) is not accepted")
        if self._issuer is not None and claims.get("iss") != self._issuer:
            raise InvalidTokenError("the token's issuer (iss) is not accepted")
        if not isinstance(claims.get("sub"), str):
            raise InvalidTokenError("the token's subject is not a user id")
        return exp

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


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim as seconds, or None when absent; anything odd is refused."""
    value = claims.get(name)
    if value is None:
        return None
    # the range check also refuses NaN and infinities, and never turns a huge int into a float
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_TIMESTAMP
    ):
        raise InvalidTokenError(f"the token's {name} claim is not a valid time")
    return float(value)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise InvalidTokenError("missing Authorization: Bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 8192:
        raise InvalidTokenError("the Authorization header must be `Bearer <token>`")
    return token
