"""What providers' model lists say, read (model_lists) and stored (`models sync`).

Pure tests of aipilot/providers/model_lists.py on entries shaped like the providers'
recorded answers; of ``model_sync.refresh`` on ORM rows; and `models sync` through the
real CLI against a real HTTP server on 127.0.0.1 (below) that serves OpenRouter-,
Mistral-, Anthropic- (paged) and Gemini-shaped lists, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import genai_prices
import pytest

from aipilot.db.models import Model
from aipilot.providers.model_lists import (
    anthropic_model_info,
    gemini_model_info,
    openai_model_info,
)
from aipilot.providers.types import ModelInfo
from aipilot.services.catalog.model_sync import list_source, refresh
from tests.conftest import CliFn
from tests.providers_catalog import sql

# ---------------------------------------------------------------- recorded-shaped entries
OPENROUTER_4O_MINI: dict[str, Any] = {
    "id": "openai/gpt-4o-mini",
    "canonical_slug": "openai/gpt-4o-mini",
    "name": "OpenAI: GPT-4o-mini",
    "created": 1721260800,
    "context_length": 128000,
    "architecture": {"modality": "text+image->text", "tokenizer": "GPT"},
    "pricing": {
        "prompt": "0.0000002",  # differs from the seed's hand price 0.15: must not win
        "completion": "0.0000008",
        "request": "0",
        "image": "0.000217",
        "input_cache_read": "0.000000075",
    },
    "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
    "per_request_limits": None,
}
OPENROUTER_HAIKU: dict[str, Any] = {
    "id": "anthropic/claude-3.5-haiku",
    "name": "Anthropic: Claude 3.5 Haiku",
    "context_length": 200000,
    "pricing": {
        "prompt": "0.0000008",
        "completion": "0.000004",
        "input_cache_read": "0.00000008",
        "input_cache_write": "0.000001",
        "web_search": "0",
    },
    "top_provider": {"context_length": 200000, "max_completion_tokens": 8192},
    "expiration_date": "2026-12-31",
}
OPENROUTER_AUTO: dict[str, Any] = {
    "id": "openrouter/auto",
    "name": "Auto Router",
    "context_length": 2000000,
    "pricing": {"prompt": "-1", "completion": "-1"},
    "top_provider": {"context_length": None, "max_completion_tokens": None},
}
MISTRAL_SMALL: dict[str, Any] = {
    "id": "mistral-small-latest",
    "object": "model",
    "created": 1741000000,
    "owned_by": "mistralai",
    "capabilities": {"completion_chat": True, "function_calling": True},
    "name": "mistral-small-2503",
    "description": "Our latest enterprise-grade small model",
    "max_context_length": 131072,
    "aliases": ["mistral-small-2503"],
    "deprecation": None,
    "default_model_temperature": 0.3,
    "type": "base",
}
MISTRAL_OLD: dict[str, Any] = {
    **MISTRAL_SMALL,
    "id": "open-mistral-7b",
    "name": "open-mistral-7b",
    "max_context_length": 32768,
    "deprecation": "2025-03-30T12:00:00Z",
    "deprecation_replacement_model": "ministral-8b-latest",
}
VLLM: dict[str, Any] = {
    "id": "Qwen/Qwen3-8B",
    "object": "model",
    "created": 1750000000,
    "owned_by": "vllm",
    "root": "Qwen/Qwen3-8B",
    "max_model_len": 32768,
}
OPENAI_PLAIN: dict[str, Any] = {
    "id": "gpt-4o-mini",
    "object": "model",
    "created": 1721172741,
    "owned_by": "system",
}
ANTHROPIC_SONNET: dict[str, Any] = {
    "type": "model",
    "id": "claude-sonnet-4-0",
    "display_name": "Claude Sonnet 4",
    "created_at": "2025-05-22T00:00:00Z",
    "max_input_tokens": 1000000,
    "max_tokens": 64000,
}
ANTHROPIC_PLAIN: dict[str, Any] = {
    "type": "model",
    "id": "claude-opus-4-1-20250805",
    "display_name": "Claude Opus 4.1",
    "created_at": "2025-08-05T00:00:00Z",
}
GEMINI_FLASH: dict[str, Any] = {
    "name": "models/gemini-2.5-flash",
    "version": "001",
    "displayName": "Gemini 2.5 Flash",
    "description": "Stable version of Gemini 2.5 Flash",
    "inputTokenLimit": 1048576,
    "outputTokenLimit": 65536,
    "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent"],
    "temperature": 1,
    "topP": 0.95,
    "topK": 64,
    "maxTemperature": 2,
    "thinking": True,
}
GEMINI_NEW: dict[str, Any] = {
    **GEMINI_FLASH,
    "name": "models/gemini-3-flash-preview",
    "displayName": "Gemini 3 Flash Preview",
    "inputTokenLimit": 2097152,
    "outputTokenLimit": 131072,
}


# ---------------------------------------------------------------- model_lists, pure
def test_openrouter_entry_gives_limits_prices_and_expiration() -> None:
    info = openai_model_info(OPENROUTER_HAIKU)
    assert info == ModelInfo(
        id="anthropic/claude-3.5-haiku",
        display_name="Anthropic: Claude 3.5 Haiku",
        context_window=200000,
        max_output_tokens=8192,
        deprecation_date=date(2026, 12, 31),
        input_price_per_mtok=Decimal("0.8"),
        output_price_per_mtok=Decimal("4"),
        cache_read_price_per_mtok=Decimal("0.08"),
        cache_write_price_per_mtok=Decimal("1"),
    )
    # never in exponent form, so JSON and the NUMERIC(12, 6) column get plain numbers
    assert str(info.output_price_per_mtok) == "4" and str(info.input_price_per_mtok) == "0.8"
    mini = openai_model_info(OPENROUTER_4O_MINI)
    assert mini.input_price_per_mtok == Decimal("0.2") and mini.cache_write_price_per_mtok is None
    assert mini.cache_read_price_per_mtok == Decimal("0.075") and mini.deprecation_date is None


def test_openrouter_variable_prices_are_not_prices() -> None:
    auto = openai_model_info(OPENROUTER_AUTO)
    assert auto.input_price_per_mtok is None and auto.output_price_per_mtok is None
    assert auto.context_window == 2000000 and auto.max_output_tokens is None


def test_mistral_vllm_and_plain_openai_entries() -> None:
    small = openai_model_info(MISTRAL_SMALL)
    assert (small.context_window, small.display_name, small.owned_by) == (
        131072,
        "mistral-small-2503",
        "mistralai",
    )
    assert small.deprecation_date is None and small.input_price_per_mtok is None
    assert openai_model_info(MISTRAL_OLD).deprecation_date == date(2025, 3, 30)
    assert openai_model_info(VLLM).context_window == 32768
    assert openai_model_info(OPENAI_PLAIN) == ModelInfo(id="gpt-4o-mini", owned_by="system")


def test_anthropic_and_gemini_entries() -> None:
    assert anthropic_model_info(ANTHROPIC_SONNET) == ModelInfo(
        id="claude-sonnet-4-0",
        display_name="Claude Sonnet 4",
        context_window=1000000,
        owned_by="anthropic",
        max_output_tokens=64000,
    )
    plain = anthropic_model_info(ANTHROPIC_PLAIN)
    assert plain.context_window is None and plain.max_output_tokens is None
    assert gemini_model_info(GEMINI_FLASH) == ModelInfo(
        id="gemini-2.5-flash",
        display_name="Gemini 2.5 Flash",
        context_window=1048576,
        owned_by="google",
        max_output_tokens=65536,
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"id": "m", "context_length": "128000", "name": 7, "owned_by": ["x"]},
        {"id": "m", "context_length": True, "max_context_length": -5, "max_model_len": 0},
        {"id": "m", "context_length": 2**40, "top_provider": "big"},
        {"id": "m", "pricing": "free", "deprecation": "soon", "expiration_date": 20261231},
        {"id": "m", "pricing": {"prompt": "abc", "completion": "NaN"}},
        {"id": "m", "pricing": {"prompt": "Infinity", "completion": True}},
        {"id": "m", "pricing": {"prompt": "1e30", "completion": None}},
        {"id": "m", "pricing": {"prompt": [1], "completion": {"x": 1}}, "name": "   "},
        {"id": "m", "top_provider": {"max_completion_tokens": "16384"}},
    ],
)
def test_openai_entries_of_wrong_types_read_as_unknown(raw: dict[str, Any]) -> None:
    assert openai_model_info(raw) == ModelInfo(id="m")


def test_entries_that_are_not_objects_never_raise() -> None:
    for parse in (openai_model_info, anthropic_model_info, gemini_model_info):
        for raw in (None, [], "x", 3, {"id": 5, "name": 5}):
            assert parse(raw).id == ""
    assert anthropic_model_info({"id": "c", "max_tokens": 1.5}).max_output_tokens is None
    assert (
        gemini_model_info({"name": "models/g", "outputTokenLimit": "8"}).max_output_tokens is None
    )


def test_numbers_in_json_are_read_as_prices_too() -> None:
    info = openai_model_info({"id": "m", "pricing": {"prompt": 2.5e-06, "completion": 0}})
    assert info.input_price_per_mtok == Decimal("2.5") and info.output_price_per_mtok == 0
    # below the column's 6 decimals: rounded, never an error
    tiny = openai_model_info({"id": "m", "pricing": {"prompt": "1e-13", "completion": "0"}})
    assert tiny.input_price_per_mtok == 0


# ---------------------------------------------------------------- refresh, on ORM rows
SOURCE = "openrouter model list 2026-12-02"


def row(**columns: Any) -> Model:
    return Model(model_key="m", model_name="M", is_active=True, **columns)


def test_refresh_stores_facts_and_list_prices_on_a_new_row() -> None:
    new = row()
    changed = refresh(new, openai_model_info(OPENROUTER_HAIKU), SOURCE)
    assert changed == ["context_window", "max_output_tokens", "deprecation_date", "prices"]
    assert (new.context_window, new.max_output_tokens) == (200000, 8192)
    assert new.input_price_per_mtok == Decimal("0.8") and new.price_source == SOURCE
    assert refresh(new, openai_model_info(OPENROUTER_HAIKU), "later") == []  # idempotent
    assert new.price_source == SOURCE


def test_refresh_never_overwrites_hand_prices_and_keeps_unsaid_facts() -> None:
    seeded = row(
        context_window=64000,
        max_output_tokens=4096,
        input_price_per_mtok=Decimal("0.15"),
        output_price_per_mtok=Decimal("0.60"),
    )
    assert refresh(seeded, openai_model_info(OPENROUTER_4O_MINI), SOURCE) == [
        "context_window",
        "max_output_tokens",
    ]
    assert seeded.input_price_per_mtok == Decimal("0.15") and seeded.price_source is None
    # a cache rate alone set by hand is a hand price too
    cache_only = row(cache_read_price_per_mtok=Decimal("0.01"))
    assert refresh(cache_only, openai_model_info(OPENROUTER_HAIKU), SOURCE)[-1] != "prices"
    # the list says nothing of the output limit: the row's stays
    plain = row(max_output_tokens=4096, deprecation_date=date(2030, 1, 1))
    assert refresh(plain, openai_model_info(VLLM), SOURCE) == ["context_window"]
    assert plain.max_output_tokens == 4096 and plain.deprecation_date == date(2030, 1, 1)


def test_refresh_updates_prices_that_came_from_a_list() -> None:
    listed = row(
        input_price_per_mtok=Decimal("0.800000"),  # as NUMERIC(12, 6) returns it
        output_price_per_mtok=Decimal("4.000000"),
        cache_read_price_per_mtok=Decimal("0.080000"),
        cache_write_price_per_mtok=Decimal("1.000000"),
        price_source="openrouter model list 2026-11-01",
        context_window=200000,
        max_output_tokens=8192,
        deprecation_date=date(2026, 12, 31),
    )
    assert refresh(listed, openai_model_info(OPENROUTER_HAIKU), SOURCE) == []
    assert listed.price_source == "openrouter model list 2026-11-01"  # same numbers: kept
    cheaper = {**OPENROUTER_HAIKU, "pricing": {"prompt": "0.0000005", "completion": "0.000002"}}
    assert refresh(listed, openai_model_info(cheaper), SOURCE) == ["prices"]
    assert listed.input_price_per_mtok == Decimal("0.5") and listed.price_source == SOURCE
    assert listed.cache_read_price_per_mtok is None  # all four rates from the one source


# ---------------------------------------------------------------- models sync, end to end
class ListServer:
    """Model lists in four dialects on 127.0.0.1; ``lists`` may be changed between syncs."""

    def __init__(self) -> None:
        self.lists: dict[str, list[dict[str, Any]]] = {
            "openrouter": [OPENROUTER_4O_MINI, OPENROUTER_HAIKU, OPENROUTER_AUTO],
            "mistral": [MISTRAL_SMALL, MISTRAL_OLD],
            "anthropic": [ANTHROPIC_SONNET, ANTHROPIC_PLAIN, {**ANTHROPIC_SONNET, "id": "c-3"}],
            "google": [GEMINI_FLASH, GEMINI_NEW],
        }
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                server.paths.append(self.path)
                body = server.answer(parts.path, parse_qs(parts.query))
                data = json.dumps(body if body is not None else {"error": "no"}).encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, path: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
        if path in ("/openrouter/v1/models", "/mistral/v1/models"):
            return {"object": "list", "data": self.lists[path.split("/")[1]]}
        if path == "/anthropic/v1/models":  # two per page: has_more / last_id / after_id
            models = self.lists["anthropic"]
            after = query.get("after_id", [None])[0]
            start = next((i + 1 for i, m in enumerate(models) if m["id"] == after), 0)
            page = models[start : start + 2]
            more = start + 2 < len(models)
            return {"data": page, "has_more": more, "last_id": page[-1]["id"] if page else None}
        if path == "/google/v1beta/models":  # one per page, with nextPageToken
            models = self.lists["google"]
            start = int(query.get("pageToken", ["0"])[0])
            page: dict[str, Any] = {"models": models[start : start + 1]}
            if start + 1 < len(models):
                page["nextPageToken"] = str(start + 1)
            return page
        return None

    def base_url(self, provider: str) -> str:
        host, port = self.httpd.server_address[:2]
        suffix = {"openrouter": "/v1", "mistral": "/v1", "anthropic": "", "google": "/v1beta"}
        return f"http://{host!s}:{port}/{provider}{suffix[provider]}"

    def __enter__(self) -> ListServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def lists(database_url: str, cli: CliFn) -> Iterator[ListServer]:
    with ListServer() as server:
        for provider in server.lists:
            sql(
                database_url,
                "UPDATE ai_providers SET base_url = :u WHERE provider_key = :p",
                u=server.base_url(provider),
                p=provider,
            )
            stored = cli(
                "keys", "set", provider, "--stdin", "--no-test", input=f"fake-{provider}-key-0000"
            )
            assert stored.exit_code == 0, stored.stderr
        yield server


def show(cli: CliFn, provider: str, model: str) -> dict[str, Any]:
    result = cli("models", "show", provider, model, "--json")
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = result.json()["model"]
    return doc


def sync(cli: CliFn, provider: str) -> dict[str, Any]:
    result = cli("models", "sync", provider, "--json")
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = result.json()
    return doc


def facts(database_url: str) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in sql(
            database_url,
            "SELECT p.provider_key, m.model_key, m.model_name, m.context_window, "
            "m.max_output_tokens, m.deprecation_date, m.input_price_per_mtok, "
            "m.output_price_per_mtok, m.cache_read_price_per_mtok, m.cache_write_price_per_mtok, "
            "m.price_source FROM ai_models m JOIN ai_providers p ON p.id = m.provider_id "
            "ORDER BY p.provider_key, m.model_key",
        )
    ]


def test_sync_refreshes_context_windows_follows_pages_and_is_idempotent(
    cli: CliFn, lists: ListServer, database_url: str
) -> None:
    first = sync(cli, "anthropic")
    assert first["added"] == ["c-3", "claude-opus-4-1-20250805"]
    assert first["present"] == ["claude-sonnet-4-0"]
    # the added rows have no price of their own: the reference prices one, nothing the other
    assert first["reference_priced"] == ["claude-opus-4-1-20250805"]
    assert first["unpriced"] == ["c-3"]
    assert first["reference_source"].startswith("genai-prices ")
    opus = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1_000_000, output_tokens=0),
        model_ref="claude-opus-4-1-20250805",
        provider_id="anthropic",
    )
    assert show(cli, "anthropic", "claude-opus-4-1-20250805")["rates"]["input"] == float(
        opus.input_price
    )
    assert first["updated"]["claude-sonnet-4-0"][0] == "context_window"  # 200000 → 1000000
    assert sum("/v1/models" in p for p in lists.paths) == 2  # both pages
    sonnet = show(cli, "anthropic", "claude-sonnet-4-0")
    assert sonnet["context_window"] == 1000000 and sonnet["name"] == "Claude Sonnet 4"
    assert sonnet["rates"]["source"] == "catalog"  # the seed's price stands

    google = sync(cli, "google")
    assert google["added"] == ["gemini-3-flash-preview"] and google["present"] == [
        "gemini-2.5-flash"
    ]
    assert show(cli, "google", "gemini-3-flash-preview")["context_window"] == 2097152

    before = facts(database_url)
    again = [sync(cli, p) for p in ("anthropic", "google")]
    assert [(d["added"], d["updated"], d["priced"]) for d in again] == [([], {}, [])] * 2
    assert facts(database_url) == before


def test_sync_stores_limits_deprecations_and_openrouter_prices(
    cli: CliFn, lists: ListServer, database_url: str
) -> None:
    today = datetime.now(UTC).date().isoformat()
    source = list_source("openrouter")
    assert source == f"openrouter model list {today}"
    added = cli("models", "add", "openrouter", "openai/gpt-4o", "--name", "unpriced").exit_code
    assert added == 0
    lists.lists["openrouter"].append(
        {**OPENROUTER_4O_MINI, "id": "openai/gpt-4o", "name": "OpenAI: GPT-4o"}
    )

    result = sync(cli, "openrouter")
    assert result["added"] == ["anthropic/claude-3.5-haiku", "openrouter/auto"]
    assert result["priced"] == ["anthropic/claude-3.5-haiku", "openai/gpt-4o"]

    haiku = show(cli, "openrouter", "anthropic/claude-3.5-haiku")
    assert (haiku["context_window"], haiku["max_output_tokens"]) == (200000, 8192)
    assert haiku["deprecation_date"] == "2026-12-31" and haiku["price_source"] == source
    assert haiku["rates"] == {
        "input": 0.8,
        "output": 4.0,
        "cache_read": 0.08,
        "cache_write": 1.0,
        "source": source,
        "as_of": today,
    }
    assert haiku["rates_source"] == source
    seeded = show(cli, "openrouter", "openai/gpt-4o-mini")  # the seed's hand price wins
    assert seeded["input_price_per_mtok"] == 0.15 and seeded["price_source"] is None
    assert seeded["rates"]["source"] == "catalog" and seeded["max_output_tokens"] == 16384
    filled = show(cli, "openrouter", "openai/gpt-4o")
    assert filled["rates"]["input"] == 0.2 and filled["price_source"] == source
    assert filled["name"] == "unpriced"  # labels are the admin's
    auto = show(cli, "openrouter", "openrouter/auto")
    assert auto["price_source"] is None and auto["input_price_per_mtok"] is None

    mistral = sync(cli, "mistral")
    assert mistral["added"] == ["open-mistral-7b"]
    old = show(cli, "mistral", "open-mistral-7b")
    assert old["deprecation_date"] == "2025-03-30" and old["context_window"] == 32768
    assert show(cli, "mistral", "mistral-small-latest")["context_window"] == 131072

    before = facts(database_url)
    again = sync(cli, "openrouter")
    assert (again["added"], again["updated"], again["priced"]) == ([], {}, [])
    assert facts(database_url) == before

    # a list price that changes is followed; once an admin sets a price, it is theirs
    lists.lists["openrouter"][-1]["pricing"] = {"prompt": "0.0000025", "completion": "0.00001"}
    assert sync(cli, "openrouter")["updated"] == {"openai/gpt-4o": ["prices"]}
    assert show(cli, "openrouter", "openai/gpt-4o")["rates"]["input"] == 2.5
    updated = cli("models", "update", "openrouter", "openai/gpt-4o", "--cache-read-price", "1.25")
    assert updated.exit_code == 0, updated.stderr
    lists.lists["openrouter"][-1]["pricing"] = {"prompt": "0.000003", "completion": "0.00001"}
    assert sync(cli, "openrouter")["updated"] == {}
    mine = show(cli, "openrouter", "openai/gpt-4o")
    assert mine["price_source"] is None and mine["rates"]["source"] == "catalog"
    assert (mine["rates"]["input"], mine["rates"]["cache_read"]) == (2.5, 1.25)
