"""`aipilot init --adopt` takes over the existing system without breaking it.

On the existing system rebuilt from the seeds (tests/seed_system.py) — PostgreSQL as a
Supabase project, and SQLite for the tables it can hold: plain `init` and `status` point at
`--adopt`; `--dry-run` changes nothing (schema and every row fingerprinted); a schema that
cannot serve is refused with its reason and nothing changed; adoption keeps every
pre-existing row, function, trigger and policy identical, the React app's insert still writes
its audit entry, and then status / model show / keys / ask / serve work for the app's users,
and `db upgrade` / `db check` from then on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from aipilot.errors import ExitCode
from tests.conftest import CliFn, PgServer, make_cli, pg_backend
from tests.fakeprovider import FakeProvider
from tests.seed_system import (
    SeedSystem,
    SeedUser,
    build_seed_system,
    build_seed_system_sqlite,
    changed,
    clone_seed_system,
    fingerprint,
    fingerprint_sqlite,
)
from tests.serve_support import ServeProcess
from tests.supabase_like import create_project, url_as

# the old credentials table requires a value aipilot does not know: the operator's one fix
ALLOW_NEW_KEYS = (
    "ALTER TABLE user_provider_credentials ALTER COLUMN encrypted_api_key SET DEFAULT ''"
)


@pytest.fixture(scope="module")
def seed_pg_template(pg_server: PgServer | None) -> Iterator[SeedSystem]:
    pg_backend(pg_server)
    assert pg_server is not None
    server = url_as(pg_server.url_for("postgres"))
    name = create_project(server)
    try:
        yield build_seed_system(url_as(server, database=name))
    finally:
        pg_server.drop(name)


@pytest.fixture
def seed(
    backend: str, pg_server: PgServer | None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[SeedSystem]:
    """A fresh copy of the existing system, on this test's backend."""
    if backend == "sqlite":
        yield build_seed_system_sqlite(tmp_path / "existing.db")
        return
    copy = clone_seed_system(request.getfixturevalue("seed_pg_template"))
    yield copy
    assert pg_server is not None
    pg_server.drop(copy.database)


def _fingerprint(seed: SeedSystem, only: dict[str, object] | None = None) -> dict[str, object]:
    if seed.backend == "sqlite":
        return fingerprint_sqlite(Path(seed.database), only=only)
    return fingerprint(seed.admin_url, only=only)


def _sql(seed: SeedSystem, statement: str) -> None:
    if seed.backend == "sqlite":
        import sqlite3

        with sqlite3.connect(seed.database) as conn:
            conn.execute(statement)
        return
    with psycopg.connect(seed.admin_url, autocommit=True) as conn:
        conn.execute(statement)


def _allow_new_keys(seed: SeedSystem) -> None:
    """The operator's one fix before adopting: a default for the old credentials table's
    required column (SQLite cannot alter a column: the table is rebuilt, triggers and all)."""
    if seed.backend == "postgresql":
        _sql(seed, ALLOW_NEW_KEYS)
        return
    import sqlite3

    with sqlite3.connect(seed.database) as conn:
        table = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'user_provider_credentials'"
        ).fetchone()[0]
        triggers = [
            r[0]
            for r in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'user_provider_credentials'"
            )
        ]
        rebuilt = table.replace(
            "encrypted_api_key TEXT NOT NULL", "encrypted_api_key TEXT NOT NULL DEFAULT ''"
        )
        assert rebuilt != table
        conn.executescript(
            "PRAGMA foreign_keys = OFF; BEGIN;"
            "ALTER TABLE user_provider_credentials RENAME TO old_credentials;"
            f"{rebuilt};"
            "INSERT INTO user_provider_credentials SELECT * FROM old_credentials;"
            "DROP TABLE old_credentials;" + "".join(f"{t};" for t in triggers) + "COMMIT;"
        )


def _cli(seed: SeedSystem) -> CliFn:
    return make_cli(seed.url)


def _adopted(seed: SeedSystem) -> CliFn:
    _allow_new_keys(seed)
    cli = _cli(seed)
    done = cli("init", "--adopt", user=None)
    assert done.exit_code == 0, done.stderr
    return cli


def _as(seed_user: SeedUser) -> str:
    return str(seed_user.users_id)


