"""The Gemini generateContent protocol (docs/providers.md §4).

``base_url`` includes the API version (``…googleapis.com/v1beta``). The key goes in the
``x-goog-api-key`` header (the default header name for ``api_key_header``), never in
``?key=``. Model ids are used without the ``models/`` prefix; listing keeps only models
that support ``generateContent``. Streams use ``:streamGenerateContent?alt=sse``.
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
from aipilot.providers.model_lists import gemini_model_info
from aipilot.providers.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ModelInfo,
    ProviderSettings,
    Usage,
)

KEY_HEADER = "x-goog-api-key"
# finish reasons (and prompt block reasons) that mean the answer was refused for its content
BLOCKED = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "OTHER"})
CHAT_METHOD = "generateContent"
MAX_PAGES = 100


class GeminiClient(HttpProviderClient):
    @classmethod
    def adapt_settings(cls, settings: ProviderSettings) -> ProviderSettings:
        if settings.auth_method == "api_key_header" and not settings.auth_header:
            return dataclasses.replace(settings, auth_header=KEY_HEADER)
        return settings

    def list_models(self) -> list[ModelInfo]:
        models: list[ModelInfo] = []
        params: dict[str, str | int] = {"pageSize": 1000}
        for _ in range(MAX_PAGES):
            page = as_dict(self._call.get_json("/models", params))
            raw = page.get("models", [])
            if not isinstance(raw, list):
                raise BadResponseError(
                    f"{self.provider} sent a model list without `models`", provider=self.provider
                )
            models += [
                gemini_model_info(m)
                for m in map(as_dict, raw)
                if isinstance(m.get("name"), str) and _can_chat(m)
            ]
            token = page.get("nextPageToken")
            if not isinstance(token, str) or not token:
                break
            params = {"pageSize": 1000, "pageToken": token}
        return models

    def check_key(self) -> None:
        self._call.get_json(self.settings.test_endpoint or "/models?pageSize=1")

    def check_model(self, model: str) -> ModelInfo:
        try:
            found = as_dict(self._call.get_json(_model_path(model)))
        except ProviderCallError as exc:
            if exc.status == 404:
                raise self._missing_model(model) from exc
            raise
        if not isinstance(found.get("name"), str) or not _can_chat(found):
            raise self._missing_model(model)
        return gemini_model_info(found)

    def chat_exchange(self, request: ChatRequest, *, stream: bool) -> Exchange:
        if stream:
            path = f"{_model_path(request.model)}:streamGenerateContent"
            return Exchange(path, _body(request), params={"alt": "sse"})
        return Exchange(f"{_model_path(request.model)}:generateContent", _body(request))

    def chat_response(self, request: ChatRequest, body: Any, started: float) -> ChatResponse:
        body = as_dict(body)
        if body.get("error"):
            raise self.in_band_error(body["error"])
        text, finish = _text_and_finish(body)
        if finish is None and not text and "candidates" not in body:
            raise BadResponseError(
                f"{self.provider} sent a response without candidates", provider=self.provider
            )
        return ChatResponse(
            text=text,
            model=str(body.get("modelVersion") or request.model),
            finish_reason=finish,
            usage=_usage(body.get("usageMetadata")),
            response_id=body.get("responseId"),
            latency_ms=(time.perf_counter() - started) * 1000,
            refusal=self.refusal(finish, bool(text)),
        )

    def stream_reader(self, request: ChatRequest) -> StreamReader:
        return _Reader(self)

    def refusal(self, finish: str | None, has_text: bool) -> str | None:
        """A safety block (of the prompt, or of the answer) is the model declining."""
        if finish not in BLOCKED or (finish == "OTHER" and has_text):
            return None
        kept = " (after part of the answer)" if has_text else ""
        return f"{self.provider} blocked the answer ({finish}){kept}"


class _Reader(StreamReader):
    def __init__(self, client: GeminiClient) -> None:
        self._client = client
        self._finish: str | None = None
        self.usage: Usage | None = None
        self._seen_text = False

    def feed(self, event: SSEEvent) -> Iterator[ChatChunk]:
        chunk = as_dict(load_json(event.data, provider=self._client.provider))
        if chunk.get("error"):
            raise self._client.in_band_error(chunk["error"])
        text, chunk_finish = _text_and_finish(chunk)
        self._finish = chunk_finish or self._finish
        meta = chunk.get("usageMetadata")
        if meta:  # the counts so far: a call cancelled before the end is charged them
            self.usage = _usage(meta)
        if text or meta:
            self._seen_text = self._seen_text or bool(text)
            yield ChatChunk(text=text, usage=self.usage if meta else None)

    def end(self) -> ChatChunk:
        if self._finish is None:
            raise self._client.stream_ended_early()
        refusal = self._client.refusal(self._finish, self._seen_text)
        return ChatChunk(finish_reason=self._finish, usage=self.usage, refusal=refusal)


def _model_path(model: str) -> str:
    return "/models/" + quote(model.removeprefix("models/"), safe="")


def _can_chat(model: dict[str, Any]) -> bool:
    methods = model.get("supportedGenerationMethods")
    return not isinstance(methods, list) or CHAT_METHOD in methods


def _body(request: ChatRequest) -> dict[str, Any]:
    system = [request.system or "", *(m.content for m in request.messages if m.role == "system")]
    contents = [
        {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
        for m in request.messages
        if m.role != "system"
    ]
    body: dict[str, Any] = {"contents": contents}
    if any(system):
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(p for p in system if p)}]}
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.json_mode or request.json_schema is not None:
        config["responseMimeType"] = "application/json"
    if request.json_schema is not None:
        config["responseJsonSchema"] = dict(request.json_schema)
    if config:
        body["generationConfig"] = config
    return body


def _text_and_finish(body: dict[str, Any]) -> tuple[str, str | None]:
    """Text of the first candidate (thought parts skipped) and its finish reason.

    A blocked prompt has no candidates: its ``promptFeedback.blockReason`` is the finish.
    """
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        block = as_dict(body.get("promptFeedback")).get("blockReason")
        return "", str(block) if block else None
    first = as_dict(candidates[0])
    parts = as_dict(first.get("content")).get("parts")
    text = "".join(
        str(part.get("text", ""))
        for part in map(as_dict, parts if isinstance(parts, list) else [])
        if not part.get("thought")
    )
    finish = first.get("finishReason")
    return text, str(finish) if finish else None


def _usage(raw: Any) -> Usage:
    """Thinking (``thoughtsTokenCount``) is counted beside ``candidatesTokenCount`` and
    billed as output: the output is their sum. ``promptTokenCount`` includes the cache."""
    meta = as_dict(raw)
    candidates = as_int(meta.get("candidatesTokenCount"))
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    prompt = as_int(meta.get("promptTokenCount"))
    output = candidates
    if thoughts is not None:
        output = (candidates or 0) + thoughts
    elif candidates is None and prompt is not None and meta:
        output = 0  # a blocked prompt: nothing was generated
    return Usage.of(
        prompt,
        output,
        reasoning_tokens=thoughts,
        cached_tokens=as_int(meta.get("cachedContentTokenCount")),
    )
