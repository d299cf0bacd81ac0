"""`aipilot keys` through the real CLI, against the fake provider, on both databases."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest

from aipilot.errors import ExitCode
from tests.conftest import MASTER_KEY, CliFn
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import point_catalog_at, sql

OTHER_MASTER_KEY = base64.b64encode(b"\x09" * 32).decode()


def canary() -> str:
    return f"sk-aipilot-CANARY-{uuid.uuid4()}"


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


def credential(database_url: str, provider: str, user: str = "alice") -> dict[str, object] | None:
    rows = sql(
        database_url,
        "SELECT c.* FROM user_provider_credentials c JOIN users u ON u.users_id = c.user_id "
        "WHERE u.username = :u AND c.provider_key = :p",
        u=user,
        p=provider,
    )
    return dict(rows[0]._mapping) if rows else None


# ------------------------------------------------------------------ set
def test_set_from_stdin_stores_ciphertext_and_tests_it(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    key = canary()
    result = cli("keys", "set", "openai", "--stdin", "--json", input=f"  {key}\n")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert (
        doc["success"] is True and doc["valid"]["ok"] is True and doc["hint"] == f"sk-…{key[-4:]}"
    )
    row = credential(database_url, "openai")
    assert row is not None and key not in str(row) and row["key_hint"] == doc["hint"]
    assert row["last_test_ok"] in (True, 1)
    request = fake.last_request
    assert request.headers["authorization"] == f"Bearer {key}"  # stripped of whitespace
    assert key not in request.path + request.query


def test_set_from_env_and_without_test(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    key = canary()
    result = cli(
        "keys", "set", "anthropic", "--from-env", "MY_KEY", "--no-test", env={"MY_KEY": key}
    )
    assert result.exit_code == 0, result.stderr
    assert fake.requests == []
    assert credential(database_url, "anthropic") is not None
    missing = cli("keys", "set", "anthropic", "--from-env", "NOPE_UNSET")
    assert missing.exit_code == ExitCode.USAGE and "NOPE_UNSET" in missing.stderr


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("sk-abc\ndef-123456", "line break"),
        ("sk-abc\x00def-123456", "control"),
        ("sk-" + "a" * 10_000, "long"),
        ("sk-clé-unicode-123456", "unicode"),
    ],
)
def test_bad_keys_are_refused_unechoed_and_unstored(
    cli: CliFn, fake: FakeProvider, database_url: str, value: str, why: str
) -> None:
    result = cli("keys", "set", "openai", "--stdin", input=value)
    assert result.exit_code == ExitCode.USAGE, (why, result.stderr)
    assert credential(database_url, "openai") is None
    body = value.strip()
    if len(body) > 4:
        assert body[3:] not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_no_key_source_off_a_terminal_is_a_usage_error(cli: CliFn, fake: FakeProvider) -> None:
    result = cli("keys", "set", "openai")
    assert result.exit_code == ExitCode.USAGE and "--stdin" in result.stderr


def test_unknown_provider(cli: CliFn, fake: FakeProvider) -> None:
    result = cli("keys", "set", "nosuchai", "--stdin", input=canary())
    assert result.exit_code == ExitCode.USAGE and "unknown provider" in result.stderr


def test_no_master_key_refuses_before_storing(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    result = cli("keys", "set", "openai", "--stdin", input=canary(), env={"AIPILOT_MASTER_KEY": ""})
    # an empty variable is a set-but-invalid master key: refused, never a fallback
    assert result.exit_code in (ExitCode.USAGE, ExitCode.NOT_CONFIGURED)
    assert "AIPILOT_MASTER_KEY" in result.stderr
    assert credential(database_url, "openai") is None


def test_failed_test_keeps_key_and_exits_provider_error(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    fake.fail("401", prefix="openai")
    key = canary()
    result = cli("keys", "set", "openai", "--stdin", "--json", input=key)
    assert result.exit_code == ExitCode.PROVIDER
    doc = result.json()
    assert doc["success"] is True and doc["valid"]["ok"] is False
    assert key not in result.stdout + result.stderr  # the fake's 401 echoes the key
    row = credential(database_url, "openai")
    assert (
        row is not None
        and row["last_test_ok"] in (False, 0)
        and key not in str(row["last_test_error"])
    )


# ------------------------------------------------------------------ status / test / delete
def test_status_contract_and_details(cli: CliFn, fake: FakeProvider) -> None:
    key = canary()
    cli("keys", "set", "google", "--stdin", input=key)
    doc = cli("keys", "status", "--json").json()
    assert doc["data"]["google"] is True and doc["data"]["openai"] is False
    assert {"openai", "anthropic", "google", "mistral", "xai", "deepseek", "openrouter"} <= set(
        doc["data"]
    )
    google = next(p for p in doc["providers"] if p["provider"] == "google")
    assert google["state"] == "configured" and google["last_test_ok"] is True
    human = cli("keys", "status")
    assert human.exit_code == 0 and f"…{key[-4:]}" in human.stdout and key not in human.stdout
    # Gemini keys travel in the x-goog-api-key header, never in the URL
    gemini = [r for r in fake.requests if r.path.startswith("/gemini")]
    assert gemini and all(
        r.headers.get("x-goog-api-key") == key and key not in r.query for r in gemini
    )


def test_test_single_and_all(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    for provider in ("openai", "anthropic", "google"):
        cli("keys", "set", provider, "--stdin", "--no-test", input=canary())
    single = cli("keys", "test", "anthropic", "--json")
    assert single.exit_code == 0 and single.json()["valid"]["ok"] is True
    anthropic = [r for r in fake.requests if r.path.startswith("/anthropic")][-1]
    assert (
        anthropic.headers["anthropic-version"] == "2023-06-01" and "x-api-key" in anthropic.headers
    )
    fake.fail("500", times=10, prefix="gemini")
    every = cli("keys", "test", "--all", "--json")
    assert every.exit_code == ExitCode.PROVIDER
    doc = every.json()
    assert doc["valid"]["ok"] is False
    assert doc["results"]["openai"]["ok"] is True and doc["results"]["google"]["ok"] is False
    logs = sql(
        database_url,
        "SELECT provider_key, outcome, error_code FROM ai_usage_logs WHERE kind = 'key_test'",
    )
    assert ("google", "error") in {(r[0], r[1]) for r in logs}
    assert len(logs) == 1 + 3  # one row per call: the single test, then three
    assert cli("keys", "test").exit_code == ExitCode.USAGE
    assert cli("keys", "test", "mistral").exit_code == ExitCode.NOT_CONFIGURED


def test_test_all_runs_concurrently(cli: CliFn, fake: FakeProvider) -> None:
    providers = ("openai", "anthropic", "google", "mistral", "xai", "deepseek")
    for provider in providers:
        cli("keys", "set", provider, "--stdin", "--no-test", input=canary())
    fake.delay_s = 2.0
    result = cli("keys", "test", "--all", "--json")
    assert result.exit_code == 0, result.stdout
    starts = sorted(r.received_at for r in fake.requests)
    assert len(starts) == len(providers)
    # every request arrived before the first one (2 s long) could have finished
    assert starts[-1] - starts[0] < 2.0


def test_delete_is_confirmed_and_idempotent(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    cli("keys", "set", "openai", "--stdin", "--no-test", input=canary())
    refused = cli("keys", "delete", "openai")
    assert refused.exit_code == ExitCode.USAGE and credential(database_url, "openai") is not None
    assert cli("keys", "delete", "openai", "--yes", "--json").json()["deleted"] is True
    assert credential(database_url, "openai") is None
    again = cli("keys", "delete", "openai", "--yes", "--json")
    assert again.exit_code == 0 and again.json()["deleted"] is False


# ------------------------------------------------------------------ master key problems
def test_wrong_master_key_is_a_mismatch_and_changes_nothing(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    cli("keys", "set", "openai", "--stdin", "--no-test", input=canary())
    before = credential(database_url, "openai")
    status = cli("keys", "status", "--json", env={"AIPILOT_MASTER_KEY": OTHER_MASTER_KEY}).json()
    openai = next(p for p in status["providers"] if p["provider"] == "openai")
    assert openai["state"] == "needs re-entry" and status["data"]["openai"] is False
    tested = cli("keys", "test", "openai", "--json", env={"AIPILOT_MASTER_KEY": OTHER_MASTER_KEY})
    assert (
        tested.exit_code == ExitCode.PROVIDER
        and "master key mismatch" in tested.json()["valid"]["error"]
    )
    after = credential(database_url, "openai")
    assert before is not None and after is not None
    assert (before["encrypted_key"], before["nonce"]) == (after["encrypted_key"], after["nonce"])


def test_ciphertext_copied_to_another_user_fails_integrity(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    cli("users", "add", "bob")
    cli("keys", "set", "openai", "--stdin", "--no-test", input=canary())
    cli("keys", "set", "openai", "--stdin", "--no-test", input=canary(), user="bob")
    alice = credential(database_url, "openai")
    assert alice is not None
    sql(
        database_url,
        "UPDATE user_provider_credentials SET encrypted_key = :c, nonce = :n "
        "WHERE user_id = (SELECT users_id FROM users WHERE username = 'bob')",
        c=alice["encrypted_key"],
        n=alice["nonce"],
    )
    status = cli("keys", "status", "--json", user="bob").json()
    assert (
        next(p for p in status["providers"] if p["provider"] == "openai")["state"]
        == "needs re-entry"
    )
    tested = cli("keys", "test", "openai", "--json", user="bob")
    assert "integrity" in tested.json()["valid"]["error"]
    # alice's own row is untouched and still works
    assert cli("keys", "test", "openai", user="alice").exit_code == 0


# ------------------------------------------------------------------ rotation
def test_rotate_master_with_env_keys(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    cli("users", "add", "bob")
    cli("keys", "set", "openai", "--stdin", "--no-test", input=canary())
    cli("keys", "set", "mistral", "--stdin", "--no-test", input=canary(), user="bob")
    assert cli("keys", "rotate-master").exit_code == ExitCode.USAGE  # env source: needs the new key
    assert (
        cli(
            "keys",
            "rotate-master",
            "--new-from-env",
            "NEW",
            user="bob",
            env={"NEW": OTHER_MASTER_KEY},
        ).exit_code
        == ExitCode.PERMISSION
    )
    result = cli(
        "keys", "rotate-master", "--new-from-env", "NEW", "--json", env={"NEW": OTHER_MASTER_KEY}
    )
    assert result.exit_code == 0, result.stderr
    assert result.json()["rows"] == 2 and result.json()["users"] == 2
    new_env = {"AIPILOT_MASTER_KEY": OTHER_MASTER_KEY}
    assert cli("keys", "test", "openai", env=new_env).exit_code == 0
    assert cli("keys", "test", "mistral", user="bob", env=new_env).exit_code == 0
    old = cli("keys", "test", "openai", "--json")
    assert "master key mismatch" in old.json()["valid"]["error"]


def test_rotate_master_in_the_keyring(database_url: str, fake: FakeProvider) -> None:
    from aipilot import vault
    from tests.conftest import make_cli
    from tests.memkeyring import MemoryKeyring, installed

    ring = MemoryKeyring()
    with installed(ring):
        ring.set_password(vault.KEYRING_SERVICE, vault.KEYRING_USERNAME, MASTER_KEY)
        run = make_cli(database_url)
        no_env = {"AIPILOT_MASTER_KEY": None}
        assert (
            run(
                "keys", "set", "openai", "--stdin", "--no-test", input=canary(), env=no_env
            ).exit_code
            == 0
        )  # type: ignore[dict-item]
        result = run("keys", "rotate-master", "--json", env=no_env)  # type: ignore[dict-item]
        assert result.exit_code == 0, result.stderr
        stored = ring.get_password(vault.KEYRING_SERVICE, vault.KEYRING_USERNAME)
        assert stored and stored != MASTER_KEY
        assert ring.get_password(vault.KEYRING_SERVICE, vault.KEYRING_PENDING_USERNAME) is None
        assert run("keys", "test", "openai", env=no_env).exit_code == 0  # type: ignore[dict-item]


def test_openrouter_key_is_checked_on_its_key_endpoint(cli: CliFn, fake: FakeProvider) -> None:
    """OpenRouter's model list is public, so the seeded test endpoint is /key."""
    result = cli("keys", "set", "openrouter", "--stdin", "--json", input=canary())
    assert result.exit_code == 0 and result.json()["valid"]["ok"] is True
    assert fake.last_request.path.endswith("/key")


def test_rotate_master_also_reencrypts_organisation_keys(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    org_key = canary()
    assert cli("orgs", "add", "acme").exit_code == 0
    assert (
        cli("org-openai", "set-key", "acme", "--stdin", "--no-test", input=org_key).exit_code == 0
    )
    before = sql(database_url, "SELECT openai_api_key FROM openai_connexion")[0][0]
    result = cli(
        "keys", "rotate-master", "--new-from-env", "NEW", "--json", env={"NEW": OTHER_MASTER_KEY}
    )
    assert result.exit_code == 0 and result.json()["rows"] == 1
    after = sql(database_url, "SELECT openai_api_key FROM openai_connexion")[0][0]
    assert after != before and org_key not in str(after)
    tested = cli("org-openai", "test", "acme", env={"AIPILOT_MASTER_KEY": OTHER_MASTER_KEY})
    assert tested.exit_code == 0, tested.stderr
    assert fake.last_request.headers["authorization"] == f"Bearer {org_key}"
