"""``/v1/chat/completions`` and ``/v1/models``: OpenAI-compatible, over the active model.

A refusal is OpenAI's: ``message.refusal`` (a ``delta.refusal`` when streamed) with
``content`` null and ``finish_reason`` ``stop``.

Only the user's active model (module ``global``) is served: ``model`` must be ``active``
or the active model's key; any other name is a 400 ``model_not_found`` in OpenAI's error
shape (assist calls go through the one active configuration, its key, quotas and logs).
``/v1/models`` lists exactly those two ids (none while no model is active).

Both calls await the provider (:func:`aipilot.services.assist.assist.aask`, the stream's
``async for``); a client that hangs up cancels its call (:mod:`aipilot.server.relay`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aipilot.db.models import ProviderConfig
from aipilot.errors import AipilotError
from aipilot.server.common import SERVER_STOPPING, context, handled, read_json, server_state
from aipilot.server.errors import HttpError, openai_error, openai_error_body, status_of
from aipilot.server.relay import RelayResponse, unless_disconnected
from aipilot.services.assist import assist
from aipilot.services.assist.assist import (
    AssistRequest,
    AssistResult,
    AssistStream,
    Message,
    TokenUsage,
)
from aipilot.services.runtime import Context

ACTIVE = "active"
MODULE = "global"
FINISH = {"stop", "length", "content_filter", "tool_calls"}
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # [{"type": "text", "text": ...}, ...]
        parts = [p.get("text") for p in value if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) == len(value) and all(isinstance(p, str) for p in parts):
            return "".join(str(p) for p in parts)
    raise HttpError(400, "only text message content is supported", code="unsupported_content")


def _messages(items: Any) -> tuple[Message, ...]:
    if not isinstance(items, list) or not items:
        raise HttpError(400, "'messages' must be a non-empty list", code="bad_request")
    out = []
    for item in items:
        role = item.get("role") if isinstance(item, dict) else None
        if not isinstance(role, str) or role not in ROLES:
            shown = repr(role)[:40] if isinstance(role, str | None) else "of that type"
            raise HttpError(400, f"unsupported message role {shown}", code="bad_request")
        out.append(Message(ROLES[role], _content(item.get("content"))))
    return tuple(out)


def _format(body: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return False, None
    if kind == "json_object":
        return True, None
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    if kind == "json_schema" and isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        return True, spec["schema"]
    raise HttpError(400, "unsupported response_format", code="bad_request")


def chat_request(body: dict[str, Any]) -> AssistRequest:
    if body.get("tools") or body.get("functions"):
        raise HttpError(400, "tools are not supported", code="unsupported_parameter")
    if body.get("n") not in (None, 1):
        raise HttpError(400, "only n=1 is supported", code="unsupported_parameter")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    temperature = body.get("temperature")
    for name, value in (("max_tokens", max_tokens), ("temperature", temperature)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise HttpError(400, f"'{name}' must be a number", code="bad_request")
    json_mode, schema = _format(body)
    return AssistRequest(
        messages=_messages(body.get("messages")),
        module=MODULE,
        model=_named_model(body),
        max_tokens=int(max_tokens) if max_tokens is not None else None,
        temperature=temperature,
        json_mode=json_mode,
        json_schema=schema,
    )


def _named_model(body: dict[str, Any]) -> str | None:
    """The model the request names; None for ``active``. Checked against the active model
    by the assist path itself, from its prepared call (no extra read)."""
    model = body.get("model")
    if model == ACTIVE:
        return None
    if not isinstance(model, str) or not model:
        raise HttpError(400, "'model' is required", code="bad_request")
    return model


def _served(err: assist.ModelNotServedError) -> HttpError:
    return HttpError(400, err.message, code="model_not_found", hint=err.hint)


def _usage(usage: TokenUsage) -> dict[str, Any]:
    """OpenAI's usage: completion includes reasoning, prompt includes the cache."""
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens or 0},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
    }


