"""Through Supabase's Data API, nothing of aipilot's is reachable beyond what the seed allows.

On a Supabase-like database (tests/supabase_like.py) where ``aipilot init`` ran as the
project owner, every table aipilot creates × select/insert/update/delete × {anon, member,
other member, admin}, each statement run as PostgREST runs it. The expected outcomes are
the table in the README's "PostgreSQL and Supabase" section. Then the attacks that worked
before migration 0004, one by one, and aipilot itself connected as the recommended role.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.conftest import PgServer, make_cli, pg_backend, run_process
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import point_catalog_at
from tests.supabase_like import (
    AIPILOT_ROLE,
    OWNER,
    DataApi,
    Refused,
    add_auth_user,
    create_project,
    url_as,
)

ADMIN_EMAIL, MEMBER_EMAIL, OTHER_EMAIL = "ada@example.test", "max@example.test", "oli@example.test"
WHO = ("anon", "member", "other", "admin")
D = "denied"  # the Data API answers 42501: privilege or row-level security
ALL = frozenset({"*"})


@dataclass
class Project:
    admin_url: str  # the server's superuser, for arranging rows
    owner_url: str  # the stand-in for Supabase's `postgres`
    aipilot_url: str  # the role the README recommends for aipilot
    api: DataApi
    ids: dict[str, uuid.UUID]  # admin, member, other -> auth.users id
    orgs: dict[str, uuid.UUID]  # A (member's), B (other's)
    openai_id: uuid.UUID

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            cur = conn.execute(statement, params or None)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def project(pg_server: PgServer | None) -> Iterator[Project]:
    pg_backend(pg_server)
    assert pg_server is not None
    server_url = url_as(pg_server.url_for("postgres"))
    name = create_project(server_url)
    admin_url = url_as(server_url, database=name)
    owner_url = url_as(admin_url, user=OWNER)
    ids = {
        "admin": add_auth_user(admin_url, ADMIN_EMAIL),
        "member": add_auth_user(admin_url, MEMBER_EMAIL),
        "other": add_auth_user(admin_url, OTHER_EMAIL),
    }
    cli = make_cli(owner_url)
    assert cli("init", user=ADMIN_EMAIL).exit_code == 0
    fake = FakeProvider.start()  # every provider of the catalog answers on 127.0.0.1
    point_catalog_at(fake, admin_url)
    assert cli("users", "import", user=ADMIN_EMAIL).exit_code == 0
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"GRANT aipilot_service TO {AIPILOT_ROLE}")
    project = Project(
        admin_url,
        owner_url,
        url_as(admin_url, user=AIPILOT_ROLE),
        DataApi(admin_url),
        ids,
        {},
        uuid.uuid4(),
    )
    _furnish(project)
    yield project
    fake.stop()
    pg_server.drop(name)


def _furnish(p: Project) -> None:
    """Two organisations, and one row per user in every per-user table (as the owner)."""
    for org in ("A", "B"):
        p.orgs[org] = p.sql(
            "INSERT INTO organisations (name) VALUES (%s) RETURNING organisation_id", f"org-{org}"
        )[0][0]
    p.sql("UPDATE users SET organisation_id = %s WHERE users_id = %s", p.orgs["A"], p.ids["member"])
    p.sql("UPDATE users SET organisation_id = %s WHERE users_id = %s", p.orgs["B"], p.ids["other"])
    p.openai_id = p.sql("SELECT id FROM ai_providers WHERE provider_key = 'openai'")[0][0]
    for label, uid in p.ids.items():
        for table, row in _own_rows(uid, label).items():
            cols = ", ".join(row)
            p.sql(
                f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(row))})",
                *row.values(),
            )
    p.sql("UPDATE ai_user_limits SET set_by_admin = true")
    for org in ("A", "B"):
        p.sql(
            "INSERT INTO openai_connexion (organisation_id, client_id, openai_limite_quotidienne, "
            "openai_limite_cout_mois) VALUES (%s, %s, 100, 5)",
            p.orgs[org],
            uuid.uuid4(),
        )


def _own_rows(uid: uuid.UUID, tag: str) -> dict[str, dict[str, object]]:
    return {
        "user_provider_credentials": {
            "user_id": uid,
            "provider_key": "openai",
            "encrypted_key": "c",
            "nonce": "n",
            "key_id": "k",
            "key_hint": f"sk-…{tag[:4]}",
        },
        "ai_provider_configs": {
            "user_id": uid,
            "provider_name": "openai",
            "model_name": f"m-{tag}",
        },
        "ai_system_prompts": {"user_id": uid, "name": f"p-{tag}", "prompt_content": "hello"},
        "ai_user_models_flut": {
            "user_id": uid,
            "provider_key": "openai",
            "model_key": f"m-{tag}",
            "model_name": tag,
        },
        "ai_usage_logs": {
            "user_id": uid,
            "kind": "chat",
            "provider_key": "openai",
            "outcome": "ok",
        },
        "ai_user_limits": {"user_id": uid, "daily_requests": 10},
        "aipilot_api_tokens": {
            "user_id": uid,
            "name": tag,
            "token_hash": uuid.uuid4().hex,
            "prefix": "aip_x",
        },
    }


# ------------------------------------------------------------------ the matrix
# table -> the column that tells whose a row is (labels: member/other/admin, A/B, *)
KEY = {
    "users": "users_id",
    "organisations": "organisation_id",
    "ai_providers": "id",
    "ai_models": "id",
    "user_provider_credentials": "user_id",
    "ai_provider_configs": "user_id",
    "ai_system_prompts": "user_id",
    "ai_user_models_flut": "user_id",
    "ai_usage_logs": "user_id",
    "ai_user_limits": "user_id",
    "openai_connexion": "organisation_id",
    "aipilot_api_tokens": "user_id",
    "aipilot_config_generation": "id",
    "alembic_version": "version_num",
}
MEMBER, OTHER, ADMIN = frozenset({"member"}), frozenset({"other"}), frozenset({"admin"})
EVERYONE = frozenset({"member", "other", "admin"})
NONE: frozenset[str] = frozenset()
OWN = {"member": MEMBER, "other": OTHER, "admin": ADMIN}
# (select, insert, update, delete) per caller; insert: "ok" or D; the others: whose rows
Expect = tuple[object, object, object, object]
NOTHING: Expect = (D, D, D, D)


def _expected(table: str, who: str) -> Expect:
    if who == "anon" or table in (
        "aipilot_api_tokens",
        "aipilot_config_generation",
        "alembic_version",
    ):
        return NOTHING
    own = OWN[who]
    admin = who == "admin"
    if table == "users":
        return (EVERYONE, "ok", EVERYONE, EVERYONE) if admin else (own, D, NONE, NONE)
    if table == "organisations":
        org = {"member": frozenset({"A"}), "other": frozenset({"B"})}
        return (
            (frozenset({"A", "B"}), "ok", frozenset({"A", "B"}), frozenset({"A", "B"}))
            if admin
            else (org[who], D, NONE, NONE)
        )
    if table in ("ai_providers", "ai_models"):
        if not admin:
            return (ALL, D, NONE, NONE)
        # providers are still referenced by models (ON DELETE RESTRICT): 23503, not RLS
        return (ALL, "ok", ALL, "23503" if table == "ai_providers" else ALL)
    if table == "user_provider_credentials":  # the key's status and delete, never the key
        return (own, D, D, own)
    if table == "ai_usage_logs":  # written by aipilot only
        return (own, D, D, D)
    if table == "ai_user_limits":
        return (EVERYONE, "ok", EVERYONE, EVERYONE) if admin else (own, D, NONE, NONE)
    if table == "openai_connexion":
        if admin:
            return (frozenset({"A", "B"}), "ok", frozenset({"A", "B"}), frozenset({"A", "B"}))
        org = frozenset({"A"}) if who == "member" else frozenset({"B"})
        return (org, D, D, D)
    return (own, "ok", own, own)  # configs, prompts, custom models: the seed's "RLS par user"


def _new_row(p: Project, table: str, uid: uuid.UUID, org: uuid.UUID) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    rows: dict[str, dict[str, object]] = {
        "users": {"users_id": str(uuid.uuid4()), "username": f"new-{tag}"},
        "organisations": {"name": f"org-{tag}"},
        "ai_providers": {
            "provider_key": f"p{tag}",
            "provider_name": "x",
            "base_url": "http://127.0.0.1:9",
            "api_headers": {},
        },
        "ai_models": {"provider_id": str(p.openai_id), "model_key": f"m-{tag}", "model_name": "x"},
        "openai_connexion": {"organisation_id": str(org), "client_id": str(uuid.uuid4())},
        "ai_user_limits": {"user_id": str(uid), "provider_key": "anthropic", "daily_requests": 5},
        "aipilot_config_generation": {"id": 2, "generation": 0},
        "alembic_version": {"version_num": tag},
    }
    if table in rows:
        return rows[table]
    row = {
        k: str(v) if isinstance(v, uuid.UUID) else v for k, v in _own_rows(uid, tag)[table].items()
    }
    if table == "ai_user_models_flut":
        row["model_key"] = f"m-{tag}"
    if table == "ai_provider_configs":  # one row per (user, module): another module
        row["module_name"] = f"mod_{tag}"
    return row


def _labels(p: Project, table: str, values: list[object]) -> frozenset[str]:
    names = {**{v: k for k, v in p.ids.items()}, **{v: k for k, v in p.orgs.items()}}
    return frozenset(names.get(v, "*") for v in values)  # type: ignore[call-overload]


def _outcome(call: Any) -> object:
    try:
        return call()
    except Refused as refused:
        return D if refused.sqlstate == "42501" else refused.sqlstate


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("table", list(KEY))
def test_data_api_matrix(project: Project, table: str, who: str) -> None:
    """One cell row of the matrix: what a caller of /rest/v1/<table> can read and change."""
    p, key = project, KEY[table]
    role = "anon" if who == "anon" else "authenticated"
    sub = None if who == "anon" else p.ids[who]
    uid = sub or p.ids["member"]
    org = p.orgs["B"] if who == "other" else p.orgs["A"]
    seen = _outcome(
        lambda: _labels(p, table, [r[key] for r in p.api.select(role, sub, table, key)])
    )
    inserted = _outcome(
        lambda: p.api.insert(role, sub, table, _new_row(p, table, uid, org), commit=False) and "ok"
    )
    updated = _outcome(
        lambda: (
            _labels(
                p,
                table,
                p.api.update(
                    role, sub, table, {key: _same(p, table, key)}, returning=key, commit=False
                ),
            )
            if table in ("aipilot_config_generation", "alembic_version")
            else _labels(p, table, _update_in_place(p, role, sub, table, key))
        )
    )
    deleted = _outcome(
        lambda: _labels(p, table, p.api.delete(role, sub, table, returning=key, commit=False))
    )
    assert (seen, inserted, updated, deleted) == _expected(table, who)


def _same(p: Project, table: str, key: str) -> object:
    return p.sql(f"SELECT {key} FROM {table} LIMIT 1")[0][0]


def _update_in_place(
    p: Project, role: str, sub: uuid.UUID | None, table: str, key: str
) -> list[object]:
    """``UPDATE t SET key = key``: every row the caller may change, changed to itself."""
    with p.api.request(role, sub, method="PATCH", path=f"/{table}", commit=False) as conn:
        return [
            r[0]
            for r in conn.execute(f'UPDATE public.{table} SET "{key}" = "{key}" RETURNING "{key}"')
        ]


def test_every_public_table_has_forced_row_level_security(project: Project) -> None:
    """Supabase's linter rule "RLS disabled in public", for every table aipilot created."""
    rows = project.sql(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
    )
    assert {r[0] for r in rows} == set(KEY)
    assert [r[0] for r in rows if not (r[1] and r[2])] == []


