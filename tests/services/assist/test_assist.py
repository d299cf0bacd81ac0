"""`aipilot ask`, streaming, JSON mode, schema, faults, usage rows, the Python API.

Against the fake provider server for each wire protocol, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from aipilot.errors import ExitCode
from aipilot.providers.types import JSON_INSTRUCTION
from tests.conftest import MASTER_KEY, CliFn
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.providers_catalog import activate_directly, point_catalog_at, sql

# seeded provider → (the fake's route, a seeded catalog model with prices)
PROTOCOLS = {
    "openai": ("openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.60")),
    "anthropic": ("anthropic", "claude-sonnet-4-0", Decimal("3.00"), Decimal("15.00")),
    "google": ("gemini", "gemini-2.5-flash", Decimal("0.30"), Decimal("2.50")),
}


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        server.set_models("anthropic", ["claude-sonnet-4-0", "claude-3-5-haiku-latest"])
        yield server


@pytest.fixture
def key(cli: CliFn, fake: FakeProvider) -> str:
    secret = f"sk-aipilot-CANARY-{uuid.uuid4()}"
    for provider in PROTOCOLS:
        assert cli("keys", "set", provider, "--stdin", "--no-test", input=secret).exit_code == 0
    return secret


def chat_logs(database_url: str) -> list[dict[str, object]]:
    rows = sql(database_url, "SELECT * FROM ai_usage_logs WHERE kind = 'chat' ORDER BY created_at")
    return [dict(r._mapping) for r in rows]


@pytest.mark.parametrize("provider", sorted(PROTOCOLS))
def test_ask_plain_through_each_protocol(
    cli: CliFn, fake: FakeProvider, key: str, database_url: str, provider: str
) -> None:
    _route, model, in_price, out_price = PROTOCOLS[provider]
    activate_directly(database_url, provider, model)
    fake.set_reply(model, "Paris.")
    result = cli("ask", "What is the capital of France?")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Paris.\n"
    doc = cli("ask", "Again?", "--json").json()
    assert doc["text"] == "Paris." and doc["provider"] == provider and doc["model"] == model
    assert doc["usage"] == {
        "input_tokens": 12,
        "output_tokens": 5,
        "total_tokens": 17,
        "reasoning_tokens": doc["usage"]["reasoning_tokens"],  # None or 0, as the wire says
        "cache_read_tokens": doc["usage"]["cache_read_tokens"],
        "cache_write_tokens": doc["usage"]["cache_write_tokens"],
    }
    expected = ((12 * in_price + 5 * out_price) / Decimal(1_000_000)).quantize(Decimal("0.000001"))
    assert Decimal(str(doc["cost_usd"])) == expected
    assert find_leaks(result.stdout + result.stderr + json.dumps(doc), key) == []
    logs = chat_logs(database_url)
    assert len(logs) == 2
    row = logs[-1]
    assert (row["provider_key"], row["model_name"], row["outcome"]) == (provider, model, "ok")
    assert (row["input_tokens"], row["output_tokens"]) == (12, 5)
    assert Decimal(str(row["cost_usd"])) == expected
    assert row["request_content"] is None and row["response_content"] is None  # no opt-in
    assert isinstance(row["latency_ms"], int)


def test_golden_request_bodies(cli: CliFn, fake: FakeProvider, key: str, database_url: str) -> None:
    """System placement, max tokens and JSON-mode parameters per docs/providers.md §2.4, §3.4, §4.4."""
    bodies = {}
    for provider, (_route, model, _, _) in PROTOCOLS.items():
        activate_directly(database_url, provider, model, system_prompt="Be terse.")
        assert cli("ask", "hi", "--max-tokens", "64", "--json-mode", "--no-stream").exit_code == 0
        bodies[provider] = fake.last_request.json
    openai = bodies["openai"]
    # json_object mode needs the word JSON in the messages: the client adds one instruction
    assert openai["messages"][0] == {
        "role": "system",
        "content": f"Be terse.\n\n{JSON_INSTRUCTION}",
    }
    assert openai["messages"][-1] == {"role": "user", "content": "hi"}
    assert openai["max_completion_tokens"] == 64 and "max_tokens" not in openai
    assert openai["response_format"] == {"type": "json_object"}
    anthropic = bodies["anthropic"]
    assert anthropic["max_tokens"] == 64 and anthropic["system"].startswith("Be terse.")
    assert all(m["role"] != "system" for m in anthropic["messages"])
    assert anthropic["messages"][-1] == {"role": "assistant", "content": "{"}  # prefill
    google = bodies["google"]
    assert google["systemInstruction"]["parts"][0]["text"] == "Be terse."
    assert google["generationConfig"]["maxOutputTokens"] == 64
    assert google["generationConfig"]["responseMimeType"] == "application/json"
    assert google["contents"][-1]["role"] == "user"


@pytest.mark.parametrize("provider", sorted(PROTOCOLS))
def test_json_mode_and_schema(
    cli: CliFn, fake: FakeProvider, key: str, database_url: str, provider: str, tmp_path: Path
) -> None:
    activate_directly(database_url, provider, PROTOCOLS[provider][1])
    doc = cli("ask", "give json", "--json-mode", "--json").json()
    assert isinstance(doc["data"], dict)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    result = cli("ask", "city?", "--schema", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    assert set(result.json()["data"]) == {"city"}
    body = fake.last_request.json
    sent = json.dumps(body)
    assert '"city"' in sent  # the schema travelled with the request


def test_invalid_json_is_a_provider_error_and_the_raw_text_is_logged(
    cli: CliFn, fake: FakeProvider, key: str, database_url: str
) -> None:
    activate_directly(database_url, "openai", "gpt-4o-mini")
    fake.set_reply("gpt-4o-mini", "definitely not json", verbatim=True)
    result = cli("ask", "json please", "--json-mode")
    assert result.exit_code == ExitCode.PROVIDER and "valid JSON" in result.stderr
    row = chat_logs(database_url)[-1]
    assert row["outcome"] == "error" and row["error_code"] == "invalid_output"
    assert "definitely not json" in str(row["response_content"])


def test_schema_mismatch_and_bad_schema_file(
    cli: CliFn, fake: FakeProvider, key: str, database_url: str, tmp_path: Path
) -> None:
    activate_directly(database_url, "openai", "gpt-4o-mini")
    fake.set_reply("gpt-4o-mini", json.dumps({"town": "Paris"}), verbatim=True)
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "required": ["city"]}))
    mismatch = cli("ask", "x", "--schema", str(schema))
    assert (
        mismatch.exit_code == ExitCode.PROVIDER and "does not match the schema" in mismatch.stderr
    )
    assert chat_logs(database_url)[-1]["error_code"] == "invalid_output"
    sql(database_url, "DELETE FROM ai_usage_logs")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert cli("ask", "x", "--schema", str(bad)).exit_code == ExitCode.USAGE
    assert sql(database_url, "SELECT count(*) FROM ai_usage_logs WHERE kind='chat'")[0][0] == 0


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("401", ExitCode.PROVIDER),
        ("500", ExitCode.PROVIDER),
        ("malformed", ExitCode.PROVIDER),
        ("drop", ExitCode.PROVIDER),
        ("quota", ExitCode.QUOTA),
    ],
)
def test_faults_are_logged_and_leak_nothing(
    cli: CliFn, fake: FakeProvider, key: str, database_url: str, fault: str, code: int
) -> None:
    activate_directly(database_url, "openai", "gpt-4o-mini")
    fake.fail(fault, times=5, prefix="openai")
    result = cli("--debug", "ask", "hello", "--json")
    assert result.exit_code == code or (result.exception is not None), result.stderr
    text = result.stdout + result.stderr + (repr(result.exception) if result.exception else "")
    assert find_leaks(text, key) == []
    row = chat_logs(database_url)[-1]
    assert row["outcome"] == "error" and row["error_code"]
    assert find_leaks(str(row["error_message"]), key) == []


def test_rate_limit_is_retried_honouring_retry_after(
    cli: CliFn, fake: FakeProvider, key: str, database_url: str
) -> None:
    activate_directly(database_url, "openai", "gpt-4o-mini")
    fake.fail("429", times=1, prefix="openai", retry_after=0.2)
    started = time.monotonic()
    result = cli("ask", "hello")
    assert result.exit_code == 0 and result.stdout == "pong\n"
    assert time.monotonic() - started >= 0.2
    assert [r.path for r in fake.requests].count("/openai/v1/chat/completions") == 2
    assert len(chat_logs(database_url)) == 1  # one logical call, one row


def test_not_configured(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    no_model = cli("ask", "hi")
    assert no_model.exit_code == ExitCode.NOT_CONFIGURED and "model activate" in no_model.stderr
    activate_directly(database_url, "mistral", "mistral-small-latest")
    no_key = cli("ask", "hi")
    assert no_key.exit_code == ExitCode.NOT_CONFIGURED and "keys set mistral" in no_key.stderr
    assert cli("ask", "   ").exit_code == ExitCode.USAGE
    assert cli("ask", "hi", "--temperature", "7").exit_code == ExitCode.USAGE


def test_system_override_and_log_content(
    cli: CliFn, fake: FakeProvider, key: str, database_url: str
) -> None:
    activate_directly(database_url, "openai", "gpt-4o-mini", system_prompt="from the snapshot")
    cli("ask", "q1", "--system", "override", "--log-content")
    assert fake.last_request.json["messages"][0]["content"] == "override"
    row = chat_logs(database_url)[-1]
    assert json.loads(str(row["request_content"])) == ["q1"] and row["response_content"] == "pong"
    cli("ask", "q2")
    assert fake.last_request.json["messages"][0]["content"] == "from the snapshot"


# ------------------------------------------------------------------ streaming
@pytest.mark.parametrize("provider", sorted(PROTOCOLS))
def test_stream_through_each_protocol(
    cli: CliFn, fake: FakeProvider, key: str, database_url: str, provider: str
) -> None:
    from aipilot.config import Settings
    from aipilot.services.assist.assist import AssistRequest, AssistStream, user_message
    from aipilot.services.runtime import connect

    activate_directly(database_url, provider, PROTOCOLS[provider][1])
    fake.set_reply(PROTOCOLS[provider][1], "one two three four")
    os.environ["AIPILOT_MASTER_KEY"] = MASTER_KEY
    try:
        ctx = connect(Settings.resolve(db=database_url, user="alice"))
        stream = AssistStream(ctx, AssistRequest(messages=user_message("count")))
        deltas = list(stream)
        ctx.db.dispose()
    finally:
        del os.environ["AIPILOT_MASTER_KEY"]
    assert len(deltas) > 1 and "".join(deltas) == "one two three four"
    assert stream.result is not None and stream.result.usage.output_tokens == 5
    row = chat_logs(database_url)[-1]
    assert row["outcome"] == "ok" and row["ttft_ms"] is not None and row["output_tokens"] == 5


def test_broken_stream_reports_what_arrived_and_logs_failure(
    cli: CliFn, fake: FakeProvider, key: str, database_url: str
) -> None:
    from aipilot.config import Settings
    from aipilot.errors import AipilotError
    from aipilot.services.assist.assist import AssistRequest, AssistStream, user_message
    from aipilot.services.runtime import connect

    activate_directly(database_url, "openai", "gpt-4o-mini")
    fake.set_reply("gpt-4o-mini", "alpha beta gamma delta epsilon")
    fake.fail("stream_break", prefix="openai")
    os.environ["AIPILOT_MASTER_KEY"] = MASTER_KEY
    try:
        ctx = connect(Settings.resolve(db=database_url, user="alice"))
        stream = AssistStream(ctx, AssistRequest(messages=user_message("go")))
        with pytest.raises(AipilotError):
            for _ in stream:
                pass
        # cancelled: closing the iterator early is logged as a cancellation
        early = AssistStream(ctx, AssistRequest(messages=user_message("go")))
        iterator = iter(early)
        next(iterator)
        iterator.close()  # type: ignore[attr-defined]
        ctx.db.dispose()
    finally:
        del os.environ["AIPILOT_MASTER_KEY"]
    assert stream.text and stream.text != "alpha beta gamma delta epsilon"
    outcomes = [r["outcome"] for r in chat_logs(database_url)]
    assert outcomes == ["error", "cancelled"]


def test_ask_streams_on_a_terminal(fake: FakeProvider, key: str, database_url: str) -> None:
    """The real CLI on a pseudo-terminal asks for a stream and prints the deltas."""
    from tests.terminal import run_on_terminal

    activate_directly(database_url, "openai", "gpt-4o-mini")
    fake.set_reply("gpt-4o-mini", "streamed words arrive here")
    env = {
        "AIPILOT_DATABASE_URL": database_url,
        "AIPILOT_USER": "alice",
        "AIPILOT_MASTER_KEY": MASTER_KEY,
    }
    code, screen = run_on_terminal(["ask", "go"], env=env)
    assert code == 0, screen
    assert "streamed words arrive here" in screen
    assert fake.last_request.json["stream"] is True
    assert chat_logs(database_url)[-1]["ttft_ms"] is not None


# ------------------------------------------------------------------ the Python API
def test_python_api(
    fake: FakeProvider, key: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aipilot

    activate_directly(database_url, "openai", "gpt-4o-mini")
    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    answer = aipilot.assist("hello", db=database_url, user="alice")
    assert answer.text == "pong" and answer.provider == "openai" and answer.usage.input_tokens == 12
    with aipilot.Assistant(db=database_url, user="alice") as ai:
        data = ai.ask(
            [{"role": "system", "content": "json"}, {"role": "user", "content": "x"}],
            json_mode=True,
        ).data
    assert data == {"reply": "pong"}
    assert len(chat_logs(database_url)) == 2
