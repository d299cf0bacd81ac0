"""Real provider traffic, end to end, through `aipilot ask` and `aipilot serve`.

Each test points a seeded provider's catalog row at one recorded-shaped fixture served by
tests/replay_server.py on 127.0.0.1, stores an obviously fake key, activates a seeded model
with catalog prices, and checks what a user sees (text, exit code, stderr, --json), what the
usage log keeps (tokens, reasoning and cache tokens, error code) and the cost: every expected
number is read from the fixture's body (tests/replay_support.py) and from the ai_models row,
never copied from aipilot's output. On SQLite and PostgreSQL.

Retried errors (429 rate limits, 503, 529) are answered by the same fixture on every attempt;
the tests check the final outcome. Anthropic's 429 (``retry-after: 17``) and Gemini's rate 429
(``RetryInfo.retryDelay`` 21s) make aipilot wait once before giving up: ~17 s and ~21 s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import CliFn
from tests.providers_catalog import activate_directly, sql
from tests.replay_server import ReplayServer, all_fixtures, load_fixture
from tests.replay_support import (
    PROVIDERS,
    Billed,
    billed,
    body,
    events,
    point,
    prices,
    text,
    usage_rows,
)
from tests.serve_support import ServeProcess

ASSIST = "/functions/v1/assist_flut"
HELLO = [{"role": "user", "content": "hello"}]

Use = Callable[..., tuple[str, str]]
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def use(cli: CliFn, database_url: str, replay: ReplayServer) -> Use:
    """use(provider, scenario, model=None): point, store a fake key, activate; → (key, model)."""
    keyed: set[str] = set()

    def setup(provider: str, scenario: str, model: str | None = None) -> tuple[str, str]:
        seeded, default = PROVIDERS[provider]
        point(replay, database_url, provider, scenario)
        if seeded not in keyed:
            fake = f"fake-{seeded}-replay-key-0000"
            stored = cli("keys", "set", seeded, "--stdin", "--no-test", input=fake)
            assert stored.exit_code == 0, stored.stderr
            keyed.add(seeded)
        activate_directly(database_url, seeded, model or default)
        return seeded, model or default

    return setup


@pytest.fixture
def serve(database_url: str, tmp_path: Path, cli: CliFn) -> Iterator[tuple[ServeProcess, str]]:
    """A running `aipilot serve` and a token of alice's; stopped gracefully afterwards."""
    srv = ServeProcess(database_url, tmp_path / "serve").start()
    created = cli("tokens", "create")
    assert created.exit_code == 0, created.stderr
    yield srv, created.stdout.strip()
    assert srv.stop() == 0, srv.output()


def flat(stderr: str) -> str:
    return " ".join(stderr.split())


