"""`aipilot model activate | show | deactivate` on both databases, and concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aipilot.errors import ExitCode
from tests.conftest import ADMIN, MASTER_KEY, REPO, CliFn
from tests.providers_catalog import sql


def configs(database_url: str, user: str = ADMIN) -> list[tuple[str, str, bool]]:
    rows = sql(
        database_url,
        "SELECT c.provider_name, c.model_name, c.is_active FROM ai_provider_configs c "
        "JOIN users u ON u.users_id = c.user_id WHERE u.username = :u "
        "ORDER BY c.provider_name, c.model_name",
        u=user,
    )
    return [(str(r[0]), str(r[1]), bool(r[2])) for r in rows]


def active(database_url: str) -> list[tuple[str, str]]:
    return [(p, m) for p, m, on in configs(database_url) if on]


def add_custom(database_url: str, provider: str, model: str, *, visible: bool = True) -> None:
    sql(
        database_url,
        "INSERT INTO ai_user_models_flut (id, user_id, provider_key, model_key, model_name, "
        "is_active, created_at) SELECT :id, users_id, :p, :m, :n, :a, CURRENT_TIMESTAMP "
        "FROM users WHERE username = :u",
        id=_uuid(database_url),
        p=provider,
        m=model,
        n=f"My {model}",
        a=visible,
        u=ADMIN,
    )


def _uuid(database_url: str) -> object:
    import uuid

    value = uuid.uuid4()
    return value.hex if database_url.startswith("sqlite") else value


# ------------------------------------------------------------------ activate / show / deactivate
def test_activate_show_deactivate(cli: CliFn, database_url: str) -> None:
    missing = cli("model", "show")
    assert missing.exit_code == ExitCode.NOT_CONFIGURED
    assert "aipilot model activate" in missing.stderr

    result = cli("model", "activate", "openai", "gpt-4o-mini", "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["changed"] is True and doc["active"]["model"] == "gpt-4o-mini"
    assert doc["active"]["label"] == "GPT-4o mini" and doc["active"]["source"] == "catalog"
    assert active(database_url) == [("openai", "gpt-4o-mini")]

    shown = cli("model", "show", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["active"]["provider"] == "openai"
    assert shown.json()["active"]["health"] == "untested"
    text = cli("model", "show")
    assert text.exit_code == 0 and "gpt-4o-mini" in text.stdout and "GPT-4o mini" in text.stdout

    off = cli("model", "deactivate")
    assert off.exit_code == 0, off.stderr
    assert active(database_url) == []
    again = cli("model", "deactivate", "--json")
    assert again.exit_code == 0 and again.json()["changed"] is False
    assert cli("model", "show").exit_code == ExitCode.NOT_CONFIGURED


def test_switching_keeps_one_row_and_reactivating_is_a_noop(cli: CliFn, database_url: str) -> None:
    for provider, model in [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-0"),
        ("openai", "gpt-4o-mini"),
        ("google", "gemini-2.5-flash"),
        ("anthropic", "claude-sonnet-4-0"),
    ]:
        result = cli("model", "activate", provider, model)
        assert result.exit_code == 0, result.stderr
        assert active(database_url) == [(provider, model)]
    assert len(configs(database_url)) == 1  # one row per (user, module), as the seed upserts

    noop = cli("model", "activate", "anthropic", "claude-sonnet-4-0", "--json")
    assert noop.exit_code == 0 and noop.json()["changed"] is False
    assert "already" in cli("model", "activate", "anthropic", "claude-sonnet-4-0").stderr
    assert len(configs(database_url)) == 1


def test_prompt_snapshot_follows_the_switch(cli: CliFn, database_url: str) -> None:
    prompt = "You are a terse assistant who answers in French. " * 3
    sql(
        database_url,
        "INSERT INTO ai_system_prompts (id, user_id, name, prompt_content, is_active, "
        "created_at, updated_at) SELECT :id, users_id, 'terse', :c, true, CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP FROM users WHERE username = :u",
        id=_uuid(database_url),
        c=prompt,
        u=ADMIN,
    )
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    # the active prompt is then deactivated: the snapshot still follows the active config
    sql(database_url, "UPDATE ai_system_prompts SET is_active = false")
    assert cli("model", "activate", "google", "gemini-2.5-pro").exit_code == 0
    doc = cli("model", "show", "--json").json()["active"]
    assert doc["prompt_name"] == "terse" and doc["prompt_summary"].startswith("You are a terse")
    assert len(doc["prompt_summary"]) <= 60
    rows = sql(
        database_url,
        "SELECT system_prompt FROM ai_provider_configs WHERE is_active AND model_name = :m",
        m="gemini-2.5-pro",
    )
    assert rows[0][0] == prompt


def test_custom_model_activation(cli: CliFn, database_url: str) -> None:
    add_custom(database_url, "openai", "ft:gpt-4o-mini:acme:42")
    add_custom(database_url, "openai", "hidden-model", visible=False)
    result = cli("model", "activate", "openai", "ft:gpt-4o-mini:acme:42", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["active"]["source"] == "custom"
    assert active(database_url) == [("openai", "ft:gpt-4o-mini:acme:42")]
    hidden = cli("model", "activate", "openai", "hidden-model")
    assert hidden.exit_code == ExitCode.USAGE
    assert active(database_url) == [("openai", "ft:gpt-4o-mini:acme:42")]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nope", "gpt-4o-mini"], "unknown provider"),
        (["openai", "no-such-model"], "unknown model"),
        (["anthropic", "gpt-4o-mini"], "unknown model"),  # a model of another provider
        (["ollama", "llama3.2"], "disabled"),  # seeded inactive
        (["", "gpt-4o-mini"], "empty"),
        (["openai", "   "], "empty"),
        (["openai", "m" * 500], "limit"),
        (["o" * 500, "gpt-4o-mini"], "limit"),
        (["openaï", "gpt-4o-mini"], "characters"),
        (["openai", "gpt-4o-mini-é"], "characters"),
        (["openai", "gpt-4o-mini", "--module", "Bad Module"], "module"),
        (["openai", "gpt-4o-mini", "--module", ""], "module"),
        (["openai", "gpt-4o-mini", "--module", "模块"], "module"),
    ],
)
def test_bad_input_changes_nothing(
    cli: CliFn, database_url: str, args: list[str], needle: str
) -> None:
    assert cli("model", "activate", "google", "gemini-2.5-flash").exit_code == 0
    before = configs(database_url)
    result = cli("model", "activate", *args)
    assert result.exit_code == ExitCode.USAGE, (result.stdout, result.stderr)
    assert result.exception is None
    assert needle in result.stderr and "Error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert configs(database_url) == before


def test_inactive_catalog_model_is_refused(cli: CliFn, database_url: str) -> None:
    sql(database_url, "UPDATE ai_models SET is_active = false WHERE model_key = 'gpt-4o'")
    result = cli("model", "activate", "openai", "gpt-4o")
    assert result.exit_code == ExitCode.USAGE and "unknown model" in result.stderr
    assert active(database_url) == []


def test_modules_are_independent(cli: CliFn, database_url: str) -> None:
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    assert cli("model", "activate", "openai", "gpt-4o", "--module", "mail").exit_code == 0
    assert sorted(active(database_url)) == [("openai", "gpt-4o"), ("openai", "gpt-4o-mini")]
    assert cli("model", "show", "--module", "mail", "--json").json()["active"]["model"] == "gpt-4o"
    assert cli("model", "show", "--module", "BAD!").exit_code == ExitCode.USAGE


def test_no_arguments_off_a_terminal_is_a_usage_error(cli: CliFn, database_url: str) -> None:
    for args in (["model", "activate"], ["model", "activate", "openai"]):
        result = cli(*args)
        assert result.exit_code == ExitCode.USAGE
        assert "PROVIDER and MODEL" in result.stderr
    assert active(database_url) == []


def test_picker_on_a_terminal(database_url: str) -> None:
    from tests.terminal import run_on_terminal

    env = {
        "AIPILOT_DATABASE_URL": database_url,
        "AIPILOT_USER": ADMIN,
        "AIPILOT_MASTER_KEY": MASTER_KEY,
    }
    # providers sorted: anthropic, deepseek, google, mistral, openai, ...; pick google (3)
    # then its models sorted: gemini-2.5-flash, gemini-2.5-pro; pick 2 (after a bad number)
    code, screen = run_on_terminal(["model", "activate"], env=env, typed="3\n9\n2\n")
    assert code == 0, screen
    assert "gemini-2.5-pro" in screen
    assert active(database_url) == [("google", "gemini-2.5-pro")]


# ------------------------------------------------------------------ processes
def _env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "AIPILOT_DATABASE_URL": database_url,
        "AIPILOT_USER": ADMIN,
        "AIPILOT_MASTER_KEY": MASTER_KEY,
    }


# Each process imports everything first, reports ready, then waits for the gate: the 50
# activations then really start together (on 2 CPUs, interpreter start-up alone takes
# longer than any fixed sleep).
WAIT_THEN_RUN = (
    "import os, sys, time\n"
    "import aipilot.cli.app, aipilot.services.config.activation, aipilot.db.engine\n"
    "ready, gate = sys.argv[1], sys.argv[2]\n"
    "open(ready, 'w').close()\n"
    "while not os.path.exists(gate): time.sleep(0.005)\n"
    "sys.argv = ['aipilot', *sys.argv[3:]]\n"
    "from aipilot.__main__ import main\n"
    "main()\n"
)


def _start_together(
    database_url: str, tmp_path: Path, commands: list[list[str]]
) -> list[subprocess.Popen[str]]:
    gate = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WAIT_THEN_RUN, str(tmp_path / f"ready-{i}"), str(gate), *cmd],
            env=_env(database_url),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, cmd in enumerate(commands)
    ]
    deadline = time.monotonic() + 120
    while sum((tmp_path / f"ready-{i}").exists() for i in range(len(procs))) < len(procs):
        assert time.monotonic() < deadline, "the processes did not start"
        assert all(p.poll() is None for p in procs), "a process died before the gate"
        time.sleep(0.05)
    gate.touch()
    return procs


@pytest.mark.slow
def test_fifty_concurrent_activations_leave_one_active_row(
    cli: CliFn, database_url: str, tmp_path: Path
) -> None:
    models = [f"conc-{i:02d}" for i in range(50)]
    for model in models:
        add_custom(database_url, "openai", model)
    commands = [["model", "activate", "openai", m] for m in models]
    procs = _start_together(database_url, tmp_path, commands)
    started = time.monotonic()
    outputs = [p.communicate(timeout=120) for p in procs]
    elapsed = time.monotonic() - started
    failures = [
        (p.returncode, err) for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode
    ]
    print(f"50 concurrent activations: {elapsed:.2f} s, {len(failures)} failures")
    assert failures == []
    assert len(active(database_url)) == 1
    assert len(configs(database_url)) == 1  # the one (user, module) row, switched 50 times
    assert active(database_url)[0][1] in models


def test_sigkill_mid_switch_leaves_exactly_one_active(cli: CliFn, database_url: str) -> None:
    models = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]
    assert cli("model", "activate", "openai", models[0]).exit_code == 0
    for step, delay in enumerate([0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5]):
        before = active(database_url)
        target = models[(step + 1) % len(models)]
        if before == [("openai", target)]:
            target = models[(step + 2) % len(models)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "aipilot", "model", "activate", "openai", target],
            env=_env(database_url),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        after = active(database_url)
        assert after in (before, [("openai", target)]), (delay, before, after)
        assert len(after) == 1
    assert cli("model", "show").exit_code == 0
