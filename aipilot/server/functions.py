"""``/functions/v1/*``: the seed's Edge Function contracts (ai-keys-manager, assist_flut,
ai-config-test), each through the same service functions as the CLI."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aipilot.server.common import context, handled, read_json, server_state, text_field
from aipilot.server.errors import HttpError, function_error
from aipilot.server.relay import unless_disconnected
from aipilot.services import documents
from aipilot.services.assist import assist
from aipilot.services.catalog.catalog import get_provider
from aipilot.services.config import config_test
from aipilot.services.keys import credentials, keys, sealing
from aipilot.services.runtime import Context

KEY_ACTIONS = ("set-key", "get-status", "test-key", "delete-key", "get-key")


def _set_key(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    provider = text_field(body, "provider")
    raw = body.get("apiKey")
    if not isinstance(raw, str):
        raise HttpError(400, "'apiKey' must be a string", code="bad_request")
    result = keys.set_key(ctx, str(provider), raw, test=body.get("test", True) is not False)
    return documents.set_key(result)


def _get_status(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return documents.key_status(keys.key_status(ctx, text_field(body, "provider", required=False)))


def _test_key(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return documents.key_test(keys.test_keys(ctx, [str(text_field(body, "provider"))])[0])


def _delete_key(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    provider = str(text_field(body, "provider"))
    return documents.delete_key(provider, keys.delete_key(ctx, provider))


def _get_key(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    provider = str(text_field(body, "provider"))
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        row = credentials.require(
            session, ctx.identity, get_provider(session, provider).provider_key
        )
        secret = sealing.open_row(row, sealing.master_keys())
    return documents.get_key(provider, secret)


def _internal_allowed(request: Request) -> bool:
    expected = server_state(request).config.internal_token
    given = request.headers.get("x-internal-token")
    if expected is None or given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


ACTIONS = {
    "set-key": _set_key,
    "get-status": _get_status,
    "test-key": _test_key,
    "delete-key": _delete_key,
    "get-key": _get_key,
}


@handled(function_error)
async def keys_manager(request: Request) -> Response:
    ctx = await context(request)
    body = await read_json(request)
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise HttpError(
            400, "unknown action", code="bad_action", hint="use one of " + ", ".join(KEY_ACTIONS)
        )
    if action == "get-key" and not _internal_allowed(request):
        raise HttpError(403, "get-key is for internal callers only", code="forbidden")
    return JSONResponse(await run_in_threadpool(ACTIONS[action], ctx, body))


def _number(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise HttpError(400, f"'{name}' must be a number", code="bad_request")
    return value


def assist_request(body: dict[str, Any]) -> assist.AssistRequest:
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise HttpError(400, "'messages' must be a list of {role, content}", code="bad_request")
    response_format = body.get("response_format")
    if response_format not in (None, "json", "text"):
        raise HttpError(400, "'response_format' must be \"json\" or omitted", code="bad_request")
    return assist.AssistRequest(
        messages=assist.messages_from(messages),
        module=text_field(body, "module_name", required=False) or "global",
        system=text_field(body, "system", required=False),
        max_tokens=_number(body, "max_tokens"),
        temperature=_number(body, "temperature"),
        json_mode=response_format == "json",
    )


@handled(function_error)
async def assist_flut(request: Request) -> Response:
    ctx = await context(request)
    request_ = assist_request(await read_json(request))
    async with server_state(request).inflight.slot():
        result = await unless_disconnected(request, lambda: assist.aask(ctx, request_))
    return JSONResponse(documents.assist(result))  # a refusal too: HTTP 200


@handled(function_error)
async def ai_config_test(request: Request) -> Response:
    ctx = await context(request)
    body = await read_json(request)
    module = text_field(body, "module", required=False) or "global"
    result = await run_in_threadpool(config_test.run, ctx, module=module)
    return JSONResponse(documents.config_test(result))


routes = [
    Route("/functions/v1/ai-keys-manager", keys_manager, methods=["POST"]),
    Route("/functions/v1/assist_flut", assist_flut, methods=["POST"]),
    Route("/functions/v1/ai-config-test", ai_config_test, methods=["POST"]),
]