def usage_doc(doc: dict[str, Any], tokens: Billed) -> None:
    """--json / assist_flut usage: the fixture's billed tokens, and total = input + output."""
    usage = doc["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (tokens.input, tokens.output)
    assert usage["total_tokens"] == tokens.total == usage["input_tokens"] + usage["output_tokens"]
    if tokens.reasoning:
        assert usage["reasoning_tokens"] == tokens.reasoning
    if tokens.cache_read:
        assert usage["cache_read_tokens"] == tokens.cache_read
    if tokens.cache_write:
        assert usage["cache_write_tokens"] == tokens.cache_write


def logged(row: dict[str, Any], tokens: Billed, cost: Decimal) -> None:
    assert (row["input_tokens"], row["output_tokens"]) == (tokens.input, tokens.output)
    assert row["reasoning_tokens"] == tokens.reasoning or (
        not tokens.reasoning and row["reasoning_tokens"] in (None, 0)
    )
    assert (row["cache_read_tokens"] or 0) == (tokens.cache_read or 0)
    assert (row["cache_write_tokens"] or 0) == (tokens.cache_write or 0)
    assert Decimal(str(row["cost_usd"])) == cost


def refusal_text(provider: str, scenario: str) -> str | None:
    """The refusal as the fixture words it (None: the fixture has no words, only a block)."""
    if provider == "openai":
        if scenario.endswith("_stream"):
            return "".join(
                ch["delta"].get("refusal") or ""
                for c in events(provider, scenario)
                for ch in c["choices"]
            )
        return str(body(provider, scenario)["choices"][0]["message"]["refusal"])
    if provider == "anthropic":
        if scenario.endswith("_stream"):
            deltas = [c for c in events(provider, scenario) if c["type"] == "message_delta"]
            return str(deltas[-1]["delta"]["stop_details"]["explanation"])
        return str(body(provider, scenario)["stop_details"]["explanation"])
    return None  # Gemini's safety block and blocked prompt carry a reason code, no sentence


# ---------------------------------------------------------------- 1. refusals through `ask`
@pytest.mark.parametrize(
    ("provider", "scenario"),
    [
        ("openai", "chat_refusal"),
        ("anthropic", "chat_refusal"),
        ("gemini", "chat_safety"),
        ("gemini", "chat_blocked"),
    ],
)
def test_ask_refusal_is_its_own_outcome(
    cli: CliFn, use: Use, database_url: str, tmp_path: Path, provider: str, scenario: str
) -> None:
    seeded, model = use(provider, scenario)
    words = refusal_text(provider, scenario)
    tokens = billed(provider, scenario)
    cost = prices(database_url, seeded, model).cost(tokens)

    plain = cli("ask", "something declined")
    assert plain.exit_code == 5, plain.stderr
    assert plain.stdout == "" and plain.exception is None
    errors = [line for line in plain.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, plain.stderr
    assert f"the {seeded} model refused to answer" in flat(plain.stderr)
    if words is not None:
        assert words in flat(plain.stderr)

    as_json = cli("ask", "something declined", "--json")
    assert as_json.exit_code == 5
    doc = as_json.json()
    assert doc["success"] is False and doc["finish_reason"] == "refusal"
    assert doc["refusal"] == words if words is not None else doc["refusal"]
    assert doc["data"] is None and doc["exit_code"] == 5 and doc["code"] == "refusal"
    assert doc["type"] == "RefusedError" and "refused to answer" in doc["error"]
    usage_doc(doc, tokens)
    assert Decimal(str(doc["cost_usd"])) == cost

    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "string"}}}))
    strict = cli("ask", "something declined", "--schema", str(schema))
    assert strict.exit_code == 5 and strict.stdout == ""
    assert "valid JSON" not in strict.stderr and "refused to answer" in strict.stderr
    if words is not None:
        assert words in flat(strict.stderr)

    rows = usage_rows(database_url)
    assert len(rows) == 3
    for row in rows:
        assert (row["outcome"], row["error_code"]) == ("error", "refusal")
        assert (row["provider_key"], row["model_name"]) == (seeded, model)
        logged(row, tokens, cost)
        assert row["response_content"] is None  # the refusal is answer text: no opt-in
    report = cli("usage", "--json")
    assert report.exit_code == 0, report.stderr
    total = report.json()["total"]
    assert (total["calls"], total["errors"]) == (3, 3)
    assert total["input_tokens"] == 3 * tokens.input
    assert Decimal(str(total["cost_usd"])).quantize(Decimal("0.000001")) == 3 * cost


# ---------------------------------------------------------------- 2. refusals through serve
def test_v1_and_assist_flut_refusals(
    serve: tuple[ServeProcess, str], use: Use, database_url: str
) -> None:
    srv, token = serve
    with openai.OpenAI(base_url=srv.url + "/v1", api_key=token, max_retries=0) as api:
        for provider in ("openai", "anthropic"):
            seeded, model = use(provider, "chat_refusal_stream")
            stream = api.chat.completions.create(
                model="active",
                messages=HELLO,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(stream)
            refusals = [c.choices[0].delta.refusal for c in chunks if c.choices]
            said = "".join(r for r in refusals if r)
            assert said, f"{provider}: no delta.refusal chunk"
            assert said == refusal_text(provider, "chat_refusal_stream")
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
            assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
            tokens = billed(provider, "chat_refusal_stream")
            last = chunks[-1].usage
            assert last is not None and (last.prompt_tokens, last.completion_tokens) == (
                tokens.input,
                tokens.output,
            )
            row = usage_rows(database_url)[-1]
            assert (row["provider_key"], row["error_code"]) == (seeded, "refusal")
            logged(row, tokens, prices(database_url, seeded, model).cost(tokens))

        use("openai", "chat_refusal")
        words = refusal_text("openai", "chat_refusal")
        completion = api.chat.completions.create(model="active", messages=HELLO)  # type: ignore[arg-type]
        message = completion.choices[0].message
        assert message.refusal == words and message.content is None
        assert completion.choices[0].finish_reason == "stop"
        tokens = billed("openai", "chat_refusal")
        assert completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (
            tokens.input,
            tokens.total,
        )
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}) as http:
        answer = http.post(ASSIST, json={"messages": HELLO}, timeout=30)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert (doc["success"], doc["code"], doc["finish_reason"]) == (False, "refusal", "refusal")
    assert doc["refusal"] == words and words in doc["error"]
    usage_doc(doc, tokens)
    assert [r["error_code"] for r in usage_rows(database_url)] == ["refusal"] * 4


