"""Fixtures: a fresh database per test on SQLite and PostgreSQL, and the real CLI.

Every test that asks for ``database_url`` (or ``cli``) runs twice: on a temporary SQLite
file and on a fresh PostgreSQL database created for that test from a template migrated
once per session (``CREATE DATABASE … TEMPLATE``). The PostgreSQL server is the one
``AIPILOT_TEST_DATABASE_URL`` names (CI: the machine's); without it, the run starts a
throw-away server of its own from the ``pgserver`` wheel of the test extra
(tests/local_postgres.py), once, before xdist starts its workers, which all share it, and
stops it at the end; its client tools (pg_dump, psql) then come first on PATH. Only if
that cannot start do the PostgreSQL tests skip, saying why; with
``AIPILOT_TEST_REQUIRE_PG=1`` (CI sets it) they fail instead.

aipilot's loggers are at DEBUG during the tests: the traceback that the error boundaries
log at DEBUG is in a failing test's "Captured log" section.

The template is what ``aipilot init`` leaves: schema, seeded catalog, and ``alice`` as
the first admin. ``blank_database_url`` gives an empty database instead.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from aipilot.config import Settings, normalise_database_url
from tests.local_postgres import LocalPostgres, Unavailable

PG_ENV = "AIPILOT_TEST_DATABASE_URL"
REQUIRE_PG_ENV = "AIPILOT_TEST_REQUIRE_PG"
# set by the process that tried to start the throw-away server, read by its workers
LOCAL_PG_ERROR_ENV = "AIPILOT_TEST_LOCAL_PG_ERROR"
REPO = Path(__file__).resolve().parent.parent
ADMIN = "alice"
MASTER_KEY = base64.b64encode(b"\x07" * 32).decode()
_CLEARED_ENV = (
    "AIPILOT_DATABASE_URL",
    "AIPILOT_USER",
    "AIPILOT_MASTER_KEY",
    "AIPILOT_DEBUG",
    "PYTHON_KEYRING_BACKEND",
    "AIPILOT_QUIET_BYPASSRLS",
)


# ---------------------------------------------------------------- the run's set-up
_local_pg: LocalPostgres | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _local_pg
    logging.getLogger("aipilot").setLevel(logging.DEBUG)
    if hasattr(config, "workerinput") or config.option.help or os.environ.get(PG_ENV):
        return  # an xdist worker uses its controller's server (or its recorded failure)
    try:
        _local_pg = LocalPostgres().start()
    except (Unavailable, OSError, subprocess.SubprocessError) as exc:
        detail = " | ".join(line for line in str(exc).splitlines() if line.strip())
        os.environ[LOCAL_PG_ERROR_ENV] = f"no throw-away PostgreSQL: {detail}"[:600]
        return
    os.environ[PG_ENV] = _local_pg.url  # inherited by the workers xdist starts next
    # its client tools (pg_dump, psql) first: the system's may be missing or older
    os.environ["PATH"] = f"{_local_pg.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_unconfigure(config: pytest.Config) -> None:
    global _local_pg
    if _local_pg is not None:
        os.environ.pop(PG_ENV, None)
        _local_pg.stop()
        _local_pg = None


def pytest_report_header(config: pytest.Config) -> str:
    if _local_pg is not None:
        return (
            f"postgresql: throw-away PostgreSQL {_local_pg.version} on 127.0.0.1:"
            f"{_local_pg.port} (pgserver; {PG_ENV} is not set)"
        )
    if os.environ.get(PG_ENV):
        return f"postgresql: {make_url(os.environ[PG_ENV]).render_as_string()} ({PG_ENV})"
    return f"postgresql: none ({_local_pg_failure()})"


def _local_pg_failure() -> str:
    return os.environ.get(LOCAL_PG_ERROR_ENV) or "no throw-away PostgreSQL was started"


# ---------------------------------------------------------------- PostgreSQL databases
class PgServer:
    """Creates and drops throwaway databases on the server named by AIPILOT_TEST_DATABASE_URL."""

    def __init__(self, url: str) -> None:
        self.url = make_url(normalise_database_url(url))
        self.engine = sa.create_engine(
            self.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )

    def url_for(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def create(self, *, template: str | None = None) -> str:
        name = f"aipilot_t_{uuid.uuid4().hex[:16]}"
        clause = f" TEMPLATE {template}" if template else ""
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}{clause}")
        return name

    def drop(self, name: str) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | None]:
    url = os.environ.get(PG_ENV)
    if not url:
        yield None
        return
    server = PgServer(url)
    yield server
    server.engine.dispose()


def _initialise(url: str) -> None:
    from aipilot.services.setup import initialise

    os.environ[  # no keyring work during template creation
        "AIPILOT_MASTER_KEY"
    ] = MASTER_KEY
    try:
        initialise(Settings.resolve(db=url, user=ADMIN))
    finally:
        del os.environ["AIPILOT_MASTER_KEY"]


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer | None) -> Iterator[str | None]:
    if pg_server is None:
        yield None
        return
    name = pg_server.create()
    with _roles_lock(pg_server):
        _initialise(pg_server.url_for(name))
    _dispose_all()
    yield name
    pg_server.drop(name)


# the advisory lock tests/supabase_like.py holds while it creates Supabase's roles
ROLES_LOCK = 724001


@contextmanager
def _roles_lock(pg_server: PgServer) -> Iterator[None]:
    """The first migration on a new server creates roles (anon, authenticated, ...): two
    workers doing it at once collide (duplicate key in pg_authid), so they take turns."""
    import psycopg

    url = pg_server.url.set(drivername="postgresql", database="postgres")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ROLES_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ROLES_LOCK,))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "aipilot.db"
    _initialise(f"sqlite:///{path}")
    _dispose_all()
    return path


def _dispose_all() -> None:
    import gc

    gc.collect()


# ---------------------------------------------------------------- per-test databases
def pg_backend(pg_server: PgServer | None) -> str:
    if pg_server is None:
        if os.environ.get(REQUIRE_PG_ENV):
            pytest.fail(
                f"{PG_ENV} is not set, {_local_pg_failure()}, "
                f"and {REQUIRE_PG_ENV} requires PostgreSQL"
            )
        pytest.skip(f"{PG_ENV} is not set and {_local_pg_failure()}")
    return "postgresql"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, pg_server: PgServer | None) -> str:
    return "sqlite" if request.param == "sqlite" else pg_backend(pg_server)


@pytest.fixture
def database_url(
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    pg_server: PgServer | None,
    pg_template: str | None,
) -> Iterator[str]:
    """A database as `aipilot init` leaves it (alice is the admin)."""
    if backend == "sqlite":
        path = tmp_path / "db" / "aipilot.db"
        path.parent.mkdir(mode=0o700)
        shutil.copyfile(sqlite_template, path)
        path.chmod(0o600)
        yield f"sqlite:///{path}"
        return
    assert pg_server is not None and pg_template is not None
    name = pg_server.create(template=pg_template)
    yield pg_server.url_for(name)
    pg_server.drop(name)


@pytest.fixture
def blank_database_url(backend: str, tmp_path: Path, pg_server: PgServer | None) -> Iterator[str]:
    """An empty database (no schema)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank' / 'aipilot.db'}"
        return
    assert pg_server is not None
    name = pg_server.create()
    yield pg_server.url_for(name)
    pg_server.drop(name)


