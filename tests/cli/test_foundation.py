"""Install surface, init, migrations, schema checks, users, errors, file modes."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aipilot.config import normalise_database_url
from aipilot.db import migrate
from aipilot.db.engine import Database
from aipilot.errors import ExitCode, UsageError
from tests.conftest import REPO, make_cli, run_process

HEAVY = ("sqlalchemy", "httpx", "alembic", "cryptography", "keyring")


def test_help_and_version_import_nothing_heavy() -> None:
    code = (
        "import sys, aipilot.cli.app as a\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(a.app, ['--help']); assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(a.app, ['--version']); assert r.exit_code == 0, r.output\n"
        "for g in ['users', 'keys', 'providers', 'models', 'custom', 'model', 'prompts', 'db',\n"
        "          'init', 'test', 'history', 'status', 'usage', 'ask', 'chat']:\n"
        "    r = CliRunner().invoke(a.app, [g, '--help']); assert r.exit_code == 0, (g, r.output)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_and_help_through_the_entry_point() -> None:
    result = run_process(["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("aipilot ")
    result = run_process(["--help"])
    for group in (
        "init",
        "db",
        "users",
        "keys",
        "providers",
        "models",
        "custom",
        "model",
        "prompts",
        "test",
        "status",
        "history",
        "usage",
        "ask",
        "chat",
    ):
        assert group in result.stdout


def test_url_schemes_map_to_psycopg3() -> None:
    assert normalise_database_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    with pytest.raises(UsageError):
        normalise_database_url("mysql://u@h/d")


def test_head_revision_constant_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(REPO / "alembic"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == migrate.HEAD_REVISION


# ------------------------------------------------------------------ init
def _counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(normalise_database_url(url))
    with engine.connect() as conn:
        counts = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("ai_providers", "ai_models", "users")
        }
    engine.dispose()
    return counts


def test_init_creates_everything_then_changes_nothing(blank_database_url: str) -> None:
    cli = make_cli(blank_database_url)
    first = cli("init", "--json", user="opsadmin")
    assert first.exit_code == 0, first.stderr
    doc = first.json()
    assert doc["revision_before"] is None and doc["revision_after"] == migrate.HEAD_REVISION
    assert {
        "openai",
        "anthropic",
        "google",
        "mistral",
        "xai",
        "deepseek",
        "openrouter",
        "ollama",
    } <= set(doc["providers_added"])
    assert doc["user_created"] is True and doc["user_role"] == "admin"
    before = _counts(blank_database_url)
    second = cli("init", "--json", user="opsadmin")
    assert second.exit_code == 0, second.stderr
    assert second.json()["providers_added"] == [] and second.json()["models_added"] == []
    assert _counts(blank_database_url) == before


def test_seeded_provider_catalog_is_data_driven(database_url: str) -> None:
    engine = sa.create_engine(normalise_database_url(database_url))
    with engine.connect() as conn:
        rows = {
            r.provider_key: r
            for r in conn.execute(
                sa.text(
                    "SELECT provider_key, base_url, api_kind, api_auth_method, api_auth_header, "
                    "is_active, test_endpoint FROM ai_providers"
                )
            )
        }
    engine.dispose()
    assert (
        rows["anthropic"].api_kind == "anthropic"
        and rows["anthropic"].api_auth_header == "x-api-key"
    )
    assert rows["google"].api_auth_header == "x-goog-api-key"  # never ?key= in a URL
    assert rows["google"].api_auth_method == "api_key_header"
    assert rows["openrouter"].test_endpoint == "/key"
    assert not rows["ollama"].is_active and rows["openai"].is_active
    assert all(r.api_auth_method != "query_param" for r in rows.values())


def test_commands_refuse_an_unmigrated_database(blank_database_url: str) -> None:
    result = make_cli(blank_database_url)("users", "list")
    assert result.exit_code == ExitCode.NOT_CONFIGURED
    assert "aipilot init" in result.stderr and "Traceback" not in result.stderr
    assert migrate.current_revision(Database(normalise_database_url(blank_database_url))) is None


def test_commands_refuse_an_outdated_database(database_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    engine = sa.create_engine(normalise_database_url(database_url))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000_older'"))
    engine.dispose()
    result = cli("users", "list")
    assert result.exit_code == ExitCode.NOT_CONFIGURED
    assert "aipilot db upgrade" in result.stderr


def test_db_commands(cli) -> None:  # type: ignore[no-untyped-def]
    current = cli("db", "current", "--json")
    assert current.json() == {
        "current": migrate.HEAD_REVISION,
        "head": migrate.HEAD_REVISION,
        "up_to_date": True,
    }
    check = cli("db", "check", "--json")
    assert check.exit_code == 0 and check.json()["drift"] is False


# ------------------------------------------------------------------ migrations
def test_migration_round_trip_and_no_drift(blank_database_url: str) -> None:
    db = Database(normalise_database_url(blank_database_url))
    migrate.upgrade(db)
    migrate.check(db)
    migrate.downgrade(db, "base")
    with db.engine.connect() as conn:
        left = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
    assert left == set()
    assert migrate.current_revision(db) is None
    migrate.upgrade(db)
    migrate.check(db)
    assert migrate.current_revision(db) == migrate.HEAD_REVISION
    db.dispose()


def test_one_config_row_per_user_and_module(database_url: str) -> None:
    engine = sa.create_engine(normalise_database_url(database_url))
    insert = sa.text(
        "INSERT INTO ai_provider_configs (id, user_id, module_name, provider_name, model_name, is_active) "
        "VALUES (:id, :uid, 'global', 'openai', :model, :active)"
    )
    import uuid

    with engine.begin() as conn:
        uid = conn.execute(
            sa.text("SELECT users_id FROM users WHERE username = 'alice'")
        ).scalar_one()
        uid = uuid.UUID(str(uid)).hex if engine.dialect.name == "sqlite" else uid
        conn.execute(insert, {"id": _id(engine), "uid": uid, "model": "gpt-4o", "active": True})
    # one row per (user, module) since 0005: a second one is refused, active or not
    for model, is_active in (("gpt-4o-mini", True), ("old", False)):
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                insert, {"id": _id(engine), "uid": uid, "model": model, "active": is_active}
            )
    with engine.begin() as conn:  # another module is another row
        conn.execute(
            sa.text(
                "INSERT INTO ai_provider_configs (id, user_id, module_name, provider_name, "
                "model_name, is_active) VALUES (:id, :uid, 'other', 'openai', 'gpt-4o', true)"
            ),
            {"id": _id(engine), "uid": uid},
        )
    engine.dispose()


def _id(engine: sa.Engine) -> object:
    import uuid

    value = uuid.uuid4()
    return value.hex if engine.dialect.name == "sqlite" else value


# ------------------------------------------------------------------ users
def test_users_add_list_set_role_and_refusals(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("users", "add", "bob").exit_code == 0
    assert cli("users", "add", "bob").exit_code == ExitCode.CONFLICT
    denied = cli("users", "add", "mallory", user="bob")
    assert denied.exit_code == ExitCode.PERMISSION and "admin only" in denied.stderr
    assert cli("users", "set-role", "bob", "member", user="bob").exit_code == ExitCode.PERMISSION
    listed = cli("users", "list", "--json").json()["users"]
    assert {(u["username"], u["role"]) for u in listed} == {("alice", "admin"), ("bob", "member")}
    assert cli("users", "set-role", "alice", "member").exit_code == ExitCode.CONFLICT  # last admin
    assert cli("users", "set-role", "bob", "admin").exit_code == 0
    assert cli("users", "add", "mallory", user="bob").exit_code == 0
    assert cli("users", "add", "bad name!").exit_code == ExitCode.USAGE
    assert cli("users", "set-role", "bob", "owner").exit_code == ExitCode.USAGE
    unknown = cli("users", "list", user="nobody")
    assert unknown.exit_code == ExitCode.NOT_CONFIGURED and "users add nobody" in unknown.stderr


def test_json_error_document(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("users", "add", "alice", "--json")
    assert result.exit_code == ExitCode.CONFLICT
    doc = result.json()  # the one error document (README "JSON documents"), HTTP's too
    assert doc["success"] is False and doc["exit_code"] == ExitCode.CONFLICT
    assert doc["code"] == "conflict" and doc["type"] == "ConflictError"
    assert set(doc) == {"success", "error", "hint", "code", "type", "exit_code"}
    assert "alice" in doc["error"]


# ------------------------------------------------------------------ failure modes
@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("command", [["users", "list"], ["status"]])  # the ORM path, the direct one
def test_unreachable_database_is_a_bounded_clear_error(
    silent_server: int, command: list[str]
) -> None:
    url = f"postgresql://aipilot:hunter2-s3cret@127.0.0.1:{silent_server}/prod"
    started = time.monotonic()
    result = run_process(command, database_url=url, timeout=30)
    elapsed = time.monotonic() - started
    assert result.exit_code == ExitCode.DATABASE
    assert elapsed < 10 + 3
    assert "127.0.0.1" in result.stderr and "hunter2-s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error:")]) == 1


@pytest.mark.parametrize("command", [["users", "list"], ["keys", "status"]])
def test_refused_connection_is_a_database_error(command: list[str]) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result = run_process(command, database_url=f"postgresql://u:pw-secret@127.0.0.1:{port}/x")
    assert result.exit_code == ExitCode.DATABASE and "pw-secret" not in result.stderr


def test_default_sqlite_file_modes_under_umask_022(isolated_env: Path) -> None:
    code = (
        "import os, runpy, sys; os.umask(0o022); sys.argv=['aipilot','init']\n"
        "from aipilot.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
    )
    env = {**os.environ, "AIPILOT_MASTER_KEY": "", "AIPILOT_USER": "ops"}
    env.pop("AIPILOT_MASTER_KEY")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO, capture_output=True)
    folder = isolated_env / ".local" / "share" / "aipilot"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "aipilot.db").stat().st_mode) == 0o600
    # while a connection is open, SQLite's -wal and -shm exist and inherit the 0600 mode
    db = Database(f"sqlite:///{folder / 'aipilot.db'}")
    with db.session(write=True) as session:
        session.execute(sa.text("UPDATE users SET role = role"))
        for suffix in ("-wal", "-shm"):
            assert stat.S_IMODE(Path(f"{folder / 'aipilot.db'}{suffix}").stat().st_mode) == 0o600
    db.dispose()


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.session() as session:
        assert session.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert session.execute(sa.text("PRAGMA foreign_keys")).scalar_one() == 1
        assert session.execute(sa.text("PRAGMA busy_timeout")).scalar_one() >= 5000
    db.dispose()


def test_sqlite_write_transactions_begin_immediate(tmp_path: Path) -> None:
    """A write session holds the write lock from its first statement (BEGIN IMMEDIATE)."""
    import sqlite3

    path = tmp_path / "lock.db"
    db = Database(f"sqlite:///{path}")
    with db.session(write=True) as session:
        session.execute(sa.text("SELECT 1"))  # a read only — but the lock is already held
        other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    db.dispose()
