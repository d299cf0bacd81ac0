"""The fake provider's Gemini generateContent dialect (docs/providers.md §4)."""

from __future__ import annotations

from typing import Any

from tests.fakeprovider_wire import Call, FakeModel, Reply, pieces, reply_text, sse


def gem_error(code: int, status: str, message: str, details: list[Any] | None = None) -> Any:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    return {"error": {**error, "details": details}} if details else {"error": error}


GEM_ERRORS: dict[str, tuple[int, str, str]] = {
    "403": (403, "PERMISSION_DENIED", "The caller does not have permission"),
    "429": (429, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later."),
    "quota": (
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan.",
    ),
    "500": (500, "INTERNAL", "An internal error has occurred. Please retry."),
    "529": (529, "UNAVAILABLE", "The model is overloaded. Please try again later."),
}


class GeminiDialect:
    BAD_KEY = "API key not valid. Please pass a valid API key."

    @staticmethod
    def key(call: Call) -> str | None:
        return call.headers.get("x-goog-api-key") or call.params.get("key")

    def auth_error(self, call: Call) -> Reply | None:
        key, keys = self.key(call), call.fake.keys_for(call.route)
        if not key:
            message = (
                "Method doesn't allow unregistered callers (callers without established identity)."
            )
            return self.reply(call, 403, gem_error(403, "PERMISSION_DENIED", message))
        return self.error("401", call) if keys is not None and key not in keys else None

    @staticmethod
    def reply(call: Call, status: int, body: Any) -> Reply:
        # A failed stream still says text/event-stream but carries plain JSON (docs/providers.md §4.6).
        return Reply(
            status, body, content_type="text/event-stream" if call.streaming else "application/json"
        )

    def error(self, kind: str, call: Call, retry_after: float | None = None) -> Reply:
        if kind == "401":
            reason = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
            localized = {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": self.BAD_KEY,
            }
            return self.reply(
                call, 400, gem_error(400, "INVALID_ARGUMENT", self.BAD_KEY, [reason, localized])
            )
        if kind == "unknown_model":
            message = f"models/{call.model_id} is not found for API version v1beta, or is not supported for generateContent."
            return self.reply(call, 404, gem_error(404, "NOT_FOUND", message))
        status, grpc, message = GEM_ERRORS[kind]
        details: list[Any] = []
        if kind == "quota":
            quota_id = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": quota_id}],
                }
            )
        if kind == "429" and retry_after is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after:g}s",
                }
            )
        return self.reply(call, status, gem_error(status, grpc, message, details))

    @staticmethod
    def stream_error() -> bytes:
        error = gem_error(500, "INTERNAL", "An internal error has occurred.")
        return sse(error, sep=b"\r\n\r\n")

    def handle(self, call: Call) -> Reply:
        path, method = call.path, call.method
        if method == "GET" and path == "/models":
            return self.list(call)
        if method == "GET" and path.startswith("/models/") and ":" not in path:
            model = call.route.model(call.model_id)
            return Reply(200, self.model(model)) if model else self.error("unknown_model", call)
        if method == "POST" and path.endswith((":generateContent", ":streamGenerateContent")):
            return self.generate(call)
        return Reply(404, gem_error(404, "NOT_FOUND", "Requested entity was not found."))

    @staticmethod
    def model(model: FakeModel) -> dict[str, Any]:
        return {
            "name": f"models/{model.id}",
            "version": "001",
            "displayName": model.display_name or model.id,
            "inputTokenLimit": model.context_window,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": list(model.methods),
        }

    def list(self, call: Call) -> Reply:
        models = call.route.models
        size = call.fake.page(int(call.params.get("pageSize", 50)))
        start = int(call.params.get("pageToken") or 0)
        body: dict[str, Any] = {"models": [self.model(m) for m in models[start : start + size]]}
        if start + size < len(models):
            body["nextPageToken"] = str(start + size)
        return Reply(200, body)

    def generate(self, call: Call) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        model = call.route.model(call.model_id)
        if model is None:
            return self.error("unknown_model", call)
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        json_mode = config.get("responseMimeType") == "application/json"
        text = reply_text(call, model, json_mode=json_mode, schema=schema)
        fake = call.fake
        usage = {
            "promptTokenCount": fake.input_tokens,
            "candidatesTokenCount": fake.output_tokens,
            "totalTokenCount": fake.input_tokens + fake.output_tokens,
        }
        head = {"modelVersion": model.id, "responseId": "fake-response"}
        if not call.streaming:
            whole = {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
            return Reply(200, {"candidates": [whole], "usageMetadata": usage, **head})
        parts = pieces(text)
        prompt_only = {"promptTokenCount": fake.input_tokens, "totalTokenCount": fake.input_tokens}
        chunks = []
        for i, piece in enumerate(parts):
            candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}}
            last = i == len(parts) - 1
            if last:
                candidate["finishReason"] = "STOP"
            chunks.append(
                {"candidates": [candidate], "usageMetadata": usage if last else prompt_only, **head}
            )
        if call.params.get("alt") != "sse":
            return Reply(200, chunks)
        return Reply(200, events=[sse(c, sep=b"\r\n\r\n") for c in chunks])