# ---------------------------------------------------------------- 3, 4. answers through `ask`
# (provider, scenario, model or None for the default, how to ask)
ANSWERS = [
    ("openai", "chat_plain", None, "text"),
    ("openai", "chat_reasoning", None, "text"),
    ("openai", "chat_json_object", None, "json-mode"),
    ("openai", "chat_json_schema", None, "schema"),
    ("anthropic", "chat_plain", None, "text"),
    ("anthropic", "chat_thinking", None, "text"),
    ("anthropic", "chat_cache", None, "text"),
    ("anthropic", "chat_json_prefill", None, "json-mode"),
    ("anthropic", "chat_json_schema", None, "schema"),
    ("gemini", "chat_plain", None, "text"),
    ("gemini", "chat_thinking", "gemini-2.5-pro", "text"),
    ("gemini", "chat_json", None, "json-mode"),
    ("gemini", "chat_json_schema", None, "schema"),
    ("mistral", "chat_plain", None, "text"),
    ("mistral", "chat_thinking", "mistral-large-latest", "text"),
    ("mistral", "chat_json_object", None, "json-mode"),
    ("xai", "chat_plain", "grok-3", "text"),
    ("xai", "chat_reasoning", None, "text"),
    ("deepseek", "chat_plain", "deepseek-chat", "text"),
    ("deepseek", "chat_reasoning", None, "text"),
    ("deepseek", "chat_json_object", "deepseek-chat", "json-mode"),
    ("openrouter", "chat_plain", None, "text"),
    ("openrouter", "chat_reasoning", None, "text"),
]


@pytest.mark.parametrize(
    ("provider", "scenario", "model", "mode"), ANSWERS, ids=[f"{a[0]}-{a[1]}" for a in ANSWERS]
)
def test_ask_answer_text_tokens_and_cost(
    cli: CliFn,
    use: Use,
    database_url: str,
    tmp_path: Path,
    provider: str,
    scenario: str,
    model: str | None,
    mode: str,
) -> None:
    seeded, model = use(provider, scenario, model)
    expected = text(provider, scenario)
    if provider == "anthropic" and mode == "json-mode":
        expected = "{" + expected  # the request prefilled the answer with "{"
    tokens = billed(provider, scenario)
    cost = prices(database_url, seeded, model).cost(tokens)
    args: list[str] = []
    if mode == "json-mode":
        args = ["--json-mode"]
    elif mode == "schema":
        keys = json.loads(expected)
        schema = {
            "type": "object",
            "properties": {k: {"type": JSON_TYPES[type(v)]} for k, v in keys.items()},
            "required": sorted(keys),
        }
        (tmp_path / "schema.json").write_text(json.dumps(schema))
        args = ["--schema", str(tmp_path / "schema.json")]

    plain = cli("ask", "a question", *args)
    assert plain.exit_code == 0, plain.stderr
    if mode == "text":
        assert plain.stdout == expected + "\n"
    else:
        assert json.loads(plain.stdout) == json.loads(expected)
    doc = cli("ask", "a question", *args, "--json").json()
    assert doc["success"] is True and doc["refusal"] is None
    assert (doc["provider"], doc["model"]) == (seeded, model)
    assert doc["text"] == expected
    assert doc["data"] == (None if mode == "text" else json.loads(expected))
    usage_doc(doc, tokens)
    assert Decimal(str(doc["cost_usd"])) == cost
    if provider == "deepseek" and scenario == "chat_reasoning":
        thought = body(provider, scenario)["choices"][0]["message"]["reasoning_content"]
        assert thought not in doc["text"] and thought not in plain.stdout

    rows = usage_rows(database_url)
    assert [(r["outcome"], r["error_code"]) for r in rows] == [("ok", None)] * 2
    for row in rows:
        logged(row, tokens, cost)
    total = cli("usage", "--json").json()["total"]
    assert (total["calls"], total["errors"]) == (2, 0)
    assert total["output_tokens"] == 2 * tokens.output
    assert total["reasoning_tokens"] == 2 * (tokens.reasoning or 0)


