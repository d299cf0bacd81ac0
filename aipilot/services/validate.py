"""Input checks shared by the services: refuse before anything is stored."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from aipilot.errors import UsageError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]*")
MAX_NAME = 64
DEFAULT_MODULE = "global"
MAX_MODULE = 64
_MODULE = re.compile(r"[a-z][a-z0-9_-]*")
PROTOCOLS = ("openai", "anthropic", "gemini")
AUTH_METHODS = ("bearer", "api_key_header", "none")
MAX_LABEL = 120
MAX_MODEL_KEY = 128
MAX_URL = 2000
MAX_PRICE = Decimal("1000000")
MAX_CONTEXT = 100_000_000
_MODEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+\-]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PATH = re.compile(r"/[\x21-\x7e]*")
_SECRET_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key"}


def identifier(kind: str, value: str, *, max_len: int = MAX_NAME) -> str:
    """A user name, provider key or module name: ASCII letters, digits and ``._@+-``."""
    value = value.strip()
    if not value:
        raise UsageError(f"the {kind} is empty", hint=f"give a {kind}")
    if len(value) > max_len:
        raise UsageError(
            f"the {kind} is {len(value)} characters long; the limit is {max_len}",
            hint=f"use a shorter {kind}",
        )
    if not _NAME.fullmatch(value):
        raise UsageError(
            f"the {kind} {value!r} has characters outside letters, digits and ._@+-",
            hint=f"use a plain ASCII {kind} such as 'alice' or 'openai'",
        )
    return value


def module_name(value: str) -> str:
    """A module name: lowercase identifier such as ``global`` (the seed's only module)."""
    value = value.strip()
    if not value or len(value) > MAX_MODULE or not _MODULE.fullmatch(value):
        raise UsageError(
            f"invalid module name {value[:80]!r}",
            hint=f"use a lowercase identifier (letters, digits, _ or -, at most {MAX_MODULE} "
            f"characters), e.g. '{DEFAULT_MODULE}'",
        )
    return value


def label(kind: str, value: str) -> str:
    """A display label: printable text (no control characters), not blank, bounded."""
    value = value.strip()
    if not value:
        raise UsageError(f"the {kind} is empty", hint=f"give a {kind}")
    if len(value) > MAX_LABEL:
        raise UsageError(
            f"the {kind} is {len(value)} characters long; the limit is {MAX_LABEL}",
            hint=f"use a shorter {kind}",
        )
    if not value.isprintable():
        raise UsageError(f"the {kind} has control characters", hint="use plain text")
    return value


def model_key(value: str) -> str:
    """A model id as providers spell it: ASCII letters, digits and ``._:/@+-``."""
    value = value.strip()
    if not value:
        raise UsageError("the model key is empty", hint="give the provider's model id")
    if len(value) > MAX_MODEL_KEY:
        raise UsageError(
            f"the model key is {len(value)} characters long; the limit is {MAX_MODEL_KEY}",
            hint="give the provider's model id",
        )
    if not _MODEL_KEY.fullmatch(value):
        raise UsageError(
            f"the model key {value!r} has characters outside letters, digits and ._:/@+-",
            hint="give the provider's model id, e.g. 'gpt-4o-mini'",
        )
    return value


def provider_key(value: str) -> str:
    return identifier("provider key", value).lower()


def base_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value) if len(value) <= MAX_URL and value.isascii() else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise UsageError(
            f"{value[:80]!r} is not an http(s) URL with a host",
            hint="e.g. https://api.openai.com/v1",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(
            "the base URL must not carry credentials, a query or a fragment",
            hint="keys travel in headers: store them with `aipilot keys set`",
        )
    return value.rstrip("/")


def choice(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    value = value.strip().lower()
    if value == "query_param":
        raise UsageError(
            "the query_param auth method is refused: it puts keys in URLs, which get logged",
            hint="use bearer or api_key_header (Gemini accepts the x-goog-api-key header)",
        )
    if value not in allowed:
        raise UsageError(f"unknown {kind} {value!r}", hint="use one of: " + ", ".join(allowed))
    return value


def header_name(name: str) -> str:
    name = name.strip()
    if not _HEADER_NAME.fullmatch(name) or len(name) > MAX_LABEL:
        raise UsageError(
            f"{name[:80]!r} is not a valid HTTP header name", hint="e.g. anthropic-version"
        )
    return name


def apply_headers(current: dict[str, str], items: tuple[str, ...], *, update: bool) -> None:
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--header {item[:80]!r} is not K=V", hint="e.g. --header X-Env=prod")
        name, value = header_name(name), value.strip()
        if name.lower() in _SECRET_HEADERS:
            raise UsageError(
                f"the {name} header carries keys and cannot be stored in the catalog",
                hint="store keys with `aipilot keys set PROVIDER`",
            )
        for old in [k for k in current if k.lower() == name.lower()]:
            del current[old]
        if not value and update:
            continue  # "K=" removes K on update
        if not value or not value.isascii() or not value.isprintable():
            raise UsageError(
                f"the value of header {name} must be printable ASCII and not empty",
                hint="e.g. --header anthropic-version=2023-06-01",
            )
        current[name] = value


def test_endpoint(value: str) -> str:
    value = value.strip()
    if not _PATH.fullmatch(value) or len(value) > MAX_URL:
        raise UsageError(f"the test endpoint {value[:80]!r} is not a path", hint="e.g. /models")
    return value


def price(kind: str, value: str | Decimal) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount >= MAX_PRICE:
        raise UsageError(
            f"the {kind} price {str(value)[:40]!r} is not a non-negative amount",
            hint="give USD per million tokens, e.g. 2.50",
        )
    if amount.as_tuple().exponent < -6:  # type: ignore[operator]
        raise UsageError(f"the {kind} price has more than 6 decimals", hint="e.g. 0.15")
    return amount


def context_window(value: int) -> int:
    if not 0 < value <= MAX_CONTEXT:
        raise UsageError(
            f"the context window {value} is out of range", hint="give tokens, e.g. 128000"
        )
    return value
