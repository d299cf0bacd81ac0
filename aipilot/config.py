"""Settings from flags and environment.

Precedence: command-line flag, then environment variable, then default.

- database: ``--db`` / ``AIPILOT_DATABASE_URL``; default a SQLite file
  ``aipilot.db`` in the platformdirs user data dir (``~/.local/share/aipilot`` on Linux,
  created 0700; the file 0600).
- user: ``--user`` / ``AIPILOT_USER``; default the OS login name.
- debug: ``--debug`` / ``AIPILOT_DEBUG=1`` re-raises errors for a traceback.

``postgres://`` and ``postgresql://`` URLs are mapped to the psycopg 3 driver.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aipilot.errors import UsageError

APP_NAME = "aipilot"
DB_ENV = "AIPILOT_DATABASE_URL"
USER_ENV = "AIPILOT_USER"
DEBUG_ENV = "AIPILOT_DEBUG"


def data_dir() -> Path:
    """The per-user data directory (platformdirs), not created here."""
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'aipilot.db'}"


def normalise_database_url(url: str) -> str:
    """Map the URL schemes users paste (Supabase, Heroku) to the drivers aipilot ships."""
    url = url.strip()
    if not url:
        raise UsageError(
            "the database URL is empty", hint="pass --db URL or unset AIPILOT_DATABASE_URL"
        )
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    scheme = url.split("://", 1)[0] if "://" in url else "(none)"
    raise UsageError(
        f"unsupported database URL scheme {scheme!r}",
        hint="use postgresql://user@host/db (PostgreSQL, Supabase) or sqlite:///path/to/file.db",
    )


def os_login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "local"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    database_url: str
    user: str
    json: bool = False
    debug: bool = False
    user_explicit: bool = False

    @classmethod
    def resolve(
        cls,
        *,
        db: str | None = None,
        user: str | None = None,
        json: bool = False,
        debug: bool = False,
    ) -> Settings:
        raw_db = db or os.environ.get(DB_ENV) or default_database_url()
        raw_user = user or os.environ.get(USER_ENV)
        return cls(
            database_url=normalise_database_url(raw_db),
            user=(raw_user or os_login()).strip(),
            json=json,
            debug=debug or env_flag(DEBUG_ENV),
            user_explicit=bool(raw_user),
        )
