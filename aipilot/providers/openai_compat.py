"""The OpenAI chat-completions protocol: OpenAI, Mistral, xAI, DeepSeek, OpenRouter and
local servers (Ollama, vLLM, llama.cpp). Vendors differ only by data (docs/providers.md
§2, §5–§9):

- ``base_url`` already ends in the API version (``https://api.openai.com/v1``);
- ``max_completion_tokens`` for provider_key ``openai``, ``max_tokens`` for the others
  (Mistral rejects the former with 422, OpenRouter wants the latter);
- ``stream_options.include_usage`` is sent except to Mistral (422; it sends usage anyway);
- ``check_model`` tries ``GET /models/{id}`` and falls back to listing and comparing ids
  (and Mistral aliases) where the server has no such route (DeepSeek, vLLM, OpenRouter).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from aipilot.providers.errors import BadResponseError, ModelNotFoundError, ProviderCallError
from aipilot.providers.http import (
    Exchange,
    HttpProviderClient,
    SSEEvent,
    StreamReader,
    as_dict,
    as_int,
    load_json,
)
from aipilot.providers.model_lists import openai_model_info
from aipilot.providers.types import (
    JSON_INSTRUCTION,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ModelInfo,
    Usage,
)

NO_STREAM_OPTIONS = frozenset({"mistral"})
MAX_COMPLETION_TOKENS = frozenset({"openai"})


class OpenAICompatClient(HttpProviderClient):
    def list_models(self) -> list[ModelInfo]:
        # Mistral lists moderation and embedding models with capabilities.completion_chat false
        return [
            openai_model_info(raw)
            for raw in self._raw_models()
            if as_dict(raw.get("capabilities")).get("completion_chat") is not False
        ]

    def check_key(self) -> None:
        self._call.get_json(self.settings.test_endpoint or "/models")

    def check_model(self, model: str) -> ModelInfo:
        if "/" not in model:
            try:
                found = as_dict(self._call.get_json(f"/models/{quote(model, safe=':@')}"))
            except ModelNotFoundError as exc:
                if exc.code == "model_not_found":
                    raise
            except ProviderCallError as exc:
                if exc.status not in (400, 404, 405):
                    raise
            else:
                if isinstance(found.get("id"), str):
                    return openai_model_info(found)
        for raw in self._raw_models():
            if model == raw["id"] or model in (raw.get("aliases") or ()):
                return openai_model_info(raw)
        raise self._missing_model(model)

    def chat_exchange(self, request: ChatRequest, *, stream: bool) -> Exchange:
        return Exchange("/chat/completions", self._body(request, stream))

    def chat_response(self, request: ChatRequest, body: Any, started: float) -> ChatResponse:
        body = as_dict(body)
        if body.get("error"):
            raise self.in_band_error(body["error"])
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise BadResponseError(
                f"{self.provider} sent a chat response without choices", provider=self.provider
            )
        choice = as_dict(choices[0])
        message = as_dict(choice.get("message"))
        text, finish = _text(message.get("content")), choice.get("finish_reason")
        refused = message.get("refusal")
        return ChatResponse(
            text=text,
            model=str(body.get("model") or request.model),
            finish_reason=finish,
            usage=_usage(body.get("usage")),
            response_id=body.get("id"),
            latency_ms=(time.perf_counter() - started) * 1000,
            refusal=_refusal(refused if isinstance(refused, str) else "", bool(text), finish),
        )

    def stream_reader(self, request: ChatRequest) -> StreamReader:
        return _Reader(self)

    def _raw_models(self) -> list[dict[str, Any]]:
        data = as_dict(self._call.get_json("/models")).get("data")
        if not isinstance(data, list):
            raise BadResponseError(
                f"{self.provider} sent a model list without `data`", provider=self.provider
            )
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    def _body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        system = request.system
        if request.json_mode and request.json_schema is None and not _mentions_json(request):
            system = f"{system}\n\n{JSON_INSTRUCTION}" if system else JSON_INSTRUCTION
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        if request.max_tokens is not None:
            key = (
                "max_completion_tokens" if self.provider in MAX_COMPLETION_TOKENS else "max_tokens"
            )
            body[key] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.json_schema is not None:
            schema = {"name": "response", "schema": dict(request.json_schema)}
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif request.json_mode:
            body["response_format"] = {"type": "json_object"}
        if stream:
            body["stream"] = True
            if self.provider not in NO_STREAM_OPTIONS:
                body["stream_options"] = {"include_usage": True}
        return body


class _Reader(StreamReader):
    def __init__(self, client: OpenAICompatClient) -> None:
        self._client = client
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._seen_text, self._refused = False, ""

    def feed(self, event: SSEEvent) -> Iterator[ChatChunk]:
        if event.data.strip() == "[DONE]":
            self.finished = True
            return
        chunk = as_dict(load_json(event.data, provider=self._client.provider))
        if chunk.get("error"):
            raise self._client.in_band_error(chunk["error"])
        if chunk.get("usage"):
            self._usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = as_dict(as_dict(choice).get("delta"))
            text = _text(delta.get("content"))
            if text:
                self._seen_text = True
                yield ChatChunk(text=text)
            if isinstance(delta.get("refusal"), str):
                self._refused += delta["refusal"]
            self._finish = as_dict(choice).get("finish_reason") or self._finish

    def end(self) -> ChatChunk:
        if self._finish is None and not self.finished:
            raise self._client.stream_ended_early()
        refusal = _refusal(self._refused, self._seen_text, self._finish)
        return ChatChunk(finish_reason=self._finish, usage=self._usage, refusal=refusal)


def _mentions_json(request: ChatRequest) -> bool:
    texts = [request.system or "", *(m.content for m in request.messages)]
    return any("json" in text.lower() for text in texts)


def _text(content: Any) -> str:
    """Message content: a string, or a list of parts of which only text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


CONTENT_FILTERED = "the provider's content filter withheld the answer"


def _refusal(refused: str, has_text: bool, finish: Any) -> str | None:
    """The refusal text: OpenAI's ``refusal``; a content filter that left no text counts too."""
    if refused.strip():
        return refused
    if finish == "content_filter" and not has_text:
        return CONTENT_FILTERED
    return None


def _usage(raw: Any) -> Usage:
    """``completion_tokens`` includes reasoning for OpenAI, DeepSeek and Mistral; xAI counts
    reasoning beside it (its ``total_tokens`` is prompt + completion + reasoning): then the
    reasoning is added to the output, which is how it is billed."""
    usage = as_dict(raw)
    details = as_dict(usage.get("prompt_tokens_details"))
    cached = as_int(details.get("cached_tokens"))
    if cached is None:  # DeepSeek reports cache hits at the top level
        cached = as_int(usage.get("prompt_cache_hit_tokens"))
    prompt, completion = as_int(usage.get("prompt_tokens")), as_int(usage.get("completion_tokens"))
    reasoning = as_int(as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens"))
    total = as_int(usage.get("total_tokens"))
    output = completion
    outside = prompt is not None and completion is not None and reasoning
    if outside and total == (prompt or 0) + (completion or 0) + (reasoning or 0):
        output = (completion or 0) + (reasoning or 0)
    return Usage.of(
        prompt,
        output,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
        cache_write_tokens=as_int(details.get("cache_write_tokens")),
    )
