"""The fixture of the existing system (tests/seed_system.py) is what the seeds describe.

On PostgreSQL (a Supabase-like project): the tables, functions, triggers and policies of
seeds 000 and 002, rows in every table, the React app's insert into ``openai_connexion``
writing its audit entry, the Flutter app's §5 calls working as the member; and
:func:`fingerprint` stable, sensitive to a changed row or object, blind to additions only.
On SQLite: the same tables and rows as SQLAlchemy stores them, and the same fingerprint.
"""

from __future__ import annotations

import base64
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from aipilot.db.reader import as_time
from tests.conftest import PgServer, pg_backend
from tests.seed_system import (
    MISSING,
    SeedSystem,
    build_seed_system,
    build_seed_system_sqlite,
    changed,
    clone_seed_system,
    fingerprint,
    fingerprint_sqlite,
)
from tests.supabase_like import OWNER, Refused, create_project, url_as

TABLES = {
    "organisations": 2,
    "users": 3,
    "openai_connexion": 2,
    "ai_providers": 3,
    "ai_models": 7,
    "user_provider_credentials": 2,
    "ai_provider_configs": 2,
    "ai_system_prompts": 4,
    "ai_user_models_flut": 2,
}

# seed 002 §7, as pg_policies gives them
SEED_002_POLICIES = {
    "admin_presenca_full_access_openai_connexion": (
        "is_admin_presenca(auth.uid())",
        "is_admin_presenca(auth.uid())",
    ),
    "organisation_only_access_openai_connexion": (
        "(organisation_id = get_user_organisation_id(auth.uid()))",
        "(organisation_id = get_user_organisation_id(auth.uid()))",
    ),
}


@contextmanager
def _project(pg_server: PgServer | None, **options: Any) -> Iterator[SeedSystem]:
    pg_backend(pg_server)
    assert pg_server is not None
    server = url_as(pg_server.url_for("postgres"))
    name = create_project(server)
    try:
        yield build_seed_system(url_as(server, database=name), **options)
    finally:
        pg_server.drop(name)


@pytest.fixture(scope="module")
def seed_template(pg_server: PgServer | None) -> Iterator[SeedSystem]:
    with _project(pg_server) as built:
        yield built


@pytest.fixture
def seed(seed_template: SeedSystem, pg_server: PgServer | None) -> Iterator[SeedSystem]:
    """A fresh copy of the built system for each test."""
    assert pg_server is not None
    copy = clone_seed_system(seed_template)
    yield copy
    pg_server.drop(copy.database)


def _sql(url: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement.encode(), params or None)
        return cur.fetchall() if cur.description else []