# ------------------------------------------------------------------ before adoption
def test_plain_init_and_commands_point_at_adopt_and_change_nothing(seed: SeedSystem) -> None:
    before = _fingerprint(seed)
    cli = _cli(seed)
    refused = cli("init", user=None)
    assert refused.exit_code == ExitCode.USAGE and "--adopt" in refused.stderr
    assert "Traceback" not in refused.stderr and "internal" not in refused.stderr
    for command in (("status",), ("model", "show"), ("db", "check"), ("db", "upgrade")):
        run = cli(*command, user=_as(seed.member))
        assert run.exit_code in (ExitCode.USAGE, ExitCode.NOT_CONFIGURED), (command, run.stderr)
        assert "--adopt" in run.stderr, (command, run.stderr)
    assert _fingerprint(seed) == before


def test_dry_run_prints_the_plan_and_changes_nothing(seed: SeedSystem) -> None:
    _allow_new_keys(seed)
    before = _fingerprint(seed)
    dry = _cli(seed)("--json", "init", "--adopt", "--dry-run", user=None)
    assert dry.exit_code == 0, dry.stderr
    plan = dry.json()
    assert plan["dry_run"] is True and plan["applied"] is False
    assert set(plan["adopted"]) >= {"ai_providers", "ai_provider_configs", "users"}
    assert any("ai_usage_logs" in s["what"] for s in plan["steps"])
    assert _fingerprint(seed) == before


def test_a_schema_that_cannot_serve_is_refused_and_nothing_changes(seed: SeedSystem) -> None:
    """The old credentials table as it is (a required column aipilot cannot fill), then a
    column of another type: each named, nothing changed, exit 2."""
    cli = _cli(seed)
    before = _fingerprint(seed)
    refused = cli("init", "--adopt", user=None)
    assert refused.exit_code == ExitCode.USAGE, refused.stderr
    assert "user_provider_credentials.encrypted_api_key" in refused.stderr
    assert _fingerprint(seed) == before
    _allow_new_keys(seed)
    if seed.backend == "postgresql":
        _sql(seed, "ALTER TABLE ai_system_prompts ALTER COLUMN is_active TYPE text")
    else:
        _sql(seed, "ALTER TABLE ai_models ADD COLUMN context_window BLOB")
    before = _fingerprint(seed)
    refused = cli("init", "--adopt", user=None)
    assert refused.exit_code == ExitCode.USAGE, refused.stderr
    column = (
        "ai_system_prompts.is_active"
        if seed.backend == "postgresql"
        else "ai_models.context_window"
    )
    assert column in refused.stderr and "aipilot needs" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _fingerprint(seed) == before


# ------------------------------------------------------------------ adoption
def test_adoption_only_adds(seed: SeedSystem) -> None:
    _allow_new_keys(seed)
    before = _fingerprint(seed)
    done = _cli(seed)("init", "--adopt", user=None)
    assert done.exit_code == 0, done.stderr
    assert changed(before, _fingerprint(seed, only=before)) == []


def test_the_react_apps_insert_still_writes_its_audit_entry(seed: SeedSystem) -> None:
    if seed.backend != "postgresql":
        pytest.skip("the React app talks to Supabase's Data API")
    _adopted(seed)
    assert seed.api is not None
    client = str(uuid.uuid4())
    with seed.api.request(
        "authenticated", seed.admin.users_id, method="POST", path="/openai_connexion"
    ) as conn:
        conn.execute(
            "INSERT INTO openai_connexion (organisation_id, client_id) VALUES (%s, %s)",
            (str(seed.org_b), client),
        )
    with psycopg.connect(seed.admin_url) as conn:
        row = conn.execute(
            "SELECT openai_audit_log, openai_created_by FROM openai_connexion WHERE client_id = %s",
            (client,),
        ).fetchone()
    assert row is not None and row[1] == seed.admin.users_id
    assert json.dumps(row[0]).count('"action"') >= 1  # the app's own trigger wrote its entry


def test_the_apps_users_and_configuration_are_aipilots(seed: SeedSystem) -> None:
    cli = _adopted(seed)
    member = _as(seed.member)
    shown = cli("--json", "model", "show", user=member)
    assert shown.exit_code == 0, shown.stderr
    active = shown.json()["active"]
    assert (active["provider"], active["model"]) == (seed.member.provider, seed.member.model)
    assert active["prompt_name"] == seed.member.prompt_name and active["prompt_stale"] is False
    status = cli("--json", "keys", "status", user=member)
    assert status.exit_code == 0, status.stderr
    states = {p["provider"]: p["state"] for p in status.json()["providers"]}
    assert states[seed.member.credential_provider] == "stored by another system"
    admins = {
        u["user_id"]: u["role"]
        for u in cli("--json", "users", "list", user=_as(seed.admin)).json()["users"]
    }
    assert admins[_as(seed.admin)] == "admin" and admins[member] == "member"
    assert (
        cli("users", "set-role", member, "admin", user=_as(seed.admin)).exit_code
        == ExitCode.PERMISSION
    )
    named = cli("users", "add", "max", "--id", member, user=_as(seed.admin))
    assert named.exit_code == 0, named.stderr
    assert cli("--json", "status", user="max").json()["user"] == "max"