# ---------------------------------------------------------------- isolation
@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """No test sees the developer's aipilot settings, home or keyring (tmp_path stays empty)."""
    home = tmp_path_factory.mktemp("home")
    for name in _CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))  # the reference-price cache
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield home
    keyring.set_keyring(previous)


# ---------------------------------------------------------------- running the CLI
@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


CliFn = Callable[..., Run]


def _env(
    database_url: str | None, user: str | None, extra: Mapping[str, str] | None
) -> dict[str, str]:
    env = {
        "AIPILOT_MASTER_KEY": MASTER_KEY,
        "COLUMNS": "200",
        "NO_COLOR": "1",
        # the test server's `postgres` is a superuser: the warning is tested on its own
        "AIPILOT_QUIET_BYPASSRLS": "1",
    }
    if database_url:
        env["AIPILOT_DATABASE_URL"] = database_url
    if user:
        env["AIPILOT_USER"] = user
    env.update(extra or {})
    return env


@pytest.fixture
def cli(database_url: str) -> CliFn:
    """Run the real `aipilot` command in-process against this test's database, as alice."""
    return make_cli(database_url)


def make_cli(database_url: str | None) -> CliFn:
    from typer.testing import CliRunner

    from aipilot.cli.app import app

    def run(
        *args: str,
        input: str | None = None,
        user: str | None = ADMIN,
        env: Mapping[str, str] | None = None,
    ) -> Run:
        result = CliRunner().invoke(app, list(args), input=input, env=_env(database_url, user, env))
        exc = result.exception if not isinstance(result.exception, SystemExit) else None
        return Run(result.exit_code, result.stdout, result.stderr, exc)

    return run


def run_process(
    args: Sequence[str],
    *,
    database_url: str | None = None,
    user: str | None = ADMIN,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
) -> Run:
    """Run `python -m aipilot` in a separate process (real start-up, real exit code)."""
    full_env = {**os.environ, **_env(database_url, user, env)}
    proc = subprocess.run(
        [sys.executable, "-m", "aipilot", *args],
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


# ---------------------------------------------------------------- PostgreSQL as a non-owner role
TESTER = "aipilot_rls_tester"  # a login role without BYPASSRLS, member of aipilot_service


@pytest.fixture
def pg_url(database_url: str) -> str:
    return normalise_database_url(database_url)


@pytest.fixture
def tester_url(pg_url: str) -> Iterator[str]:
    owner = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.exec_driver_sql(
            f"DO $$ BEGIN CREATE ROLE {TESTER} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        # the role aipilot runs as: a member of aipilot_service (and so of authenticated)
        conn.exec_driver_sql(f"GRANT aipilot_service TO {TESTER}")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public, auth TO {TESTER}")
        conn.exec_driver_sql(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {TESTER}"
        )
    owner.dispose()
    yield make_url(pg_url).set(username=TESTER, password=None).render_as_string(hide_password=False)
