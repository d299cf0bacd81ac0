"""`aipilot custom` (ai_user_models_flut) through the real CLI, on both databases."""

from __future__ import annotations

import pytest

from aipilot.errors import ExitCode
from tests.conftest import CliFn
from tests.providers_catalog import sql


def rows(url: str, user: str = "alice") -> list[tuple[object, ...]]:
    found = sql(
        url,
        "SELECT m.provider_key, m.model_key, m.model_name, m.is_active FROM ai_user_models_flut m "
        "JOIN users u ON u.users_id = m.user_id WHERE u.username = :u "
        "ORDER BY m.provider_key, m.model_key",
        u=user,
    )
    return [(r[0], r[1], r[2], bool(r[3])) for r in found]


def test_custom_add_list_hide_show_remove(cli: CliFn, database_url: str) -> None:
    added = cli("custom", "add", "openai", "gpt-4o-latest", "--name", "GPT-4o Latest (Custom)")
    assert added.exit_code == 0, added.stderr
    assert "GPT-4o Latest (Custom)" in added.stderr
    doc = cli("custom", "add", "Anthropic", "claude-next", "--json").json()
    assert doc["success"] is True and doc["custom_model"]["name"] == "claude-next"
    assert doc["custom_model"]["provider"] == "anthropic"
    assert rows(database_url) == [
        ("anthropic", "claude-next", "claude-next", True),
        ("openai", "gpt-4o-latest", "GPT-4o Latest (Custom)", True),
    ]

    listed = cli("custom", "list", "--json").json()["custom_models"]
    assert [m["model_key"] for m in listed] == ["claude-next", "gpt-4o-latest"]
    only = cli("custom", "list", "--provider", "openai", "--json").json()["custom_models"]
    assert [m["model_key"] for m in only] == ["gpt-4o-latest"]
    text = cli("custom", "list")
    assert text.exit_code == 0 and "gpt-4o-latest" in text.stdout

    assert cli("custom", "hide", "openai", "gpt-4o-latest").exit_code == 0
    assert rows(database_url)[1][3] is False
    visible = cli("custom", "list", "--json").json()["custom_models"]
    assert [m["model_key"] for m in visible] == ["claude-next"]
    every = cli("custom", "list", "--all", "--json").json()["custom_models"]
    assert len(every) == 2
    assert cli("custom", "show", "openai", "gpt-4o-latest").exit_code == 0
    assert rows(database_url)[1][3] is True

    refused = cli("custom", "remove", "openai", "gpt-4o-latest")  # no terminal, no --yes
    assert refused.exit_code == ExitCode.USAGE and "--yes" in refused.stderr
    assert len(rows(database_url)) == 2
    removed = cli("custom", "remove", "openai", "gpt-4o-latest", "--yes", "--json")
    assert removed.exit_code == 0 and removed.json()["success"] is True
    assert [r[1] for r in rows(database_url)] == ["claude-next"]
    missing = cli("custom", "remove", "openai", "gpt-4o-latest", "--yes")
    assert missing.exit_code == ExitCode.USAGE and "no custom model" in missing.stderr
    assert cli("custom", "hide", "openai", "never-added").exit_code == ExitCode.USAGE


def test_custom_duplicate_is_a_conflict_with_one_row(cli: CliFn, database_url: str) -> None:
    assert cli("custom", "add", "openai", "my-model").exit_code == 0
    dup = cli("custom", "add", "openai", "my-model", "--name", "Other")
    assert dup.exit_code == ExitCode.CONFLICT
    assert "already have the custom model 'my-model'" in dup.stderr
    assert rows(database_url) == [("openai", "my-model", "my-model", True)]
    doc = cli("custom", "add", "openai", "my-model", "--json")
    assert doc.exit_code == ExitCode.CONFLICT and doc.json()["success"] is False
    # the same model key under another provider is a different model
    assert cli("custom", "add", "openrouter", "my-model").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "m1"], "unknown provider"),
        (["", "m1"], "empty"),
        (["openai", "   "], "model key is empty"),
        (["openai", "modèle"], "characters outside"),
        (["openai", "x" * 129], "limit is 128"),
        (["openai", "m1", "--name", " "], "model name is empty"),
        (["openai", "m1", "--name", "a" * 121], "limit is 120"),
        (["openai", "m1", "--name", "bad\x07bell"], "control characters"),
    ],
)
def test_custom_bad_input(cli: CliFn, database_url: str, args: list[str], message: str) -> None:
    result = cli("custom", "add", *args)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert rows(database_url) == []


def test_custom_models_are_per_user(cli: CliFn, database_url: str) -> None:
    assert cli("users", "add", "bob").exit_code == 0
    assert cli("custom", "add", "openai", "alice-only").exit_code == 0
    assert cli("custom", "list", "--all", "--json", user="bob").json()["custom_models"] == []
    bob_models = cli("models", "list", "--all", "--json", user="bob").json()["models"]
    assert "alice-only" not in [m["model_key"] for m in bob_models]
    assert cli("custom", "hide", "openai", "alice-only", user="bob").exit_code == ExitCode.USAGE
    # bob may add the same model for himself: uniqueness is per user
    assert cli("custom", "add", "openai", "alice-only", user="bob").exit_code == 0
    assert cli("custom", "remove", "openai", "alice-only", "--yes", user="bob").exit_code == 0
    assert rows(database_url) == [("openai", "alice-only", "alice-only", True)]
    assert rows(database_url, "bob") == []
