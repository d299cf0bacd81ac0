"""Recording provider calls in ``ai_usage_logs`` (one row per call, success or failure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from aipilot.db.identity import Identity
from aipilot.db.models import UsageLog
from aipilot.errors import AipilotError
from aipilot.redaction import redact

MAX_ERROR_TEXT = 500
# the table's INSERT, not the ORM entity's: the ORM bulk path costs more than the write
USAGE_INSERT = sa.insert(cast(sa.Table, UsageLog.__table__))


@dataclass(frozen=True)
class CallOutcome:
    """What one provider call did, ready to log; ``error`` is already redacted."""

    ok: bool
    latency_ms: int
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Tokens:
    """A call's billed tokens: input includes the cache parts, output the reasoning."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


NO_TOKENS = Tokens()


def outcome_of_error(err: AipilotError, *, latency_ms: int, secrets: list[str]) -> CallOutcome:
    code = getattr(err, "code", None) or type(err).__name__
    status = getattr(err, "status", None)
    label = f"{code} (HTTP {status})" if status else str(code)
    return CallOutcome(False, latency_ms, label, redact(err.message, secrets)[:MAX_ERROR_TEXT])


def _storable(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; a model's answer can (shown as U+FFFD)."""
    return text.replace("\x00", "\ufffd") if text is not None else None


def usage_values(
    identity: Identity,
    *,
    kind: str,
    provider_key: str,
    outcome: CallOutcome,
    model: str | None = None,
    module: str = "global",
    tokens: Tokens = NO_TOKENS,
    cost: Decimal | None = None,
    ttft_ms: int | None = None,
    cancelled: bool = False,
    request_content: str | None = None,
    response_content: str | None = None,
) -> dict[str, object]:
    """The ``ai_usage_logs`` row of one call, as :data:`USAGE_INSERT`'s parameters."""
    return dict(
        user_id=identity.user_id,
        module_name=module,
        kind=kind,
        provider_key=provider_key,
        model_name=model,
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        reasoning_tokens=tokens.reasoning_tokens,
        cache_read_tokens=tokens.cache_read_tokens,
        cache_write_tokens=tokens.cache_write_tokens,
        cost_usd=cost,
        latency_ms=outcome.latency_ms,
        ttft_ms=ttft_ms,
        outcome="cancelled" if cancelled else ("ok" if outcome.ok else "error"),
        error_code=outcome.error_code,
        error_message=_storable(outcome.error),
        request_content=_storable(request_content),
        response_content=_storable(response_content),
        # set here rather than by the database: SQLite's now() has whole seconds only,
        # and history must keep the order of calls made within one second
        created_at=datetime.now(UTC),
    )


def record(executor: Session | Connection, identity: Identity, **call: Any) -> None:
    """Write one call's row (:func:`usage_values`' arguments)."""
    # a Core INSERT: no object to track, so no unit-of-work flush (this runs on every call)
    executor.execute(USAGE_INSERT, usage_values(identity, **call))
