"""Value types shared by every provider client, and the :class:`ProviderClient` interface.

Everything here is a frozen dataclass: the clients return them and the services store or
render them. Nothing in this module does I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal

ApiKind = Literal["openai", "anthropic", "gemini"]
AuthMethod = Literal["bearer", "api_key_header", "query_param", "none"]
Role = Literal["system", "user", "assistant"]

# Appended to the system prompt when JSON is asked for without a schema on a protocol
# that has no JSON mode (Anthropic), or whose JSON mode requires the word "JSON" (OpenAI).
JSON_INSTRUCTION = "Respond with a single JSON object and nothing else."


@dataclass(frozen=True)
class ProviderSettings:
    """One catalog row: where a provider lives and how it authenticates."""

    provider_key: str
    provider_name: str
    base_url: str
    api_kind: ApiKind
    auth_method: AuthMethod
    auth_header: str | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    test_endpoint: str | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True)
class ModelInfo:
    """What a provider's model list says of one model (``None``: it did not say)."""

    id: str
    display_name: str | None = None
    context_window: int | None = None
    owned_by: str | None = None
    max_output_tokens: int | None = None
    deprecation_date: date | None = None
    # USD per million tokens, where the list carries prices (OpenRouter)
    input_price_per_mtok: Decimal | None = None
    output_price_per_mtok: Decimal | None = None
    cache_read_price_per_mtok: Decimal | None = None
    cache_write_price_per_mtok: Decimal | None = None


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: Sequence[ChatMessage]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    json_mode: bool = False
    json_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Usage:
    """Tokens of one call, counted the way providers bill them, whatever the wire says.

    ``input_tokens`` counts every input token, cache reads (``cached_tokens``) and cache
    writes (``cache_write_tokens``) included; ``output_tokens`` counts every output token,
    reasoning ("thinking") included (``reasoning_tokens`` is the part of it that was
    reasoning); ``total_tokens`` is ``input_tokens + output_tokens``. ``None``: not reported.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None

    @classmethod
    def of(
        cls,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        reasoning_tokens: int | None = None,
        cached_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> Usage:
        """A usage whose total is the sum of its parts (None when a part is unknown)."""
        total = (
            input_tokens + output_tokens
            if input_tokens is not None and output_tokens is not None
            else None
        )
        return cls(
            input_tokens,
            output_tokens,
            total,
            reasoning_tokens=reasoning_tokens,
            cached_tokens=cached_tokens,
            cache_write_tokens=cache_write_tokens,
        )


@dataclass(frozen=True)
class ChatResponse:
    """One answer. ``refusal`` is set when the model declined to answer (OpenAI's
    ``refusal``, Anthropic's ``stop_reason: "refusal"``, a Gemini safety block); ``text`` is
    then whatever else came, usually nothing."""

    text: str
    model: str
    finish_reason: str | None
    usage: Usage
    response_id: str | None = None
    latency_ms: float = 0.0
    refusal: str | None = None


@dataclass(frozen=True)
class ChatChunk:
    """A streaming delta; the last chunk of a stream carries ``finish_reason`` and ``usage``,
    and ``refusal`` (the whole refusal text) when the model declined to answer."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the one retry loop: attempts, total wall time, and delays."""

    max_attempts: int = 3
    max_total_s: float = 30.0
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 120.0


class ProviderClient(ABC):
    """What the services call; one implementation per wire protocol."""

    @abstractmethod
    def list_models(self) -> list[ModelInfo]:
        """Every chat-capable model the key can see, following pagination."""

    @abstractmethod
    def check_key(self) -> None:
        """The cheapest authenticated call; raises a typed error if the key is refused."""

    @abstractmethod
    def check_model(self, model: str) -> ModelInfo:
        """Confirm one model is reachable with this key; raises ``ModelNotFoundError``."""

    @abstractmethod
    def chat(self, request: ChatRequest) -> ChatResponse:
        """One non-streaming completion."""

    @abstractmethod
    def chat_stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        """Text deltas; the final chunk carries ``finish_reason`` and ``usage``."""

    @abstractmethod
    async def achat(self, request: ChatRequest) -> ChatResponse:
        """:meth:`chat`, awaited on the running event loop's shared connection pool."""

    @abstractmethod
    def achat_stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """:meth:`chat_stream`, awaited; closing it early closes the provider's response."""

    @abstractmethod
    def close(self) -> None:
        """Release the HTTP client if this object created it."""

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
