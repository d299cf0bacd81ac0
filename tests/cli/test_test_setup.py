"""The test set-up itself: a failing test shows its cause, and PostgreSQL is always there.

- An exception planted at the process edge (a third-party function that raises ``KeyError``;
  aipilot's own code runs unchanged) reaches the CLI's error boundary: stderr keeps its one
  ``Error:``/``Hint:`` pair with the exception's type only and no traceback, in-process and
  in a real process, while the ``aipilot`` logger gets the traceback at DEBUG.
- ``aipilot serve``'s boundary logs the ERROR line without detail and the traceback at
  DEBUG, and answers a bare 500.
- A failing test's report, under this repository's pytest configuration, holds that
  traceback (its "Captured log" section).
- Without ``AIPILOT_TEST_DATABASE_URL`` the run starts a throw-away PostgreSQL of its own,
  on 127.0.0.1 only, and the PostgreSQL half of the suite runs on it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from aipilot.errors import ExitCode
from tests.conftest import MASTER_KEY, PG_ENV, REPO, make_cli, run_process

PLANTED = "planted-cause-7f3a"
ERROR_LINE = "Error: unexpected internal error (KeyError)"
HINT_LINE = "Hint: rerun with --debug (or AIPILOT_DEBUG=1) for a traceback and report it"

# The default database path comes from platformdirs: make it raise, as a broken install could.
PLANT_PLATFORMDIRS = (
    "import platformdirs\n"
    "def _planted(*args, **kwargs):\n"
    f"    raise KeyError({PLANTED!r})\n"
    "platformdirs.user_data_dir = _planted\n"
)


def _planted_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("aipilot")
        and r.levelno == level
        and r.exc_info is not None
        and isinstance(r.exc_info[1], KeyError)
        and r.exc_info[1].args == (PLANTED,)
    ]


# ---------------------------------------------------------------- the CLI's boundary
def test_cli_boundary_prints_one_error_and_logs_the_traceback_at_debug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def planted(*args: object, **kwargs: object) -> str:
        raise KeyError(PLANTED)

    import platformdirs

    monkeypatch.setattr(platformdirs, "user_data_dir", planted)
    run = make_cli(None)("status")  # no --db: the default path is asked of platformdirs
    assert run.exit_code == ExitCode.INTERNAL, run
    assert run.stderr.splitlines() == [ERROR_LINE, HINT_LINE], run.stderr
    assert run.stdout == ""
    assert PLANTED not in run.stderr
    records = _planted_records(caplog, logging.DEBUG)
    assert len(records) == 1, caplog.records
    assert records[0].name == "aipilot.cli"
    assert "user_data_dir" in caplog.text  # the traceback, down to the planted frame
    assert PLANTED in caplog.text


def test_a_debug_command_leaves_no_handler_for_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--debug's stderr handler ends with its command: a later command in the same process
    (tests, a Python caller) prints its one error, not a traceback through a stale stream."""

    def planted(*args: object, **kwargs: object) -> str:
        raise KeyError(PLANTED)

    import platformdirs

    monkeypatch.setattr(platformdirs, "user_data_dir", planted)
    cli = make_cli(None)
    debug = cli("--debug", "status")
    assert isinstance(debug.exception, KeyError), debug  # --debug re-raises
    for name in ("aipilot", "httpx", "httpcore"):
        names = [h.get_name() for h in logging.getLogger(name).handlers]
        assert "aipilot-debug" not in names, (name, names)
    run = cli("status")
    assert run.stderr.splitlines() == [ERROR_LINE, HINT_LINE], run.stderr


