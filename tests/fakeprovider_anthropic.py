"""The fake provider's Anthropic messages dialect (docs/providers.md §3)."""

from __future__ import annotations

from typing import Any

from tests.fakeprovider_wire import Call, FakeModel, Reply, pieces, reply_text, retry_headers, sse


def ant_error(type_: str, message: str, **extra: Any) -> Any:
    return {
        "type": "error",
        "error": {"type": type_, "message": message, **extra},
        "request_id": "req_fake",
    }


ANT_ERRORS: dict[str, tuple[int, str, str]] = {
    "401": (401, "authentication_error", "invalid x-api-key"),
    "403": (
        403,
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    "429": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
    ),
    "quota": (
        429,
        "rate_limit_error",
        "You have reached your specified workspace API usage limits.",
    ),
    "500": (500, "api_error", "Internal server error"),
    "529": (529, "overloaded_error", "Overloaded"),
}


class AnthropicDialect:
    @staticmethod
    def key(call: Call) -> str | None:
        auth = call.headers.get("authorization", "")
        return call.headers.get("x-api-key") or (
            auth[7:] if auth.lower().startswith("bearer ") else None
        )

    def auth_error(self, call: Call) -> Reply | None:
        if "anthropic-version" not in call.headers:
            return Reply(
                400, ant_error("invalid_request_error", "anthropic-version: header is required")
            )
        key, keys = self.key(call), call.fake.keys_for(call.route)
        if not key:
            return Reply(401, ant_error("authentication_error", "x-api-key header is required"))
        return self.error("401", call) if keys is not None and key not in keys else None

    def error(self, kind: str, call: Call, retry_after: float | None = None) -> Reply:
        if kind == "unknown_model":
            return Reply(404, ant_error("not_found_error", f"model: {call.model_id}"))
        status, type_, message = ANT_ERRORS[kind]
        extra = (
            {"details": {"error_code": "enforced_spend_limit_reached"}} if kind == "quota" else {}
        )
        headers = {"request-id": "req_fake"}
        if kind == "401":
            headers["x-should-retry"] = "false"
        if kind == "429":
            headers.update(retry_headers(retry_after))
        return Reply(status, ant_error(type_, message, **extra), headers)

    @staticmethod
    def stream_error() -> bytes:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return sse(error, event="error")

    def handle(self, call: Call) -> Reply:
        if call.method == "GET" and call.path == "/models":
            return self.list(call)
        if call.method == "GET" and call.path.startswith("/models/"):
            model = call.route.model(call.model_id)
            return Reply(200, self.model(model)) if model else self.error("unknown_model", call)
        if call.method == "POST" and call.path == "/messages":
            return self.messages(call)
        return Reply(404, ant_error("not_found_error", "Not found"))

    @staticmethod
    def model(model: FakeModel) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model.id,
            "display_name": model.display_name or model.id,
            "created_at": "2025-09-29T00:00:00Z",
            "max_input_tokens": model.context_window,
            "max_tokens": 64_000,
        }

    def list(self, call: Call) -> Reply:
        models = call.route.models
        limit = call.fake.page(int(call.params.get("limit", 20)))
        ids = [m.id for m in models]
        after = call.params.get("after_id")
        start = ids.index(after) + 1 if after in ids else 0
        page = models[start : start + limit]
        return Reply(
            200,
            {
                "data": [self.model(m) for m in page],
                "has_more": start + limit < len(models),
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            },
        )

    def messages(self, call: Call) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        if not isinstance(body.get("max_tokens"), int):
            return Reply(400, ant_error("invalid_request_error", "max_tokens: Field required"))
        model = call.route.model(body.get("model"))
        if model is None:
            return self.error("unknown_model", call)
        last = (body.get("messages") or [{}])[-1]
        prefill = last.get("content") if last.get("role") == "assistant" else ""
        prefill = prefill if isinstance(prefill, str) else ""
        fmt = (body.get("output_config") or {}).get("format") or {}
        schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
        text = reply_text(call, model, json_mode=prefill.startswith("{"), schema=schema)
        text = text.removeprefix(prefill) if prefill else text
        fake = call.fake
        usage = {
            "input_tokens": fake.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model.id}
        if not body.get("stream"):
            content = [{"type": "text", "text": text}]
            return Reply(
                200,
                {
                    **message,
                    "content": content,
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": fake.output_tokens},
                },
            )
        start: dict[str, Any] = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        events = [
            sse({"type": "message_start", "message": start}, event="message_start"),
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                event="content_block_start",
            ),
            sse({"type": "ping"}, event="ping"),
        ]
        events += [
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                },
                event="content_block_delta",
            )
            for p in pieces(text)
        ]
        delta = {"stop_reason": "end_turn", "stop_sequence": None}
        events += [
            sse({"type": "content_block_stop", "index": 0}, event="content_block_stop"),
            sse(
                {
                    "type": "message_delta",
                    "delta": delta,
                    "usage": {"output_tokens": fake.output_tokens},
                },
                event="message_delta",
            ),
            sse(b'{"type":"message_stop"      }', event="message_stop"),
        ]
        return Reply(200, events=events)
