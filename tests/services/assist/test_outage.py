"""The database goes away mid-run (PostgreSQL only).

The shared server stays up (CI and other tests use it): the outage is simulated for this
test's own database with ``ALLOW_CONNECTIONS false`` and ``pg_terminate_backend``. Commands
then fail with exit 7 and one clear line without the DSN's password, within the connect
timeout; connections killed in the middle of multi-step commands leave no partial write;
once connections are allowed again everything works. A closed port on 127.0.0.1 is exit 7.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from aipilot.db.engine import CONNECT_TIMEOUT_S
from aipilot.errors import ExitCode
from tests.conftest import CliFn, PgServer, make_cli, pg_backend, run_process
from tests.providers_catalog import sql
from tests.surface import assert_invariants, canary, scalar, transcript

PASSWORD = "s3cret-Outage-PW"  # trust auth ignores it; no message may show it


@pytest.fixture(params=["postgresql"])
def backend(request: pytest.FixtureRequest, pg_server: PgServer | None) -> str:
    """An outage of the test's own PostgreSQL database: overrides the two-backend fixture."""
    return pg_backend(pg_server)


@pytest.fixture
def outage(database_url: str, pg_server: PgServer) -> Iterator[Outage]:
    control = Outage(pg_server, make_url(database_url).database or "")
    yield control
    control.end()


class Outage:
    def __init__(self, server: PgServer, name: str) -> None:
        self.server, self.name = server, name

    def begin(self) -> None:
        with self.server.engine.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
        self.kill()

    def kill(self) -> int:
        with self.server.engine.connect() as conn:
            result = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %(name)s AND pid <> pg_backend_pid()",
                {"name": self.name},
            )
            return int(result.scalar() or 0)

    def end(self) -> None:
        with self.server.engine.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")


def _with_password(database_url: str) -> str:
    return make_url(database_url).set(password=PASSWORD).render_as_string(hide_password=False)


def _prepare(cli: CliFn) -> None:
    for provider in ("openai", "anthropic"):
        assert cli("keys", "set", provider, "--stdin", "--no-test", input=canary()).exit_code == 0
    assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
    for name in ("one", "two", "three"):
        assert cli("prompts", "create", name, "--text", f"Prompt {name}.").exit_code == 0
    assert cli("prompts", "activate", "one").exit_code == 0


def _consistent(database_url: str) -> None:
    """At most one active of each, and the active model's snapshot is the active prompt's."""
    assert_invariants(database_url)
    rows = sql(
        database_url,
        "SELECT c.system_prompt_id, c.system_prompt, p.id, p.prompt_content "
        "FROM ai_provider_configs c LEFT JOIN ai_system_prompts p "
        "ON p.user_id = c.user_id AND p.is_active WHERE c.is_active",
    )
    assert len(rows) == 1, rows
    snap_id, snap_text, prompt_id, prompt_text = tuple(rows[0])
    assert (snap_id, snap_text) == (prompt_id, prompt_text), rows[0]
    assert scalar(database_url, "SELECT count(*) FROM ai_system_prompts") == 3


COMMANDS = (
    ("status",),
    ("model", "show", "--json"),
    ("keys", "status"),
    ("model", "activate", "anthropic", "claude-sonnet-4-0"),
    ("prompts", "activate", "two"),
    ("keys", "set", "openai", "--stdin", "--no-test"),
)


def test_database_down_is_exit_7_with_one_clear_line_then_works_again(
    database_url: str, outage: Outage
) -> None:
    cli = make_cli(database_url)
    _prepare(cli)
    before = sql(database_url, "SELECT * FROM ai_provider_configs ORDER BY id")
    url = _with_password(database_url)
    outage.begin()
    for args in COMMANDS:
        for extra in ((), ("--json",)):
            started = time.monotonic()
            run = run_process([*args, *extra], database_url=url, input=canary())
            elapsed = time.monotonic() - started
            assert run.exit_code == ExitCode.DATABASE, (args, run)
            assert elapsed < CONNECT_TIMEOUT_S + 5, elapsed
            assert PASSWORD not in run.stdout + run.stderr
            assert "Traceback" not in run.stderr
            if not extra:
                errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
                assert len(errors) == 1 and outage.name in errors[0], run
    outage.end()
    assert sql(database_url, "SELECT * FROM ai_provider_configs ORDER BY id") == before
    _consistent(database_url)
    for args in COMMANDS[:5]:
        assert run_process(list(args), database_url=url).exit_code == 0, args
    _consistent(database_url)


def test_connections_killed_mid_command_leave_no_partial_write(
    database_url: str, outage: Outage
) -> None:
    """A thread kills every backend of the database every few ms while switches loop."""
    cli = make_cli(database_url)
    _prepare(cli)
    stop, killed = threading.Event(), [0]

    def killer() -> None:
        while not stop.is_set():
            killed[0] += outage.kill()
            time.sleep(0.003)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    codes: dict[int, int] = {}
    switches = [
        ("prompts", "activate", "two"),
        ("model", "activate", "anthropic", "claude-sonnet-4-0"),
        ("prompts", "activate", "three"),
        ("model", "activate", "openai", "gpt-4o-mini"),
        ("prompts", "deactivate"),
        ("prompts", "activate", "one"),
        ("model", "activate", "google", "gemini-2.5-flash"),
    ]
    try:
        for i in range(60):
            run = cli(*switches[i % len(switches)])
            codes[run.exit_code] = codes.get(run.exit_code, 0) + 1
            assert run.exit_code in (ExitCode.OK, ExitCode.DATABASE), transcript(run)
    finally:
        stop.set()
        thread.join(10)
    assert killed[0] > 0 and codes.get(ExitCode.DATABASE, 0) > 0, (killed, codes)
    _consistent(database_url)
    for args in switches:
        assert cli(*args).exit_code == 0, args
    _consistent(database_url)


def test_a_closed_port_is_exit_7_quickly() -> None:
    with socket.socket() as probe:  # a port nothing listens on (bound, then released)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/aipilot"
    for args in (("status",), ("model", "show", "--json"), ("keys", "set", "openai", "--stdin")):
        started = time.monotonic()
        run = run_process(list(args), database_url=url, input=canary())
        assert run.exit_code == ExitCode.DATABASE, run
        assert time.monotonic() - started < CONNECT_TIMEOUT_S + 5
        assert PASSWORD not in run.stdout + run.stderr and "Traceback" not in run.stderr
