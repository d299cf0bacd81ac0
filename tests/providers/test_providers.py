"""Provider clients against the real fake server: wire bodies, errors, retries, redaction."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aipilot.errors import ExitCode, NotConfiguredError, UsageError
from aipilot.providers import (
    BadResponseError,
    ChatMessage,
    ChatRequest,
    ModelNotFoundError,
    ProviderAuthError,
    ProviderClient,
    ProviderSettings,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    RetryPolicy,
    client_for,
)
from aipilot.providers.errors import classify_response
from aipilot.providers.http import iter_sse
from aipilot.providers.types import ApiKind, AuthMethod
from tests.fakeprovider import FakeProvider

KINDS: dict[str, tuple[ApiKind, AuthMethod]] = {
    "openai": ("openai", "bearer"),
    "mistral": ("openai", "bearer"),
    "xai": ("openai", "bearer"),
    "deepseek": ("openai", "bearer"),
    "openrouter": ("openai", "bearer"),
    "anthropic": ("anthropic", "api_key_header"),
    "gemini": ("gemini", "api_key_header"),
}
FIRST_MODEL = {
    "openai": "gpt-4o-mini",
    "mistral": "mistral-small-latest",
    "xai": "grok-3-mini",
    "deepseek": "deepseek-chat",
    "openrouter": "openai/gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}
PROTOCOLS = ["openai", "anthropic", "gemini"]
HI = [ChatMessage("user", "hi")]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.start() as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def connect(fake: FakeProvider, sleeps: Sleeps) -> Iterator[Any]:
    opened: list[ProviderClient] = []

    def make(name: str, key: str | None = "sk-test-key", **settings: Any) -> ProviderClient:
        retry = settings.pop("retry", RetryPolicy())
        kind, auth = KINDS[name]
        row = ProviderSettings(name, name.title(), fake.base_url(name), kind, auth, **settings)
        client = client_for(row, key, retry=retry, sleep=sleeps)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


# --- models and keys --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(KINDS))
def test_list_models(connect: Any, name: str) -> None:
    models = connect(name).list_models()
    assert models[0].id == FIRST_MODEL[name]
    assert all(not m.id.startswith("models/") for m in models)


def test_gemini_list_keeps_only_generate_content_models(connect: Any) -> None:
    ids = [m.id for m in connect("gemini").list_models()]
    assert ids == ["gemini-2.5-flash", "gemini-2.5-pro"]


@pytest.mark.parametrize(("name", "cursor"), [("anthropic", "after_id"), ("gemini", "pageToken")])
def test_list_models_follows_pagination(
    fake: FakeProvider, connect: Any, name: str, cursor: str
) -> None:
    fake.page_size = 1
    models = connect(name).list_models()
    assert len(models) >= 2
    pages = [r.params for r in fake.requests]
    assert len(pages) == len(fake.requests) >= 3
    assert cursor not in pages[0] and all(cursor in p for p in pages[1:])


@pytest.mark.parametrize(
    ("name", "path", "query", "header", "value"),
    [
        ("openai", "/openai/v1/models", "", "authorization", "Bearer sk-test-key"),
        ("anthropic", "/anthropic/v1/models", "limit=1", "x-api-key", "sk-test-key"),
        ("gemini", "/gemini/v1beta/models", "pageSize=1", "x-goog-api-key", "sk-test-key"),
    ],
)
def test_check_key_uses_the_cheapest_call_and_a_header(
    fake: FakeProvider, connect: Any, name: str, path: str, query: str, header: str, value: str
) -> None:
    connect(name).check_key()
    seen = fake.last_request
    assert (seen.method, seen.path, seen.query) == ("GET", path, query)
    assert seen.headers[header] == value
    if name == "anthropic":
        assert seen.headers["anthropic-version"] == "2023-06-01"


def test_check_key_uses_the_catalog_test_endpoint(fake: FakeProvider, connect: Any) -> None:
    connect("xai", test_endpoint="/models?limit=1").check_key()
    assert (fake.last_request.path, fake.last_request.query) == ("/p/xai/v1/models", "limit=1")


@pytest.mark.parametrize("name", list(KINDS))
def test_bad_key_is_an_auth_error_and_never_retried(
    fake: FakeProvider, connect: Any, sleeps: Sleeps, name: str
) -> None:
    fake.set_keys({"sk-the-right-key"})
    with pytest.raises(ProviderAuthError) as caught:
        connect(name).check_key()
    assert caught.value.status in (400, 401)  # Gemini and xAI say 400
    assert not caught.value.insufficient_scope
    assert f"aipilot keys set {name}" in (caught.value.hint or "")
    assert len(fake.requests) == 1 and sleeps == []


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini"])
def test_403_is_an_auth_error(fake: FakeProvider, connect: Any, name: str) -> None:
    fake.fail("403")
    with pytest.raises(ProviderAuthError) as caught:
        connect(name).check_key()
    assert caught.value.status == 403
    assert caught.value.insufficient_scope == (name != "gemini")


@pytest.mark.parametrize("name", list(KINDS))
def test_check_model(connect: Any, name: str) -> None:
    assert connect(name).check_model(FIRST_MODEL[name]).id == FIRST_MODEL[name]


@pytest.mark.parametrize("name", list(KINDS))
def test_check_model_unknown(connect: Any, name: str) -> None:
    with pytest.raises(ModelNotFoundError):
        connect(name).check_model("no-such-model")


@pytest.mark.parametrize("name", ["mistral", "deepseek", "openrouter", "xai"])
def test_chat_with_unknown_model_uses_each_vendors_error(connect: Any, name: str) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        connect(name).chat(ChatRequest("no-such-model", HI))
    assert caught.value.status in (400, 404)


def test_gemini_check_model_refuses_non_chat_models(connect: Any) -> None:
    with pytest.raises(ModelNotFoundError):
        connect("gemini").check_model("text-embedding-004")


# --- chat request bodies ----------------------------------------------------------------

FULL = ChatRequest("M", HI, system="be brief", max_tokens=50, temperature=0.2)


def _chat(fake: FakeProvider, connect: Any, name: str, request: ChatRequest) -> Any:
    response = connect(name).chat(
        ChatRequest(
            FIRST_MODEL[name],
            request.messages,
            system=request.system,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            json_mode=request.json_mode,
            json_schema=request.json_schema,
        )
    )
    return response, fake.last_request.json


def test_openai_chat_body(fake: FakeProvider, connect: Any) -> None:
    response, body = _chat(fake, connect, "openai", FULL)
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
        "max_completion_tokens": 50,
        "temperature": 0.2,
    }
    assert fake.last_request.path == "/openai/v1/chat/completions"
    assert (response.text, response.finish_reason, response.response_id) == (
        "pong",
        "stop",
        "chatcmpl-fake",
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 5)
    assert response.usage.total_tokens == 17 and response.latency_ms > 0


@pytest.mark.parametrize("name", ["mistral", "xai", "deepseek", "openrouter"])
def test_other_openai_compatible_vendors_get_max_tokens(
    fake: FakeProvider, connect: Any, name: str
) -> None:
    _, body = _chat(fake, connect, name, FULL)
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body


def test_anthropic_chat_body(fake: FakeProvider, connect: Any) -> None:
    response, body = _chat(fake, connect, "anthropic", FULL)
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
    }
    assert (response.text, response.finish_reason) == ("pong", "end_turn")
    _, default = _chat(fake, connect, "anthropic", ChatRequest("M", HI))
    assert default["max_tokens"] == 1024 and "system" not in default


def test_gemini_chat_body(fake: FakeProvider, connect: Any) -> None:
    turns = [*HI, ChatMessage("assistant", "pong"), ChatMessage("user", "again")]
    request = ChatRequest("M", turns, system="be brief", max_tokens=50, temperature=0.2)
    response, body = _chat(fake, connect, "gemini", request)
    assert body == {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "pong"}]},
            {"role": "user", "parts": [{"text": "again"}]},
        ],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.2},
    }
    assert fake.last_request.path == "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
    assert (response.text, response.finish_reason, response.usage.total_tokens) == (
        "pong",
        "STOP",
        17,
    )


def test_json_mode_bodies(fake: FakeProvider, connect: Any) -> None:
    plain = ChatRequest("M", HI, json_mode=True)
    openai, openai_body = _chat(fake, connect, "openai", plain)
    assert openai_body["response_format"] == {"type": "json_object"}
    assert "JSON" in openai_body["messages"][0]["content"]  # json_object needs the word
    anthropic, anthropic_body = _chat(fake, connect, "anthropic", plain)
    assert anthropic_body["messages"][-1] == {"role": "assistant", "content": "{"}
    assert "JSON" in anthropic_body["system"] and "output_config" not in anthropic_body
    gemini, gemini_body = _chat(fake, connect, "gemini", plain)
    assert gemini_body["generationConfig"] == {"responseMimeType": "application/json"}
    for response in (openai, anthropic, gemini):
        assert json.loads(response.text) == {"reply": "pong"}


def test_json_schema_bodies(fake: FakeProvider, connect: Any) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = ChatRequest("M", HI, json_mode=True, json_schema=schema)
    openai, openai_body = _chat(fake, connect, "openai", request)
    assert openai_body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }
    anthropic, anthropic_body = _chat(fake, connect, "anthropic", request)
    assert anthropic_body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert anthropic_body["messages"] == [{"role": "user", "content": "hi"}]
    gemini, gemini_body = _chat(fake, connect, "gemini", request)
    assert gemini_body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    for response in (openai, anthropic, gemini):
        assert json.loads(response.text) == {"city": "pong"}


# --- streaming --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*PROTOCOLS, "mistral", "deepseek"])
def test_stream_text_and_final_usage(fake: FakeProvider, connect: Any, name: str) -> None:
    fake.set_reply(FIRST_MODEL[name], "hello streaming world")
    chunks = list(connect(name).chat_stream(ChatRequest(FIRST_MODEL[name], HI)))
    assert "".join(c.text for c in chunks) == "hello streaming world"
    final = chunks[-1]
    assert final.finish_reason in ("stop", "end_turn", "STOP")
    assert final.usage is not None and final.usage.total_tokens == 17
    assert all(c.finish_reason is None for c in chunks[:-1])
    # the usage known before the end (Anthropic's message_start, Gemini's usageMetadata)
    # rides on earlier chunks, so a call cancelled midway is charged for it
    partial = [c.usage for c in chunks[:-1] if c.usage is not None]
    if name in ("anthropic", "gemini"):
        assert partial and partial[0].input_tokens == final.usage.input_tokens
    else:
        assert partial == []


def test_stream_request_shapes(fake: FakeProvider, connect: Any) -> None:
    list(connect("openai").chat_stream(ChatRequest("gpt-4o-mini", HI)))
    assert fake.last_request.json["stream_options"] == {"include_usage": True}
    list(connect("mistral").chat_stream(ChatRequest("mistral-small-latest", HI)))
    assert "stream_options" not in fake.last_request.json
    list(connect("anthropic").chat_stream(ChatRequest("claude-sonnet-4-5", HI)))
    assert fake.last_request.json["stream"] is True
    list(connect("gemini").chat_stream(ChatRequest("gemini-2.5-flash", HI)))
    assert fake.last_request.path.endswith("/models/gemini-2.5-flash:streamGenerateContent")
    assert fake.last_request.query == "alt=sse"


def test_anthropic_stream_puts_the_prefill_back(connect: Any) -> None:
    request = ChatRequest("claude-sonnet-4-5", HI, json_mode=True)
    text = "".join(c.text for c in connect("anthropic").chat_stream(request))
    assert json.loads(text) == {"reply": "pong"}


@pytest.mark.parametrize("name", PROTOCOLS)
def test_stream_error_status_is_checked_before_parsing(
    fake: FakeProvider, connect: Any, name: str
) -> None:
    fake.fail("401")
    with pytest.raises(ProviderAuthError):
        list(connect(name).chat_stream(ChatRequest(FIRST_MODEL[name], HI)))


@pytest.mark.parametrize("name", PROTOCOLS)
def test_stream_break_is_a_timeout_error_not_retried(
    fake: FakeProvider, connect: Any, sleeps: Sleeps, name: str
) -> None:
    fake.fail("stream_break")
    with pytest.raises(ProviderTimeoutError):
        list(connect(name).chat_stream(ChatRequest(FIRST_MODEL[name], HI)))
    assert len(fake.requests) == 1 and sleeps == []


@pytest.mark.parametrize("name", PROTOCOLS)
def test_in_band_stream_error_is_a_bad_response(
    fake: FakeProvider, connect: Any, name: str
) -> None:
    fake.fail("stream_error")
    with pytest.raises(BadResponseError, match="inside the response"):
        list(connect(name).chat_stream(ChatRequest(FIRST_MODEL[name], HI)))


def test_stream_retries_before_the_first_byte(
    fake: FakeProvider, connect: Any, sleeps: Sleeps
) -> None:
    fake.fail("500")
    chunks = list(connect("openai").chat_stream(ChatRequest("gpt-4o-mini", HI)))
    assert chunks[-1].finish_reason == "stop" and len(sleeps) == 1


# --- faults and the retry loop ----------------------------------------------------------


@pytest.mark.parametrize("name", PROTOCOLS)
def test_429_retry_after_is_honoured(
    fake: FakeProvider, connect: Any, sleeps: Sleeps, name: str
) -> None:
    fake.fail("429", retry_after=2)  # Gemini gets it as RetryInfo.retryDelay "2s"
    assert connect(name).chat(ChatRequest(FIRST_MODEL[name], HI)).text == "pong"
    assert sleeps == [2.0] and len(fake.requests) == 2


def test_429_gives_up_after_max_attempts(fake: FakeProvider, connect: Any, sleeps: Sleeps) -> None:
    fake.fail("429", times=5, retry_after=0.25)
    with pytest.raises(RateLimitedError) as caught:
        connect("openai").check_key()
    assert caught.value.retry_after == 0.25 and not caught.value.quota_exhausted
    assert sleeps == [0.25, 0.25] and len(fake.requests) == 3


@pytest.mark.parametrize("wait", [50.0, 500.0])
def test_retry_after_past_the_budget_raises_at_once(
    fake: FakeProvider, connect: Any, sleeps: Sleeps, wait: float
) -> None:
    fake.fail("429", retry_after=wait)
    client = connect("anthropic", retry=RetryPolicy(max_total_s=30, max_retry_after_s=120))
    with pytest.raises(RateLimitedError) as caught:
        client.check_key()
    assert caught.value.retry_after == wait
    assert sleeps == [] and len(fake.requests) == 1


def test_backoff_never_sleeps_past_the_total_budget(
    fake: FakeProvider, connect: Any, sleeps: Sleeps
) -> None:
    fake.fail("500", times=3)
    client = connect("openai", retry=RetryPolicy(max_attempts=5, max_total_s=0.6))
    with pytest.raises(ProviderUnavailableError):
        client.check_key()
    assert sum(sleeps) <= 0.6 and len(sleeps) == len(fake.requests) - 1


@pytest.mark.parametrize(("kind", "name"), [("500", "openai"), ("529", "anthropic")])
def test_server_errors_back_off_then_fail(
    fake: FakeProvider, connect: Any, sleeps: Sleeps, kind: str, name: str
) -> None:
    fake.fail(kind, times=3)
    with pytest.raises(ProviderUnavailableError) as caught:
        connect(name).check_key()
    assert caught.value.status == int(kind) and caught.value.exit_code == ExitCode.PROVIDER
    assert len(fake.requests) == 3 and len(sleeps) == 2
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("name", PROTOCOLS)
def test_quota_exhausted_is_not_retried(
    fake: FakeProvider, connect: Any, sleeps: Sleeps, name: str
) -> None:
    fake.fail("quota")
    with pytest.raises(RateLimitedError) as caught:
        connect(name).chat(ChatRequest(FIRST_MODEL[name], HI))
    assert caught.value.quota_exhausted and caught.value.exit_code == ExitCode.QUOTA
    assert sleeps == [] and len(fake.requests) == 1


@pytest.mark.parametrize("name", PROTOCOLS)
def test_dropped_connection_is_a_timeout_error(
    fake: FakeProvider, connect: Any, sleeps: Sleeps, name: str
) -> None:
    fake.fail("drop", times=3)
    with pytest.raises(ProviderTimeoutError) as caught:
        connect(name).check_key()
    assert isinstance(caught.value.__cause__, httpx.TransportError)
    assert len(fake.requests) == 3 and len(sleeps) == 2


def test_drop_then_success_recovers(fake: FakeProvider, connect: Any, sleeps: Sleeps) -> None:
    fake.fail("drop")
    assert connect("gemini").chat(ChatRequest("gemini-2.5-flash", HI)).text == "pong"
    assert len(sleeps) == 1


def test_slow_provider_times_out(fake: FakeProvider, connect: Any) -> None:
    fake.fail("slow", times=3, delay_s=0.5)
    client = connect("openai", timeout_s=0.1, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ProviderTimeoutError) as caught:
        client.check_key()
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_malformed_body_is_a_bad_response(
    fake: FakeProvider, connect: Any, sleeps: Sleeps, name: str
) -> None:
    fake.fail("malformed")
    with pytest.raises(BadResponseError):
        connect(name).chat(ChatRequest(FIRST_MODEL[name], HI))
    assert sleeps == []


def test_unreachable_host_is_a_timeout_error(sleeps: Sleeps) -> None:
    row = ProviderSettings("openai", "OpenAI", "http://127.0.0.1:9/v1", "openai", "bearer")
    client = client_for(row, "sk-x", sleep=sleeps, retry=RetryPolicy(max_attempts=2))
    with client, pytest.raises(ProviderTimeoutError, match="could not be reached"):
        client.check_key()
    assert len(sleeps) == 1


# --- secrets ----------------------------------------------------------------------------


def _everything_about(error: BaseException) -> str:
    parts = [str(error), repr(error), repr(error.args), str(getattr(error, "hint", ""))]
    parts += [repr(v) for v in vars(error).values()]
    return "\n".join(parts)


@pytest.mark.parametrize("name", ["openai", "xai", "deepseek", "anthropic", "gemini"])
def test_no_key_in_errors_or_urls(fake: FakeProvider, connect: Any, name: str) -> None:
    canary = f"sk-aipilot-CANARY-{uuid.uuid4()}"
    fake.set_keys({"sk-the-right-key"})
    client = connect(name, canary)
    with pytest.raises(ProviderAuthError) as caught:
        client.check_key()
    assert canary not in _everything_about(caught.value)
    assert canary not in repr(client)
    for kind in ("429", "500", "drop", "malformed"):
        fake.fail(kind, times=3)
        with pytest.raises(Exception) as other:
            client.chat(ChatRequest(FIRST_MODEL[name], HI))
        assert canary not in _everything_about(other.value)
    assert all(canary not in r.path and canary not in r.query for r in fake.requests)
    assert any(canary in " ".join(r.headers.values()) for r in fake.requests)


def test_echoed_key_is_redacted_even_without_a_known_shape(
    fake: FakeProvider, connect: Any
) -> None:
    secret = f"plainsecret{uuid.uuid4().hex}"
    fake.set_keys({"other"})
    with pytest.raises(ProviderAuthError) as caught:
        connect("openai", secret).check_key()
    assert "***" in str(caught.value) and secret not in _everything_about(caught.value)


def test_query_param_auth_is_refused(fake: FakeProvider) -> None:
    row = ProviderSettings("gemini", "Gemini", fake.base_url("gemini"), "gemini", "query_param")
    with pytest.raises(UsageError, match="URL"):
        client_for(row, "AIza-secret-key-1234567890")
    assert fake.requests == []


def test_missing_or_unsendable_key(fake: FakeProvider) -> None:
    row = ProviderSettings("openai", "OpenAI", fake.base_url("openai"), "openai", "bearer")
    with pytest.raises(NotConfiguredError):
        client_for(row, None)
    with pytest.raises(UsageError) as caught:
        client_for(row, "sk-abc\ndef-secret")
    assert "def-secret" not in str(caught.value)


def test_auth_none_sends_no_key(fake: FakeProvider) -> None:
    row = ProviderSettings("ollama", "Ollama", fake.base_url("ollama"), "openai", "none")
    with client_for(row, None) as client:
        assert [m.id for m in client.list_models()] == ["llama3.2:1b", "qwen3:0.6b"]
        assert client.check_model("qwen3:0.6b").id == "qwen3:0.6b"
    assert "authorization" not in fake.last_request.headers


def test_unknown_api_kind_is_refused() -> None:
    row = ProviderSettings("x", "X", "http://127.0.0.1:9", "cohere", "bearer")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="unknown API kind"):
        client_for(row, "k")


def test_a_callers_http_client_is_left_open(fake: FakeProvider) -> None:
    row = ProviderSettings("openai", "OpenAI", fake.base_url("openai"), "openai", "bearer")
    with httpx.Client() as http:
        with client_for(row, "sk-x", http=http) as client:
            client.check_key()
        assert not http.is_closed


def test_providers_import_no_database_vault_or_cli() -> None:
    code = (
        "import sys, aipilot.providers as p\n"
        "[getattr(p, n) for n in p.__all__]\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'keyring')"
        " or m.startswith(('aipilot.db', 'aipilot.vault', 'aipilot.services', 'aipilot.cli'))]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- pure pieces: classification and the SSE parser ------------------------------------


def _classify(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return classify_response("p", status, httpx.Headers(headers or {}), raw, ["sk-secret-value"])


def test_classification_of_recorded_bodies() -> None:
    vllm = _classify(401, {"error": "Unauthorized"})
    assert isinstance(vllm, ProviderAuthError) and "Unauthorized" in str(vllm)
    mistral_422 = _classify(422, {"object": "error", "message": {"detail": [{"msg": "Extra"}]}})
    assert type(mistral_422).__name__ == "ProviderCallError" and "Extra" in str(mistral_422)
    wrapped = _classify(404, [{"error": {"code": 404, "message": "models/x is not found"}}])
    assert isinstance(wrapped, ModelNotFoundError)
    spend = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "limit",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    assert _classify(429, spend).quota_exhausted
    assert _classify(402, {"error": {"message": "Insufficient Balance"}}).quota_exhausted
    route = _classify(404, {"code": "x", "error": "No handler found on route."})
    assert type(route).__name__ == "ProviderCallError" and "base URL" in (route.hint or "")
    echoed = _classify(401, {"error": {"message": "bad key sk-secret-value"}})
    assert "sk-secret-value" not in str(echoed)


def test_retry_after_sources() -> None:
    assert _classify(429, {}, {"retry-after-ms": "1500", "retry-after": "9"}).retry_after == 1.5
    assert _classify(503, {}, {"retry-after": "3"}).retry_after == 3.0
    past = _classify(429, {}, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert past.retry_after == 0.0
    assert _classify(429, {}, {"retry-after": "soon"}).retry_after is None
    assert _classify(401, {}, {"retry-after": "3"}).retry_after is None


def test_x_should_retry_overrides_the_status() -> None:
    assert not _classify(500, {}, {"x-should-retry": "false"}).retryable
    assert _classify(400, {}, {"x-should-retry": "true"}).retryable
    assert not _classify(401, {}, {"x-should-retry": "true"}).retryable


def test_sse_parser() -> None:
    raw = (
        ": OPENROUTER PROCESSING\r\n\r\n"
        'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
        "data: line one\ndata: line two\n\n"
        "data:no-space\n"
        "\n"
        "event: lonely\n\n"
        "data: [DONE]"
    )
    events = list(iter_sse(raw.splitlines()))
    assert [(e.event, e.data) for e in events] == [
        ("message_start", '{"a": 1}'),
        (None, "line one\nline two"),
        (None, "no-space"),
        (None, "[DONE]"),
    ]


def test_content_given_as_parts_is_joined() -> None:
    from aipilot.providers.openai_compat import _text

    thinking = {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]}
    assert _text([thinking, {"type": "text", "text": "Paris"}]) == "Paris"
    assert _text(None) == ""
