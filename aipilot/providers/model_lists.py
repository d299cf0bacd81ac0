"""What a provider's model list says of one model, read into :class:`ModelInfo`.

Pure functions, one per wire protocol, over one entry of the list as decoded JSON. Parsing
is tolerant: a field of the wrong type, out of range or unparsable reads as ``None`` (the
list "did not say"), never as an error; only the id is always there (the clients skip
entries without one).

- OpenAI-compatible lists (OpenAI, Mistral, xAI, DeepSeek, OpenRouter, vLLM, llama.cpp…):
  context from ``context_length`` (OpenRouter, Together), ``max_context_length``
  (Mistral), ``max_model_len`` (vLLM), else OpenRouter's ``top_provider.context_length``;
  the label from ``name``; the output limit from ``top_provider.max_completion_tokens``
  (OpenRouter) or ``max_output_tokens``; the deprecation date from Mistral's
  ``deprecation`` or OpenRouter's ``expiration_date``; prices from OpenRouter's
  ``pricing`` (USD per token, as strings: ``prompt``, ``completion``,
  ``input_cache_read``, ``input_cache_write``), ×1e6 to USD per million tokens; a
  negative price ("-1": variable, e.g. OpenRouter's router models) is not a price.
- Anthropic ``/v1/models``: ``display_name``, ``max_input_tokens``, ``max_tokens``.
- Gemini ``models.list``: ``name`` without ``models/``, ``displayName``,
  ``inputTokenLimit``, ``outputTokenLimit``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aipilot.providers.types import ModelInfo

__all__ = ["anthropic_model_info", "gemini_model_info", "openai_model_info"]

MILLION = Decimal(1_000_000)
# what ai_models' NUMERIC(12, 6) and INTEGER columns hold
MAX_PRICE_PER_MTOK = Decimal("1000000")
MAX_TOKENS = 2**31 - 1
_MICRO = Decimal("0.000001")

_CONTEXT_FIELDS = ("context_length", "max_context_length", "max_model_len")


def openai_model_info(raw: Any) -> ModelInfo:
    """One entry of an OpenAI-compatible ``GET /models`` list."""
    model = _dict(raw)
    top = _dict(model.get("top_provider"))
    context = next((v for k in _CONTEXT_FIELDS if (v := _tokens(model.get(k))) is not None), None)
    pricing = _dict(model.get("pricing"))
    return ModelInfo(
        id=_id(model.get("id")),
        display_name=_text(model.get("name")),
        context_window=context if context is not None else _tokens(top.get("context_length")),
        owned_by=_text(model.get("owned_by")),
        max_output_tokens=_first_tokens(
            top.get("max_completion_tokens"), model.get("max_output_tokens")
        ),
        deprecation_date=_date(model.get("deprecation")) or _date(model.get("expiration_date")),
        input_price_per_mtok=_per_mtok(pricing.get("prompt")),
        output_price_per_mtok=_per_mtok(pricing.get("completion")),
        cache_read_price_per_mtok=_per_mtok(pricing.get("input_cache_read")),
        cache_write_price_per_mtok=_per_mtok(pricing.get("input_cache_write")),
    )


def anthropic_model_info(raw: Any) -> ModelInfo:
    """One entry of Anthropic's ``GET /v1/models`` (or ``GET /v1/models/{id}``)."""
    model = _dict(raw)
    return ModelInfo(
        id=_id(model.get("id")),
        display_name=_text(model.get("display_name")),
        context_window=_tokens(model.get("max_input_tokens")),
        owned_by="anthropic",
        max_output_tokens=_tokens(model.get("max_tokens")),
    )


def gemini_model_info(raw: Any) -> ModelInfo:
    """One entry of Gemini's ``models.list`` (or ``models.get``)."""
    model = _dict(raw)
    return ModelInfo(
        id=_id(model.get("name")).removeprefix("models/"),
        display_name=_text(model.get("displayName")),
        context_window=_tokens(model.get("inputTokenLimit")),
        owned_by="google",
        max_output_tokens=_tokens(model.get("outputTokenLimit")),
    )


# ---------------------------------------------------------------- tolerant readers
def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _id(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _tokens(value: Any) -> int | None:
    """A positive token count that fits the catalog's INTEGER columns."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TOKENS:
        return value
    return None


def _first_tokens(*values: Any) -> int | None:
    return next((v for v in map(_tokens, values) if v is not None), None)


def _date(value: Any) -> date | None:
    """An ISO date, or the date part of an ISO date-time ("2025-06-10T12:00:00Z")."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _per_mtok(value: Any) -> Decimal | None:
    """USD per token (a string, or a JSON number) → USD per million tokens, 6 decimals."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        per_token = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not per_token.is_finite() or per_token < 0:
        return None
    amount = per_token * MILLION
    if amount >= MAX_PRICE_PER_MTOK:
        return None
    return _plain(amount.quantize(_MICRO))


def _plain(amount: Decimal) -> Decimal:
    """Without trailing zeros, never in exponent form (2.500000 → 2.5, 10.000000 → 10)."""
    return amount.to_integral() if amount == amount.to_integral() else amount.normalize()