# ---------------------------------------------------------------- PostgreSQL
def test_the_existing_system_as_the_seeds_describe_it(seed: SeedSystem) -> None:
    admin = seed.admin_url
    for table, count in TABLES.items():
        assert _sql(admin, f"SELECT count(*) FROM public.{table}") == [(count,)], table
    owners = _sql(
        admin,
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
    )
    assert owners == [(OWNER,)]
    # Supabase's default privileges: the owner's objects are the API roles'
    assert _sql(
        admin, "SELECT has_table_privilege('authenticated', 'public.ai_models', 'INSERT')"
    ) == [(True,)]
    # seed 002 §7, exactly; and its two triggers
    policies = _sql(
        admin,
        "SELECT policyname, permissive, roles::text[], cmd, qual, with_check FROM pg_policies "
        "WHERE tablename = 'openai_connexion'",
    )
    assert {p[0]: p[1:] for p in policies} == {
        name: ("PERMISSIVE", ["public"], "ALL", *exprs) for name, exprs in SEED_002_POLICIES.items()
    }
    triggers = _sql(
        admin,
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = 'public.openai_connexion'::regclass AND NOT tgisinternal ORDER BY 1",
    )
    assert [(t[0], " BEFORE INSERT " in t[1], " BEFORE UPDATE " in t[1]) for t in triggers] == [
        ("trg_set_created_audit_fields_openai_connexion", True, False),
        ("trg_update_audit_fields_openai_connexion", False, True),
    ]
    # not aipilot's: its role scheme, its endpoint columns, its credential format
    assert dict(_sql(admin, "SELECT users_id, role FROM public.users")) == {
        seed.admin.users_id: "admin_presenca",
        seed.member.users_id: "user",
        seed.other.users_id: "user",
    }
    with pytest.raises(psycopg.errors.CheckViolation):
        _sql(
            admin, "UPDATE public.users SET role = 'admin' WHERE users_id = %s", seed.admin.users_id
        )
    assert _columns(admin, "ai_providers") == [
        "id",
        "provider_key",
        "provider_name",
        "is_active",
        "created_at",
    ]
    assert _columns(admin, "user_provider_credentials") == [
        "id",
        "user_id",
        "provider_key",
        "encrypted_api_key",
        "iv",
        "created_at",
        "updated_at",
    ]
    ciphertext = _sql(
        admin,
        "SELECT encrypted_api_key FROM public.user_provider_credentials WHERE user_id = %s",
        seed.member.users_id,
    )
    assert ciphertext == [(seed.member.credential_ciphertext,)]
    assert len(base64.b64decode(ciphertext[0][0], validate=True)) == 51 + 16
    # the functions the policies call, and what they say
    assert _sql(
        admin,
        "SELECT is_admin_presenca(%s), is_admin_presenca(%s), get_user_organisation_id(%s)",
        seed.admin.users_id,
        seed.member.users_id,
        seed.other.users_id,
    ) == [(True, False, seed.org_b)]
    # the organisations' connections: A's key in plaintext, B's NULL, both with the audit
    # fields the React app's trigger wrote (they were posted through the Data API)
    connexions = _sql(
        admin,
        "SELECT openai_connexion_id, openai_api_key, openai_created_by, openai_audit_log "
        "FROM public.openai_connexion ORDER BY openai_api_key NULLS LAST",
    )
    assert [c[:3] for c in connexions] == [
        (seed.connexion_a, seed.org_key, seed.admin.users_id),
        (seed.connexion_b, None, seed.admin.users_id),
    ]
    assert seed.org_key.startswith("sk-proj-")
    for *_, log in connexions:
        assert [(e["action"], e["by"]) for e in log["events"]] == [
            ("insert", str(seed.admin.users_id))
        ]
    # each member: one active 'global' config whose system_prompt is its active prompt's text
    for user in (seed.member, seed.other):
        assert _sql(
            admin,
            "SELECT c.id, c.provider_name, c.model_name, p.name FROM public.ai_provider_configs c "
            "JOIN public.ai_system_prompts p ON p.user_id = c.user_id AND p.is_active "
            "AND p.prompt_content = c.system_prompt "
            "WHERE c.user_id = %s AND c.module_name = 'global' AND c.is_active",
            user.users_id,
        ) == [(user.config_id, user.provider, user.model, user.prompt_name)]
    assert seed.models["openai"] == ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo")
    # seed 000 §2.2 references auth.users, and user_id defaults to the signed-in user
    fk = _sql(
        admin,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'public.ai_user_models_flut'::regclass AND contype = 'f'",
    )
    assert fk == [("FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE",)]


def test_a_clone_is_the_same_system(seed_template: SeedSystem, seed: SeedSystem) -> None:
    assert seed.database != seed_template.database
    assert seed.fingerprint() == seed_template.fingerprint() == fingerprint(seed.url)
    assert seed.url == url_as(seed.admin_url, user=OWNER)


def _columns(url: str, table: str) -> list[str]:
    rows = _sql(
        url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        table,
    )
    return [r[0] for r in rows]


def test_the_react_apps_insert_writes_its_audit_entry(seed: SeedSystem) -> None:
    api = seed.api
    assert api is not None
    # the seed's policies: a member sees its organisation's connection only, writes no other's
    for user, visible in ((seed.member, seed.connexion_a), (seed.other, seed.connexion_b)):
        rows = api.select("authenticated", user.users_id, "openai_connexion", "openai_connexion_id")
        assert rows == [{"openai_connexion_id": visible}]
    posted = {
        "organisation_id": str(seed.org_b),
        "client_type": "reseau_agence",
        "client_id": str(uuid.uuid4()),
        "openai_limite_quotidienne": 20,
    }
    assert api.insert("authenticated", seed.admin.users_id, "openai_connexion", posted) == 1
    found = api.select(
        "authenticated",
        seed.admin.users_id,
        "openai_connexion",
        "openai_connexion_id, openai_created_by, openai_audit_log",
        {"client_type": "reseau_agence"},
    )
    assert len(found) == 1
    row = found[0]
    assert row["openai_created_by"] == seed.admin.users_id
    assert [(e["action"], e["by"], e["role"]) for e in row["openai_audit_log"]["events"]] == [
        ("insert", str(seed.admin.users_id), "authenticated")
    ]
    updated = api.update(
        "authenticated",
        seed.admin.users_id,
        "openai_connexion",
        {"openai_limite_quotidienne": 40},
        {"openai_connexion_id": row["openai_connexion_id"]},
        returning="openai_audit_log",
    )
    events = updated[0]["events"]  # type: ignore[index]
    assert [e["action"] for e in events] == ["insert", "update"]
    assert events[1]["changed"] == ["openai_limite_quotidienne"]
    with pytest.raises(Refused) as refused:
        api.insert("authenticated", seed.member.users_id, "openai_connexion", posted)
    assert refused.value.sqlstate == "42501"


