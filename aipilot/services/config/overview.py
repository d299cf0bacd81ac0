"""The diagnostics history (`aipilot history`): plain SQL over a Reader, no SQLAlchemy.

Read on the direct driver connection when the command only looks (:mod:`aipilot.db.direct`),
or through :class:`aipilot.db.reader.SessionReader` inside a session; the user's identity
is set in the transaction either way (row-level security on PostgreSQL), and the rows are
filtered by ``user_id`` as well (SQLite has no RLS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aipilot.db.identity import Identity
from aipilot.db.reader import Reader, as_time, id_param
from aipilot.errors import UsageError

HISTORY_KINDS = ("key_test", "config_test", "model_sync")
MAX_HISTORY = 1000


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime | None
    kind: str
    provider: str
    model: str | None
    module: str
    outcome: str
    latency_ms: int | None
    error_code: str | None
    error: str | None


def history(reader: Reader, identity: Identity, *, limit: int = 20) -> list[HistoryEntry]:
    """Recent key tests, config tests, model syncs and failed chats, newest first."""
    if not 1 <= limit <= MAX_HISTORY:
        raise UsageError(f"--limit must be between 1 and {MAX_HISTORY}", hint="e.g. `--limit 20`")
    kinds = ", ".join(f"'{kind}'" for kind in HISTORY_KINDS)
    rows = reader.rows(
        "SELECT created_at, kind, provider_key, model_name, module_name, outcome, latency_ms, "
        "error_code, error_message FROM ai_usage_logs "
        f"WHERE user_id = :uid AND (kind IN ({kinds}) OR (kind = 'chat' AND outcome = 'error')) "
        "ORDER BY created_at DESC LIMIT :limit",
        uid=id_param(reader, identity.user_id),
        limit=limit,
    )
    return [
        HistoryEntry(
            at=as_time(row["created_at"]),
            kind=row["kind"],
            provider=row["provider_key"],
            model=row["model_name"],
            module=row["module_name"],
            outcome=row["outcome"],
            latency_ms=row["latency_ms"],
            error_code=row["error_code"],
            error=row["error_message"],
        )
        for row in rows
    ]
