"""The replay fixtures are well-formed, sourced, and served byte for byte over real HTTP."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx
import pytest

from aipilot.providers.registry import client_for
from aipilot.providers.types import ChatMessage, ChatRequest, ProviderSettings
from tests.replay_server import (
    FIXTURES,
    ReplayServer,
    all_fixtures,
    fixture,
    fixture_bytes,
    load_fixture,
    sse_events,
)

FIXTURE_IDS = [f"{p}/{s}" for p, s in all_fixtures()]
FAKE_KEY = "replay-fixture-key-not-real"


@pytest.fixture(scope="module")
def server():
    with ReplayServer() as running:
        yield running


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=10) as client:
        yield client


def _split(name: str) -> tuple[str, str]:
    provider, scenario = name.split("/")
    return provider, scenario


def test_there_are_fixtures_for_every_provider():
    providers = {p for p, _ in all_fixtures()}
    assert providers == {
        "openai",
        "anthropic",
        "gemini",
        "mistral",
        "deepseek",
        "xai",
        "openrouter",
    }
    assert len(FIXTURE_IDS) >= 60


@pytest.mark.parametrize("name", FIXTURE_IDS)
def test_fixture_parses(name):
    provider, scenario = _split(name)
    recorded = load_fixture(provider, scenario)
    assert 200 <= recorded.status <= 599
    assert recorded.headers, "a fixture keeps its recorded headers"
    ctype = recorded.header("content-type")
    assert ctype, "every fixture says what its body is"
    if recorded.is_sse:
        events = list(sse_events(recorded.body))
        assert len(events) >= 2
        assert recorded.body.endswith((b"\n\n", b"\r\n\r\n")), "a stream ends on a blank line"
        datas = []
        for event in events:
            text = event.decode("utf-8")
            lines = [line for line in re.split(r"\r\n|\n", text) if line]
            assert lines, f"empty event in {name}"
            if all(line.startswith(":") for line in lines):
                continue  # a comment-only keep-alive (": OPENROUTER PROCESSING")
            data = [line[6:] for line in lines if line.startswith("data: ")]
            others = [line for line in lines if not line.startswith(("data: ", "event: ", ":"))]
            assert not others, f"unexpected SSE lines in {name}: {others}"
            assert len(data) == 1
            datas.append(data[0])
        for data in datas:
            if data != "[DONE]":
                assert isinstance(json.loads(data), dict)
        if provider in {"openai", "mistral", "deepseek", "openrouter"}:
            assert datas[-1] == "[DONE]"
    else:
        assert "json" in ctype
        json.loads(recorded.body)


@pytest.mark.parametrize("name", FIXTURE_IDS)
def test_fixture_holds_no_key(name):
    raw = (FIXTURES / f"{name}.http").read_bytes()
    for pattern in (
        rb"sk-[A-Za-z0-9]{20,}",
        rb"AIza[0-9A-Za-z_\-]{30,}",
        rb"sk-ant-",
        rb"xai-[A-Za-z0-9]{20,}",
    ):
        assert re.search(pattern, raw) is None


def test_sources_list_every_fixture_and_nothing_else():
    text = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([a-z]+/[a-z0-9_]+)\.http`", text))
    assert listed == set(FIXTURE_IDS)
    for line in text.splitlines():
        if line.startswith("- `") and ".http`" in line:
            rest = line.split("—", 1)[1] if "—" in line else ""
            assert rest.strip(), f"no source given: {line}"


def test_gitattributes_keeps_bytes():
    assert (FIXTURES / ".gitattributes").read_text().split() == ["*", "-text"]


@pytest.mark.parametrize(
    "name", [n for n in FIXTURE_IDS if n.startswith("gemini/") and "stream" in n]
)
def test_gemini_streams_use_crlf(name):
    body = fixture_bytes(*_split(name))
    assert b"\r\n\r\n" in body
    assert body.replace(b"\r\n", b"").count(b"\n") == 0, "no bare LF between Gemini events"
    assert body.startswith(b"data: {")


def test_lf_streams_stay_lf():
    for name in ("openai/chat_stream", "anthropic/chat_stream", "openrouter/chat_stream"):
        assert b"\r" not in fixture_bytes(*_split(name)), name


def test_anthropic_stream_keeps_ping_and_padding():
    body = fixture_bytes("anthropic", "chat_stream").decode()
    assert 'event: ping\ndata: {"type": "ping"}\n\n' in body
    assert re.search(r'"type":"message_stop" +}', body)


@pytest.mark.parametrize("name", FIXTURE_IDS)
def test_server_serves_fixture_byte_for_byte(server, http, name):
    provider, scenario = _split(name)
    status, headers, body = fixture(provider, scenario)
    seq = re.fullmatch(r"(.+)_page(\d+)", scenario)
    if seq:  # pages are reached through the sequence, not by their own name
        server.reset_counts()
        base = server.base_url(provider, seq.group(1))
        for _ in range(int(seq.group(2)) - 1):
            http.get(base + "/models")
    else:
        base = server.base_url(provider, scenario)
    response = http.get(base + "/models", headers={"x-test": "1"})
    assert response.status_code == status
    assert response.content == body
    assert response.headers["content-length"] == str(len(body))
    assert "transfer-encoding" not in response.headers
    assert "content-encoding" not in response.headers
    recorded_ctype = next(v for k, v in headers if k.lower() == "content-type")
    assert response.headers["content-type"] == recorded_ctype
    for key in ("request-id", "x-request-id", "retry-after", "x-should-retry"):
        recorded = [v for k, v in headers if k.lower() == key]
        assert response.headers.get_list(key) == recorded


def test_repeated_headers_are_all_sent(server, http):
    response = http.get(server.base_url("gemini", "chat_plain") + "/models/x:generateContent")
    assert response.headers.get_list("vary") == ["Origin", "X-Origin", "Referer"]


def test_base_url_scheme(server):
    root = server.root
    assert server.base_url("openai", "chat_plain") == f"{root}/r/openai/chat_plain/v1"
    assert server.base_url("openrouter", "models_list") == f"{root}/r/openrouter/models_list/v1"
    assert server.base_url("anthropic", "err_401") == f"{root}/r/anthropic/err_401"
    assert server.base_url("gemini", "chat_stream") == f"{root}/r/gemini/chat_stream/v1beta"
    assert server.base_url("anthropic", "models_list").endswith("/r/anthropic/models_list")
    with pytest.raises(KeyError):
        server.base_url("openai", "no_such_scenario")


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_model_list_pages_are_served_in_order(server, http, provider):
    server.reset_counts()
    base = server.base_url(provider, "models_list")
    got = [http.get(base + "/models").content for _ in range(3)]
    page1 = fixture_bytes(provider, "models_list_page1")
    page2 = fixture_bytes(provider, "models_list_page2")
    assert got == [page1, page2, page2]


def test_requests_are_recorded(server, http):
    before = len(server.requests)
    url = server.base_url("openai", "chat_plain") + "/chat/completions?api-version=1&x="
    http.post(url, json={"model": "m", "messages": []}, headers={"X-Trace": "abc"})
    (request,) = server.requests[before:]
    assert request.method == "POST"
    assert request.path == "/r/openai/chat_plain/v1/chat/completions"
    assert request.tail == "/v1/chat/completions"
    assert request.query == {"api-version": "1", "x": ""}
    assert request.headers["x-trace"] == "abc"
    assert request.body == {"model": "m", "messages": []}
    assert (request.provider, request.scenario) == ("openai", "chat_plain")


def test_unknown_paths_get_404(server, http):
    assert http.get(server.root + "/elsewhere").status_code == 404
    assert http.get(server.root + "/r/openai/no_such_scenario/v1/models").status_code == 404


def test_sse_is_written_per_event_and_the_connection_closed(server):
    """Read the raw socket: the body comes in more than one piece, then EOF."""
    body = fixture_bytes("openai", "chat_stream")
    path = "/r/openai/chat_stream/v1/chat/completions"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"
        sock.sendall(request.encode())
        received = b""
        reads = 0
        while chunk := sock.recv(65536):
            received += chunk
            reads += 1
    head, _, got = received.partition(b"\r\n\r\n")
    assert got == body
    assert b"\r\nConnection: close\r\n" in head + b"\r\n"
    assert b"Transfer-Encoding" not in head
    assert reads >= 1  # EOF reached: the server closed the connection


# -- the aipilot clients land on their scenario ------------------------------------------


@pytest.fixture
def owned_http():
    with httpx.Client(timeout=10) as client:
        yield client


def _client(http, server, provider, scenario, api_kind, auth_method="bearer"):
    settings = ProviderSettings(
        provider_key=provider,
        provider_name=provider,
        base_url=server.base_url(provider, scenario),
        api_kind=api_kind,
        auth_method=auth_method,
    )
    return client_for(settings, FAKE_KEY, http=http)


def _ask(model="replay-model"):
    return ChatRequest(model=model, messages=[ChatMessage(role="user", content="hi")])


def test_openai_client_reads_the_plain_fixture(server, owned_http):
    client = _client(owned_http, server, "openai", "chat_plain", "openai")
    response = client.chat(_ask())
    assert response.text.startswith("Replay fixtures keep")
    assert response.usage.input_tokens == 19
    assert server.requests[-1].tail == "/v1/chat/completions"


def test_openai_client_streams_the_stream_fixture(server, owned_http):
    client = _client(owned_http, server, "openai", "chat_stream", "openai")
    chunks = list(client.chat_stream(_ask()))
    assert "".join(c.text or "" for c in chunks) == "Replay streams end with usage."
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == 6


def test_anthropic_client_pages_through_the_model_list(server, owned_http):
    server.reset_counts()
    client = _client(owned_http, server, "anthropic", "models_list", "anthropic", "api_key_header")
    ids = [m.id for m in client.list_models()]
    assert ids == [
        "claude-sonnet-4-5-20250929",
        "claude-opus-4-1-20250805",
        "claude-3-7-sonnet-20250219",
        "claude-3-5-haiku-20241022",
    ]
    pages = [
        r for r in server.requests if r.scenario == "models_list" and r.provider == "anthropic"
    ]
    assert pages[-1].query.get("after_id") == "claude-opus-4-1-20250805"


def test_gemini_client_streams_the_crlf_fixture(server, owned_http):
    client = _client(owned_http, server, "gemini", "chat_stream", "gemini", "api_key_header")
    chunks = list(client.chat_stream(_ask("gemini-2.0-flash")))
    text = "".join(c.text or "" for c in chunks)
    assert text == "Replayed chunks arrive over SSE with CRLF between events."
    assert chunks[-1].finish_reason == "STOP"
    last = server.requests[-1]
    assert last.tail == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert last.query == {"alt": "sse"}
    assert last.headers["x-goog-api-key"] == FAKE_KEY


def test_fixture_files_are_binary_safe():
    """No fixture was rewritten with platform line endings: heads are CRLF, bodies exact."""
    for name in FIXTURE_IDS:
        raw = (FIXTURES / f"{name}.http").read_bytes()
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\n" not in head.replace(b"\r\n", b""), name
    assert Path(FIXTURES / "gemini" / "chat_stream.http").read_bytes().count(b"\r\n\r\n") >= 4