def test_db_upgrade_and_check_work_after_adoption(seed: SeedSystem) -> None:
    cli = _adopted(seed)
    assert cli("db", "upgrade", user=None).exit_code == 0
    checked = cli("db", "check", user=None)
    assert checked.exit_code == 0, checked.stderr
    again = cli("init", "--adopt", user=None)
    assert again.exit_code == ExitCode.USAGE and "db upgrade" in again.stderr


def test_a_plaintext_organisation_key_is_reported_and_never_used(seed: SeedSystem) -> None:
    cli = _adopted(seed)
    shown = cli("--json", "org-openai", "show", seed.org_names["A"], user=_as(seed.admin))
    assert shown.exit_code == 0, shown.stderr
    assert "plaintext" in shown.stdout and seed.org_key not in shown.stdout + shown.stderr


def test_ask_and_serve_for_the_apps_member(seed: SeedSystem, tmp_path: Path) -> None:
    cli = _adopted(seed)
    member = _as(seed.member)
    with FakeProvider() as fake:
        _sql(
            seed,
            f"UPDATE ai_providers SET base_url = '{fake.base_url('openai')}' WHERE provider_key = 'openai'",
        )
        stored = cli(
            "keys", "set", "openai", "--stdin", input="sk-adopted-test-123456\n", user=member
        )
        assert stored.exit_code == 0, stored.stderr
        asked = cli("ask", "bonjour", "--no-stream", user=member)
        assert asked.exit_code == 0, asked.stderr
        sent = fake.last_request.json
        assert sent["model"] == seed.member.model
        assert sent["messages"][0] == {"role": "system", "content": seed.member.prompt_text}
        served = ServeProcess(seed.url, tmp_path / "serve").start()
        try:
            token = cli("tokens", "create", user=member).stdout.strip()
            with served.client(token) as client:
                answer = client.post(
                    "/functions/v1/assist_flut",
                    json={
                        "module_name": "global",
                        "messages": [{"role": "user", "content": "salut"}],
                    },
                )
            assert answer.status_code == 200, answer.text
        finally:
            served.stop()


def test_serve_on_a_database_it_cannot_use_says_so(seed: SeedSystem, tmp_path: Path) -> None:
    """Before adoption: /readyz 503 with the fix, every call a JSON 503, never a 500."""
    served = ServeProcess(seed.url, tmp_path / "serve").start(wait_for="/healthz")
    try:
        with served.client("aip_not-a-real-token") as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "--adopt" in ready.json()["hint"]
            for path in ("/functions/v1/assist_flut", "/v1/chat/completions"):
                answer = client.post(path, json={"messages": [{"role": "user", "content": "x"}]})
                assert answer.status_code == 503, (path, answer.text)
                assert "--adopt" in answer.text
        # adopted while it runs: the next calls see it
        assert _adopted(seed) is not None
        with served.client() as client:
            assert client.get("/readyz").status_code == 200
    finally:
        served.stop()


def test_adopted_objects_match_a_migrated_database(
    seed: SeedSystem, database_url: str, backend: str
) -> None:
    """The tables adoption creates get the same policies and triggers as the migrations
    give them (aipilot/db/adopt_sql.py cannot drift from alembic/versions)."""
    if backend != "postgresql":
        pytest.skip("policies are PostgreSQL's")
    _adopted(seed)
    created = ("ai_usage_logs", "ai_user_limits", "aipilot_api_tokens", "aipilot_config_generation")
    query = (
        "SELECT tablename || '.' || policyname FROM pg_policies WHERE tablename = ANY(%s) "
        "UNION SELECT c.relname || '.' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE NOT t.tgisinternal AND c.relname = ANY(%s)"
    )

    def objects(url: str) -> set[str]:
        with psycopg.connect(url_as(url)) as conn:
            return {r[0] for r in conn.execute(query, (list(created), list(created)))}

    assert objects(seed.admin_url) == objects(database_url)