def test_the_flutter_apps_calls_work_as_the_member(seed: SeedSystem) -> None:
    api, me = seed.api, seed.member.users_id
    assert api is not None
    ((seeded_update,),) = _sql(
        seed.admin_url, "SELECT updated_at FROM public.ai_provider_configs WHERE user_id = %s", me
    )
    # §5.2 "Activer ce modèle global": deactivate, then upsert on (user_id, module_name)
    deactivated = api.update(
        "authenticated",
        me,
        "ai_provider_configs",
        {"is_active": False},
        {"user_id": me, "module_name": "global", "is_active": True},
        returning="id",
    )
    assert deactivated == [seed.member.config_id]
    row = {
        "user_id": str(me),
        "module_name": "global",
        "provider_name": "anthropic",
        "model_name": "claude-sonnet-4-0",
        "system_prompt": None,
        "is_active": True,
    }
    assert (
        api.insert(
            "authenticated", me, "ai_provider_configs", row, on_conflict=("user_id", "module_name")
        )
        == 1
    )
    mine = api.select("authenticated", me, "ai_provider_configs")
    assert [(r["id"], r["provider_name"], r["model_name"], r["is_active"]) for r in mine] == [
        (seed.member.config_id, "anthropic", "claude-sonnet-4-0", True)
    ]
    assert mine[0]["updated_at"] > seeded_update  # the React app's set_updated_at() ran
    # §5.2 custom model and §5.3 prompt: inserts without user_id
    custom = {"provider_key": "openai", "model_key": "o3-mini", "model_name": "o3 mini (Custom)"}
    assert api.insert("authenticated", me, "ai_user_models_flut", custom) == 1
    prompt = {"name": "Assistant", "prompt_content": "Tu es un assistant ...", "is_active": False}
    assert api.insert("authenticated", me, "ai_system_prompts", prompt) == 1
    assert len(api.select("authenticated", me, "ai_system_prompts")) == 3
    # §5.2 reads: active providers, models with their provider's key
    providers = api.select("authenticated", me, "ai_providers", "provider_key", {"is_active": True})
    assert sorted(p["provider_key"] for p in providers) == ["anthropic", "google", "openai"]
    with api.request("authenticated", me, method="GET", path="/ai_models") as conn:
        models = conn.execute(
            "SELECT m.model_key FROM public.ai_models m JOIN public.ai_providers p "
            "ON p.id = m.provider_id WHERE m.is_active AND p.provider_key = 'openai'"
        ).fetchall()
    assert sorted(m[0] for m in models) == ["gpt-4o", "gpt-4o-mini"]
    # the other member's rows stay out of reach
    assert api.select("authenticated", me, "user_provider_credentials", "provider_key") == [
        {"provider_key": "openai"}
    ]


def test_fingerprint_is_stable_and_sees_changes_not_additions(pg_server: PgServer | None) -> None:
    with _project(pg_server, custom_model_default_uid=False) as seed:
        admin = seed.admin_url
        before = fingerprint(admin)
        assert fingerprint(admin) == before
        assert "default ai_user_models_flut.user_id" not in before  # §2.2 exactly
        assert before["policy ai_user_models_flut.ai_user_models_flut_manage_own"] == {
            "permissive": "PERMISSIVE",
            "roles": ["authenticated"],
            "cmd": "ALL",
            "qual": "(auth.uid() = user_id)",
            "with_check": "(auth.uid() = user_id)",
        }
        assert {k.split(" ", 1)[0] for k in before} == {
            "table", "grant", "column", "default", "constraint", "index", "trigger",
            "policy", "function", "rows",
        }  # fmt: skip
        # what adoption may do: add
        _sql(
            admin,
            "ALTER TABLE public.ai_providers ADD COLUMN base_url text;"
            "ALTER TABLE public.ai_providers ADD COLUMN api_kind text NOT NULL DEFAULT 'openai';"
            "ALTER TABLE public.ai_user_models_flut ALTER COLUMN user_id SET DEFAULT auth.uid();"
            "CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY);"
            "INSERT INTO public.alembic_version VALUES ('x');"
            "CREATE INDEX ix_adopted ON public.ai_models (model_key);"
            "CREATE POLICY aipilot_read ON public.ai_models FOR SELECT TO service_role USING (true);"
            "CREATE FUNCTION public.aipilot_f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
        )
        after = fingerprint(admin, only=before)
        assert after.keys() == before.keys()
        assert changed(before, after) == []
        assert fingerprint(admin) != before  # the additions are there
        # what it must not do: change a row, a function, a policy, RLS
        _sql(admin, "UPDATE public.ai_system_prompts SET name = name || '!' WHERE NOT is_active")
        assert changed(before, fingerprint(admin, only=before)) == ["rows ai_system_prompts"]
        _sql(
            admin,
            "CREATE OR REPLACE FUNCTION public.set_updated_at() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RETURN NEW; END $$;"
            "DROP POLICY organisation_only_access_openai_connexion ON public.openai_connexion;"
            "ALTER TABLE public.openai_connexion FORCE ROW LEVEL SECURITY;"
            "REVOKE DELETE ON public.ai_models FROM anon;",
        )
        after = fingerprint(admin, only=before)
        assert sorted(changed(before, after)) == [
            "function set_updated_at()",
            "grant table ai_models to anon",
            "policy openai_connexion.organisation_only_access_openai_connexion",
            "rows ai_system_prompts",
            "table openai_connexion",
        ]
        assert after["policy openai_connexion.organisation_only_access_openai_connexion"] == MISSING


