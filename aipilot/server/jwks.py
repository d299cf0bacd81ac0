"""Signing keys published as a JWKS document (Supabase Auth's current signing keys).

``AIPILOT_JWKS_URL`` names the document, e.g.
``https://<project-ref>.supabase.co/auth/v1/.well-known/jwks.json``. Only ES256 (EC P-256)
and RS256 (RSA, at least 2048 bits) keys with a ``kid`` are kept; anything else in the
document (symmetric ``oct`` keys, other curves, ``use: enc``) is ignored.

The document is fetched lazily, once per process, and again when a token names a ``kid``
that is not in it (a rotated-in key) or the copy is older than ``max_age_s`` (a revoked key
must stop working), but never more than once per ``refetch_interval_s``: a flood of tokens
with made-up ``kid`` values costs no request. A failed fetch keeps the keys already held.

Only that URL is ever requested: no redirects are followed and no proxy settings from the
environment are used. A fetch runs in its own daemon thread, bounded by its timeouts
(connect ``connect_timeout_s``, the whole download ``timeout_s``); a caller waits for it at
most ``timeout_s`` and then gets an :class:`InvalidTokenError` (HTTP 401), so a silent or
dead key server never holds a worker thread longer than that.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from aipilot.services.users.tokens import InvalidTokenError

log = logging.getLogger("aipilot.server.jwks")

ALGORITHM_OF_KTY = {"EC": "ES256", "RSA": "RS256"}
ALGORITHMS = frozenset(ALGORITHM_OF_KTY.values())
MAX_DOCUMENT_BYTES = 256 * 1024
MIN_RSA_BITS = 2048
MAX_KID_LENGTH = 256


class JwksError(Exception):
    """The document could not be fetched or is not a JWKS (stays inside this module)."""


class JwksCache:
    """The keys of one JWKS URL, by ``kid``; thread-safe, one fetch at a time."""

    def __init__(
        self,
        url: str,
        *,
        refetch_interval_s: float = 60.0,
        max_age_s: float = 600.0,
        connect_timeout_s: float = 2.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._url, self._host = url, urlsplit(url).netloc
        self._interval, self._max_age = refetch_interval_s, max_age_s
        self._connect_timeout, self._timeout = connect_timeout_s, timeout_s
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch started
        self._pending: threading.Event | None = None  # set when the running fetch ends
        self._failed = False  # the last finished fetch failed

    def key(self, kid: str) -> jwt.PyJWK:
        """The published key named ``kid``; InvalidTokenError when there is none."""
        with self._lock:
            found = self._keys.get(kid)
            if found is not None and not self._stale():
                return found
            pending = self._start_fetch()
        if pending is not None:
            pending.wait(self._timeout)
        with self._lock:
            found = self._keys.get(kid)
            unavailable = self._failed or self._pending is not None
        if found is not None:  # possibly from an older copy when the refetch failed
            return found
        if unavailable:
            raise InvalidTokenError(
                "the signing keys could not be fetched", hint="try again in a minute"
            )
        raise InvalidTokenError("the token's signing key (kid) is not published")

    def _stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self._max_age

    def _start_fetch(self) -> threading.Event | None:
        """The running fetch, a new one, or None when the last one started too recently."""
        if self._pending is not None:
            return self._pending
        now = time.monotonic()
        if self._attempted_at is not None and now - self._attempted_at < self._interval:
            return None
        self._attempted_at, self._pending = now, threading.Event()
        threading.Thread(
            target=self._refresh, args=(self._pending,), name="aipilot-jwks", daemon=True
        ).start()
        return self._pending

    def _refresh(self, done: threading.Event) -> None:
        keys: dict[str, jwt.PyJWK] | None = None
        try:
            keys = parse_jwks(self._download())
        except Exception as exc:  # whatever it was, callers get a 401 and the old keys stay
            reason = str(exc) if isinstance(exc, JwksError) else type(exc).__name__
            log.warning("could not fetch the signing keys from %s: %s", self._host, reason)
        finally:
            with self._lock:
                if keys is not None:
                    self._keys, self._fetched_at = keys, time.monotonic()
                self._failed, self._pending = keys is None, None
            done.set()
        if keys is not None:
            log.debug("fetched %d signing key(s) from %s", len(keys), self._host)

    def _download(self) -> bytes:
        deadline = time.monotonic() + self._timeout
        timeout = httpx.Timeout(self._timeout, connect=self._connect_timeout)
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", self._url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise JwksError(f"HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise JwksError("the document is too large")
                if time.monotonic() > deadline:
                    raise JwksError("the download took too long")
        return bytes(body)


def parse_jwks(raw: bytes) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document, by ``kid``."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise JwksError("the document is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError("the document has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        key = _signing_key(entry)
        if key is not None:
            keys[entry["kid"]] = key
    return keys


def _signing_key(entry: Any) -> jwt.PyJWK | None:
    if not isinstance(entry, dict):
        return None
    kid, kty, alg = entry.get("kid"), entry.get("kty"), entry.get("alg")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        return None
    if entry.get("use", "sig") != "sig":
        return None
    algorithm = ALGORITHM_OF_KTY.get(kty) if isinstance(kty, str) else None
    if algorithm is None or alg not in (None, algorithm):
        return None
    if kty == "EC" and entry.get("crv") != "P-256":
        return None
    try:
        key = jwt.PyJWK(entry, algorithm=algorithm)
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    if isinstance(key.key, RSAPublicKey):  # never a private key, even one published by mistake
        return key if key.key.key_size >= MIN_RSA_BITS else None
    return key if isinstance(key.key, EllipticCurvePublicKey) else None
