"""`aipilot status`, the control centre, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aipilot.errors import ExitCode
from tests.conftest import ADMIN, CliFn
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import point_catalog_at, sql

NO_MASTER_KEY = {"AIPILOT_MASTER_KEY": None}


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


def test_status_on_a_fresh_database_without_a_master_key(cli: CliFn) -> None:
    result = cli("status", "--json", env=NO_MASTER_KEY)  # type: ignore[dict-item]
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["success"] is True and doc["user"] == ADMIN
    assert doc["active_model"] is None and doc["health"] == "not configured"
    assert doc["prompt"] is None
    assert doc["keys"]["openai"] is False and "ollama" not in doc["keys"]
    assert {p["state"] for p in doc["providers"]} == {"not configured"}

    text = cli("status", env=NO_MASTER_KEY)  # type: ignore[dict-item]
    assert text.exit_code == 0, text.stderr
    assert "Centre de Pilotage IA" in text.stdout and "aipilot model activate" in text.stdout
    assert "openai" in text.stdout and "Traceback" not in text.stderr


def test_status_with_a_key_and_no_master_key_reads_locked(cli: CliFn) -> None:
    assert (
        cli("keys", "set", "openai", "--stdin", "--no-test", input="sk-test-1234567890").exit_code
        == 0
    )
    doc = cli("status", "--json", env=NO_MASTER_KEY).json()  # type: ignore[dict-item]
    openai = next(p for p in doc["providers"] if p["provider"] == "openai")
    assert openai["state"] == "locked" and openai["hint"].endswith("7890")
    assert "1234567890" not in str(doc)


def test_status_after_a_healthy_test(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    assert (
        cli("keys", "set", "openai", "--stdin", "--no-test", input="sk-test-1234567890").exit_code
        == 0
    )
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    untested = cli("status", "--json").json()
    assert untested["health"] == "untested" and untested["active_model"]["model"] == "gpt-4o-mini"
    assert cli("test").exit_code == 0
    sql(
        database_url,
        "INSERT INTO ai_system_prompts (id, user_id, name, prompt_content, is_active, "
        "created_at, updated_at) SELECT :id, users_id, 'support', 'Be kind.', true, "
        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM users WHERE username = :u",
        id=_uuid(database_url),
        u=ADMIN,
    )
    doc = cli("status", "--json").json()
    assert doc["health"] == "healthy" and doc["keys"]["openai"] is True
    assert doc["active_model"]["last_test_ok"] is True
    assert doc["prompt"]["name"] == "support"
    text = cli("status")
    assert text.exit_code == 0 and "Healthy" in text.stdout and "support" in text.stdout

    fake.set_keys({"other"})
    assert cli("test").exit_code == ExitCode.UNHEALTHY
    assert cli("status", "--json").json()["health"] == "unhealthy"
    assert "Unhealthy" in cli("status").stdout


def test_status_bad_module(cli: CliFn) -> None:
    result = cli("status", "--module", "x y")
    assert result.exit_code == ExitCode.USAGE and "Error:" in result.stderr


def _uuid(database_url: str) -> object:
    import uuid

    value = uuid.uuid4()
    return value.hex if database_url.startswith("sqlite") else value
