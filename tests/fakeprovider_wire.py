"""Shared pieces of the fake provider's wire dialects (see :mod:`tests.fakeprovider`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from tests.fakeprovider import FakeProvider

FAULT_KINDS = frozenset(
    {"401", "401_code", "403", "unknown_model", "429", "quota", "500", "529"}
    | {"slow", "malformed", "drop", "stream_break", "stream_error"}
)
FLAVORS = frozenset({"openai", "mistral", "xai", "deepseek", "openrouter", "ollama"})
VERSION = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}
BASE_SUFFIX = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}


@dataclass(frozen=True)
class FakeModel:
    id: str
    display_name: str | None = None
    reply: str | None = None
    context_window: int = 128_000
    methods: tuple[str, ...] = ("generateContent", "countTokens")


DEFAULT_MODELS: dict[str, list[FakeModel]] = {
    "openai": [FakeModel("gpt-4o-mini", "GPT-4o mini"), FakeModel("gpt-4o", "GPT-4o")],
    "mistral": [FakeModel("mistral-small-latest"), FakeModel("mistral-large-latest")],
    "xai": [FakeModel("grok-3-mini"), FakeModel("grok-4")],
    "deepseek": [FakeModel("deepseek-chat"), FakeModel("deepseek-reasoner")],
    "openrouter": [FakeModel("openai/gpt-4o-mini"), FakeModel("anthropic/claude-3.5-haiku")],
    "ollama": [FakeModel("llama3.2:1b"), FakeModel("qwen3:0.6b")],
    "anthropic": [
        FakeModel("claude-sonnet-4-5", "Claude Sonnet 4.5", context_window=200_000),
        FakeModel("claude-haiku-4-5", "Claude Haiku 4.5", context_window=200_000),
        FakeModel("claude-opus-4-1", "Claude Opus 4.1", context_window=200_000),
    ],
    "gemini": [
        FakeModel("gemini-2.5-flash", "Gemini 2.5 Flash", context_window=1_048_576),
        FakeModel("gemini-2.5-pro", "Gemini 2.5 Pro", context_window=1_048_576),
        FakeModel("text-embedding-004", "Text Embedding 004", methods=("embedContent",)),
    ],
}


@dataclass
class Route:
    name: str
    dialect: str
    flavor: str
    models: list[FakeModel]
    keys: set[str] | None = None

    def model(self, model_id: Any) -> FakeModel | None:
        return next((m for m in self.models if m.id == model_id), None)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or raw bytes
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None  # a streamed (chunked) SSE body
    content_type: str = "application/json"


@dataclass
class Call:
    fake: FakeProvider
    route: Route
    method: str
    path: str  # after the route root and API version, e.g. "/models"
    params: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def flavor(self) -> str:
        return self.route.flavor

    @property
    def model_id(self) -> str:
        body = self.body if isinstance(self.body, dict) else {}
        tail = self.path.rsplit("/", 1)[-1]
        for method in (":generateContent", ":streamGenerateContent"):
            tail = tail.removesuffix(method)
        return str(body.get("model") or unquote(tail))

    @property
    def streaming(self) -> bool:
        body = self.body if isinstance(self.body, dict) else {}
        return bool(body.get("stream")) or ":streamGenerateContent" in self.path


def retry_headers(retry_after: float | None) -> dict[str, str]:
    return {} if retry_after is None else {"retry-after": f"{retry_after:g}"}


def sample_json(schema: Any, text: str) -> Any:
    """A value matching a JSON schema (enough for tests), strings set to ``text``."""
    schema = schema if isinstance(schema, dict) else {}
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {"reply": {"type": "string"}}
        return {name: sample_json(sub, text) for name, sub in props.items()}
    if kind == "array":
        return [sample_json(schema.get("items"), text)]
    samples = {"integer": 1, "number": 1.5, "boolean": True, "null": None}
    return samples.get(str(kind), text)


def reply_text(call: Call, model: FakeModel, *, json_mode: bool, schema: Any = None) -> str:
    text = call.fake.replies.get(model.id) or model.reply or call.fake.default_reply
    if model.id in call.fake.verbatim:  # the model ignores JSON mode (to test validation)
        return text
    if schema is not None:
        return json.dumps(sample_json(schema, text))
    return json.dumps({"reply": text}) if json_mode else text


def pieces(text: str) -> list[str]:
    size = max(1, -(-len(text) // 3))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def sse(data: Any, *, event: str | None = None, sep: bytes = b"\n\n") -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    payload = data if isinstance(data, bytes) else json.dumps(data).encode()
    return head + b"data: " + payload + sep
