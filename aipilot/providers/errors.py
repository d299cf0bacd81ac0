"""Typed provider failures, all under :class:`aipilot.errors.ProviderError`.

Each error has a one-line message ("openai rejected the API key (HTTP 401 invalid_api_key):
…"), a hint naming the next step, and the facts a caller branches on: ``provider``,
``status``, ``code``, ``retry_after``. The original exception stays on ``__cause__``
(raised with ``raise … from``). Messages are redacted before they are stored here, and
again on construction for key-shaped tokens; the key itself is never an attribute.

``RateLimitedError`` with ``quota_exhausted=True`` exits with ``ExitCode.QUOTA`` instead
of ``ExitCode.PROVIDER``: an empty balance is a budget problem, not an outage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from aipilot.errors import ExitCode, ProviderError
from aipilot.redaction import MASK, redact


class ProviderCallError(ProviderError):
    """A provider call failed; the base of every error a client raises."""

    retryable_by_default = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(redact(message), hint=hint or self.hint_for(provider))
        self.provider = provider
        self.status = status
        self.code = _clean_code(code)
        self.retry_after = retry_after
        self.retryable = self.retryable_by_default if retryable is None else retryable

    def hint_for(self, provider: str) -> str | None:
        return None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"status={self.status!r}, code={self.code!r})"
        )


class ProviderAuthError(ProviderCallError):
    """The key is missing, invalid, revoked, or lacks a permission (``insufficient_scope``)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        insufficient_scope: bool = False,
    ) -> None:
        self.insufficient_scope = insufficient_scope
        super().__init__(message, provider=provider, status=status, code=code, retryable=False)

    def hint_for(self, provider: str) -> str:
        if self.insufficient_scope:
            return (
                f"the {provider} key is valid but lacks a permission; check its project, "
                "scopes or restrictions in the provider's console"
            )
        return f"run `aipilot keys set {provider}` with a valid key"


class ModelNotFoundError(ProviderCallError):
    def hint_for(self, provider: str) -> str:
        return f"check the model id against the models {provider} lists for this key"


class RateLimitedError(ProviderCallError):
    """HTTP 429 (retryable), or an exhausted quota/balance (``quota_exhausted``, never retried)."""

    retryable_by_default = True

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        quota_exhausted: bool = False,
    ) -> None:
        self.quota_exhausted = quota_exhausted
        super().__init__(
            message,
            provider=provider,
            status=status,
            code=code,
            retry_after=retry_after,
            retryable=not quota_exhausted,
        )
        if quota_exhausted:
            self.exit_code = ExitCode.QUOTA

    def hint_for(self, provider: str) -> str:
        if self.quota_exhausted:
            return f"add credit or raise the spending limit of the {provider} account"
        return "wait a moment and try again; lower the request rate if it keeps happening"


class ContextTooLongError(ProviderCallError):
    """The prompt (with the answer's budget) does not fit the model's context window."""

    def hint_for(self, provider: str) -> str:
        return (
            "shorten the prompt or the conversation, lower --max-tokens, or choose a model "
            "with a larger context window (`aipilot models show`)"
        )


class ProviderUnavailableError(ProviderCallError):
    retryable_by_default = True

    def hint_for(self, provider: str) -> str:
        return f"{provider} is failing or overloaded; try again later"


class ProviderTimeoutError(ProviderCallError):
    retryable_by_default = True

    def hint_for(self, provider: str) -> str:
        return (
            "check the network and the provider's base URL; "
            f"raise the {provider} timeout if the provider is slow"
        )


class BadResponseError(ProviderCallError):
    def hint_for(self, provider: str) -> str:
        return (
            f"check that the {provider} base URL points at an API of the configured kind; "
            "retry if the provider was interrupted"
        )


__all__ = [
    "BadResponseError",
    "ContextTooLongError",
    "ModelNotFoundError",
    "ProviderAuthError",
    "ProviderCallError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "classify_response",
]


# --- classification of an error response (docs/providers.md §11.2) -------------------------

_KEY_PHRASES = (
    "incorrect api key",
    "invalid api key",
    "api key not valid",
    "invalid x-api-key",
    "api key expired",
    "authentication fails",
)
_SCOPE_PHRASES = ("insufficient permissions", "missing scopes", "permission_error")
_MODEL_PHRASES = (
    "model not exist",
    "model does not exist",
    "not a valid model",
    "invalid model",
    "invalid_model",
    "model_not_found",
    "no endpoints found",  # OpenRouter: no upstream serves the model
    "is not found for api version",  # Gemini
)
_CONTEXT_PHRASES = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "prompt is too long",
    "exceeds the maximum number of tokens",
    "too many tokens",
    "string_above_max_length",
)
_OVERLOADED_PHRASES = ("overloaded", "unavailable_error")
# (not "exceeded your current quota": Gemini says it of per-minute limits too)
_BALANCE_PHRASES = (
    "used all available credits",  # xAI, with a 429
    "monthly spending limit",
    "insufficient balance",
    "insufficient credits",
    "credit balance is too low",
)
# codes that name a class of errors rather than this one: a more specific one is shown
_GENERIC_CODES = frozenset({"invalid_request_error", "invalid_request", "error", "api_error"})
_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "billing_error",
        "enforced_spend_limit_reached",
    }
)
_CODE_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:\-]{0,63}$")


