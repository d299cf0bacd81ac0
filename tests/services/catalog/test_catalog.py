"""`aipilot providers` and `aipilot models` through the real CLI, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aipilot.errors import ExitCode
from tests.conftest import CliFn
from tests.fakeprovider import FakeModel, FakeProvider
from tests.providers_catalog import point_catalog_at, sql


def providers(url: str) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in sql(
            url,
            "SELECT provider_key, provider_name, base_url, api_kind, api_auth_method, "
            "api_auth_header, is_active, test_endpoint FROM ai_providers ORDER BY provider_key",
        )
    ]


def catalog(url: str, provider: str = "openai") -> dict[str, tuple[object, ...]]:
    rows = sql(
        url,
        "SELECT m.model_key, m.model_name, m.is_active, m.input_price_per_mtok, "
        "m.output_price_per_mtok, m.context_window FROM ai_models m "
        "JOIN ai_providers p ON p.id = m.provider_id WHERE p.provider_key = :p",
        p=provider,
    )
    return {str(r[0]): tuple(r[1:]) for r in rows}


def add_together(cli: CliFn, *extra: str, user: str = "alice") -> object:
    return cli(
        "providers",
        "add",
        "together",
        "--name",
        "Together AI",
        "--base-url",
        "https://api.together.xyz/v1/",
        "--header",
        "X-Env=prod",
        "--test-endpoint",
        "/models",
        *extra,
        user=user,
    )


# ------------------------------------------------------------------ providers: reads
def test_providers_list_all_and_show(cli: CliFn) -> None:
    result = cli("providers", "list")
    assert result.exit_code == 0, result.stderr
    assert "openai" in result.stdout and "ollama" not in result.stdout
    doc = cli("providers", "list", "--all", "--json").json()
    keys = [p["key"] for p in doc["providers"]]
    assert keys == sorted(keys) and "ollama" in keys
    ollama = next(p for p in doc["providers"] if p["key"] == "ollama")
    assert ollama["is_active"] is False and ollama["auth"] == "none"
    openai = next(p for p in doc["providers"] if p["key"] == "openai")
    assert openai["models"] == 3 and openai["protocol"] == "openai"
    shown = cli("providers", "show", "ANTHROPIC", "--json").json()["provider"]
    assert shown["auth_header"] == "x-api-key"
    assert shown["headers"] == {"anthropic-version": "2023-06-01"}
    text = cli("providers", "show", "anthropic")
    assert text.exit_code == 0 and "anthropic-version" in text.stdout
    missing = cli("providers", "show", "nope")
    assert missing.exit_code == ExitCode.USAGE and "unknown provider" in missing.stderr


# ------------------------------------------------------------------ providers: writes
def test_provider_add_update_enable_disable_remove(cli: CliFn, database_url: str) -> None:
    result = add_together(cli, "--json")
    assert result.exit_code == 0, result.stderr
    info = result.json()["provider"]
    assert info["base_url"] == "https://api.together.xyz/v1" and info["headers"] == {
        "X-Env": "prod"
    }
    again = add_together(cli)
    assert again.exit_code == ExitCode.CONFLICT and "already exists" in again.stderr

    updated = cli(
        "providers", "update", "together", "--auth", "api_key_header", "--auth-header",
        "x-key", "--header", "X-Env=", "--header", "X-Team=ai", "--inactive", "--json",
    )  # fmt: skip
    assert updated.exit_code == 0, updated.stderr
    info = updated.json()["provider"]
    assert info["auth"] == "api_key_header" and info["auth_header"] == "x-key"
    assert info["headers"] == {"X-Team": "ai"} and info["is_active"] is False
    assert "together" not in cli("providers", "list").stdout

    assert cli("providers", "enable", "together").exit_code == 0
    assert cli("providers", "list", "--json").json()["providers"][-1]["key"] == "xai"
    assert "together" in cli("providers", "list").stdout
    assert cli("providers", "disable", "together").exit_code == 0
    row = next(p for p in providers(database_url) if p[0] == "together")
    assert row[6] in (False, 0)

    removed = cli("providers", "remove", "together", "--json")
    assert removed.exit_code == 0 and removed.json() == {
        "success": True,
        "provider": "together",
        "removed": True,
    }
    assert "together" not in [p[0] for p in providers(database_url)]


def test_provider_remove_refused_while_referenced(cli: CliFn, database_url: str) -> None:
    refused = cli("providers", "remove", "openai")
    assert refused.exit_code == ExitCode.CONFLICT
    assert "3 catalog model(s)" in refused.stderr
    assert add_together(cli).exit_code == 0
    assert (
        cli("keys", "set", "together", "--stdin", "--no-test", input="sk-test-123456789").exit_code
        == 0
    )
    refused = cli("providers", "remove", "together")
    assert refused.exit_code == ExitCode.CONFLICT and "1 stored key(s)" in refused.stderr
    assert "together" in [p[0] for p in providers(database_url)]
    assert cli("keys", "delete", "together", "--yes").exit_code == 0
    assert cli("providers", "remove", "together").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["providers", "add", "x1", "--name", "X", "--base-url", "https://x.example"],
        ["providers", "update", "openai", "--name", "Changed"],
        ["providers", "enable", "ollama"],
        ["providers", "disable", "openai"],
        ["providers", "remove", "ollama"],
        ["models", "add", "openai", "new-model", "--name", "New"],
        ["models", "update", "openai", "gpt-4o", "--input-price", "1"],
        ["models", "enable", "openai", "gpt-4o"],
        ["models", "disable", "openai", "gpt-4o"],
        ["models", "remove", "openai", "gpt-4o"],
        ["models", "sync", "openai"],
    ],
)
def test_catalog_writes_refused_for_members(cli: CliFn, database_url: str, args: list[str]) -> None:
    assert cli("users", "add", "bob").exit_code == 0
    before = (providers(database_url), catalog(database_url))
    result = cli(*args, user="bob")
    assert result.exit_code == ExitCode.PERMISSION, result.stderr
    assert "admin only" in result.stderr
    assert (providers(database_url), catalog(database_url)) == before
    assert cli("providers", "list", user="bob").exit_code == 0  # reads stay open


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auth", "query_param"], "query_param"),
        (["--auth", "magic"], "unknown auth method"),
        (["--protocol", "soap"], "unknown protocol"),
        (["--auth", "api_key_header"], "--auth-header"),
        (["--header", "no-equals"], "not K=V"),
        (["--header", "bad header=1"], "not a valid HTTP header name"),
        (["--header", "Authorization=Bearer sk-x"], "carries keys"),
        (["--header", "X-Empty="], "must be printable ASCII"),
        (["--test-endpoint", "models"], "not a path"),
        (["--name", "   "], "empty"),
    ],
)
def test_provider_add_bad_options(
    cli: CliFn, database_url: str, args: list[str], message: str
) -> None:
    before = providers(database_url)
    result = cli(
        "providers", "add", "newp", "--name", "New", "--base-url", "https://x.example", *args
    )
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert providers(database_url) == before


@pytest.mark.parametrize("key", ["", "   ", "a" * 65, "clé", "bad key", ".dot"])
def test_provider_bad_keys(cli: CliFn, database_url: str, key: str) -> None:
    before = providers(database_url)
    result = cli("providers", "add", key, "--name", "N", "--base-url", "https://x.example")
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert result.stderr.startswith("Error: ")
    assert providers(database_url) == before


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example", "https://", "not a url", "https://user:pw@x.example", "https://x/?key=1",
     "https://exämple.com"],
)  # fmt: skip
def test_provider_bad_urls(cli: CliFn, database_url: str, url: str) -> None:
    before = providers(database_url)
    result = cli("providers", "add", "newp", "--name", "N", "--base-url", url)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    updated = cli("providers", "update", "openai", "--base-url", url)
    assert updated.exit_code == ExitCode.USAGE
    assert "pw" not in result.stderr
    assert providers(database_url) == before


def test_provider_update_unknown_and_key_case(cli: CliFn, database_url: str) -> None:
    assert cli("providers", "update", "nope", "--name", "X").exit_code == ExitCode.USAGE
    result = cli("providers", "add", "MyProv", "--name", "Mine", "--base-url", "http://h:8000/v1")
    assert result.exit_code == 0, result.stderr
    assert "myprov" in [p[0] for p in providers(database_url)]


# ------------------------------------------------------------------ models: list
def alice_active(url: str, provider: str, model: str) -> None:
    sql(
        url,
        "INSERT INTO ai_provider_configs (id, user_id, module_name, provider_name, model_name, "
        "is_active) SELECT :id, users_id, 'global', :p, :m, true FROM users "
        "WHERE username = 'alice'",
        id="0f0f0f0f-0000-4000-8000-000000000001",
        p=provider,
        m=model,
    )


def test_models_list_union_dedupe_filter_and_mark(cli: CliFn, database_url: str) -> None:
    assert cli("custom", "add", "openai", "gpt-4o", "--name", "Mine").exit_code == 0
    assert cli("custom", "add", "openai", "ft:gpt-4o:acme", "--name", "Tuned").exit_code == 0
    assert cli("custom", "add", "mistral", "hidden-one").exit_code == 0
    assert cli("custom", "hide", "mistral", "hidden-one").exit_code == 0
    alice_active(database_url, "openai", "ft:gpt-4o:acme")

    doc = cli("models", "list", "--json").json()["models"]
    pairs = [(m["provider"], m["model_key"]) for m in doc]
    assert pairs == sorted(pairs) and len(pairs) == len(set(pairs))
    assert ("ollama", "llama3.2") not in pairs and ("mistral", "hidden-one") not in pairs
    by_key = {(m["provider"], m["model_key"]): m for m in doc}
    assert by_key[("openai", "gpt-4o")]["source"] == "catalog"  # the catalog row wins
    assert by_key[("openai", "gpt-4o")]["name"] == "GPT-4o"
    tuned = by_key[("openai", "ft:gpt-4o:acme")]
    assert tuned["source"] == "custom" and tuned["is_current"] is True
    assert sum(m["is_current"] for m in doc) == 1

    only = cli("models", "list", "--provider", "OpenAI", "--json").json()["models"]
    assert {m["provider"] for m in only} == {"openai"} and len(only) == 4
    text = cli("models", "list", "--provider", "openai")
    assert text.exit_code == 0 and "custom" in text.stdout and "*" in text.stdout
    assert "$0.15" in text.stdout

    every = cli("models", "list", "--all", "--json").json()["models"]
    keys = {(m["provider"], m["model_key"]) for m in every}
    assert ("ollama", "llama3.2") in keys and ("mistral", "hidden-one") in keys
    assert cli("models", "list", "--provider", "nope").exit_code == ExitCode.USAGE


def test_models_add_duplicate_enable_disable_update_remove(cli: CliFn, database_url: str) -> None:
    result = cli(
        "models", "add", "openai", "gpt-5", "--name", "GPT-5", "--input-price", "1.25",
        "--output-price", "10", "--context", "400000", "--inactive", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.json()["model"]["is_active"] is False
    name, active, inp, out, ctx = catalog(database_url)["gpt-5"]
    assert (name, active in (False, 0), float(str(inp)), float(str(out)), ctx) == (
        "GPT-5",
        True,
        1.25,
        10.0,
        400000,
    )
    dup = cli("models", "add", "openai", "gpt-5", "--name", "Again")
    assert dup.exit_code == ExitCode.CONFLICT and "already in the openai catalog" in dup.stderr
    listed = [m["model_key"] for m in cli("models", "list", "--json").json()["models"]]
    assert "gpt-5" not in listed
    assert cli("models", "enable", "openai", "gpt-5").exit_code == 0
    assert "gpt-5" in [m["model_key"] for m in cli("models", "list", "--json").json()["models"]]
    assert cli("models", "update", "openai", "gpt-5", "--output-price", "8.5").exit_code == 0
    assert float(str(catalog(database_url)["gpt-5"][3])) == 8.5
    assert cli("models", "disable", "openai", "gpt-5").exit_code == 0
    assert catalog(database_url)["gpt-5"][1] in (False, 0)
    removed = cli("models", "remove", "openai", "gpt-5", "--json")
    assert removed.exit_code == 0 and removed.json()["success"] is True
    assert "gpt-5" not in catalog(database_url)
    gone = cli("models", "remove", "openai", "gpt-5")
    assert gone.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    "args",
    [
        ["openai", "m1", "--name", "M", "--input-price", "-1"],
        ["openai", "m1", "--name", "M", "--input-price", "abc"],
        ["openai", "m1", "--name", "M", "--output-price", "NaN"],
        ["openai", "m1", "--name", "M", "--output-price", "0.0000001"],
        ["openai", "m1", "--name", "M", "--context", "0"],
        ["openai", "m1", "--name", "  "],
        ["openai", "modèle", "--name", "M"],
        ["openai", "m" * 200, "--name", "M"],
        ["openai", "bad key", "--name", "M"],
        ["nope", "m1", "--name", "M"],
    ],
)
def test_models_add_bad_input(cli: CliFn, database_url: str, args: list[str]) -> None:
    before = catalog(database_url)
    result = cli("models", "add", *args)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert catalog(database_url) == before


# ------------------------------------------------------------------ models sync
@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


def sync_logs(url: str) -> list[tuple[object, ...]]:
    rows = sql(
        url,
        "SELECT provider_key, outcome, error_code FROM ai_usage_logs WHERE kind = 'model_sync' "
        "ORDER BY created_at",
    )
    return [tuple(r) for r in rows]


def store_key(cli: CliFn) -> None:
    stored = cli("keys", "set", "openai", "--stdin", "--no-test", input="sk-test-123456789")
    assert stored.exit_code == 0, stored.stderr


def test_models_sync_adds_reports_and_is_idempotent(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    store_key(cli)
    fake.set_models("openai", ["gpt-4o", FakeModel("gpt-new", "GPT New"), "o9-mini"])
    result = cli("models", "sync", "openai", "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["success"] is True and doc["added"] == ["gpt-new", "o9-mini"]
    assert doc["present"] == ["gpt-4o"] and doc["gone"] == ["gpt-4.1-mini", "gpt-4o-mini"]
    rows = catalog(database_url)
    assert rows["o9-mini"][:2] in (("o9-mini", False), ("o9-mini", 0))
    assert "gpt-4o-mini" in rows  # gone upstream is reported, never deleted
    assert fake.last_request.headers["authorization"] == "Bearer sk-test-123456789"

    again = cli("models", "sync", "openai", "--json").json()
    assert again["added"] == [] and again["present"] == ["gpt-4o", "gpt-new", "o9-mini"]
    assert catalog(database_url) == rows
    assert sync_logs(database_url) == [("openai", "ok", None)] * 2

    fake.set_models("openai", ["brand-new"])
    text = cli("models", "sync", "openai", "--activate-new")
    assert text.exit_code == 0 and "1 added" in text.stderr
    assert catalog(database_url)["brand-new"][1] in (True, 1)
    assert "brand-new" in [m["model_key"] for m in cli("models", "list", "--json").json()["models"]]


def test_models_sync_provider_error_changes_nothing(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    store_key(cli)
    before = catalog(database_url)
    fake.fail("401", prefix="openai")
    result = cli("models", "sync", "openai")
    assert result.exit_code == ExitCode.PROVIDER, result.stderr
    assert "sk-test-123456789" not in result.stderr + result.stdout
    assert catalog(database_url) == before
    logs = sync_logs(database_url)
    assert len(logs) == 1 and logs[0][1] == "error"


def test_models_sync_without_key_is_not_configured(cli: CliFn, fake: FakeProvider) -> None:
    result = cli("models", "sync", "openai")
    assert result.exit_code == ExitCode.NOT_CONFIGURED and "keys set openai" in result.stderr
    assert fake.requests == []
