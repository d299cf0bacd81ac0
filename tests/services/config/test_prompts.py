"""System prompts through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aipilot.errors import ExitCode
from aipilot.services.config.prompts import MAX_PROMPT_CHARS
from tests.conftest import MASTER_KEY, REPO, CliFn
from tests.providers_catalog import sql

UNICODE = (
    "Tu es un assistant de devis. Réponds en français 🇫🇷 — «exactement».\nZürich, 東京, e\u0301\n"
)


def _active_config(database_url: str, model: str = "gpt-4o-mini") -> None:
    """An active model configuration for alice, as `aipilot model activate` leaves one."""
    sql(
        database_url,
        "INSERT INTO ai_provider_configs (id, user_id, module_name, provider_name, model_name, is_active) "
        "SELECT :id, users_id, 'global', 'openai', :m, :t FROM users WHERE username = 'alice'",
        id=_uuid(database_url),
        m=model,
        t=True,
    )


def _uuid(database_url: str) -> str:
    import uuid

    value = uuid.uuid4()
    return value.hex if database_url.startswith("sqlite") else str(value)


def _snapshot(database_url: str) -> tuple[object, object]:
    rows = sql(
        database_url,
        "SELECT c.system_prompt, p.name FROM ai_provider_configs c "
        "LEFT JOIN ai_system_prompts p ON p.id = c.system_prompt_id WHERE c.is_active",
    )
    return (rows[0][0], rows[0][1])


def test_create_show_list_rename_delete(cli: CliFn, tmp_path: Path) -> None:
    path = tmp_path / "devis.md"
    path.write_bytes(UNICODE.encode())
    assert cli("prompts", "create", "Assistant Devis", "--file", str(path)).exit_code == 0
    assert cli("prompts", "create", "court", "--text", "Be brief.").exit_code == 0
    assert cli("prompts", "create", "piped", input="From stdin\n").exit_code == 0
    shown = cli("prompts", "show", "Assistant Devis")
    assert shown.stdout == UNICODE  # unicode round-trips exactly
    assert (
        cli("prompts", "show", "Assistant Devis", "--json").json()["prompt"]["content"] == UNICODE
    )
    listed = cli("prompts", "list", "--json").json()["prompts"]
    assert [p["name"] for p in listed] == ["Assistant Devis", "court", "piped"]
    assert listed[0]["size"] == len(UNICODE)
    by_id = cli("prompts", "show", listed[1]["id"], "--json").json()["prompt"]
    assert by_id["content"] == "Be brief."
    assert cli("prompts", "rename", "court", "short", "--json").json()["prompt"]["name"] == "short"
    assert cli("prompts", "rename", "short", "piped").exit_code == ExitCode.CONFLICT
    assert (
        cli("prompts", "delete", "short").exit_code == ExitCode.USAGE
    )  # needs --yes off a terminal
    assert cli("prompts", "delete", "short", "--yes").exit_code == 0
    assert cli("prompts", "show", "short").exit_code == ExitCode.USAGE
    human = cli("prompts", "list")
    assert "Assistant Devis" in human.stdout and "short" not in human.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "code"),
    [
        (["prompts", "create", "x", "--text", ""], None, ExitCode.USAGE),
        (["prompts", "create", "x", "--text", "   \n"], None, ExitCode.USAGE),
        (["prompts", "create", "x"], "a\x00b", ExitCode.USAGE),
        (["prompts", "create", "x", "--text", "y" * (MAX_PROMPT_CHARS + 1)], None, ExitCode.USAGE),
        (["prompts", "create", "   ", "--text", "ok"], None, ExitCode.USAGE),
        (["prompts", "create", "n" * 101, "--text", "ok"], None, ExitCode.USAGE),
        (["prompts", "create", "bad\tname", "--text", "ok"], None, ExitCode.USAGE),
        (["prompts", "create", "x", "--file", "/nonexistent/file.md"], None, ExitCode.USAGE),
        (
            ["prompts", "create", "x", "--text", "a", "--file", "/etc/hostname"],
            None,
            ExitCode.USAGE,
        ),
        (["prompts", "activate", "missing"], None, ExitCode.USAGE),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(
    cli: CliFn, database_url: str, args: list[str], stdin: str | None, code: int
) -> None:
    result = cli(*args, input=stdin)
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("Error:")
    assert sql(database_url, "SELECT count(*) FROM ai_system_prompts")[0][0] == 0


def test_duplicate_name_is_a_conflict(cli: CliFn, database_url: str) -> None:
    assert cli("prompts", "create", "dup", "--text", "one").exit_code == 0
    again = cli("prompts", "create", "dup", "--text", "two", "--json")
    assert again.exit_code == ExitCode.CONFLICT and again.json()["success"] is False
    assert sql(database_url, "SELECT prompt_content FROM ai_system_prompts")[0][0] == "one"


def test_binary_file_is_refused(cli: CliFn, tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\xff\xfe\x00binary")
    assert cli("prompts", "create", "blob", "--file", str(path)).exit_code == ExitCode.USAGE


def test_editor_flow_with_a_fake_editor(cli: CliFn, tmp_path: Path) -> None:
    editor = tmp_path / "fake-editor"
    editor.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            """
            import sys
            path = sys.argv[1]
            before = open(path, encoding="utf-8").read()
            open(path, "w", encoding="utf-8").write(before + "Edited by the editor ✓\\n")
            """
        )
    )
    editor.chmod(0o700)
    created = cli("prompts", "create", "ed", "--editor", env={"EDITOR": str(editor), "VISUAL": ""})
    assert created.exit_code == 0, created.stderr
    edited = cli("prompts", "edit", "ed", "--editor", env={"EDITOR": str(editor), "VISUAL": ""})
    assert edited.exit_code == 0, edited.stderr
    assert cli("prompts", "show", "ed").stdout == "Edited by the editor ✓\n" * 2
    failing = cli("prompts", "edit", "ed", "--editor", env={"EDITOR": "false", "VISUAL": ""})
    assert failing.exit_code == ExitCode.USAGE and "status 1" in failing.stderr
    assert cli("prompts", "show", "ed").stdout == "Edited by the editor ✓\n" * 2


def test_activation_snapshot_staleness_and_deactivation(cli: CliFn, database_url: str) -> None:
    _active_config(database_url)
    cli("prompts", "create", "A", "--text", "prompt A")
    cli("prompts", "create", "B", "--text", "prompt B")
    first = cli("prompts", "activate", "A", "--json").json()
    assert first["configs_updated"] == 1
    assert _snapshot(database_url) == ("prompt A", "A")
    cli("prompts", "activate", "B")
    assert _snapshot(database_url) == ("prompt B", "B")
    active = sql(database_url, "SELECT name FROM ai_system_prompts WHERE is_active")
    assert [r[0] for r in active] == ["B"]
    kept = cli(
        "prompts", "edit", "B", "--text", "prompt B v2", "--json"
    ).json()  # off a terminal: kept
    assert kept["stale_configs"] == 1 and _snapshot(database_url) == ("prompt B", "B")
    shown = cli("model", "show", "--json").json()["active"]
    assert shown["prompt_name"] == "B" and shown["prompt_stale"] is True
    assert "stale" in cli("model", "show").stdout and "stale" in cli("status").stdout
    refreshed = cli(
        "prompts", "edit", "B", "--text", "prompt B v3", "--refresh-snapshot", "--json"
    ).json()
    assert refreshed["configs_updated"] == 1 and _snapshot(database_url) == ("prompt B v3", "B")
    assert cli("model", "show", "--json").json()["active"]["prompt_stale"] is False
    cli("prompts", "deactivate")
    assert _snapshot(database_url) == (None, None)
    assert sql(database_url, "SELECT count(*) FROM ai_system_prompts WHERE is_active")[0][0] == 0
    assert cli("prompts", "deactivate", "--json").json()["prompt"] is None  # idempotent


def test_deleting_the_active_prompt_keeps_the_snapshot_unlinked(
    cli: CliFn, database_url: str
) -> None:
    _active_config(database_url)
    cli("prompts", "create", "A", "--text", "prompt A")
    cli("prompts", "activate", "A")
    assert cli("prompts", "delete", "A", "--yes").exit_code == 0
    assert _snapshot(database_url) == ("prompt A", None)


def test_prompts_are_per_user(cli: CliFn) -> None:
    cli("users", "add", "bob")
    cli("prompts", "create", "secret plan", "--text", "alice only")
    alice_id = cli("prompts", "list", "--json").json()["prompts"][0]["id"]
    assert cli("prompts", "list", "--json", user="bob").json()["prompts"] == []
    assert cli("prompts", "show", alice_id, user="bob").exit_code == ExitCode.USAGE
    assert (
        cli("prompts", "create", "secret plan", "--text", "bob's", user="bob").exit_code == 0
    )  # names are per user


@pytest.mark.slow
def test_twenty_concurrent_activations_leave_one_active(
    cli: CliFn, database_url: str, tmp_path: Path
) -> None:
    _active_config(database_url)
    names = [f"p{i:02d}" for i in range(20)]
    for name in names:
        cli("prompts", "create", name, "--text", f"text of {name}")
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        "from aipilot.__main__ import main\n"
        "sys.argv = ['aipilot', 'prompts', 'activate', sys.argv[1]]\n"
        "main()\n"
    )
    env = {
        **os.environ,
        "AIPILOT_DATABASE_URL": database_url,
        "AIPILOT_USER": "alice",
        "AIPILOT_MASTER_KEY": MASTER_KEY,
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, name],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    time.sleep(1.5)  # let every process import and wait at the barrier
    go.touch()
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in outcomes] == [0] * 20, [err for rc, err in outcomes if rc]
    active = sql(database_url, "SELECT name, prompt_content FROM ai_system_prompts WHERE is_active")
    assert len(active) == 1
    assert _snapshot(database_url) == (
        active[0][1],
        active[0][0],
    )  # the snapshot matches the winner
