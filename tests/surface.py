"""Shared helpers for the whole-surface reliability suite.

Canaries, transcripts of runs, every place a key could end up at rest, the documented exit
codes, and the invariants of the database after any sequence of commands.
"""

from __future__ import annotations

import subprocess
import traceback
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from aipilot.config import normalise_database_url
from aipilot.errors import ExitCode
from tests.conftest import Run
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import sql

KEY_PROVIDERS = ("openai", "anthropic", "google")
# the documented exit-code table (aipilot/errors.py, README)
EXIT_CODES = frozenset(int(code) for code in ExitCode)
FAULT_KINDS = (
    "401",
    "403",
    "429",
    "500",
    "529",
    "malformed",
    "drop",
    "stream_break",
    "unknown_model",
    "quota",
    "slow",
)
# catalog models the fake serves by default, one per wire protocol
MODELS = {
    "openai": ("gpt-4o-mini", "gpt-4o"),
    "anthropic": ("claude-sonnet-4-0",),
    "google": ("gemini-2.5-flash",),
}


def canary() -> str:
    return f"sk-aipilot-CANARY-{uuid.uuid4()}"


def canaries() -> dict[str, str]:
    return {provider: canary() for provider in KEY_PROVIDERS}


def unexpected(run: Run) -> bool:
    """An exit code outside the table, or an internal error (a bug).

    With ``--debug`` an in-process run re-raises its error (exit 1, ``run.exception``):
    that is expected when the error is an :class:`AipilotError`.
    """
    from aipilot.errors import AipilotError

    if run.exit_code not in EXIT_CODES:
        return True
    if run.exit_code != ExitCode.INTERNAL:
        return False
    return not isinstance(run.exception, AipilotError)


def transcript(run: Run) -> str:
    """What a user could see: stdout, stderr, and (in-process) the exception chain."""
    text = run.stdout + run.stderr
    if run.exception is not None:
        text += "".join(traceback.format_exception(run.exception))
    return text


def database_artifacts(database_url: str) -> str:
    """The SQLite file with its -wal and -shm, or a pg_dump of the database."""
    url = make_url(normalise_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        files = [Path(f"{url.database}{suffix}") for suffix in ("", "-wal", "-shm")]
        return "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())
    dump = subprocess.run(
        ["pg_dump", "-h", url.host or "127.0.0.1", "-U", url.username or "postgres"]
        + (["-p", str(url.port)] if url.port else [])
        + [url.database or ""],
        capture_output=True,
        text=True,
        check=True,
    )
    return dump.stdout


def home_files(home: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in home.rglob("*") if p.is_file())


def request_lines(fake: FakeProvider) -> str:
    return "\n".join(f"{r.method} {r.path}?{r.query}" for r in fake.requests)


def scalar(database_url: str, statement: str) -> int:
    """The one integer a counting statement returns."""
    rows: list[Any] = sql(database_url, statement)
    return int(rows[0][0])


# ------------------------------------------------------------------ invariants
def active_counts(database_url: str) -> list[tuple[str, str, int]]:
    """(user, module, active configs) for every pair that has any config."""
    rows: list[Any] = sql(
        database_url,
        "SELECT u.username, c.module_name, "
        "SUM(CASE WHEN c.is_active THEN 1 ELSE 0 END) FROM ai_provider_configs c "
        "JOIN users u ON u.users_id = c.user_id GROUP BY u.username, c.module_name",
    )
    return [(str(r[0]), str(r[1]), int(r[2] or 0)) for r in rows]


def active_prompt_counts(database_url: str) -> list[tuple[str, int]]:
    rows: list[Any] = sql(
        database_url,
        "SELECT u.username, SUM(CASE WHEN p.is_active THEN 1 ELSE 0 END) "
        "FROM ai_system_prompts p JOIN users u ON u.users_id = p.user_id GROUP BY u.username",
    )
    return [(str(r[0]), int(r[1] or 0)) for r in rows]


def assert_invariants(database_url: str) -> None:
    """At most one active config per (user, module) and one active prompt per user."""
    for user, module, count in active_counts(database_url):
        assert count <= 1, f"{user}/{module} has {count} active configs"
    for user, count in active_prompt_counts(database_url):
        assert count <= 1, f"{user} has {count} active prompts"


def stale_snapshots(database_url: str) -> list[tuple[Any, ...]]:
    """Active configs whose prompt snapshot is not the user's active prompt (id and text)."""
    rows: list[Any] = sql(
        database_url,
        "SELECT c.system_prompt_id, c.system_prompt, p.id, p.prompt_content "
        "FROM ai_provider_configs c LEFT JOIN ai_system_prompts p "
        "ON p.user_id = c.user_id AND p.is_active WHERE c.is_active",
    )
    return [tuple(r) for r in rows if (r[0], r[1]) != (r[2], r[3])]


TABLES = (
    "users",
    "ai_providers",
    "ai_models",
    "ai_user_models_flut",
    "ai_provider_configs",
    "ai_system_prompts",
    "user_provider_credentials",
    "ai_usage_logs",
)


def snapshot(database_url: str, tables: tuple[str, ...] = TABLES) -> dict[str, list[str]]:
    """Every row of ``tables``, as sorted text (to compare before and after a command)."""
    import sqlalchemy as sa

    engine = sa.create_engine(normalise_database_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return {
                table: sorted(
                    repr(tuple(r)) for r in conn.exec_driver_sql(f"SELECT * FROM {table}")
                )
                for table in tables
            }
    finally:
        engine.dispose()
