"""The organisation connection's audit log (``openai_connexion.openai_audit_log``).

Every change to a connection — its key, limits, allowed models, status — appends one entry
(when, by whom, what, details); the newest ``MAX_AUDIT`` are kept and no entry ever holds a
key. Both the connection's own commands and the quotas that change its status write here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aipilot.db.models import OpenAIConnexion

MAX_AUDIT = 500


def append_audit(
    row: OpenAIConnexion, *, by: str, action: str, details: dict[str, Any], at: datetime
) -> None:
    log = row.openai_audit_log if isinstance(row.openai_audit_log, dict) else {}
    entries = list(log.get("entries", []))
    entries.append({"at": at.isoformat(), "by": by, "action": action, "details": details})
    row.openai_audit_log = {**log, "entries": entries[-MAX_AUDIT:]}  # a new object: tracked
