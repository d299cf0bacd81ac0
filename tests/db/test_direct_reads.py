"""`status`, `model show` and `keys status` read straight over the driver.

The views are one piece of SQL (aipilot/services/config/views.py) run either over a SQLAlchemy
session or over a bare sqlite3/psycopg connection (aipilot/db/direct.py). These tests
check that both paths see the same thing, that the direct one imports no SQLAlchemy, that
it hands every unusual case to the usual path (whose messages the user then gets), and
that row-level security holds on it. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from aipilot.config import normalise_database_url
from aipilot.db.direct import open_direct
from aipilot.db.engine import Database
from aipilot.db.identity import resolve_identity
from aipilot.db.reader import SessionReader
from aipilot.errors import ExitCode, NotFoundError
from aipilot.services.config import views
from tests.conftest import MASTER_KEY, CliFn, run_process
from tests.providers_catalog import activate_directly, sql

COMMANDS = (["status", "--json"], ["model", "show", "--json"], ["keys", "status", "--json"])


@pytest.fixture
def url(database_url: str) -> str:
    return normalise_database_url(database_url)


@pytest.fixture
def furnished(cli: CliFn, database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """alice: two keys (one broken), a key for a disabled provider, a custom model active
    with a prompt snapshot that has gone stale, a failed config test on record."""
    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    for provider in ("openai", "anthropic", "mistral"):
        key = f"sk-{provider}-{uuid.uuid4().hex}"
        assert cli("keys", "set", provider, "--stdin", "--no-test", input=key).exit_code == 0
    sql(
        database_url,
        "UPDATE user_provider_credentials SET encrypted_key = 'AAAA' "
        "WHERE provider_key = 'anthropic'",
    )
    assert cli("providers", "disable", "mistral").exit_code == 0
    assert cli("custom", "add", "openai", "my-tuned", "--name", "My tuned").exit_code == 0
    assert cli("prompts", "create", "terse", "--text", "Be terse.").exit_code == 0
    assert cli("prompts", "activate", "terse").exit_code == 0
    assert cli("model", "activate", "openai", "my-tuned").exit_code == 0
    assert cli("prompts", "edit", "terse", "--text", "Be very terse.").exit_code == 0
    sql(
        database_url,
        "UPDATE ai_provider_configs SET last_test_ok = :f, last_test_error = 'HTTP 401', "
        "last_test_at = activated_at WHERE is_active",
        f=False,
    )
    return database_url


def test_both_paths_see_the_same_thing(furnished: str, url: str) -> None:
    db = Database(url)
    identity = resolve_identity(db, "alice")
    with db.session(user_id=identity.user_id) as session:
        via_orm = views.overview(SessionReader(session), identity, database=db.describe())
    db.dispose()
    direct = open_direct(url, "alice")
    assert direct is not None
    with direct:
        assert direct.identity == identity
        via_driver = views.overview(direct, direct.identity, database=direct.described)
        with pytest.raises(NotFoundError, match="unknown provider 'nope'") as unknown:
            views.key_states(direct, direct.identity, "nope")
        assert (unknown.value.hint or "").startswith("known providers: anthropic, deepseek")
        only = views.key_states(direct, direct.identity, "ANTHROPIC")
    assert via_driver == via_orm
    states = {k.provider: k.state for k in via_driver.keys}
    assert states["openai"] == "configured" and states["anthropic"] == "needs re-entry"
    assert states["mistral"] == "configured"  # disabled, but alice holds a key for it
    assert [k.provider for k in only] == ["anthropic"]
    active = via_driver.active
    assert active is not None
    assert (active.model, active.label, active.source) == ("my-tuned", "My tuned", "custom")
    assert (active.prompt_name, active.prompt_summary, active.prompt_stale) == (
        "terse",
        "Be terse.",
        True,
    )
    assert active.health == "unhealthy" and active.last_test_error == "HTTP 401"
    assert via_driver.prompt is not None and via_driver.prompt.summary == "Be very terse."


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:-1]))
def test_the_commands_import_no_sqlalchemy(
    furnished: str, command: list[str], isolated_env: object
) -> None:
    code = (
        "import sys\n"
        "from aipilot.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'alembic', 'httpx')), code)\n"
    )
    env = {
        **os.environ,
        "AIPILOT_DATABASE_URL": furnished,
        "AIPILOT_USER": "alice",
        "AIPILOT_MASTER_KEY": MASTER_KEY,
    }
    out = subprocess.run(
        [sys.executable, "-c", code, *command], capture_output=True, text=True, env=env
    )
    body, _, tail = out.stdout.rpartition("HEAVY ")
    assert tail.strip() == "[] 0", out.stderr
    assert json.loads(body)  # and the command did its job


def test_every_unusual_case_goes_the_usual_way(cli: CliFn, url: str, database_url: str) -> None:
    assert open_direct(url, "nobody") is None
    result = cli("status", user="nobody")
    assert result.exit_code == ExitCode.NOT_CONFIGURED and "aipilot users add" in result.stderr
    sql(database_url, "UPDATE alembic_version SET version_num = '0002_limits_and_tokens'")
    assert open_direct(url, "alice") is None
    for command in COMMANDS:
        result = cli(*command)
        assert result.exit_code == ExitCode.NOT_CONFIGURED
        assert "aipilot db upgrade" in result.stderr


def test_no_active_model_and_unknown_provider(cli: CliFn) -> None:
    shown = cli("model", "show", "--module", "billing")
    assert shown.exit_code == ExitCode.NOT_CONFIGURED
    assert "--module billing" in shown.stderr
    unknown = cli("keys", "status", "nope")
    assert unknown.exit_code == ExitCode.USAGE and "known providers" in unknown.stderr


def test_a_missing_sqlite_file_is_not_created(tmp_path: object, isolated_env: object) -> None:
    path = os.path.join(str(tmp_path), "absent", "aipilot.db")
    assert open_direct(f"sqlite:///{path}", "alice") is None
    assert not os.path.exists(path)
    result = run_process(["status"], database_url=f"sqlite:///{path}")
    assert result.exit_code == ExitCode.NOT_CONFIGURED and "no aipilot schema" in result.stderr


def test_row_level_security_holds_on_the_direct_path(
    furnished: str, cli: CliFn, backend: str, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL, as a role that is not a superuser (superusers bypass RLS): the direct
    path sets the same claims as the ORM path, and bob sees none of alice's rows."""
    if backend != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    assert cli("users", "add", "bob").exit_code == 0
    activate_directly(furnished, "openai", "gpt-4o-mini", user="bob")
    direct = open_direct(request.getfixturevalue("tester_url"), "bob")
    assert direct is not None
    with direct:
        seen = direct.rows("SELECT DISTINCT user_id FROM ai_provider_configs")
        keys = direct.rows("SELECT user_id FROM user_provider_credentials")
        assert [str(r["user_id"]) for r in seen] == [str(direct.identity.user_id)]
        assert keys == []
        active = views.active_model(direct, direct.identity)
    assert active is not None and active.model == "gpt-4o-mini"


def test_urls_read_as_sqlalchemy_reads_them() -> None:
    from sqlalchemy.engine import make_url

    from aipilot.db.urls import describe_url, password, sqlite_path

    for url in ("sqlite:////tmp/a#b.db", "sqlite:///rel/x.db", "sqlite:////tmp/sp%20ace.db"):
        assert sqlite_path(url) == make_url(url).database
    pg = "postgresql+psycopg://u:p%23ss@db.example:6543/prod%2Db?sslmode=require"
    assert password(pg) == make_url(pg).password == "p#ss"
    assert describe_url(pg) == "PostgreSQL database 'prod-b' on db.example:6543"
    assert describe_url("postgresql+psycopg://u@/x") == "PostgreSQL database 'x' on localhost"
