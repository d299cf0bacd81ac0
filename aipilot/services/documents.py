"""The seed's JSON documents, built in one place.

The CLI's ``--json`` and ``aipilot serve``'s ``/functions/v1/*`` routes print the document
made here for the same operation and outcome, errors included: the HTTP status code is the
only difference. Field names are those of the seed's Edge Functions (``ai-keys-manager``:
``success``, ``data``, ``valid.ok``; ``ai-config-test``: ``success``, ``api_key_ok``,
``model_accessible``; ``assist_flut``: the strict envelope; an error: ``success: false`` and
``error``, its message). The README's "JSON documents" section describes each shape.

Cheap to import (the CLI's output module imports it at start-up): the results it reads are
named for type checking only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from aipilot.errors import AipilotError
    from aipilot.services.assist.assist import AssistResult
    from aipilot.services.config.config_test import ConfigTestResult
    from aipilot.services.config.views import KeyStatus
    from aipilot.services.keys.keys import KeyTestResult, SetKeyResult

Document = dict[str, Any]


def plain(value: Any) -> Any:
    """Dataclasses, mappings, sequences, datetimes (ISO 8601), Decimals (floats), UUIDs and
    enums (their values) as JSON-ready data; anything else as it is."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return plain(value.value)
    return value


# ------------------------------------------------------------------ errors
def error_code(err: AipilotError) -> str:
    """The ``code`` of an error: its exit code's name (``usage``, ``not_configured``, …)."""
    return err.exit_code.name.lower()


def error(err: AipilotError, *, code: str | None = None) -> Document:
    """Every failure, CLI and HTTP alike: the seed's ``{"success": false, "error": message}``
    with the ``hint``, a ``code`` (the exit code's name unless the caller has a finer one),
    the error's ``type`` and the CLI's ``exit_code``."""
    return {
        "success": False,
        "error": err.message,
        "hint": err.hint,
        "code": code if code is not None else error_code(err),
        "type": type(err).__name__,
        "exit_code": int(err.exit_code),
    }


# ------------------------------------------------------------------ ai-config-test
def config_test(result: ConfigTestResult) -> Document:
    """``aipilot test`` and ``ai-config-test``: the seed's three fields first, then the
    round trip, what was tested, the first failure (``error``), the reply and its tokens."""
    return {
        "success": result.success,
        "api_key_ok": result.api_key_ok,
        "model_accessible": result.model_accessible,
        "round_trip_ok": result.round_trip_ok,
        "module": result.module,
        "provider": result.provider,
        "model": result.model,
        "error": result.reason,
        "reply": result.reply,
        "usage": {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens},
        "checks": plain(list(result.checks)),
    }


# ------------------------------------------------------------------ ai-keys-manager
def key_check(result: KeyTestResult) -> Document:
    """The seed's ``valid`` object of one key test."""
    return {
        "ok": result.ok,
        "latency_ms": result.latency_ms,
        "error": result.error,
        "error_code": result.error_code,
    }


def key_status(rows: Sequence[KeyStatus]) -> Document:
    """``keys status`` and ``get-status``: the seed's ``data`` map, then each row."""
    return {
        "success": True,
        "data": {r.provider: r.configured for r in rows},
        "providers": plain(list(rows)),
    }


def key_test(result: KeyTestResult) -> Document:
    """``keys test PROVIDER`` and ``test-key``."""
    return {"success": result.ok, "provider": result.provider, "valid": key_check(result)}


def key_tests(results: Sequence[KeyTestResult]) -> Document:
    """``keys test --all``: ``valid.ok`` for all of them, and each provider's ``valid``."""
    ok = all(r.ok for r in results)
    return {
        "success": ok,
        "valid": {"ok": ok},
        "results": {r.provider: key_check(r) for r in results},
    }


def set_key(result: SetKeyResult) -> Document:
    """``keys set`` and ``set-key``: stored (``success``), and the test when one ran."""
    doc: Document = {"success": True, "provider": result.provider, "hint": result.hint}
    doc["tested"] = result.test is not None
    if result.test is not None:
        doc["valid"] = key_check(result.test)
    return doc


def delete_key(provider: str, deleted: bool) -> Document:
    """``keys delete`` and ``delete-key``: ``deleted`` is false when no key was stored."""
    return {"success": True, "provider": provider, "deleted": deleted}


def get_key(provider: str, secret: str) -> Document:
    """``get-key`` (internal callers only): the one document that holds a key."""
    return {"success": True, "provider": provider, "apiKey": secret}


# ------------------------------------------------------------------ assist_flut
def assist(result: AssistResult) -> Document:
    """``ask --json`` and ``assist_flut``: the strict envelope, the answer or the refusal,
    with provider, model, usage and cost. A refusal is an answer of the provider (HTTP 200),
    not a failure of the gateway: ``success: false``, ``refusal``, ``finish_reason:
    "refusal"``, and the error document's fields with ``code: "refusal"``."""
    doc: Document = {
        "success": result.refusal is None,
        "text": result.text,
        "data": result.data,
        "refusal": result.refusal,
        "provider": result.provider,
        "model": result.model,
        "finish_reason": result.finish_reason,
        "usage": plain(result.usage),
        "cost_usd": plain(result.cost_usd),
        "latency_ms": result.latency_ms,
        "ttft_ms": result.ttft_ms,
    }
    if result.refusal is not None:
        from aipilot.services.assist.assist import REFUSAL

        refused = error(result.refused(), code=REFUSAL)
        doc.update((k, v) for k, v in refused.items() if k != "success")
    return doc