def _finish(reason: str | None) -> str:
    """OpenAI's finish reasons; a refusal is "stop" with the ``refusal`` field set, as
    OpenAI sends it (its SDK's ``parse()`` reads it there)."""
    return reason if reason in FINISH else ("length" if reason == "max_tokens" else "stop")


async def _complete(ctx: Context, body: dict[str, Any]) -> AssistResult:
    try:
        return await assist.aask(ctx, chat_request(body))
    except assist.ModelNotServedError as err:
        raise _served(err) from None


def _completion(result: AssistResult) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": result.text if result.refusal is None or result.text else None,
                    "refusal": result.refusal,
                },
                "finish_reason": _finish(result.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": _usage(result.usage),
    }


async def _open_stream(ctx: Context, body: dict[str, Any]) -> AssistStream:
    """Prepared and its quota reserved before the 200: a limit reached is a 429 document."""
    try:
        return await AssistStream.aopen(ctx, chat_request(body))
    except assist.ModelNotServedError as err:
        raise _served(err) from None


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


# the in-band end of a stream that a stopping server cancelled (its row says cancelled)
SHUTTING_DOWN = (
    _sse(openai_error_body(HttpError(503, SERVER_STOPPING, code="shutting_down"), 503))
    + b"data: [DONE]\n\n"
)


async def _events(stream: AssistStream, *, include_usage: bool) -> AsyncGenerator[bytes, None]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": stream.model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _sse({**base, "choices": [choice]})

    # a text delta is this chunk with the text's JSON in the middle: built once, not per delta
    head, _, tail = chunk({"content": ""}).partition(b'"content": ""')
    head += b'"content": '

    yield chunk({"role": "assistant", "content": ""})
    try:
        async with aclosing(aiter(stream)) as texts:
            async for text in texts:
                yield head + json.dumps(text, ensure_ascii=False).encode() + tail
    except AipilotError as err:  # after the 200 went out: an in-band error, as OpenAI does
        yield _sse(openai_error_body(err, status_of(err)))
        yield b"data: [DONE]\n\n"
        return
    result = stream.result
    if result is not None and result.refusal is not None:
        yield chunk({"refusal": result.refusal})
    yield chunk({}, _finish(result.finish_reason if result else None))
    if include_usage and result is not None:
        yield _sse({**base, "choices": [], "usage": _usage(result.usage)})
    yield b"data: [DONE]\n\n"


@handled(openai_error)
async def chat_completions(request: Request) -> Response:
    ctx = await context(request)
    body = await read_json(request)
    inflight = server_state(request).inflight
    if not body.get("stream"):
        async with inflight.slot():
            result = await unless_disconnected(request, lambda: _complete(ctx, body))
        return JSONResponse(_completion(result))
    inflight.enter()
    try:
        stream = await _open_stream(ctx, body)
    except BaseException:
        inflight.leave()
        raise
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True

    async def closed() -> None:  # the relay ended, however: the row is written by now
        try:
            await stream.aclose("the client")
        finally:
            inflight.leave()

    return RelayResponse(
        _events(stream, include_usage=include_usage),
        on_close=closed,
        farewell=SHUTTING_DOWN,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _models(ctx: Context) -> list[dict[str, Any]]:
    """The ids a chat completion accepts for this user: ``active`` and the active model."""
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        active = session.execute(
            sa.select(ProviderConfig.model_name, ProviderConfig.provider_name).where(
                ProviderConfig.user_id == ctx.identity.user_id,
                ProviderConfig.module_name == MODULE,
                ProviderConfig.is_active,
            )
        ).first()
    if active is None:
        return []
    model, provider = active[0], str(active[1]).lower()
    return [
        {"id": ACTIVE, "object": "model", "created": 0, "owned_by": provider},
        {"id": model, "object": "model", "created": 0, "owned_by": provider},
    ]


@handled(openai_error)
async def models(request: Request) -> Response:
    ctx = await context(request)
    return JSONResponse({"object": "list", "data": await run_in_threadpool(_models, ctx)})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
]