def test_anon_has_no_grant_on_any_aipilot_table(project: Project) -> None:
    rows = project.sql(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = 'anon' AND table_schema = 'public'"
    )
    assert rows == []


# ------------------------------------------------------------------ attacks through the Data API
def test_anon_cannot_read_users_or_forge_a_token(project: Project) -> None:
    p = project
    for attempt in (
        lambda: p.api.select("anon", None, "users"),
        lambda: p.api.update("anon", None, "users", {"role": "admin"}, returning="users_id"),
        lambda: p.api.insert(
            "anon",
            None,
            "aipilot_api_tokens",
            {
                "user_id": str(p.ids["admin"]),
                "name": "x",
                "token_hash": "f" * 64,
                "prefix": "aip_f",
            },
        ),
    ):
        with pytest.raises(Refused) as refused:
            attempt()
        assert refused.value.sqlstate == "42501"
    assert p.sql("SELECT count(*) FROM aipilot_api_tokens WHERE token_hash = %s", "f" * 64) == [
        (0,)
    ]


def test_nobody_but_an_admin_rewrites_a_provider_endpoint(project: Project) -> None:
    p = project
    before = p.sql("SELECT base_url FROM ai_providers WHERE provider_key = 'openai'")
    evil = {"base_url": "http://127.0.0.1:1/steal"}
    with pytest.raises(Refused):
        p.api.update("anon", None, "ai_providers", evil, {"provider_key": "openai"}, returning="id")
    changed = p.api.update(
        "authenticated",
        p.ids["member"],
        "ai_providers",
        evil,
        {"provider_key": "openai"},
        returning="id",
    )
    assert changed == []
    assert p.sql("SELECT base_url FROM ai_providers WHERE provider_key = 'openai'") == before