# ---------------------------------------------------------------- 3, 4. streams through serve /v1
STREAMS = [
    ("openai", "chat_stream", None),
    ("anthropic", "chat_stream", None),
    ("anthropic", "chat_thinking_stream", None),
    ("gemini", "chat_stream", None),
    ("gemini", "chat_thinking_stream", "gemini-2.5-pro"),
    ("mistral", "chat_stream", None),
    ("openrouter", "chat_stream", None),
    ("deepseek", "chat_reasoning_stream", None),
    ("deepseek", "chat_stream", "deepseek-chat"),
    ("xai", "chat_stream", "grok-3"),
]


def test_v1_streams_and_reasoning_usage(
    serve: tuple[ServeProcess, str], use: Use, database_url: str
) -> None:
    srv, token = serve
    costs: list[Decimal] = []
    with openai.OpenAI(base_url=srv.url + "/v1", api_key=token, max_retries=0) as api:
        for provider, scenario, model in STREAMS:
            seeded, model = use(provider, scenario, model)
            tokens = billed(provider, scenario)
            chunks = list(
                api.chat.completions.create(
                    model="active",
                    messages=HELLO,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            said = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert said == text(provider, scenario), f"{provider}/{scenario}"
            assert all(not c.choices[0].delta.refusal for c in chunks if c.choices)
            usage = chunks[-1].usage
            assert usage is not None, f"{provider}/{scenario}: no usage chunk"
            got = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
            assert got == (tokens.input, tokens.output, tokens.total), f"{provider}/{scenario}"
            if tokens.reasoning:
                assert usage.completion_tokens_details is not None
                assert usage.completion_tokens_details.reasoning_tokens == tokens.reasoning
            row = usage_rows(database_url)[-1]
            assert (row["provider_key"], row["outcome"]) == (seeded, "ok"), f"{provider}/{scenario}"
            costs.append(prices(database_url, seeded, model).cost(tokens))
            logged(row, tokens, costs[-1])

        # non-streamed: Gemini's thinking is output, and total = input + output
        use("gemini", "chat_thinking", "gemini-2.5-pro")
        completion = api.chat.completions.create(model="active", messages=HELLO)  # type: ignore[arg-type]
        tokens = billed("gemini", "chat_thinking")
        assert completion.choices[0].message.content == text("gemini", "chat_thinking")
        assert completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
            tokens.input,
            tokens.output,
        )
        assert completion.usage.total_tokens == tokens.total
        assert completion.usage.completion_tokens_details is not None
        assert completion.usage.completion_tokens_details.reasoning_tokens == tokens.reasoning
    rows = usage_rows(database_url)
    assert len(rows) == len(STREAMS) + 1
    expected_reasoning = sum(billed(p, s).reasoning or 0 for p, s, _ in STREAMS) + (
        tokens.reasoning or 0
    )
    assert sum(r["reasoning_tokens"] or 0 for r in rows) == expected_reasoning


# ---------------------------------------------------------------- 5. the error matrix
# fixture → (exit code, words of the Error line, the provider's informative code or None
# when the body has no string code: the row then names the error class)
ERRORS: dict[tuple[str, str], tuple[int, str, str | None]] = {
    ("anthropic", "err_400_context"): (5, "context window", "invalid_request_error"),
    ("anthropic", "err_401"): (5, "rejected the API key", "authentication_error"),
    ("anthropic", "err_404_model"): (5, "does not know this model", "not_found_error"),
    ("anthropic", "err_429"): (5, "is rate limiting", "rate_limit_error"),
    ("anthropic", "err_529"): (5, "is overloaded", "overloaded_error"),
    ("deepseek", "err_400_context"): (5, "context window", "invalid_request_error"),
    ("deepseek", "err_401"): (5, "rejected the API key", "authentication_error"),
    ("deepseek", "err_402"): (6, "quota or balance", "unknown_error"),
    ("deepseek", "err_429"): (5, "is rate limiting", "rate_limit_error"),
    ("deepseek", "err_503"): (5, "is overloaded", "server_error"),
    ("gemini", "err_400_context"): (5, "context window", "INVALID_ARGUMENT"),
    ("gemini", "err_400_key"): (5, "rejected the API key", "API_KEY_INVALID"),
    ("gemini", "err_404_model"): (5, "does not know this model", "NOT_FOUND"),
    ("gemini", "err_429_quota"): (6, "quota or balance", "RESOURCE_EXHAUSTED"),
    ("gemini", "err_429_rate"): (5, "is rate limiting", "RESOURCE_EXHAUSTED"),
    ("gemini", "err_503"): (5, "is overloaded", "UNAVAILABLE"),
    ("mistral", "err_400_context"): (5, "context window", "invalid_request_invalid_args"),
    ("mistral", "err_401"): (5, "rejected the API key", None),
    ("mistral", "err_422"): (5, "refused the request", "invalid_request_error"),
    ("mistral", "err_429"): (5, "is rate limiting", "rate_limited"),
    ("openai", "err_400_context"): (5, "context window", "context_length_exceeded"),
    ("openai", "err_401"): (5, "rejected the API key", "invalid_api_key"),
    ("openai", "err_404_model"): (5, "does not know this model", "model_not_found"),
    ("openai", "err_429_quota"): (6, "quota or balance", "insufficient_quota"),
    ("openai", "err_429_rate"): (5, "is rate limiting", "rate_limit_exceeded"),
    ("openai", "err_503"): (5, "is overloaded", "server_error"),
    ("openrouter", "err_401"): (5, "rejected the API key", None),
    ("openrouter", "err_402"): (6, "quota or balance", None),
    ("openrouter", "err_429"): (5, "is rate limiting", None),
    ("openrouter", "err_404_model"): (5, "does not know this model", None),
    ("xai", "err_400_key"): (5, "rejected the API key", None),
    ("xai", "err_404_model"): (5, "does not know this model", None),
    ("xai", "err_429"): (6, "quota or balance", None),  # "used all available credits"
}
ERROR_FIXTURES = [f for f in all_fixtures() if f[1].startswith("err_")]


def test_every_error_fixture_is_in_the_matrix() -> None:
    assert sorted(ERRORS) == ERROR_FIXTURES


@pytest.mark.parametrize(
    ("provider", "scenario"), ERROR_FIXTURES, ids=[f"{p}-{s}" for p, s in ERROR_FIXTURES]
)
def test_ask_provider_error(
    cli: CliFn, use: Use, database_url: str, provider: str, scenario: str
) -> None:
    exit_code, words, code = ERRORS[(provider, scenario)]
    recorded = load_fixture(provider, scenario)
    if code is not None:
        assert code in recorded.body.decode()  # the code is the fixture's own word
    seeded, model = use(provider, scenario)
    result = cli("ask", "a question")
    assert result.exit_code == exit_code, result.stderr
    assert result.exception is None and "Traceback" not in result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    line = flat(result.stderr)
    assert line.startswith(f"Error: {seeded} ") and words in line, result.stderr
    assert f"(HTTP {recorded.status}{' ' + code if code else ''})" in line
    assert "fake-" not in result.stderr  # the key never shows
    (row,) = usage_rows(database_url)
    assert (row["outcome"], row["provider_key"], row["model_name"]) == ("error", seeded, model)
    if code is not None:
        assert row["error_code"] == f"{code} (HTTP {recorded.status})"
    else:
        assert re.fullmatch(rf"\w+Error \(HTTP {recorded.status}\)", row["error_code"])
    assert row["input_tokens"] is None and row["cost_usd"] is None


# ---------------------------------------------------------------- 6. models sync and show
def show(cli: CliFn, provider: str, model: str) -> dict[str, Any]:
    result = cli("models", "show", provider, model, "--json")
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = result.json()["model"]
    return doc


def per_mtok(price: str) -> Decimal:
    return (Decimal(price) * 1_000_000).normalize()


def dec(value: Any) -> Decimal:
    return Decimal(str(value)).normalize()


def listed(provider: str) -> list[dict[str, Any]]:
    if provider in ("gemini", "anthropic"):
        key = "models" if provider == "gemini" else "data"
        return [m for page in (1, 2) for m in body(provider, f"models_list_page{page}")[key]]
    return list(body(provider, "models_list")["data"])


@pytest.mark.parametrize("provider", ["gemini", "anthropic", "openrouter", "mistral"])
def test_models_sync_stores_what_the_list_says(
    cli: CliFn, use: Use, replay: ReplayServer, database_url: str, provider: str
) -> None:
    seeded, _ = use(provider, "models_list")
    replay.reset_counts()
    before = len(replay.requests)
    synced = cli("models", "sync", seeded, "--json")
    assert synced.exit_code == 0, synced.stderr
    sent = [r for r in replay.requests[before:] if r.scenario == "models_list"]
    stored = {
        r[0]
        for r in sql(
            database_url,
            "SELECT m.model_key FROM ai_models m JOIN ai_providers p ON p.id = m.provider_id "
            "WHERE p.provider_key = :p",
            p=seeded,
        )
    }
    if provider == "gemini":
        page1 = body("gemini", "models_list_page1")
        assert len(sent) == 2 and sent[1].query.get("pageToken") == page1["nextPageToken"]
        for entry in listed(provider):
            key = entry["name"].removeprefix("models/")
            if "generateContent" not in entry["supportedGenerationMethods"]:
                assert key not in stored, key  # cannot chat: not added
                continue
            doc = show(cli, seeded, key)
            assert doc["context_window"] == entry["inputTokenLimit"], key
            assert doc["max_output_tokens"] == entry["outputTokenLimit"], key
            assert doc["name"] == entry["displayName"]
    elif provider == "anthropic":
        page1 = body("anthropic", "models_list_page1")
        assert len(sent) == 2 and sent[1].query.get("after_id") == page1["last_id"]
        for entry in listed(provider):
            assert show(cli, seeded, entry["id"])["name"] == entry["display_name"]
    elif provider == "openrouter":
        for entry in listed(provider):
            doc = show(cli, seeded, entry["id"])
            assert doc["context_window"] == entry["context_length"], entry["id"]
            assert doc["max_output_tokens"] == entry["top_provider"]["max_completion_tokens"]
            rates, pricing = doc["rates"], entry["pricing"]
            if entry["id"] == PROVIDERS["openrouter"][1]:  # seeded: the catalog's price wins
                assert rates["source"] == "catalog" and doc["price_source"] is None
                continue
            assert doc["price_source"].startswith("openrouter model list ")
            assert rates["source"] == doc["price_source"] == doc["rates_source"]
            assert (dec(rates["input"]), dec(rates["output"])) == (
                per_mtok(pricing["prompt"]),
                per_mtok(pricing["completion"]),
            )
            for ours, theirs in (
                ("cache_read", "input_cache_read"),
                ("cache_write", "input_cache_write"),
            ):
                if theirs in pricing:
                    assert dec(rates[ours]) == per_mtok(pricing[theirs]), (entry["id"], ours)
    else:
        chat = [e for e in listed(provider) if e["capabilities"]["completion_chat"]]
        for entry in chat:
            doc = show(cli, seeded, entry["id"])
            assert doc["context_window"] == entry["max_context_length"], entry["id"]
            deprecation = entry["deprecation"]
            assert doc["deprecation_date"] == (deprecation[:10] if deprecation else None)
        # the list says these cannot chat (capabilities.completion_chat false): not added
        cannot = {e["id"] for e in listed(provider)} - {e["id"] for e in chat}
        assert cannot and not cannot & stored, sorted(cannot & stored)
