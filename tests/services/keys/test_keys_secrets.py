"""docs/security.md §1–§2 for the keys: the leak sweep, keys only in headers, no key in the process
list, and a master-key rotation killed at any moment losing nothing."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aipilot import vault
from aipilot.config import normalise_database_url
from tests.conftest import MASTER_KEY, REPO, CliFn, Run
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.providers_catalog import point_catalog_at, sql
from tests.surface import database_artifacts

FAULTS = ("401", "403", "429", "500", "529", "malformed", "drop")


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


def _canaries() -> dict[str, str]:
    return {p: f"sk-aipilot-CANARY-{uuid.uuid4()}" for p in ("openai", "anthropic", "google")}


def _transcript(run: Run) -> str:
    text = run.stdout + run.stderr
    if run.exception is not None:  # what --debug would show: messages and chained causes
        text += "".join(traceback.format_exception(run.exception))
    return text


def _database_artifacts(database_url: str, home: Path) -> str:
    return database_artifacts(database_url)  # the SQLite files, or a pg_dump


def _home_files(home: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in home.rglob("*") if p.is_file())


def test_leak_sweep_over_every_keys_command_and_fault(
    cli: CliFn, fake: FakeProvider, database_url: str, isolated_env: Path
) -> None:
    keys = _canaries()
    runs: list[Run] = []
    for provider, key in keys.items():
        runs.append(cli("--debug", "keys", "set", provider, "--stdin", input=key))
        runs.append(
            cli("--debug", "keys", "set", provider, "--stdin", "--json", input=f"\n{key}\n")
        )
    for fault in FAULTS:
        for route in ("openai", "anthropic", "gemini"):
            fake.fail(fault, times=3, prefix=route, retry_after=0.01)
        runs.append(cli("--debug", "keys", "test", "--all", "--json"))
        runs.append(cli("--debug", "keys", "test", "openai"))
        fake.clear()
    fake.fail("401", times=1, prefix="openai")
    runs.append(cli("--debug", "keys", "set", "openai", "--stdin", input=keys["openai"]))
    runs.append(cli("--debug", "keys", "status"))
    runs.append(cli("--debug", "keys", "status", "--json"))
    runs.append(
        cli(
            "--debug",
            "keys",
            "status",
            "--json",
            env={"AIPILOT_MASTER_KEY": base64.b64encode(b"\x01" * 32).decode()},
        )
    )
    runs.append(cli("--debug", "keys", "test", "google", "--json"))
    runs.append(
        cli(
            "--debug",
            "keys",
            "rotate-master",
            "--new-from-env",
            "NEW",
            env={"NEW": base64.b64encode(b"\x02" * 32).decode()},
        )
    )
    runs.append(cli("--debug", "keys", "delete", "anthropic", "--yes"))
    outputs = "".join(_transcript(r) for r in runs)
    assert (
        "Incorrect API key provided" in outputs or "invalid" in outputs.lower()
    )  # faults really happened
    at_rest = _database_artifacts(database_url, isolated_env) + _home_files(isolated_env)
    requests = "".join(r.path + "?" + r.query for r in fake.requests)
    for key in keys.values():
        assert find_leaks(outputs, key) == []
        assert find_leaks(at_rest, key) == []
        assert find_leaks(requests, key) == []


def test_keys_never_travel_in_urls_and_debug_logs_are_clean(
    fake: FakeProvider, database_url: str, isolated_env: Path
) -> None:
    """A real process with --debug: httpx logs every URL at INFO; none may hold a key."""
    from tests.conftest import run_process

    keys = _canaries()
    for provider, key in keys.items():
        result = run_process(
            ["--debug", "keys", "set", provider, "--stdin"], database_url=database_url, input=key
        )
        assert result.exit_code == 0, result.stderr
        assert "HTTP Request" in result.stderr  # the debug log is on
        assert find_leaks(result.stdout + result.stderr, key) == []
    fake.fail("401", times=1, prefix="openai")
    failed = run_process(["--debug", "keys", "test", "openai"], database_url=database_url)
    assert failed.exit_code != 0 and find_leaks(failed.stdout + failed.stderr, keys["openai"]) == []
    assert all(key not in r.path + r.query for r in fake.requests for key in keys.values())


def test_key_is_not_in_the_process_command_line(fake: FakeProvider, database_url: str) -> None:
    key = f"sk-aipilot-CANARY-{uuid.uuid4()}"
    env = {
        **os.environ,
        "AIPILOT_DATABASE_URL": database_url,
        "AIPILOT_USER": "alice",
        "AIPILOT_MASTER_KEY": MASTER_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "aipilot", "keys", "set", "openai", "--stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    time.sleep(0.5)  # running, waiting on stdin
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    _out, err = proc.communicate(key.encode(), timeout=60)
    assert proc.returncode == 0, err
    assert "keys" in cmdline and key not in cmdline


# ------------------------------------------------------------------ rotation under SIGKILL
def _seed_many_keys(database_url: str, count_users: int) -> None:
    """Many users with keys, stored through the real service (to widen the rotation window)."""
    from aipilot.config import Settings
    from aipilot.services.keys import keys
    from aipilot.services.runtime import connect
    from aipilot.services.users import users

    os.environ["AIPILOT_MASTER_KEY"] = MASTER_KEY
    admin = connect(Settings.resolve(db=database_url, user="alice"))
    for i in range(count_users):
        users.add_user(admin, f"user{i}")
        ctx = connect(Settings.resolve(db=database_url, user=f"user{i}"))
        for provider in ("openai", "anthropic", "google", "mistral"):
            keys.set_key(ctx, provider, f"sk-rot-{i}-{provider}-0123456789", test=False)
        ctx.db.dispose()
    admin.db.dispose()
    del os.environ["AIPILOT_MASTER_KEY"]


def _rows_decrypt_with(database_url: str, candidates: list[vault.MasterKey]) -> set[str]:
    """The key ids the rows are under; fails if any row decrypts with neither key."""
    from aipilot.db.engine import Database
    from aipilot.db.models import Credential
    from aipilot.services.keys.sealing import open_row

    db = Database(normalise_database_url(database_url))
    with db.session() as session:  # connected as the owner: sees every user's rows
        rows = list(session.scalars(sa.select(Credential)))
        for row in rows:
            assert open_row(row, candidates).startswith("sk-rot-")
        ids = {row.key_id for row in rows}
    db.dispose()
    return ids


@pytest.mark.slow
def test_rotate_master_killed_at_any_moment_loses_nothing(database_url: str) -> None:
    _seed_many_keys(database_url, count_users=25)
    current = vault.parse_master_key(MASTER_KEY)
    env = {**os.environ, "AIPILOT_DATABASE_URL": database_url, "AIPILOT_USER": "alice"}
    rotated = 0
    for delay in (0.05, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 3.0):
        new = vault.generate_master_key()
        env.update(
            AIPILOT_MASTER_KEY=vault.encode_master_key(current), NEW=vault.encode_master_key(new)
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "aipilot", "keys", "rotate-master", "--new-from-env", "NEW"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ids = _rows_decrypt_with(database_url, [current, new])
        assert len(ids) == 1  # one transaction: all rows under the old key, or all under the new
        if ids == {new.key_id}:
            current, rotated = new, rotated + 1
    # and one rotation left to finish: it completes and every row follows it
    new = vault.generate_master_key()
    env.update(
        AIPILOT_MASTER_KEY=vault.encode_master_key(current), NEW=vault.encode_master_key(new)
    )
    done = subprocess.run(
        [sys.executable, "-m", "aipilot", "keys", "rotate-master", "--new-from-env", "NEW"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _rows_decrypt_with(database_url, [new]) == {new.key_id}
    assert sql(database_url, "SELECT count(*) FROM user_provider_credentials")[0][0] == 100
    print(f"rotations completed before a kill: {rotated} of 12")


def test_hidden_prompt_on_a_terminal_does_not_echo_the_key(
    fake: FakeProvider, database_url: str
) -> None:
    from tests.terminal import run_on_terminal

    key = f"sk-aipilot-CANARY-{uuid.uuid4()}"
    env = {
        "AIPILOT_DATABASE_URL": database_url,
        "AIPILOT_USER": "alice",
        "AIPILOT_MASTER_KEY": MASTER_KEY,
    }
    code, screen = run_on_terminal(
        ["keys", "set", "openai"], env=env, answers=[("API key", key + "\n")]
    )
    assert code == 0, screen
    assert "API key" in screen and "stored the openai key" in screen
    assert find_leaks(screen, key) == []
    assert fake.last_request.headers["authorization"] == f"Bearer {key}"