def test_a_member_cannot_promote_itself_or_read_token_hashes(project: Project) -> None:
    p, member = project, project.ids["member"]
    assert (
        p.api.update(
            "authenticated",
            member,
            "users",
            {"role": "admin"},
            {"users_id": str(member)},
            returning="users_id",
        )
        == []
    )
    assert p.sql("SELECT role FROM users WHERE users_id = %s", member) == [("member",)]
    with pytest.raises(Refused) as refused:
        p.api.select("authenticated", member, "aipilot_api_tokens", "token_hash")
    assert refused.value.sqlstate == "42501"


def test_a_member_cannot_lift_its_organisations_limits(project: Project) -> None:
    """The seed's policy lets members of an organisation write its row; the guard does not."""
    p, member = project, project.ids["member"]
    for change in (
        {"openai_limite_quotidienne": None},
        {"openai_limite_cout_mois": 1000},
        {"openai_modeles_autorises": "{gpt-4o,o3}"},
        {"openai_usage_quotidien": 0},
    ):
        with pytest.raises(Refused) as refused:
            p.api.update(
                "authenticated",
                member,
                "openai_connexion",
                change,
                {"organisation_id": str(p.orgs["A"])},
                returning="organisation_id",
            )
        assert refused.value.sqlstate == "42501", change
    assert p.sql(
        "SELECT openai_limite_quotidienne, openai_limite_cout_mois FROM openai_connexion WHERE organisation_id = %s",
        p.orgs["A"],
    ) == [(100, 5)]
    # an admin still can, through the same door
    done = p.api.update(
        "authenticated",
        p.ids["admin"],
        "openai_connexion",
        {"openai_limite_quotidienne": 200},
        {"organisation_id": str(p.orgs["A"])},
        returning="organisation_id",
        commit=False,
    )
    assert done == [p.orgs["A"]]


