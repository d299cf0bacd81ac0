"""The provider clients against recorded-shaped traffic (tests/replay, origins in SOURCES.md).

Each fixture is served byte for byte on 127.0.0.1 by :class:`tests.replay_server.ReplayServer`
and read by the real client (``client_for``) over real httpx. Expected values are read from
the fixture's own body by the paths the provider documents, so a client that drops a field
(a refusal, thinking tokens, cache tokens) fails here. No database: the calls through the
CLI and ``aipilot serve`` are in ``test_replay_calls``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from aipilot.errors import ExitCode
from aipilot.providers import client_for
from aipilot.providers.errors import (
    ContextTooLongError,
    ModelNotFoundError,
    ProviderAuthError,
    ProviderCallError,
    ProviderUnavailableError,
    RateLimitedError,
)
from aipilot.providers.types import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ProviderSettings,
    RetryPolicy,
    Usage,
)
from tests.replay_server import ReplayServer, all_fixtures, load_fixture, sse_events

KEY = "sk-replay-not-a-real-key-0000"
KINDS = {"anthropic": "anthropic", "gemini": "gemini"}  # every other fixture provider: openai
NO_RETRY = RetryPolicy(max_attempts=1)


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def settings(replay: ReplayServer, provider: str, scenario: str) -> ProviderSettings:
    kind = KINDS.get(provider, "openai")
    return ProviderSettings(
        provider_key=provider,
        provider_name=provider,
        base_url=replay.base_url(provider, scenario),
        api_kind=kind,  # type: ignore[arg-type]
        auth_method="bearer" if kind == "openai" else "api_key_header",
        auth_header="x-api-key" if kind == "anthropic" else None,
        timeout_s=10,
    )


SCHEMA = {
    "type": "object",
    "properties": {
        "harbour": {"type": "string"},
        "river": {"type": "string"},
        "bridges": {"type": "integer"},
    },
    "required": ["harbour", "river", "bridges"],
}


def request_for(scenario: str) -> ChatRequest:
    """The request the fixture answers: JSON fixtures were answers to JSON requests (the
    Anthropic prefill one to a request whose last turn was the assistant's ``{``)."""
    messages = [ChatMessage("user", "hello")]
    if "json_schema" in scenario:
        return ChatRequest(model="replayed", messages=messages, json_schema=SCHEMA)
    json_mode = scenario.startswith("chat_json")
    return ChatRequest(model="replayed", messages=messages, json_mode=json_mode)


def call(replay: ReplayServer, provider: str, scenario: str) -> ChatResponse:
    """One chat as the fixture was recorded: streamed when the fixture is a stream."""
    request = request_for(scenario)
    with client_for(settings(replay, provider, scenario), KEY, retry=NO_RETRY) as client:
        if not load_fixture(provider, scenario).is_sse:
            return client.chat(request)
        text, last = "", None
        for chunk in client.chat_stream(request):
            text += chunk.text
            last = chunk
        assert last is not None and last.usage is not None
        return ChatResponse(text, "replayed", last.finish_reason, last.usage, refusal=last.refusal)


def body(provider: str, scenario: str) -> Any:
    return json.loads(load_fixture(provider, scenario).body)


def events(provider: str, scenario: str) -> list[Any]:
    datas = []
    for event in sse_events(load_fixture(provider, scenario).body):
        for line in event.decode().splitlines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                datas.append(json.loads(line[5:]))
    return datas


def chat_scenarios() -> list[tuple[str, str]]:
    return [(p, s) for p, s in all_fixtures() if s.startswith("chat_")]


# ---------------------------------------------------------------- every chat fixture
@pytest.mark.parametrize(("provider", "scenario"), chat_scenarios())
def test_every_recorded_chat_parses_and_totals_add_up(
    replay: ReplayServer, provider: str, scenario: str
) -> None:
    response = call(replay, provider, scenario)
    usage = response.usage
    assert usage.input_tokens is not None and usage.output_tokens is not None
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    if usage.reasoning_tokens is not None:
        assert usage.reasoning_tokens <= usage.output_tokens
    cached = (usage.cached_tokens or 0) + (usage.cache_write_tokens or 0)
    assert cached <= usage.input_tokens
    refused = any(word in scenario for word in ("refusal", "safety", "blocked"))
    assert (response.refusal is not None) == refused, response
    if not refused:
        assert response.text.strip()


# ---------------------------------------------------------------- text
def test_plain_texts_are_the_recorded_ones(replay: ReplayServer) -> None:
    assert (
        call(replay, "openai", "chat_plain").text
        == (body("openai", "chat_plain")["choices"][0]["message"]["content"])
    )
    anthropic = body("anthropic", "chat_plain")["content"]
    assert call(replay, "anthropic", "chat_plain").text == "".join(
        b["text"] for b in anthropic if b["type"] == "text"
    )
    gemini = body("gemini", "chat_plain")["candidates"][0]["content"]["parts"]
    assert call(replay, "gemini", "chat_plain").text == "".join(p["text"] for p in gemini)


@pytest.mark.parametrize(
    ("provider", "scenario"),
    [
        ("openai", "chat_stream"),
        ("mistral", "chat_stream"),
        ("openrouter", "chat_stream"),
        ("deepseek", "chat_stream"),
        ("xai", "chat_stream"),
    ],
)
def test_openai_style_streams_join_their_content_deltas(
    replay: ReplayServer, provider: str, scenario: str
) -> None:
    expected = "".join(
        choice["delta"].get("content") or ""
        for event in events(provider, scenario)
        for choice in event.get("choices") or []
    )
    assert expected and call(replay, provider, scenario).text == expected


def test_thinking_is_never_part_of_the_answer(replay: ReplayServer) -> None:
    thinking = [b for b in body("anthropic", "chat_thinking")["content"] if b["type"] == "thinking"]
    assert (
        thinking and thinking[0]["thinking"] not in call(replay, "anthropic", "chat_thinking").text
    )
    message = body("deepseek", "chat_reasoning")["choices"][0]["message"]
    answer = call(replay, "deepseek", "chat_reasoning").text
    assert answer == message["content"] and message["reasoning_content"] not in answer
    streamed = call(replay, "deepseek", "chat_reasoning_stream").text
    reasoning = "".join(
        c["delta"].get("reasoning_content") or ""
        for e in events("deepseek", "chat_reasoning_stream")
        for c in e["choices"]
    )
    assert reasoning and reasoning not in streamed
    parts = body("mistral", "chat_thinking")["choices"][0]["message"]["content"]
    assert call(replay, "mistral", "chat_thinking").text == "".join(
        p["text"] for p in parts if p["type"] == "text"
    )


def test_openrouter_reasoning_is_not_the_answer_but_is_counted(replay: ReplayServer) -> None:
    recorded = body("openrouter", "chat_reasoning")
    message = recorded["choices"][0]["message"]
    raw = recorded["usage"]
    response = call(replay, "openrouter", "chat_reasoning")
    assert response.text == message["content"]
    assert message["reasoning"] and message["reasoning"] not in response.text
    assert response.usage.reasoning_tokens == raw["completion_tokens_details"]["reasoning_tokens"]
    assert 0 < response.usage.reasoning_tokens < raw["completion_tokens"]
    assert response.usage.output_tokens == raw["completion_tokens"]  # reasoning is inside
    assert response.usage.total_tokens == raw["total_tokens"]


# ---------------------------------------------------------------- JSON answers
def recorded_text(provider: str, scenario: str) -> str:
    """The answer text of a non-streamed fixture, read by the provider's documented path."""
    recorded = body(provider, scenario)
    if provider == "anthropic":
        return "".join(b["text"] for b in recorded["content"] if b["type"] == "text")
    if provider == "gemini":
        parts = recorded["candidates"][0]["content"]["parts"]
        return "".join(p["text"] for p in parts if not p.get("thought"))
    return str(recorded["choices"][0]["message"]["content"])


@pytest.mark.parametrize(
    ("provider", "scenario"),
    [
        ("openai", "chat_json_object"),
        ("openai", "chat_json_schema"),
        ("anthropic", "chat_json_schema"),
        ("gemini", "chat_json"),
        ("gemini", "chat_json_schema"),
        ("mistral", "chat_json_object"),
        ("deepseek", "chat_json_object"),
    ],
)
def test_json_answers_are_the_recorded_json(
    replay: ReplayServer, provider: str, scenario: str
) -> None:
    recorded = recorded_text(provider, scenario)
    response = call(replay, provider, scenario)
    assert response.text == recorded
    assert json.loads(response.text) == json.loads(recorded)
    assert response.refusal is None


def test_anthropic_prefill_is_put_back_in_front_of_the_answer(replay: ReplayServer) -> None:
    recorded = recorded_text("anthropic", "chat_json_prefill")
    assert not recorded.lstrip().startswith("{")  # recorded after the prefill, without it
    before = len(replay.requests)
    response = call(replay, "anthropic", "chat_json_prefill")
    (sent,) = [r for r in replay.requests[before:] if r.scenario == "chat_json_prefill"]
    assert sent.body["messages"][-1] == {"role": "assistant", "content": "{"}
    assert response.text == "{" + recorded
    assert json.loads(response.text) == json.loads("{" + recorded)


def test_anthropic_schema_goes_to_output_config_without_prefill(replay: ReplayServer) -> None:
    before = len(replay.requests)
    response = call(replay, "anthropic", "chat_json_schema")
    (sent,) = [r for r in replay.requests[before:] if r.scenario == "chat_json_schema"]
    assert sent.body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert sent.body["messages"][-1]["role"] == "user"
    assert json.loads(response.text) == json.loads(recorded_text("anthropic", "chat_json_schema"))


# ---------------------------------------------------------------- refusals
def test_openai_refusals_plain_and_streamed(replay: ReplayServer) -> None:
    recorded = body("openai", "chat_refusal")["choices"][0]["message"]["refusal"]
    plain = call(replay, "openai", "chat_refusal")
    assert plain.refusal == recorded and plain.text == ""
    streamed = "".join(
        c["delta"].get("refusal") or ""
        for e in events("openai", "chat_refusal_stream")
        for c in e.get("choices") or []
    )
    assert call(replay, "openai", "chat_refusal_stream").refusal == streamed != ""


def test_anthropic_refusals_carry_the_explanation(replay: ReplayServer) -> None:
    explanation = body("anthropic", "chat_refusal")["stop_details"]["explanation"]
    assert call(replay, "anthropic", "chat_refusal").refusal == explanation
    streamed = call(replay, "anthropic", "chat_refusal_stream")
    assert streamed.finish_reason == "refusal" and streamed.refusal


@pytest.mark.parametrize("scenario", ["chat_safety", "chat_blocked"])
def test_gemini_safety_blocks_are_refusals(replay: ReplayServer, scenario: str) -> None:
    recorded = body("gemini", scenario)
    reason = (
        recorded["candidates"][0]["finishReason"]
        if recorded.get("candidates")
        else recorded["promptFeedback"]["blockReason"]
    )
    response = call(replay, "gemini", scenario)
    assert response.refusal is not None and reason in response.refusal
    assert response.usage.output_tokens == 0


def test_gemini_safety_stop_mid_stream_is_a_refusal(replay: ReplayServer) -> None:
    chunks = events("gemini", "chat_safety_stream")
    last = chunks[-1]["candidates"][0]
    assert last["finishReason"] == "SAFETY" and "content" not in last
    streamed = "".join(
        p.get("text", "")
        for e in chunks
        for c in e["candidates"]
        for p in c.get("content", {}).get("parts", [])
    )
    response = call(replay, "gemini", "chat_safety_stream")
    assert response.finish_reason == "SAFETY"
    assert response.refusal is not None and "SAFETY" in response.refusal
    assert response.text == streamed  # what arrived before the stop was already shown
    meta = chunks[-1]["usageMetadata"]
    assert response.usage.output_tokens == meta["candidatesTokenCount"]
    assert response.usage.total_tokens == meta["totalTokenCount"]


# ---------------------------------------------------------------- reasoning and cache tokens
def _tokens(usage: Usage) -> tuple[int | None, ...]:
    return (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.cached_tokens)


@pytest.mark.parametrize("scenario", ["chat_thinking", "chat_thinking_stream"])
def test_gemini_thoughts_are_billed_as_output(replay: ReplayServer, scenario: str) -> None:
    metas = (
        [body("gemini", scenario)]
        if scenario == "chat_thinking"
        else [e for e in events("gemini", scenario) if "usageMetadata" in e]
    )
    meta = metas[-1]["usageMetadata"]
    thoughts = meta["thoughtsTokenCount"]
    usage = call(replay, "gemini", scenario).usage
    assert _tokens(usage) == (
        meta["promptTokenCount"],
        meta["candidatesTokenCount"] + thoughts,
        thoughts,
        meta.get("cachedContentTokenCount"),
    )
    assert usage.total_tokens == meta["totalTokenCount"]  # Gemini's total counts thoughts too


def test_xai_reasoning_outside_completion_tokens_is_added(replay: ReplayServer) -> None:
    raw = body("xai", "chat_reasoning")["usage"]
    reasoning = raw["completion_tokens_details"]["reasoning_tokens"]
    assert raw["total_tokens"] == raw["prompt_tokens"] + raw["completion_tokens"] + reasoning
    usage = call(replay, "xai", "chat_reasoning").usage
    assert _tokens(usage) == (
        raw["prompt_tokens"],
        raw["completion_tokens"] + reasoning,
        reasoning,
        raw["prompt_tokens_details"]["cached_tokens"],
    )


@pytest.mark.parametrize(
    ("provider", "scenario"), [("openai", "chat_reasoning"), ("deepseek", "chat_reasoning")]
)
def test_reasoning_inside_completion_tokens_is_not_counted_twice(
    replay: ReplayServer, provider: str, scenario: str
) -> None:
    raw = body(provider, scenario)["usage"]
    usage = call(replay, provider, scenario).usage
    assert usage.output_tokens == raw["completion_tokens"]
    assert usage.reasoning_tokens == raw["completion_tokens_details"]["reasoning_tokens"] > 0
    cached = raw.get("prompt_tokens_details", {}).get("cached_tokens")
    assert usage.cached_tokens == (cached if cached is not None else raw["prompt_cache_hit_tokens"])


def test_anthropic_cache_reads_and_writes_are_input(replay: ReplayServer) -> None:
    raw = body("anthropic", "chat_cache")["usage"]
    usage = call(replay, "anthropic", "chat_cache").usage
    read, write = raw["cache_read_input_tokens"], raw["cache_creation_input_tokens"]
    assert read + write > 0
    assert usage.input_tokens == raw["input_tokens"] + read + write
    assert (usage.cached_tokens, usage.cache_write_tokens) == (read, write)
    assert usage.output_tokens == raw["output_tokens"]


# ---------------------------------------------------------------- errors
ERRORS: dict[tuple[str, str], tuple[type[ProviderCallError], str]] = {
    ("openai", "err_401"): (ProviderAuthError, "rejected the API key"),
    ("openai", "err_404_model"): (ModelNotFoundError, "does not know this model"),
    ("openai", "err_400_context"): (ContextTooLongError, "context window"),
    ("openai", "err_429_rate"): (RateLimitedError, "is rate limiting"),
    ("openai", "err_429_quota"): (RateLimitedError, "quota or balance is exhausted"),
    ("openai", "err_503"): (ProviderUnavailableError, "openai is"),
    ("anthropic", "err_401"): (ProviderAuthError, "rejected the API key"),
    ("anthropic", "err_404_model"): (ModelNotFoundError, "does not know this model"),
    ("anthropic", "err_400_context"): (ContextTooLongError, "context window"),
    ("anthropic", "err_429"): (RateLimitedError, "is rate limiting"),
    ("anthropic", "err_529"): (ProviderUnavailableError, "is overloaded"),
    ("gemini", "err_400_key"): (ProviderAuthError, "rejected the API key"),
    ("gemini", "err_404_model"): (ModelNotFoundError, "does not know this model"),
    ("gemini", "err_400_context"): (ContextTooLongError, "context window"),
    ("gemini", "err_429_rate"): (RateLimitedError, "is rate limiting"),
    ("gemini", "err_429_quota"): (RateLimitedError, "quota or balance is exhausted"),
    ("gemini", "err_503"): (ProviderUnavailableError, "is overloaded"),
    ("mistral", "err_401"): (ProviderAuthError, "rejected the API key"),
    ("mistral", "err_429"): (RateLimitedError, "mistral"),
    ("mistral", "err_400_context"): (ContextTooLongError, "context window"),
    ("mistral", "err_422"): (ProviderCallError, "refused the request"),
    ("deepseek", "err_401"): (ProviderAuthError, "authentication_error"),
    ("deepseek", "err_402"): (RateLimitedError, "quota or balance is exhausted"),
    ("deepseek", "err_400_context"): (ContextTooLongError, "context window"),
    ("deepseek", "err_429"): (RateLimitedError, "is rate limiting"),
    ("deepseek", "err_503"): (ProviderUnavailableError, "is overloaded"),
    ("xai", "err_400_key"): (ProviderAuthError, "rejected the API key"),
    ("xai", "err_404_model"): (ModelNotFoundError, "does not know this model"),
    # a team out of credits, not a busy moment: retrying cannot help
    ("xai", "err_429"): (RateLimitedError, "quota or balance is exhausted"),
    ("openrouter", "err_404_model"): (ModelNotFoundError, "does not know this model"),
    ("openrouter", "err_402"): (RateLimitedError, "quota or balance is exhausted"),
    ("openrouter", "err_429"): (RateLimitedError, "is rate limiting"),
    ("openrouter", "err_401"): (ProviderAuthError, "rejected the API key"),
}
QUOTA = {k for k, (_, words) in ERRORS.items() if "quota" in words}


def test_every_error_fixture_is_classified() -> None:
    assert sorted(ERRORS) == [(p, s) for p, s in all_fixtures() if s.startswith("err_")]


@pytest.mark.parametrize(("provider", "scenario"), sorted(ERRORS))
def test_recorded_errors_are_classified_by_status_then_words(
    replay: ReplayServer, provider: str, scenario: str
) -> None:
    expected, words = ERRORS[(provider, scenario)]
    with pytest.raises(ProviderCallError) as caught:
        call(replay, provider, scenario)
    err = caught.value
    assert type(err) is expected, err
    assert words in err.message, err.message
    assert err.status == load_fixture(provider, scenario).status
    assert "\n" not in err.message and KEY not in err.message
    quota = (provider, scenario) in QUOTA
    assert err.exit_code == (ExitCode.QUOTA if quota else ExitCode.PROVIDER)
    if isinstance(err, RateLimitedError):
        assert err.retryable is not quota


def test_gemini_per_minute_limit_keeps_its_retry_delay(replay: ReplayServer) -> None:
    with pytest.raises(RateLimitedError) as caught:
        call(replay, "gemini", "err_429_rate")
    details = body("gemini", "err_429_rate")["error"]["details"]
    delay = next(d["retryDelay"] for d in details if d["@type"].endswith("RetryInfo"))
    assert caught.value.retry_after == float(delay.rstrip("s"))
    assert not caught.value.quota_exhausted


def test_deepseek_shows_its_informative_error_type(replay: ReplayServer) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        call(replay, "deepseek", "err_401")
    recorded = body("deepseek", "err_401")["error"]
    assert recorded["code"] == "invalid_request_error"  # generic: the type says more
    assert caught.value.code == recorded["type"]


def test_mistral_validation_error_names_the_rejected_parameter(replay: ReplayServer) -> None:
    with pytest.raises(ProviderCallError) as caught:
        call(replay, "mistral", "err_422")
    detail = body("mistral", "err_422")["message"]["detail"][0]
    assert detail["loc"][-1] in caught.value.message
    assert detail["msg"] in caught.value.message
    assert not caught.value.retryable