def classify_response(
    provider: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    secrets: Iterable[str | None],
) -> ProviderCallError:
    """The typed error for a non-2xx response: status first, then code and message text."""
    body = _parse_body(content)
    message = _one_line(redact(_message(body, content), secrets))
    codes = [redact(c, secrets) for c in _codes(body)]  # a code may echo the key too
    shaped = [c for c in codes if _CODE_SHAPE.match(c)]
    code = next((c for c in shaped if c not in _GENERIC_CODES), shaped[0] if shaped else None)
    text = " ".join([message, *codes]).lower()
    detail = f" (HTTP {status}{' ' + code if code else ''})" + (f": {message}" if message else "")
    error = _by_status(provider, status, code, codes, text, detail)
    error.retry_after = _retry_after(headers, body) if error.retryable else None
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false") and not isinstance(error, ProviderAuthError):
        quota = isinstance(error, RateLimitedError) and error.quota_exhausted
        error.retryable = should_retry == "true" and not quota
    return error


def _by_status(
    provider: str, status: int, code: str | None, codes: list[str], text: str, detail: str
) -> ProviderCallError:
    kw: dict[str, Any] = {"provider": provider, "status": status, "code": code}
    bad_key = "API_KEY_INVALID" in codes or any(p in text for p in _KEY_PHRASES)
    if status in (401, 403) or (status == 400 and bad_key):
        scope = any(p in text for p in _SCOPE_PHRASES)
        what = "denied this API key access" if scope else "rejected the API key"
        return ProviderAuthError(f"{provider} {what}{detail}", insufficient_scope=scope, **kw)
    quota = (
        status == 402
        or bool(_QUOTA_CODES.intersection(codes))
        or "perday" in text
        or "per-day" in text  # OpenRouter's free-models-per-day
        or any(p in text for p in _BALANCE_PHRASES)
    )
    if status in (402, 429) or (status == 400 and quota):
        what = "reports the quota or balance is exhausted" if quota else "is rate limiting"
        return RateLimitedError(f"{provider} {what}{detail}", quota_exhausted=quota, **kw)
    if status in (400, 413, 422) and any(p in text for p in _CONTEXT_PHRASES):
        what = "refused the request: it does not fit the model's context window"
        return ContextTooLongError(f"{provider} {what}{detail}", **kw)
    if status in (400, 404, 422) and (
        any(p in text for p in _MODEL_PHRASES)
        or (status == 404 and ("model" in text or code == "NOT_FOUND"))
    ):
        return ModelNotFoundError(f"{provider} does not know this model{detail}", **kw)
    if status == 404:
        hint = f"check the {provider} base URL: the endpoint does not exist there"
        return ProviderCallError(f"{provider} has no such endpoint{detail}", hint=hint, **kw)
    if status == 408:
        return ProviderTimeoutError(f"{provider} timed out the request{detail}", **kw)
    if status >= 500:
        busy = status == 529 or any(p in text for p in _OVERLOADED_PHRASES)
        what = "is overloaded" if busy else "is unavailable"
        return ProviderUnavailableError(f"{provider} {what}{detail}", **kw)
    retryable = status == 409
    return ProviderCallError(f"{provider} refused the request{detail}", retryable=retryable, **kw)


def _parse_body(content: bytes) -> Any:
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if isinstance(body, list) and len(body) == 1:  # Gemini may wrap errors in a list
        body = body[0]
    return body


def _message(body: Any, content: bytes) -> str:
    if not isinstance(body, dict):
        return content.decode("utf-8", "replace")
    error = body.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    for key in ("message", "detail"):
        value = body.get(key)
        if isinstance(value, str):
            return value
        if value is not None:
            return json.dumps(value)
    return content.decode("utf-8", "replace")


def _details(body: Any) -> list[dict[str, Any]]:
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _codes(body: Any) -> list[str]:
    """Every code-like string in an error body, most specific first."""
    if not isinstance(body, dict):
        return []
    found = [d["reason"] for d in _details(body) if isinstance(d.get("reason"), str)]
    found += [str(v) for d in _details(body) for v in d.get("violations", []) if "PerDay" in str(v)]
    error = body.get("error")
    if isinstance(error, dict):
        found += [error[k] for k in ("code", "type", "status") if isinstance(error.get(k), str)]
        inner = error.get("details")
        if isinstance(inner, dict) and isinstance(inner.get("error_code"), str):
            found.append(inner["error_code"])
    found += [body[k] for k in ("type", "code") if isinstance(body.get(k), str)]
    return found


def _clean_code(code: str | None) -> str | None:
    """A provider's error code, redacted like a message; one that held a key-shaped token
    (or a secret the caller already masked) is dropped: it says nothing then."""
    if code is None:
        return None
    cleaned = redact(code)
    return None if MASK in cleaned else cleaned


def _retry_after(headers: Mapping[str, str], body: Any) -> float | None:
    """retry-after-ms → retry-after (seconds or HTTP date) → Gemini RetryInfo.retryDelay."""
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            return _seconds_or_date(headers["retry-after"])
        for detail in _details(body):
            if str(detail.get("@type", "")).endswith("RetryInfo"):
                return max(0.0, float(str(detail.get("retryDelay", "")).rstrip("s")))
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def _seconds_or_date(value: str) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:
        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