# ---------------------------------------------------------------- SQLite
def test_the_sqlite_counterpart(tmp_path: Path) -> None:
    path = tmp_path / "existing.db"
    seed = build_seed_system_sqlite(path)
    assert seed.url == f"sqlite:///{path}" and path.stat().st_mode & 0o077 == 0
    conn = sqlite3.connect(path)
    try:
        for table, count in TABLES.items():
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (count,), table
        assert dict(conn.execute("SELECT users_id, role FROM users")) == {
            seed.admin.users_id.hex: "admin_presenca",
            seed.member.users_id.hex: "user",
            seed.other.users_id.hex: "user",
        }
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE users SET role = 'member'")
        key, models, log, created = conn.execute(
            "SELECT openai_api_key, openai_modeles_autorises, openai_audit_log, openai_created_at "
            "FROM openai_connexion WHERE openai_connexion_id = ?",
            (seed.connexion_a.hex,),
        ).fetchone()
        assert key == seed.org_key
        assert models == '["gpt-4o-mini", "gpt-4o"]'
        assert '"action": "insert"' in log
        assert as_time(created) is not None
        config = conn.execute(
            "SELECT id, provider_name, model_name, is_active, system_prompt, updated_at "
            "FROM ai_provider_configs WHERE user_id = ?",
            (seed.member.users_id.hex,),
        ).fetchone()
        assert config[:5] == (
            seed.member.config_id.hex,  # type: ignore[union-attr]
            "openai",
            "gpt-4o-mini",
            1,
            seed.member.prompt_text,
        )
        # the React app's updated_at trigger, in SQLite's terms
        conn.execute(
            "UPDATE ai_provider_configs SET model_name = 'gpt-4o' WHERE id = ?", config[:1]
        )
        (bumped,) = conn.execute(
            "SELECT updated_at FROM ai_provider_configs WHERE id = ?", config[:1]
        ).fetchone()
        assert as_time(bumped) > as_time(config[5])  # type: ignore[operator]
    finally:
        conn.close()
    copy = clone_seed_system(seed, path=tmp_path / "copy" / "existing.db")
    assert copy.url != seed.url and copy.org_key == seed.org_key
    assert copy.fingerprint()["rows users"] == seed.fingerprint()["rows users"]


def test_sqlite_fingerprint_is_stable_and_sees_changes_not_additions(tmp_path: Path) -> None:
    path = tmp_path / "existing.db"
    build_seed_system_sqlite(path)
    before = fingerprint_sqlite(path)
    assert fingerprint_sqlite(path) == before
    assert "trigger ai_provider_configs.set_ai_provider_configs_updated_at" in before
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            "ALTER TABLE ai_providers ADD COLUMN base_url TEXT;"
            "ALTER TABLE ai_providers ADD COLUMN api_kind TEXT NOT NULL DEFAULT 'openai';"
            "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);"
            "CREATE INDEX ix_adopted ON ai_models (model_key);"
        )
        assert changed(before, fingerprint_sqlite(path, only=before)) == []
        assert fingerprint_sqlite(path) != before
        conn.executescript(
            "UPDATE ai_models SET model_name = 'GPT-4o (2024)' WHERE model_key = 'gpt-4o';"
            "DROP TRIGGER set_ai_provider_configs_updated_at;"
            "CREATE TRIGGER set_ai_provider_configs_updated_at AFTER UPDATE ON ai_provider_configs "
            "BEGIN SELECT 1; END;"
        )
    finally:
        conn.close()
    assert sorted(changed(before, fingerprint_sqlite(path, only=before))) == [
        "rows ai_models",
        "trigger ai_provider_configs.set_ai_provider_configs_updated_at",
    ]