def test_a_member_cannot_reset_or_raise_its_own_limits(project: Project) -> None:
    p, member = project, project.ids["member"]
    for change in ({"requests_today": 0, "cost_this_month": 0}, {"daily_requests": 10_000}):
        assert (
            p.api.update(
                "authenticated",
                member,
                "ai_user_limits",
                change,
                {"user_id": str(member)},
                returning="user_id",
            )
            == []
        )
    assert (
        p.api.delete(
            "authenticated", member, "ai_user_limits", {"user_id": str(member)}, returning="user_id"
        )
        == []
    )
    assert p.sql("SELECT daily_requests FROM ai_user_limits WHERE user_id = %s", member) == [(10,)]


def test_stored_key_material_is_not_readable_even_by_its_owner(project: Project) -> None:
    p, member = project, project.ids["member"]
    for columns in ("*", "encrypted_key", "nonce, key_id"):
        with pytest.raises(Refused) as refused:
            p.api.select("authenticated", member, "user_provider_credentials", columns)
        assert refused.value.sqlstate == "42501"
    status = p.api.select(
        "authenticated", member, "user_provider_credentials", "provider_key, key_hint, last_test_ok"
    )
    assert status == [{"provider_key": "openai", "key_hint": "sk-…memb", "last_test_ok": None}]


