"""`aipilot test` (the seed's ai-config-test) and `aipilot history`, both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aipilot.errors import ExitCode
from tests.conftest import CliFn
from tests.fakeprovider import FakeModel, FakeProvider
from tests.providers_catalog import point_catalog_at, sql

KEY = "sk-test-1234567890"
CONTRACT = ["success", "api_key_ok", "model_accessible"]


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


def store_key(cli: CliFn, provider: str = "openai", key: str = KEY) -> None:
    result = cli("keys", "set", provider, "--stdin", "--no-test", input=key)
    assert result.exit_code == 0, result.stderr


def usage_rows(database_url: str, kind: str = "config_test") -> list[dict[str, object]]:
    rows = sql(
        database_url, "SELECT * FROM ai_usage_logs WHERE kind = :k ORDER BY created_at", k=kind
    )
    return [dict(r._mapping) for r in rows]


def active_config(database_url: str) -> dict[str, object]:
    rows = sql(database_url, "SELECT * FROM ai_provider_configs WHERE is_active")
    assert len(rows) == 1
    return dict(rows[0]._mapping)


# ------------------------------------------------------------------ healthy
def test_healthy_configuration(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    store_key(cli)
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    result = cli("test", "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert list(doc)[:3] == CONTRACT
    assert doc["success"] is doc["api_key_ok"] is doc["model_accessible"] is True
    assert doc["round_trip_ok"] is True and doc["provider"] == "openai"
    assert doc["model"] == "gpt-4o-mini" and doc["reply"] == "pong"
    assert [c["name"] for c in doc["checks"]] == ["api_key", "model", "round_trip"]
    assert all(c["ok"] and c["latency_ms"] >= 0 and c["error"] is None for c in doc["checks"])
    chat = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert len(chat) == 1 and chat[0].headers["authorization"] == f"Bearer {KEY}"

    rows = usage_rows(database_url)
    assert len(rows) == 1
    row = rows[0]
    assert row["outcome"] == "ok" and row["model_name"] == "gpt-4o-mini"
    assert row["provider_key"] == "openai" and row["module_name"] == "global"
    assert (row["input_tokens"], row["output_tokens"]) == (12, 5)
    config = active_config(database_url)
    assert config["last_test_at"] is not None and config["last_test_ok"] in (True, 1)
    assert config["last_test_error"] is None

    text = cli("test")
    assert text.exit_code == 0 and "Healthy" in text.stdout and "Unhealthy" not in text.stdout
    assert cli("model", "show", "--json").json()["active"]["health"] == "healthy"


@pytest.mark.parametrize(
    ("provider", "model", "route"),
    [
        ("openai", "gpt-4o-mini", "openai"),
        ("anthropic", "claude-sonnet-4-0", "anthropic"),
        ("google", "gemini-2.5-flash", "gemini"),
    ],
)
def test_all_three_wire_protocols_are_healthy(
    cli: CliFn, fake: FakeProvider, provider: str, model: str, route: str
) -> None:
    fake.set_models(route, [FakeModel(model, model)])
    store_key(cli, provider)
    assert cli("model", "activate", provider, model).exit_code == 0
    result = cli("test", "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.json()["success"] is True and result.json()["reply"] == "pong"
    assert {r.route for r in fake.requests} == {route}


# ------------------------------------------------------------------ not configured
def test_no_active_model_is_not_configured(cli: CliFn, fake: FakeProvider) -> None:
    result = cli("test")
    assert result.exit_code == ExitCode.NOT_CONFIGURED
    assert "no active model" in result.stderr and "aipilot model activate" in result.stderr
    doc = cli("test", "--json")
    assert doc.exit_code == ExitCode.NOT_CONFIGURED and doc.json()["success"] is False
    assert fake.requests == []


def test_no_key_is_not_configured(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    assert cli("model", "activate", "anthropic", "claude-sonnet-4-0").exit_code == 0
    result = cli("test")
    assert result.exit_code == ExitCode.NOT_CONFIGURED
    assert "aipilot keys set anthropic" in result.stderr
    assert fake.requests == [] and usage_rows(database_url) == []


def test_bad_module_is_a_usage_error(cli: CliFn, fake: FakeProvider) -> None:
    assert cli("test", "--module", "No Such!").exit_code == ExitCode.USAGE


# ------------------------------------------------------------------ unhealthy
def test_refused_key_is_unhealthy(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    store_key(cli)
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    fake.set_keys({"sk-some-other-key"})
    result = cli("test", "--json")
    assert result.exit_code == ExitCode.UNHEALTHY
    doc = result.json()
    assert doc["success"] is False and doc["api_key_ok"] is False
    assert doc["model_accessible"] is False and doc["round_trip_ok"] is False
    assert [c["error"] for c in doc["checks"][1:]] == ["skipped", "skipped"]
    assert KEY not in result.stdout + result.stderr
    row = usage_rows(database_url)[0]
    assert row["outcome"] == "error" and KEY not in str(row)
    config = active_config(database_url)
    assert config["last_test_ok"] in (False, 0) and config["last_test_error"]
    assert KEY not in str(config["last_test_error"])
    text = cli("test")
    assert text.exit_code == ExitCode.UNHEALTHY and "Unhealthy" in text.stdout


def test_unknown_model_at_the_provider_is_unhealthy(cli: CliFn, fake: FakeProvider) -> None:
    store_key(cli)
    assert cli("model", "activate", "openai", "gpt-4.1-mini").exit_code == 0  # not served
    result = cli("test", "--json")
    assert result.exit_code == ExitCode.UNHEALTHY, result.stderr
    doc = result.json()
    assert doc["api_key_ok"] is True and doc["model_accessible"] is False
    assert doc["round_trip_ok"] is False and "model" in doc["error"]


def test_unknown_model_fault_is_unhealthy(cli: CliFn, fake: FakeProvider) -> None:
    store_key(cli)
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    fake.set_models("openai", ["gpt-4o"])
    doc = cli("test", "--json")
    assert doc.exit_code == ExitCode.UNHEALTHY
    assert doc.json()["api_key_ok"] is True and doc.json()["model_accessible"] is False


def test_server_error_on_the_round_trip_is_unhealthy(cli: CliFn, fake: FakeProvider) -> None:
    store_key(cli)
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    fake.fail("500", times=10, only="chat")  # the key and model checks pass, the chat fails
    result = cli("test", "--json")
    assert result.exit_code == ExitCode.UNHEALTHY, result.stderr
    doc = result.json()
    assert doc["api_key_ok"] is True and doc["model_accessible"] is True
    assert doc["round_trip_ok"] is False and doc["success"] is False
    assert doc["checks"][2]["error"]


def test_keyless_provider_needs_no_key(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    url = fake.add_provider("ollama", models=["llama3.2"])
    sql(
        database_url,
        "UPDATE ai_providers SET is_active = true, base_url = :u WHERE provider_key = 'ollama'",
        u=url,
    )
    assert cli("model", "activate", "ollama", "llama3.2").exit_code == 0
    result = cli("test", "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "authorization" not in fake.last_request.headers


# ------------------------------------------------------------------ history
def test_history_lists_key_and_config_tests(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    assert cli("history", "--json").json()["entries"] == []
    store_key(cli)
    assert cli("keys", "test", "openai").exit_code == 0
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    assert cli("test").exit_code == 0
    fake.set_keys({"other"})
    assert cli("test").exit_code == ExitCode.UNHEALTHY
    doc = cli("history", "--json").json()["entries"]
    assert sorted((e["kind"], e["outcome"]) for e in doc) == [
        ("config_test", "error"),
        ("config_test", "ok"),
        ("key_test", "ok"),
    ]
    assert all(e["provider"] == "openai" for e in doc)
    assert cli("history", "--limit", "1", "--json").json()["entries"][0]["kind"] in (
        "config_test",
        "key_test",
    )
    assert len(cli("history", "-n", "2", "--json").json()["entries"]) == 2
    text = cli("history")
    assert text.exit_code == 0 and "config_test" in text.stdout and "key_test" in text.stdout
    assert cli("users", "add", "bob").exit_code == 0
    assert cli("history", "--json", user="bob").json()["entries"] == []
    assert cli("history", "--limit", "0").exit_code == ExitCode.USAGE
