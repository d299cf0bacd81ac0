"""Choosing the client for a catalog row: one class per wire protocol (``api_kind``).

``client_for`` also accepts ``sleep`` (keyword-only, default :func:`time.sleep`) so tests
and benchmarks can count retry waits without waiting.
"""

from __future__ import annotations

import httpx

from aipilot.errors import UsageError
from aipilot.providers.anthropic import AnthropicClient
from aipilot.providers.gemini import GeminiClient
from aipilot.providers.http import HttpProviderClient, Sleep
from aipilot.providers.openai_compat import OpenAICompatClient
from aipilot.providers.types import ProviderClient, ProviderSettings, RetryPolicy

CLIENTS: dict[str, type[HttpProviderClient]] = {
    "openai": OpenAICompatClient,
    "anthropic": AnthropicClient,
    "gemini": GeminiClient,
}


def client_for(
    settings: ProviderSettings,
    api_key: str | None,
    *,
    http: httpx.Client | None = None,
    retry: RetryPolicy | None = None,
    sleep: Sleep | None = None,
) -> ProviderClient:
    """A client speaking ``settings.api_kind``; refuses unknown kinds and URL-borne keys.

    With ``http`` the caller owns that client (``close()`` leaves it open); without it
    the returned client creates one and closes it in ``close()``.
    """
    cls = CLIENTS.get(settings.api_kind)
    if cls is None:
        raise UsageError(
            f"unknown API kind {settings.api_kind!r} for {settings.provider_key}",
            hint="use one of: " + ", ".join(sorted(CLIENTS)),
        )
    return cls(settings, api_key, http=http, retry=retry, sleep=sleep)
