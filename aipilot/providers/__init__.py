"""Provider clients speaking the OpenAI, Anthropic and Gemini wire protocols over httpx.

This package knows nothing about the database, the vault or the CLI: it receives a
:class:`ProviderSettings` (a catalog row) and a key, and returns frozen dataclasses or
raises the typed errors of :mod:`aipilot.providers.errors`.

Names are resolved lazily so that importing ``aipilot.providers.types`` (or this package)
does not import httpx: ``aipilot --help`` must stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aipilot.providers.errors import (
        BadResponseError,
        ModelNotFoundError,
        ProviderAuthError,
        ProviderCallError,
        ProviderTimeoutError,
        ProviderUnavailableError,
        RateLimitedError,
    )
    from aipilot.providers.registry import client_for
    from aipilot.providers.types import (
        ApiKind,
        AuthMethod,
        ChatChunk,
        ChatMessage,
        ChatRequest,
        ChatResponse,
        ModelInfo,
        ProviderClient,
        ProviderSettings,
        RetryPolicy,
        Usage,
    )

__all__ = [
    "ApiKind",
    "AuthMethod",
    "BadResponseError",
    "ChatChunk",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ModelInfo",
    "ModelNotFoundError",
    "ProviderAuthError",
    "ProviderCallError",
    "ProviderClient",
    "ProviderSettings",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RetryPolicy",
    "Usage",
    "client_for",
]


def _home(name: str) -> str:
    if name == "client_for":
        return "aipilot.providers.registry"
    if name.endswith("Error"):
        return "aipilot.providers.errors"
    return "aipilot.providers.types"


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_home(name)), name)