def test_cli_boundary_in_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    """Nothing configures logging without --debug: the DEBUG record reaches no stderr."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PLANT_PLATFORMDIRS)
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{REPO}"}
    for extra in ((), ("--json",)):
        run = run_process(["status", *extra], env=env)
        assert run.exit_code == ExitCode.INTERNAL, run
        assert "Traceback" not in run.stderr and PLANTED not in run.stdout + run.stderr, run
        if not extra:
            assert run.stderr.splitlines() == [ERROR_LINE, HINT_LINE], run.stderr
    debug = run_process(["--debug", "status"], env=env)
    assert debug.exit_code != 0
    assert "Traceback" in debug.stderr and "KeyError" in debug.stderr, debug.stderr


# ---------------------------------------------------------------- serve's boundary
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """``aipilot serve``'s app under uvicorn on 127.0.0.1, in this process (for caplog):
    (base URL, its HS256 JWT secret)."""
    import uvicorn

    from aipilot.server.app import create_app
    from aipilot.server.config import ServerConfig

    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("AIPILOT_QUIET_BYPASSRLS", "1")
    secret = "test-jwt-secret-" + "x" * 32
    config = ServerConfig(
        database_url=database_url,
        internal_token=None,
        jwt_secret=secret,
        cors_origins=(),
        auth_cache_s=0.0,
        max_body_bytes=1024 * 1024,
        debug=False,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="aipilot-serve-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", secret
    server.should_exit = True
    thread.join(timeout=15)


def test_serve_boundary_logs_the_traceback_at_debug_and_answers_a_bare_500(
    served: tuple[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import jwt

    base, secret = served
    claims = {
        "sub": str(uuid.uuid4()),
        "role": "authenticated",
        "aud": "authenticated",
        "exp": int(time.time()) + 300,
    }
    token = jwt.encode(claims, secret, algorithm="HS256")

    def planted(*args: object, **kwargs: object) -> dict[str, object]:
        raise KeyError(PLANTED)

    monkeypatch.setattr(jwt, "decode", planted)  # the signature check: a third-party call
    response = httpx.post(
        f"{base}/functions/v1/ai-config-test",
        headers={"Authorization": f"Bearer {token}"},
        json={},
        timeout=30,
    )
    assert response.status_code == 500, response.text
    assert PLANTED not in response.text and "KeyError" not in response.text
    assert response.json()["code"] == "internal", response.text
    debug = _planted_records(caplog, logging.DEBUG)
    assert len(debug) == 1 and debug[0].name == "aipilot.server", caplog.records
    errors = [
        r
        for r in caplog.records
        if r.name == "aipilot.server" and r.levelno == logging.ERROR and "unexpected" in r.msg
    ]
    assert len(errors) == 1, caplog.records
    assert errors[0].exc_info is None  # the ERROR line names the type only
    assert errors[0].getMessage() == "unexpected KeyError on /functions/v1/ai-config-test"


# ---------------------------------------------------------------- pytest's report
FAILING_TEST = f"""
import platformdirs

from tests.conftest import make_cli


def test_planted(monkeypatch):
    def planted(*args, **kwargs):
        raise KeyError({PLANTED!r})

    monkeypatch.setattr(platformdirs, "user_data_dir", planted)
    assert make_cli(None)("status").exit_code == 0
"""


def test_a_failing_test_report_holds_the_traceback(tmp_path: Path) -> None:
    """This repository's pytest configuration (pyproject, tests/conftest.py) on a test that
    fails through the boundary: its report shows where the exception came from."""
    test_file = tmp_path / "test_planted.py"
    test_file.write_text(FAILING_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIPILOT_", "PYTEST_"))}
    # any URL: this run needs no PostgreSQL, so it starts no throw-away server
    env[PG_ENV] = "postgresql://postgres@127.0.0.1:9/unused"
    env["PYTHONPATH"] = str(REPO)
    config = ["-p", "tests.conftest", f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml")]
    quiet = ["-n", "0", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *config, *quiet, str(test_file)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed" in out, out
    assert "Captured log call" in out, out
    assert "DEBUG    aipilot.cli" in out and "unexpected KeyError" in out, out
    assert "Traceback (most recent call last)" in out and "in planted" in out, out
    assert f"KeyError: '{PLANTED}'" in out, out


# ---------------------------------------------------------------- PostgreSQL
def test_postgresql_is_there_without_a_url(backend: str, database_url: str) -> None:
    """Both halves run: the PostgreSQL one never skips for want of a server (the machine's,
    or the throw-away one this run started)."""
    expected = "sqlite" if backend == "sqlite" else "postgresql"
    assert make_url(database_url).get_backend_name() == expected


def test_the_throw_away_server_listens_on_127_0_0_1_only() -> None:
    """Started here (as the run starts it), it answers on 127.0.0.1, has no unix socket and
    is gone, files included, once stopped."""
    import psycopg

    from tests.local_postgres import LocalPostgres, Unavailable

    try:
        server = LocalPostgres().start()
    except Unavailable as exc:  # pgserver not installed: the suite says so in its header
        pytest.skip(str(exc))
    workdir = server.workdir
    assert workdir is not None
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('listen_addresses', 'unix_socket_directories', 'fsync')"
                ).fetchall()
            )
        assert settings == {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "fsync": "off",
        }
        assert not list(workdir.rglob(".s.PGSQL.*"))
        with pytest.raises(OSError):  # not on any other local address
            socket.create_connection(("::1", server.port), timeout=1).close()
        pid = server.proc.pid if server.proc else None
    finally:
        server.stop()
    assert pid is not None
    assert not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
