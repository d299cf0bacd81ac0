"""Server settings, read once per process from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from aipilot.config import Settings, env_flag

INTERNAL_TOKEN_ENV = "AIPILOT_INTERNAL_TOKEN"
JWT_SECRET_ENV = "AIPILOT_JWT_SECRET"
CORS_ENV = "AIPILOT_CORS_ORIGINS"
AUTH_CACHE_ENV = "AIPILOT_AUTH_CACHE_SECONDS"
MAX_BODY_ENV = "AIPILOT_MAX_BODY_BYTES"
DEFAULT_AUTH_CACHE_S = 30.0
DEFAULT_MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    database_url: str
    internal_token: str | None
    jwt_secret: str | None
    cors_origins: tuple[str, ...]
    auth_cache_s: float
    max_body_bytes: int
    debug: bool

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
        )