# ------------------------------------------------------------------ aipilot itself
def test_aipilot_as_the_recommended_role_works_and_says_nothing(project: Project) -> None:
    """Connected as a role granted aipilot_service (no BYPASSRLS), the commands work."""
    env = {"AIPILOT_QUIET_BYPASSRLS": "0"}
    cli = make_cli(project.aipilot_url)
    assert cli("users", "list", user=ADMIN_EMAIL, env=env).exit_code == 0
    listed = cli("--json", "users", "list", user=ADMIN_EMAIL, env=env).json()["users"]
    assert {u["username"] for u in listed} == {ADMIN_EMAIL, MEMBER_EMAIL, OTHER_EMAIL}
    assert (
        cli(
            "keys",
            "set",
            "openai",
            "--stdin",
            input="sk-test-abcdef123456\n",
            user=MEMBER_EMAIL,
            env=env,
        ).exit_code
        == 0
    )
    assert (
        cli("model", "activate", "openai", "gpt-4o-mini", user=MEMBER_EMAIL, env=env).exit_code == 0
    )
    tested = cli("--json", "test", user=MEMBER_EMAIL, env=env)
    assert tested.exit_code == 0 and tested.json()["success"] is True, tested.stderr
    asked = cli("ask", "hello", "--no-stream", user=MEMBER_EMAIL, env=env)
    assert asked.exit_code == 0 and asked.stdout.strip(), asked.stderr
    status = run_process(
        ["--json", "status"], database_url=project.aipilot_url, user=MEMBER_EMAIL, env=env
    )
    assert status.exit_code == 0, status.stderr
    doc = status.json()
    assert doc["keys"]["openai"] is True and doc["active_model"]["model"] == "gpt-4o-mini"
    assert doc["warnings"] == [] and "Warning" not in status.stderr
    # each user sees its own stored keys only (the member's new key, not the other's row)
    mine = cli("--json", "keys", "status", user=MEMBER_EMAIL, env=env)
    theirs = cli("--json", "keys", "status", user=OTHER_EMAIL, env=env)
    assert "sk-…3456" in mine.stdout and "sk-…3456" not in theirs.stdout
    assert "sk-…othe" in theirs.stdout and "sk-…othe" not in mine.stdout


def test_a_role_that_bypasses_rls_is_never_silent(project: Project) -> None:
    """As the project owner (BYPASSRLS, like Supabase's postgres): once on stderr, and in
    `status`; quiet on stderr only when asked."""
    loud = run_process(
        ["--json", "status"],
        database_url=project.owner_url,
        user=ADMIN_EMAIL,
        env={"AIPILOT_QUIET_BYPASSRLS": "0"},
    )
    assert loud.exit_code == 0, loud.stderr
    lines = [line for line in loud.stderr.splitlines() if line.startswith("Warning:")]
    assert len(lines) == 1 and "BYPASSRLS" in lines[0] and OWNER in lines[0]
    assert any("BYPASSRLS" in w for w in loud.json()["warnings"])
    for command in (["users", "list"], ["keys", "status"]):
        other = run_process(
            command,
            database_url=project.owner_url,
            user=ADMIN_EMAIL,
            env={"AIPILOT_QUIET_BYPASSRLS": "0"},
        )
        assert other.exit_code == 0 and other.stderr.count("Warning:") == 1, other.stderr
    quiet = run_process(["--json", "status"], database_url=project.owner_url, user=ADMIN_EMAIL)
    assert "Warning" not in quiet.stderr and quiet.json()["warnings"]


