"""The fake provider itself: routing, recording, keys, wire shapes, faults, concurrency."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fakeprovider import FakeProvider

OPENAI_AUTH = {"Authorization": "Bearer sk-test"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_AUTH = {"x-goog-api-key": "AIza-test"}


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.start() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def test_base_urls_follow_each_protocols_shape(fake: FakeProvider) -> None:
    assert fake.base_url("openai") == f"{fake.url}/openai/v1"
    assert fake.base_url("anthropic") == f"{fake.url}/anthropic"
    assert fake.base_url("gemini") == f"{fake.url}/gemini/v1beta"
    assert fake.base_url("mistral") == f"{fake.url}/p/mistral/v1"
    assert fake.add_provider("local", dialect="anthropic") == f"{fake.url}/p/local"


def test_each_dialect_lists_its_models(fake: FakeProvider, http: httpx.Client) -> None:
    openai = http.get(f"{fake.base_url('openai')}/models", headers=OPENAI_AUTH).json()
    anthropic = http.get(f"{fake.url}/anthropic/v1/models", headers=ANTHROPIC_AUTH).json()
    gemini = http.get(f"{fake.base_url('gemini')}/models", headers=GEMINI_AUTH).json()
    assert openai["object"] == "list" and openai["data"][0]["id"] == "gpt-4o-mini"
    assert anthropic["data"][0]["display_name"] == "Claude Sonnet 4.5"
    assert anthropic["has_more"] is False
    assert gemini["models"][0]["name"] == "models/gemini-2.5-flash"


def test_unknown_route_is_404(fake: FakeProvider, http: httpx.Client) -> None:
    assert http.get(f"{fake.url}/nowhere/v1/models").status_code == 404
    assert http.get(f"{fake.url}/openai/v2/models", headers=OPENAI_AUTH).status_code == 404


def test_requests_are_recorded_with_lowercase_headers(
    fake: FakeProvider, http: httpx.Client
) -> None:
    url = f"{fake.base_url('openai')}/chat/completions?x=1"
    http.post(url, headers=OPENAI_AUTH, json={"model": "gpt-4o-mini", "messages": []})
    seen = fake.last_request
    assert (seen.method, seen.path, seen.query) == ("POST", "/openai/v1/chat/completions", "x=1")
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.json == {"model": "gpt-4o-mini", "messages": []}
    assert seen.route == "openai"
    fake.clear()
    assert fake.requests == []


def test_configured_keys_are_enforced_per_prefix(fake: FakeProvider, http: httpx.Client) -> None:
    fake.set_keys({"sk-good"}, prefix="openai")
    url = f"{fake.base_url('openai')}/models"
    assert http.get(url, headers={"Authorization": "Bearer sk-good"}).status_code == 200
    bad = http.get(url, headers={"Authorization": "Bearer sk-bad-0123456789"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_api_key"
    assert "sk-bad-0123456789" in bad.json()["error"]["message"]  # OpenAI echoes the key
    assert http.get(url).status_code == 401
    other = f"{fake.base_url('mistral')}/models"
    assert http.get(other, headers={"Authorization": "Bearer sk-any"}).status_code == 200


def test_gemini_invalid_key_is_400_api_key_invalid(fake: FakeProvider, http: httpx.Client) -> None:
    fake.set_keys({"AIza-good"})
    response = http.get(f"{fake.base_url('gemini')}/models", headers=GEMINI_AUTH)
    error = response.json()["error"]
    assert response.status_code == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    missing = http.get(f"{fake.base_url('gemini')}/models")
    assert missing.status_code == 403


def test_xai_invalid_key_is_400_with_its_own_shape(fake: FakeProvider, http: httpx.Client) -> None:
    fake.set_keys({"good"})
    response = http.get(f"{fake.base_url('xai')}/models", headers=OPENAI_AUTH)
    assert response.status_code == 400
    assert response.json()["error"].startswith("Incorrect API key provided")


def test_anthropic_requires_the_version_header(fake: FakeProvider, http: httpx.Client) -> None:
    response = http.get(f"{fake.url}/anthropic/v1/models", headers={"x-api-key": "k"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_and_gemini_lists_paginate(fake: FakeProvider, http: httpx.Client) -> None:
    fake.page_size = 2
    first = http.get(f"{fake.url}/anthropic/v1/models", headers=ANTHROPIC_AUTH).json()
    assert first["has_more"] is True and first["last_id"] == "claude-haiku-4-5"
    params = {"after_id": first["last_id"]}
    url = f"{fake.url}/anthropic/v1/models"
    second = http.get(url, params=params, headers=ANTHROPIC_AUTH).json()
    assert [m["id"] for m in second["data"]] == ["claude-opus-4-1"]
    page = http.get(f"{fake.base_url('gemini')}/models", headers=GEMINI_AUTH).json()
    assert page["nextPageToken"] == "2"


def test_a_fault_applies_n_times_then_clears(fake: FakeProvider, http: httpx.Client) -> None:
    fake.fail("500", times=2, prefix="openai")
    url = f"{fake.base_url('openai')}/models"
    gemini = http.get(f"{fake.base_url('gemini')}/models", headers=GEMINI_AUTH)
    statuses = [http.get(url, headers=OPENAI_AUTH).status_code for _ in range(3)]
    assert gemini.status_code == 200
    assert statuses == [500, 500, 200]


def test_unknown_fault_kind_is_refused(fake: FakeProvider) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        fake.fail("418")


@pytest.mark.parametrize(
    ("name", "headers", "path"),
    [
        ("openai", OPENAI_AUTH, "/models"),
        ("anthropic", ANTHROPIC_AUTH, "/v1/models"),
    ],
)
def test_429_carries_retry_after_header(
    fake: FakeProvider, http: httpx.Client, name: str, headers: dict[str, str], path: str
) -> None:
    fake.fail("429", retry_after=7)
    response = http.get(fake.base_url(name) + path, headers=headers)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


def test_gemini_429_carries_retry_info(fake: FakeProvider, http: httpx.Client) -> None:
    fake.fail("429", retry_after=1.5)
    response = http.get(f"{fake.base_url('gemini')}/models", headers=GEMINI_AUTH)
    details = response.json()["error"]["details"]
    assert response.status_code == 429 and "retry-after" not in response.headers
    assert details[0]["retryDelay"] == "1.5s"


def test_anthropic_529_is_overloaded_error(fake: FakeProvider, http: httpx.Client) -> None:
    fake.fail("529")
    response = http.get(f"{fake.url}/anthropic/v1/models", headers=ANTHROPIC_AUTH)
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"


def test_malformed_is_200_with_invalid_json(fake: FakeProvider, http: httpx.Client) -> None:
    fake.fail("malformed")
    response = http.get(f"{fake.base_url('openai')}/models", headers=OPENAI_AUTH)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_drop_closes_without_a_response(fake: FakeProvider, http: httpx.Client) -> None:
    fake.fail("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(f"{fake.base_url('openai')}/models", headers=OPENAI_AUTH)
    assert http.get(f"{fake.base_url('openai')}/models", headers=OPENAI_AUTH).status_code == 200


def test_slow_delays_the_response(fake: FakeProvider, http: httpx.Client) -> None:
    fake.fail("slow", delay_s=0.2)
    started = time.perf_counter()
    http.get(f"{fake.base_url('openai')}/models", headers=OPENAI_AUTH)
    assert time.perf_counter() - started >= 0.2


def _stream_body(fake: FakeProvider, http: httpx.Client, name: str) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    request = {**body, "stream": True, "stream_options": {"include_usage": True}}
    url = f"{fake.base_url(name)}/chat/completions"
    with http.stream("POST", url, headers=OPENAI_AUTH, json=request) as response:
        return response.read()


def test_stream_break_ends_the_body_early(fake: FakeProvider, http: httpx.Client) -> None:
    fake.fail("stream_break")
    with pytest.raises(httpx.RemoteProtocolError):
        _stream_body(fake, http, "openai")


def test_openai_stream_ends_with_usage_chunk_and_done(
    fake: FakeProvider, http: httpx.Client
) -> None:
    events = _stream_body(fake, http, "openai").decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    usage_chunk = json.loads(events[-3].removeprefix("data: "))
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] == 17


def test_mistral_refuses_stream_options(fake: FakeProvider, http: httpx.Client) -> None:
    url = f"{fake.base_url('mistral')}/chat/completions"
    body = {"model": "mistral-small-latest", "messages": [], "stream": True}
    response = http.post(url, headers=OPENAI_AUTH, json={**body, "stream_options": {}})
    assert response.status_code == 422
    assert response.json()["message"]["detail"][0]["type"] == "extra_forbidden"


def test_anthropic_stream_event_order(fake: FakeProvider, http: httpx.Client) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [], "stream": True}
    url = f"{fake.url}/anthropic/v1/messages"
    raw = http.post(url, headers=ANTHROPIC_AUTH, json=body).text
    names = [line.split(": ", 1)[1] for line in raw.splitlines() if line.startswith("event:")]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert "content_block_delta" in names and "ping" in names


def test_gemini_stream_uses_crlf_separators(fake: FakeProvider, http: httpx.Client) -> None:
    url = f"{fake.base_url('gemini')}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    raw = http.post(url, headers=GEMINI_AUTH, json=body).content
    chunks = [c for c in raw.split(b"\r\n\r\n") if c]
    assert len(chunks) >= 2 and all(c.startswith(b"data: ") for c in chunks)
    last = json.loads(chunks[-1].removeprefix(b"data: "))
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert b"[DONE]" not in raw


def test_gemini_stream_error_is_json_with_sse_content_type(
    fake: FakeProvider, http: httpx.Client
) -> None:
    fake.fail("401")
    url = f"{fake.base_url('gemini')}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    response = http.post(url, headers=GEMINI_AUTH, json={"contents": []})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_json_modes_return_json_text(fake: FakeProvider, http: httpx.Client) -> None:
    url = f"{fake.base_url('openai')}/chat/completions"
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    body = {"model": "gpt-4o", "messages": [], "response_format": fmt}
    reply = http.post(url, headers=OPENAI_AUTH, json=body).json()
    assert json.loads(reply["choices"][0]["message"]["content"]) == {"city": "pong"}


def test_set_reply_and_usage(fake: FakeProvider, http: httpx.Client) -> None:
    fake.set_reply("gpt-4o", "hello there")
    fake.input_tokens, fake.output_tokens = 3, 4
    url = f"{fake.base_url('openai')}/chat/completions"
    reply = http.post(url, headers=OPENAI_AUTH, json={"model": "gpt-4o", "messages": []}).json()
    assert reply["choices"][0]["message"]["content"] == "hello there"
    assert reply["usage"]["total_tokens"] == 7


def test_serves_concurrent_requests(fake: FakeProvider) -> None:
    fake.delay_s = 1.5
    urls = [f"{fake.base_url(name)}/models" for name in ("openai", "mistral", "xai")] * 2

    def get(url: str) -> int:
        with httpx.Client(timeout=5) as client:
            return client.get(url, headers=OPENAI_AUTH).status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(get, urls))
    assert statuses == [200] * 6
    arrivals = sorted(r.received_at for r in fake.requests)
    assert arrivals[-1] - arrivals[0] < 1.5  # all arrived before the first could be answered
    assert time.perf_counter() - started < 6 * 1.5  # not served one after another