def test_aipilots_tables_in_a_schema_of_their_own_never_replace_the_apps_functions(
    seed: SeedSystem,
) -> None:
    """The workaround a user would try: aipilot's tables in another schema by search_path.
    Whatever comes of it, the React app's functions and triggers stay as they were."""
    if seed.backend != "postgresql":
        pytest.skip("schemas and functions are PostgreSQL's")
    _sql(seed, "CREATE SCHEMA aipilot_own AUTHORIZATION supa_postgres")
    before = fingerprint(seed.admin_url)
    url = seed.url + "?options=-csearch_path%3Daipilot_own"
    run = make_cli(url)("init", user=None)
    assert "Traceback" not in run.stderr
    after = fingerprint(seed.admin_url, only=before)
    assert [k for k in changed(before, after) if k.startswith(("function", "trigger"))] == []


def test_the_flutter_apps_calls_still_work_and_aipilot_sees_them(seed: SeedSystem) -> None:
    """After adoption: §5.2's deactivate + upsert and §5.3's prompt insert, as the member
    through the Data API; aipilot's model show names the app's choice at once."""
    if seed.backend != "postgresql":
        pytest.skip("the Flutter app talks to Supabase's Data API")
    cli = _adopted(seed)
    assert seed.api is not None
    member = seed.member.users_id
    with seed.api.request(
        "authenticated", member, method="PATCH", path="/ai_provider_configs"
    ) as conn:
        conn.execute(
            "UPDATE ai_provider_configs SET is_active = false "
            "WHERE user_id = %s AND module_name = 'global' AND is_active = true",
            (str(member),),
        )
    with seed.api.request(
        "authenticated", member, method="POST", path="/ai_provider_configs"
    ) as conn:
        conn.execute(
            "INSERT INTO ai_provider_configs (user_id, module_name, provider_name, model_name, "
            "system_prompt, is_active) VALUES (%s, 'global', 'openai', 'gpt-4o', NULL, true) "
            "ON CONFLICT (user_id, module_name) DO UPDATE SET provider_name = EXCLUDED.provider_name, "
            "model_name = EXCLUDED.model_name, system_prompt = EXCLUDED.system_prompt, "
            "is_active = EXCLUDED.is_active",
            (str(member),),
        )
    with seed.api.request(
        "authenticated", member, method="POST", path="/ai_system_prompts"
    ) as conn:
        conn.execute(
            "INSERT INTO ai_system_prompts (name, prompt_content, is_active) "
            "VALUES ('Nouveau', 'Sois concis.', false)"
        )
    shown = cli("--json", "model", "show", user=str(member)).json()["active"]
    assert (shown["provider"], shown["model"]) == ("openai", "gpt-4o")
    listed = cli("--json", "prompts", "list", user=str(member))
    assert listed.exit_code == 0 and "Nouveau" in listed.stdout


def test_after_adoption_init_import_and_rotation_leave_the_apps_rows_alone(
    seed: SeedSystem,
) -> None:
    """Plain `init` adds no provider or user to the app's tables, `users import` refuses,
    and `keys rotate-master` re-seals aipilot's keys and skips the app's old ones."""
    import base64

    cli = _adopted(seed)
    admin, member = _as(seed.admin), _as(seed.member)
    before = _fingerprint(seed)
    again = cli("init", user=None)
    assert again.exit_code == 0, again.stderr
    assert cli("users", "import", user=admin).exit_code in (ExitCode.USAGE,)
    assert changed(before, _fingerprint(seed, only=before)) == []
    stored = cli(
        "keys",
        "set",
        "anthropic",
        "--stdin",
        "--no-test",
        input="sk-ant-adopted-1234567\n",
        user=member,
    )
    assert stored.exit_code == 0, stored.stderr
    new = base64.b64encode(b"\x09" * 32).decode()
    rotated = cli(
        "keys", "rotate-master", "--new-from-env", "NEW_MASTER", user=admin, env={"NEW_MASTER": new}
    )
    assert rotated.exit_code == 0, rotated.stderr
    status = cli("--json", "keys", "status", user=member, env={"AIPILOT_MASTER_KEY": new})
    states = {p["provider"]: p["state"] for p in status.json()["providers"]}
    assert states["anthropic"] == "configured"
    assert states[seed.member.credential_provider] == "stored by another system"