def test_an_owner_without_bypassrls_runs_aipilot_under_its_own_policies(
    pg_server: PgServer | None,
) -> None:
    """Plain PostgreSQL, schema owned by an ordinary role: FORCEd RLS applies to the owner
    too, and the policies still let aipilot work (no recursion through aipilot_is_admin)."""
    pg_backend(pg_server)
    assert pg_server is not None
    server = url_as(pg_server.url_for("postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN CREATE ROLE aipilot_plain_owner LOGIN CREATEROLE; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        # PostgreSQL 16+: a CREATEROLE role may grant itself a role only with ADMIN OPTION;
        # when another migration (as a superuser) created aipilot_service first on this
        # cluster, a DBA grants it, as here
        conn.execute(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aipilot_service') "
            "THEN GRANT aipilot_service TO aipilot_plain_owner WITH ADMIN OPTION; END IF; END $$"
        )
        name = f"aipilot_plain_{uuid.uuid4().hex[:12]}"
        conn.execute(f"CREATE DATABASE {name} OWNER aipilot_plain_owner")
    try:
        url = url_as(server, database=name, user="aipilot_plain_owner")
        cli = make_cli(url)
        env = {"AIPILOT_QUIET_BYPASSRLS": "0"}
        assert cli("init", env=env).exit_code == 0
        with psycopg.connect(url_as(server, database=name), autocommit=True) as conn:
            conn.execute("UPDATE ai_providers SET base_url = 'http://127.0.0.1:9'")
        assert cli("users", "add", "bob", env=env).exit_code == 0
        stored = cli(
            "keys",
            "set",
            "openai",
            "--stdin",
            "--no-test",
            input="sk-abc123456789\n",
            user="bob",
            env=env,
        )
        assert stored.exit_code == 0, stored.stderr
        assert cli("model", "activate", "openai", "gpt-4o-mini", user="bob", env=env).exit_code == 0
        assert cli("limits", "set", "--for", "bob", "--daily-requests", "3", env=env).exit_code == 0
        assert cli("limits", "clear", user="bob", env=env).exit_code == 9
        listed = cli("--json", "users", "list", env=env)
        assert {u["username"] for u in listed.json()["users"]} == {"alice", "bob"}
        status = run_process(["--json", "status"], database_url=url, user="bob", env=env)
        assert status.exit_code == 0 and status.json()["keys"]["openai"] is True
        assert status.json()["warnings"] == [] and "Warning" not in status.stderr
    finally:
        pg_server.drop(name)


def test_the_service_role_and_a_definer_function_through_the_data_api(project: Project) -> None:
    """service_role (the platform's server key) may still change an organisation's
    connection; a SECURITY DEFINER function a member calls through PostgREST (so it runs as
    the owner) is still the Data API to the guards: it cannot lift a limit."""
    p = project
    done = p.api.update(
        "service_role",
        None,
        "openai_connexion",
        {"openai_limite_quotidienne": 150},
        {"organisation_id": str(p.orgs["A"])},
        returning="organisation_id",
        commit=False,
    )
    assert done == [p.orgs["A"]]
    p.sql(
        "CREATE OR REPLACE FUNCTION public.lift_my_limit() RETURNS void LANGUAGE sql SECURITY DEFINER "
        "SET search_path = public AS $$ UPDATE ai_user_limits SET daily_requests = 100000 "
        "WHERE user_id = auth.uid() $$"
    )
    p.sql(f"ALTER FUNCTION public.lift_my_limit() OWNER TO {OWNER}")
    try:
        with (
            pytest.raises(Refused) as refused,
            p.api.request(
                "authenticated", p.ids["member"], method="POST", path="/rpc/lift_my_limit"
            ) as conn,
        ):
            conn.execute("SELECT public.lift_my_limit()")
        assert refused.value.sqlstate == "42501"
        assert p.sql(
            "SELECT daily_requests FROM ai_user_limits WHERE user_id = %s", p.ids["member"]
        ) == [(10,)]
    finally:
        p.sql("DROP FUNCTION public.lift_my_limit()")
