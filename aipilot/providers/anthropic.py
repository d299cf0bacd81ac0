"""The Anthropic messages protocol (docs/providers.md §3).

``base_url`` is the host root (``https://api.anthropic.com``; a trailing ``/v1`` is
tolerated). ``anthropic-version: 2023-06-01`` is added unless the catalog row sets it.
There is no JSON-object mode: a schema goes to ``output_config.format``; JSON without a
schema appends an instruction to the system prompt and prefills the assistant turn with
``{``, which is put back in front of the answer.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from aipilot.providers.errors import BadResponseError, ProviderCallError
from aipilot.providers.http import (
    Exchange,
    HttpProviderClient,
    SSEEvent,
    StreamReader,
    as_dict,
    as_int,
    load_json,
)
from aipilot.providers.model_lists import anthropic_model_info
from aipilot.providers.types import (
    JSON_INSTRUCTION,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ModelInfo,
    ProviderSettings,
    Usage,
)

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
MAX_PAGES = 100
PREFILL = "{"


class AnthropicClient(HttpProviderClient):
    @classmethod
    def adapt_settings(cls, settings: ProviderSettings) -> ProviderSettings:
        headers = dict(settings.extra_headers)
        if not any(name.lower() == "anthropic-version" for name in headers):
            headers["anthropic-version"] = ANTHROPIC_VERSION
        root = settings.base_url.rstrip("/").removesuffix("/v1")
        return dataclasses.replace(settings, base_url=root, extra_headers=headers)

    def list_models(self) -> list[ModelInfo]:
        models: list[ModelInfo] = []
        params: dict[str, str | int] = {"limit": 1000}
        for _ in range(MAX_PAGES):
            page = as_dict(self._call.get_json("/v1/models", params))
            data = page.get("data")
            if not isinstance(data, list):
                raise BadResponseError(
                    f"{self.provider} sent a model list without `data`", provider=self.provider
                )
            models += [
                anthropic_model_info(m) for m in data if isinstance(as_dict(m).get("id"), str)
            ]
            if not page.get("has_more") or not isinstance(page.get("last_id"), str):
                break
            params = {"limit": 1000, "after_id": page["last_id"]}
        return models

    def check_key(self) -> None:
        self._call.get_json(self.settings.test_endpoint or "/v1/models?limit=1")

    def check_model(self, model: str) -> ModelInfo:
        try:
            found = as_dict(self._call.get_json(f"/v1/models/{quote(model, safe='')}"))
        except ProviderCallError as exc:
            if exc.status == 404:
                raise self._missing_model(model) from exc
            raise
        if not isinstance(found.get("id"), str):
            raise BadResponseError(
                f"{self.provider} sent a model without id", provider=self.provider
            )
        return anthropic_model_info(found)

    def chat_exchange(self, request: ChatRequest, *, stream: bool) -> Exchange:
        return Exchange("/v1/messages", _body(request, stream=stream))

    def chat_response(self, request: ChatRequest, body: Any, started: float) -> ChatResponse:
        body = as_dict(body)
        if body.get("type") == "error":
            raise self.in_band_error(body.get("error"))
        content = body.get("content")
        if not isinstance(content, list):
            raise BadResponseError(
                f"{self.provider} sent a message without content", provider=self.provider
            )
        text = "".join(
            str(block.get("text", ""))
            for block in map(as_dict, content)
            if block.get("type") == "text"
        )
        finish = body.get("stop_reason")
        return ChatResponse(
            text=(PREFILL + text) if _prefills(request) else text,
            model=str(body.get("model") or request.model),
            finish_reason=finish,
            usage=_usage(body.get("usage")),
            response_id=body.get("id"),
            latency_ms=(time.perf_counter() - started) * 1000,
            refusal=self.refusal(finish, text, body.get("stop_details")),
        )

    def stream_reader(self, request: ChatRequest) -> StreamReader:
        return _Reader(self, prefill=_prefills(request))

    def refusal(self, finish: Any, text: str, details: Any) -> str | None:
        """``stop_reason: "refusal"``: Claude declined; ``stop_details.explanation`` (or the
        text before the stop) says why."""
        if finish != "refusal":
            return None
        explanation = as_dict(details).get("explanation")
        if isinstance(explanation, str) and explanation.strip():
            return explanation.strip()
        return text.strip() or f"the {self.provider} model declined to answer (stop_reason refusal)"


class _Reader(StreamReader):
    def __init__(self, client: AnthropicClient, *, prefill: bool) -> None:
        self._client, self._prefill = client, prefill
        self._usage: dict[str, Any] = {}
        self._finish: str | None = None
        self._text, self._details = "", None

    def feed(self, event: SSEEvent) -> Iterator[ChatChunk]:
        data = as_dict(load_json(event.data, provider=self._client.provider))
        kind = data.get("type") or event.event
        if kind == "error":
            raise self._client.in_band_error(data.get("error"))
        if kind == "message_start":
            self._usage.update(as_dict(as_dict(data.get("message")).get("usage")))
            # the input tokens, known now: a call cancelled before the end is charged them
            yield ChatChunk(text=PREFILL if self._prefill else "", usage=_usage(self._usage))
        elif kind == "content_block_delta":
            delta = as_dict(data.get("delta"))
            if delta.get("type") == "text_delta" and delta.get("text"):
                self._text += str(delta["text"])
                yield ChatChunk(text=str(delta["text"]))
        elif kind == "message_delta":
            delta = as_dict(data.get("delta"))
            self._finish = delta.get("stop_reason") or self._finish
            self._details = delta.get("stop_details") or self._details
            delta_usage = as_dict(data.get("usage")).items()
            self._usage.update({k: v for k, v in delta_usage if v is not None})
        elif kind == "message_stop":
            self.finished = True

    def end(self) -> ChatChunk:
        if not self.finished and self._finish is None:
            raise self._client.stream_ended_early()
        refusal = self._client.refusal(self._finish, self._text, self._details)
        return ChatChunk(finish_reason=self._finish, usage=_usage(self._usage), refusal=refusal)


def _prefills(request: ChatRequest) -> bool:
    return request.json_mode and request.json_schema is None


def _body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    system = [request.system or "", *(m.content for m in request.messages if m.role == "system")]
    messages = [
        {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
    ]
    if _prefills(request):
        system.append(JSON_INSTRUCTION)
        messages.append({"role": "assistant", "content": PREFILL})
    max_tokens = DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
    body: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens}
    if any(system):
        body["system"] = "\n\n".join(part for part in system if part)
    body["messages"] = messages
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.json_schema is not None:
        schema_format = {"type": "json_schema", "schema": dict(request.json_schema)}
        body["output_config"] = {"format": schema_format}
    if stream:
        body["stream"] = True
    return body


def _usage(raw: Any) -> Usage:
    """Input counts cache reads and writes too (Anthropic's ``input_tokens`` is only the
    uncached part); ``output_tokens`` already includes thinking, counted apart only in
    ``output_tokens_details.thinking_tokens`` where Anthropic sends it."""
    usage = as_dict(raw)
    fresh = as_int(usage.get("input_tokens"))
    cache_read = as_int(usage.get("cache_read_input_tokens"))
    cache_write = as_int(usage.get("cache_creation_input_tokens"))
    inputs = None if fresh is None else fresh + (cache_read or 0) + (cache_write or 0)
    thinking = as_int(as_dict(usage.get("output_tokens_details")).get("thinking_tokens"))
    return Usage.of(
        inputs,
        as_int(usage.get("output_tokens")),
        reasoning_tokens=thinking,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
