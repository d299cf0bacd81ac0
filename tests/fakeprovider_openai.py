"""The fake provider's OpenAI chat-completions dialect, with vendor flavours (docs/providers.md §2, §5–§8)."""

from __future__ import annotations

from typing import Any

from tests.fakeprovider_wire import Call, FakeModel, Reply, pieces, reply_text, retry_headers, sse


def oai_error(message: Any, type_: str | None, code: str | None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class OpenAIDialect:
    @staticmethod
    def key(call: Call) -> str | None:
        auth = call.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    def auth_error(self, call: Call) -> Reply | None:
        key, keys = self.key(call), call.fake.keys_for(call.route)
        if call.flavor == "ollama":  # a local server ignores keys
            return None
        if not key:
            message = "You didn't provide an API key. You need to provide your API key in an "
            return Reply(
                401, oai_error(message + "Authorization header.", "invalid_request_error", None)
            )
        return self.error("401", call) if keys is not None and key not in keys else None

    def error(self, kind: str, call: Call, retry_after: float | None = None) -> Reply:
        flavor, key, model = call.flavor, self.key(call) or "", call.model_id
        if kind == "401":
            if flavor == "xai":
                msg = f"Incorrect API key provided: {key}. You can obtain an API key from https://console.x.ai."
                return Reply(400, {"code": "Client specified an invalid argument", "error": msg})
            if flavor == "mistral":
                return Reply(401, {"message": "Unauthorized", "request_id": "fake-request"})
            if flavor == "openrouter":
                return Reply(401, {"error": {"message": "User not found.", "code": 401}})
            if flavor == "deepseek":
                msg = f"Authentication Fails, Your api key: {key} is invalid"
                return Reply(401, oai_error(msg, "authentication_error", "invalid_request_error"))
            msg = f"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."
            return Reply(401, oai_error(msg, "invalid_request_error", "invalid_api_key"))
        if kind == "401_code":  # a 401 whose error code echoes the key it got
            return Reply(401, oai_error("Invalid authentication.", "invalid_request_error", key))
        if kind == "unknown_model":
            if flavor == "mistral":
                body = {
                    "object": "error",
                    "message": f"Invalid model: {model}",
                    "type": "invalid_model",
                }
                return Reply(400, {**body, "param": None, "code": "1500"})
            if flavor == "xai":
                msg = f"The model {model} does not exist or your team does not have access to it."
                return Reply(404, {"code": "Some requested entity was not found", "error": msg})
            if flavor == "deepseek":
                return Reply(
                    400,
                    oai_error("Model Not Exist", "invalid_request_error", "invalid_request_error"),
                )
            if flavor == "openrouter":
                msg = f"{model} is not a valid model ID"
                return Reply(400, {"error": {"message": msg, "code": 400}, "user_id": "user_fake"})
            msg = f"The model `{model}` does not exist or you do not have access to it."
            return Reply(404, oai_error(msg, "invalid_request_error", "model_not_found"))
        simple = {
            "403": (
                403,
                "You have insufficient permissions for this operation. Missing scopes: model.request.",
                "invalid_request_error",
                None,
            ),
            "429": (
                429,
                "Rate limit reached for requests. Please try again in 1s.",
                "requests",
                "rate_limit_exceeded",
            ),
            "quota": (
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
            "500": (
                500,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
            "529": (
                529,
                "The engine is currently overloaded, please try again later",
                "server_error",
                None,
            ),
        }
        status, msg, type_, code = simple[kind]
        headers = retry_headers(retry_after) if kind == "429" else {}
        return Reply(status, oai_error(msg, type_, code), headers)

    @staticmethod
    def stream_error() -> bytes:
        """OpenRouter's in-band error chunk after a 200 (docs/providers.md §8.5)."""
        error = {"code": 400, "message": "Token limit reached"}
        return sse({"id": "gen-fake", "object": "chat.completion.chunk", "error": error})

    def handle(self, call: Call) -> Reply:
        path, flavor = call.path, call.flavor
        if call.method == "GET" and path == "/models":
            return Reply(
                200, {"object": "list", "data": [self.model(m, flavor) for m in call.route.models]}
            )
        if (
            call.method == "GET"
            and path.startswith("/models/")
            and flavor not in ("deepseek", "openrouter")
        ):
            model = call.route.model(call.model_id)
            return (
                Reply(200, self.model(model, flavor))
                if model
                else self.error("unknown_model", call)
            )
        if call.method == "POST" and path == "/chat/completions":
            return self.chat(call)
        if call.method == "GET" and path == "/key" and flavor == "openrouter":
            # OpenRouter's key check (docs/providers.md §8.2): the model list is public there
            data = {"label": "sk-or-v1-…fake", "limit": None, "usage": 0, "is_free_tier": False}
            return Reply(200, {"data": data})
        return Reply(404, oai_error("Not Found", "invalid_request_error", None))

    @staticmethod
    def model(model: FakeModel, flavor: str) -> dict[str, Any]:
        return {"id": model.id, "object": "model", "created": 1_700_000_000, "owned_by": flavor}

    def chat(self, call: Call) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        extra = sorted({"stream_options", "max_completion_tokens"} & body.keys())
        if call.flavor == "mistral" and extra:
            detail = [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", extra[0]],
                    "msg": "Extra inputs are not permitted",
                }
            ]
            return Reply(
                422,
                {
                    "object": "error",
                    "message": {"detail": detail},
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                },
            )
        model = call.route.model(body.get("model"))
        if model is None:
            return self.error("unknown_model", call)
        fmt = body.get("response_format") or {}
        schema = (
            (fmt.get("json_schema") or {}).get("schema")
            if fmt.get("type") == "json_schema"
            else None
        )
        text = reply_text(call, model, json_mode=fmt.get("type") == "json_object", schema=schema)
        fake = call.fake
        usage = {
            "prompt_tokens": fake.input_tokens,
            "completion_tokens": fake.output_tokens,
            "total_tokens": fake.input_tokens + fake.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        head = {"id": "chatcmpl-fake", "created": 1_700_000_000, "model": model.id}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text, "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            return Reply(
                200, {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        head = {**head, "object": "chat.completion.chunk"}
        usage_on_finish = call.flavor in ("mistral", "deepseek")
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces(text)]
        events = [
            sse({**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
            for d in deltas
        ]
        finish = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        events.append(sse({**finish, "usage": usage} if usage_on_finish else finish))
        if (body.get("stream_options") or {}).get("include_usage") and not usage_on_finish:
            events.append(sse({**head, "choices": [], "usage": usage}))
        return Reply(200, events=[*events, sse(b"[DONE]")])
