"""docs/security.md §1: the leak sweep over every command, every ``--json``, every fault.

Canary keys for three providers are stored, a model is activated, and then every command
of the surface runs in human and ``--json`` form, with ``--debug`` (aipilot's and httpx's
loggers on, errors re-raised so their chains are captured) and without (the error
boundary's rendering); every fault of the fake runs against ``keys test``, ``test``,
``ask`` and ``models sync``. Outputs, exception chains, the database (file + -wal/-shm or
a pg_dump), the test home and the fake's request lines hold no canary in any encoding.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aipilot.errors import ExitCode
from tests.conftest import MASTER_KEY, REPO, CliFn, Run, run_process
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.providers_catalog import point_catalog_at, sql
from tests.surface import (
    EXIT_CODES,
    FAULT_KINDS,
    canaries,
    canary,
    database_artifacts,
    home_files,
    request_lines,
    transcript,
    unexpected,
)


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        server.set_models("anthropic", ["claude-sonnet-4-0", "claude-3-5-haiku-latest"])
        yield server


def _surface(fake: FakeProvider, tmp_path: Path) -> list[tuple[str, ...]]:
    """Every command of the surface (orgs, org-openai, limits, tokens, serve excepted)."""
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("You answer in one word.\n")
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object", "properties": {"a": {"type": "string"}}}')
    sweep_url = fake.add_provider("sweepco")
    return [
        ("init",),
        ("db", "current"),
        ("db", "check"),
        ("db", "upgrade"),
        ("users", "list"),
        ("users", "add", "bob"),
        ("users", "set-role", "bob", "admin"),
        ("keys", "status"),
        ("keys", "status", "openai"),
        ("keys", "test"),
        ("keys", "test", "--all"),
        ("keys", "test", "anthropic"),
        ("keys", "new-master"),
        ("providers", "list", "--all"),
        ("providers", "show", "openai"),
        ("providers", "add", "sweepco", "--name", "Sweep Co", "--base-url", sweep_url),
        ("providers", "update", "sweepco", "--header", "X-Trace=1"),
        ("providers", "disable", "sweepco"),
        ("providers", "enable", "sweepco"),
        ("models", "list"),
        ("models", "list", "--provider", "openai", "--all"),
        (
            "models",
            "add",
            "sweepco",
            "sweep-1",
            "--name",
            "Sweep 1",
            "--input-price",
            "1",
            "--output-price",
            "2",
        ),
        ("models", "update", "sweepco", "sweep-1", "--context", "8000"),
        ("models", "disable", "sweepco", "sweep-1"),
        ("models", "enable", "sweepco", "sweep-1"),
        ("models", "sync", "openai"),
        ("models", "sync", "google", "--activate-new"),
        ("custom", "add", "openai", "gpt-sweep", "--name", "Sweep"),
        ("custom", "list", "--all"),
        ("custom", "hide", "openai", "gpt-sweep"),
        ("custom", "show", "openai", "gpt-sweep"),
        ("model", "activate", "anthropic", "claude-sonnet-4-0"),
        ("model", "show"),
        ("prompts", "create", "terse", "--text", "Be terse."),
        ("prompts", "create", "fromfile", "--file", str(prompt_file)),
        ("prompts", "list"),
        ("prompts", "show", "terse"),
        ("prompts", "edit", "terse", "--text", "Be very terse.", "--refresh-snapshot"),
        ("prompts", "activate", "terse"),
        ("prompts", "rename", "fromfile", "other"),
        ("test",),
        ("ask", "What is two plus two?"),
        ("ask", "Give JSON", "--json-mode", "--max-tokens", "32", "--temperature", "0.2"),
        ("ask", "Give JSON", "--schema", str(schema), "--no-stream", "--log-content"),
        ("chat",),
        ("history",),
        ("history", "-n", "5"),
        ("status",),
        ("usage",),
        ("usage", "--by", "provider", "--kind", "chat", "--since", "30m"),
        ("model", "activate", "google", "gemini-2.5-flash"),
        ("ask", "Hello again", "--system", "Be brief."),
        ("prompts", "deactivate"),
        ("prompts", "delete", "other", "--yes"),
        ("model", "deactivate"),
        ("custom", "remove", "openai", "gpt-sweep", "--yes"),
        ("models", "remove", "sweepco", "sweep-1"),
        ("providers", "remove", "sweepco"),
        ("keys", "delete", "anthropic", "--yes"),
    ]


def _variants(cli: CliFn, args: tuple[str, ...], *, input: str | None = None) -> list[Run]:
    """Human and --json, each with --debug and without (a command may refuse its second run)."""
    return [
        cli("--debug", *args, input=input),
        cli(*args, "--json", input=input),
        cli("--debug", *args, "--json", input=input),
        cli(*args, input=input),
    ]


def _store_keys(cli: CliFn, keys: dict[str, str]) -> list[Run]:
    runs = []
    for provider, key in keys.items():
        runs.append(cli("--debug", "keys", "set", provider, "--stdin", input=key))
        runs.append(cli("keys", "set", provider, "--stdin", "--json", input=f"\n{key}\n"))
        assert runs[-1].exit_code == 0, runs[-1].stderr
    return runs


def _sweep(runs: list[Run], keys: dict[str, str], *, at_rest: str, requests: str) -> None:
    outputs = "".join(transcript(r) for r in runs)
    for key in keys.values():
        assert find_leaks(outputs, key) == [], "a canary leaked into the output"
        assert find_leaks(at_rest, key) == [], "a canary leaked at rest"
        assert find_leaks(requests, key) == [], "a canary leaked into a request line"


def test_leak_sweep_over_every_command(
    cli: CliFn, fake: FakeProvider, database_url: str, isolated_env: Path, tmp_path: Path
) -> None:
    keys = canaries()
    runs = _store_keys(cli, keys)
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    for args in _surface(fake, tmp_path):
        runs += _variants(cli, args)
    runs += _variants(cli, ("prompts", "create", "piped"), input="From standard input.\n")
    runs += _variants(cli, ("ask",), input="A question on stdin\n")
    for run in runs:
        assert not unexpected(run), transcript(run)
    assert sum(r.exit_code == 0 for r in runs) > len(runs) // 2  # the surface really ran
    assert any("HTTP Request" in r.stderr for r in runs)  # httpx's debug log was on
    _sweep(
        runs,
        keys,
        at_rest=database_artifacts(database_url) + home_files(isolated_env),
        requests=request_lines(fake),
    )


FAULTED = (
    ("keys", "test", "--all"),
    ("test",),
    ("ask", "Say pong", "--no-stream"),
    ("ask", "Say pong"),
    ("models", "sync", "openai"),
)


def test_leak_sweep_over_every_fault(
    cli: CliFn,
    fake: FakeProvider,
    database_url: str,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aipilot.providers.http import HttpCaller

    original = HttpCaller._retry_delay

    def short(self: HttpCaller, *args: Any) -> float | None:
        delay = original(self, *args)  # the same retry decisions, 10 ms waits (speed only)
        return None if delay is None else min(delay, 0.01)

    monkeypatch.setattr(HttpCaller, "_retry_delay", short)
    keys = canaries()
    runs = _store_keys(cli, keys)
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    failed: dict[str, int] = {}
    seen: list[str] = []  # request lines, kept before each clear() empties the record
    for kind in FAULT_KINDS:
        for args in FAULTED:
            for variant in (("--debug", *args), (*args, "--json")):
                fake.fail(kind, times=3, retry_after=0.01, delay_s=0.2)
                run = cli(*variant)
                seen.append(request_lines(fake))
                fake.clear()
                runs.append(run)
                assert not unexpected(run), (kind, variant, transcript(run))
                failed[kind] = failed.get(kind, 0) + (run.exit_code != 0)
        for variant in (("--debug",), ("--json",)):  # keys set tests the key it stores
            provider = "openai" if kind != "drop" else "google"
            fake.fail(kind, times=3, retry_after=0.01, delay_s=0.2)
            run = cli(*variant, "keys", "set", provider, "--stdin", input=keys[provider])
            seen.append(request_lines(fake))
            fake.clear()
            runs.append(run)
            assert not unexpected(run), (kind, variant, transcript(run))
    # every fault but "slow" made something fail: the matrix really exercised error paths
    assert all(failed[kind] > 0 for kind in FAULT_KINDS if kind != "slow"), failed
    outputs = "".join(transcript(r) for r in runs)
    assert "HTTP Request" in outputs
    assert len("".join(seen).splitlines()) > 100
    _sweep(
        runs,
        keys,
        at_rest=database_artifacts(database_url) + home_files(isolated_env),
        requests="\n".join(seen) + request_lines(fake),
    )


# ------------------------------------------------------------------ crashes
def _break_database(database_url: str, how: str) -> None:
    if how == "garbage":  # SQLite says "file is not a database" (not an OperationalError)
        path = Path(database_url.removeprefix("sqlite:///"))
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.write_bytes(b"this is not a database " * 200)
    else:  # a schema someone changed by hand: the INSERT fails with a programming error
        sql(
            database_url,
            "ALTER TABLE user_provider_credentials RENAME COLUMN nonce TO nonce_moved",
        )


@pytest.mark.parametrize("how", ["garbage", "renamed_column"])
def test_unexpected_error_while_setting_a_key_shows_only_the_exception_type(
    database_url: str, fake: FakeProvider, isolated_env: Path, how: str
) -> None:
    """A real process meets an unexpected error path while the canary is in its locals."""
    if how == "garbage" and not database_url.startswith("sqlite"):
        pytest.skip("a garbage database file is a SQLite case")
    key = canary()
    _break_database(database_url, how)
    runs = [
        run_process(
            ["keys", "set", "openai", "--stdin", *extra], database_url=database_url, input=key
        )
        for extra in ((), ("--json",), ("--no-test",))
    ]
    for run in runs:
        assert run.exit_code in EXIT_CODES and run.exit_code != 0, run
        assert "Traceback" not in run.stderr, run.stderr
        if run.exit_code == ExitCode.INTERNAL:  # the boundary shows the type, nothing else
            assert re.search(r"unexpected internal error \(\w+\)", run.stdout + run.stderr), run
        assert find_leaks(run.stdout + run.stderr, key) == []
    debug = run_process(
        ["--debug", "keys", "set", "openai", "--stdin"], database_url=database_url, input=key
    )
    assert debug.exit_code != 0
    assert find_leaks(debug.stdout + debug.stderr, key) == []  # a traceback, but no locals
    assert find_leaks(home_files(isolated_env), key) == []


def test_a_corrupt_sqlite_file_is_a_database_error(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("a corrupt file is a SQLite case")
    _break_database(database_url, "garbage")
    run = run_process(["status"], database_url=database_url)
    assert run.exit_code == ExitCode.DATABASE, run
    assert "not a database" in run.stderr


def test_crash_with_the_key_in_a_local_prints_only_the_type(
    database_url: str, fake: FakeProvider, tmp_path: Path
) -> None:
    """An exception raised with the canary in a local (and in its message) shows its type only.

    ``sitecustomize`` makes the provider client's key test raise a foreign exception whose
    message is the key: the boundary must print ``unexpected internal error (RuntimeError)``.
    """
    key = canary()
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import aipilot.services.keys.keys as k\n"
        "def boom(*a, **kw):\n"
        "    secret = [x for x in a if isinstance(x, str) and 'CANARY' in x]\n"
        "    raise RuntimeError(f'exploded with {secret} {a!r} {kw!r}')\n"
        "k.vault.seal = boom\n"
    )
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{REPO}"}
    run = run_process(
        ["keys", "set", "openai", "--stdin", "--no-test"],
        database_url=database_url,
        input=key,
        env=env,
    )
    assert run.exit_code == ExitCode.INTERNAL, run
    assert "unexpected internal error (RuntimeError)" in run.stderr
    assert "Traceback" not in run.stderr and find_leaks(run.stdout + run.stderr, key) == []
    as_json = run_process(
        ["keys", "set", "openai", "--stdin", "--no-test", "--json"],
        database_url=database_url,
        input=key,
        env=env,
    )
    assert as_json.exit_code == ExitCode.INTERNAL
    assert find_leaks(as_json.stdout + as_json.stderr, key) == []


def _interrupt(database_url: str, fake: FakeProvider, args: list[str]) -> tuple[int, str, float]:
    """Start ``aipilot ARGS``, SIGINT it while its request is in flight: code, output, delay."""
    env = {
        **os.environ,
        "AIPILOT_DATABASE_URL": database_url,
        "AIPILOT_USER": "alice",
        "AIPILOT_MASTER_KEY": MASTER_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "aipilot", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    deadline = time.monotonic() + 30
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, (out + err).decode(errors="replace"), time.monotonic() - sent


@pytest.fixture
def stored_key(database_url: str, fake: FakeProvider) -> str:
    key = canary()
    stored = run_process(
        ["keys", "set", "openai", "--stdin", "--no-test"], database_url=database_url, input=key
    )
    assert stored.exit_code == 0, stored.stderr
    activated = run_process(
        ["model", "activate", "openai", "gpt-4o-mini"], database_url=database_url
    )
    assert activated.exit_code == 0, activated.stderr
    return key


@pytest.mark.parametrize(
    "args", [["keys", "test", "openai"], ["ask", "hi", "--no-stream"], ["test"]]
)
def test_ctrl_c_while_waiting_on_a_provider_leaks_nothing(
    database_url: str, fake: FakeProvider, stored_key: str, args: list[str]
) -> None:
    fake.fail("slow", times=5, delay_s=3)
    code, output, _delay = _interrupt(database_url, fake, args)
    fake.clear()
    assert code == ExitCode.INTERRUPTED, output
    assert find_leaks(output, stored_key) == [] and "Traceback" not in output


def test_ctrl_c_during_keys_test_returns_promptly(
    database_url: str, fake: FakeProvider, stored_key: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the same code path on both databases: checked once")
    fake.fail("slow", times=5, delay_s=8)
    code, output, delay = _interrupt(database_url, fake, ["keys", "test", "openai"])
    fake.clear()
    assert code == ExitCode.INTERRUPTED, output
    assert delay < 2.0, f"exited {delay:.1f}s after Ctrl-C (ask and test exit in ~0.1s)"
