"""Server settings, read once per process from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from aipilot.config import Settings, env_flag
from aipilot.errors import UsageError

INTERNAL_TOKEN_ENV = "AIPILOT_INTERNAL_TOKEN"
JWT_SECRET_ENV = "AIPILOT_JWT_SECRET"
JWKS_URL_ENV = "AIPILOT_JWKS_URL"
JWT_AUDIENCE_ENV = "AIPILOT_JWT_AUDIENCE"
JWT_ISSUER_ENV = "AIPILOT_JWT_ISSUER"
CORS_ENV = "AIPILOT_CORS_ORIGINS"
AUTH_CACHE_ENV = "AIPILOT_AUTH_CACHE_SECONDS"
MAX_BODY_ENV = "AIPILOT_MAX_BODY_BYTES"
DEFAULT_AUTH_CACHE_S = 30.0
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_JWT_AUDIENCES = ("authenticated",)


@dataclass(frozen=True)
class ServerConfig:
    database_url: str
    internal_token: str | None
    jwt_secret: str | None
    cors_origins: tuple[str, ...]
    auth_cache_s: float
    max_body_bytes: int
    debug: bool
    jwks_url: str | None = None
    jwt_audiences: tuple[str, ...] = DEFAULT_JWT_AUDIENCES
    jwt_issuer: str | None = None

    @classmethod
    def from_env(cls) -> ServerConfig:
        origins = os.environ.get(CORS_ENV, "")
        return cls(
            database_url=Settings.resolve().database_url,
            internal_token=os.environ.get(INTERNAL_TOKEN_ENV) or None,
            jwt_secret=os.environ.get(JWT_SECRET_ENV) or None,
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            auth_cache_s=float(os.environ.get(AUTH_CACHE_ENV, DEFAULT_AUTH_CACHE_S)),
            max_body_bytes=int(os.environ.get(MAX_BODY_ENV, DEFAULT_MAX_BODY)),
            debug=env_flag("AIPILOT_DEBUG"),
            jwks_url=_jwks_url(),
            jwt_audiences=_audiences(),
            jwt_issuer=os.environ.get(JWT_ISSUER_ENV, "").strip() or None,
        )


def _jwks_url() -> str | None:
    url = os.environ.get(JWKS_URL_ENV, "").strip()
    if url and (urlsplit(url).scheme not in ("https", "http") or not urlsplit(url).hostname):
        raise UsageError(
            f"{JWKS_URL_ENV} must be an http(s) URL",
            hint="e.g. https://<project-ref>.supabase.co/auth/v1/.well-known/jwks.json",
        )
    return url or None


def _audiences() -> tuple[str, ...]:
    """``AIPILOT_JWT_AUDIENCE``: comma-separated; unset or blank means ``authenticated``."""
    found = tuple(a.strip() for a in os.environ.get(JWT_AUDIENCE_ENV, "").split(",") if a.strip())
    return found or DEFAULT_JWT_AUDIENCES
