"""The seed's tables as the seeds define them, and row-level security on PostgreSQL.

RLS is checked as a NON-owner role (the owner and superusers bypass or are subject to
different rules): no identity → 0 rows; alice sees only her rows; alice inserting for
bob → 42501; alice updating or deleting bob's rows → 0 rows changed.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from aipilot.db.engine import Database
from aipilot.db.models import USER_TABLES
from aipilot.errors import PermissionDeniedError
from tests.conftest import PgServer, pg_backend


@pytest.fixture(params=["postgresql"])
def backend(request: pytest.FixtureRequest, pg_server: PgServer | None) -> str:
    """This module is about PostgreSQL features: it overrides the two-backend fixture."""
    return pg_backend(pg_server)


def _columns(engine: sa.Engine, table: str) -> dict[str, tuple[str, str, str | None]]:
    sql = sa.text(
        "SELECT column_name, CASE WHEN data_type = 'ARRAY' THEN udt_name ELSE data_type END, "
        "is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = :t"
    )
    with engine.connect() as conn:
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(sql, {"t": table})}


# seed 002 §1, column by column: (type, nullable, default)
OPENAI_CONNEXION = {
    "openai_connexion_id": ("uuid", "NO", "gen_random_uuid()"),
    "organisation_id": ("uuid", "NO", None),
    "client_type": ("text", "NO", "'reseau'::text"),
    "client_id": ("uuid", "NO", None),
    "openai_api_key": ("text", "YES", None),
    "openai_email_compte": ("text", "YES", None),
    "openai_organisation_id": ("text", "YES", None),
    "openai_project_id": ("text", "YES", None),
    "openai_actif": ("boolean", "NO", "true"),
    "openai_date_activation": ("timestamp with time zone", "NO", "now()"),
    "openai_derniere_synchro": ("timestamp with time zone", "YES", None),
    "openai_statut_connexion": ("text", "NO", "'active'::text"),
    "openai_derniere_erreur": ("text", "YES", None),
    "openai_limite_quotidienne": ("integer", "YES", None),
    "openai_usage_quotidien": ("integer", "YES", "0"),
    "openai_reset_quota_at": ("timestamp with time zone", "YES", None),
    "openai_modeles_autorises": ("_text", "YES", "'{gpt-3.5-turbo,gpt-4}'::text[]"),
    "openai_cout_actuel_mois": ("numeric", "YES", "0.0000"),
    "openai_limite_cout_mois": ("numeric", "YES", None),
    "openai_created_at": ("timestamp with time zone", "NO", "now()"),
    "openai_created_by": ("uuid", "YES", None),
    "openai_updated_at": ("timestamp with time zone", "NO", "now()"),
    "openai_updated_by": ("uuid", "YES", None),
    "openai_audit_log": ("jsonb", "YES", "'{}'::jsonb"),
    "openai_ia_extensions": ("jsonb", "YES", "'{}'::jsonb"),
}

# seed 000 §2.2
AI_USER_MODELS_FLUT = {
    "id": ("uuid", "NO", "gen_random_uuid()"),
    "user_id": ("uuid", "NO", "auth.uid()"),  # 0005: the app's inserts omit it
    "provider_key": ("text", "NO", None),
    "model_key": ("text", "NO", None),
    "model_name": ("text", "NO", None),
    "is_active": ("boolean", "NO", "true"),
    "created_at": ("timestamp with time zone", "NO", "now()"),
}


def test_seed_tables_match_the_seed_ddl(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    assert _columns(engine, "openai_connexion") == OPENAI_CONNEXION
    assert _columns(engine, "ai_user_models_flut") == AI_USER_MODELS_FLUT
    with engine.connect() as conn:
        constraints = dict(
            conn.execute(
                sa.text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid IN ('openai_connexion'::regclass, 'ai_user_models_flut'::regclass)"
                )
            ).all()
        )
        triggers = set(
            conn.execute(
                sa.text(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'openai_connexion'::regclass AND NOT tgisinternal"
                )
            ).scalars()
        )
        policies = set(
            conn.execute(
                sa.text("SELECT tablename || '.' || policyname FROM pg_policies")
            ).scalars()
        )
        numeric = conn.execute(
            sa.text(
                "SELECT numeric_precision, numeric_scale FROM information_schema.columns "
                "WHERE table_name = 'openai_connexion' AND column_name = 'openai_cout_actuel_mois'"
            )
        ).one()
    engine.dispose()
    assert constraints["openai_connexion_organisation_id_fkey"].endswith(
        "REFERENCES organisations(organisation_id) ON DELETE CASCADE"
    )
    assert "ON DELETE SET NULL" in constraints["openai_connexion_openai_created_by_fkey"]
    assert "ON DELETE SET NULL" in constraints["openai_connexion_openai_updated_by_fkey"]
    assert "quota_exceeded" in constraints["openai_connexion_openai_statut_connexion_check"]
    assert "agence_independante" in constraints["openai_connexion_client_type_check"]
    assert constraints["uq_user_model"] == "UNIQUE (user_id, provider_key, model_key)"
    assert "openai_connexion_pkey" in constraints
    assert tuple(numeric) == (10, 4)
    assert triggers == {
        "trg_set_created_audit_fields_openai_connexion",
        "trg_update_audit_fields_openai_connexion",
        "aipilot_config_generation",  # ours (migration 0003), beside the seed's two
        "aipilot_config_generation_truncate",
        "aipilot_guard_openai_connexion",  # ours (migration 0004): admin-only changes
    }
    assert {
        "ai_user_models_flut.ai_user_models_flut_select_own",
        "ai_user_models_flut.ai_user_models_flut_manage_own",
        "openai_connexion.admin_presenca_full_access_openai_connexion",
        "openai_connexion.organisation_only_access_openai_connexion",
    } <= policies


def test_rls_enabled_and_forced_on_every_user_table(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(:t)"
            ),
            {"t": [*USER_TABLES, "openai_connexion"]},
        ).all()
    engine.dispose()
    assert len(rows) == len(USER_TABLES) + 1
    assert all(r.relrowsecurity and r.relforcerowsecurity for r in rows)


def test_auth_uid_reads_transaction_local_claims(pg_url: str) -> None:
    db = Database(pg_url)
    who = uuid.uuid4()
    with db.session(user_id=who) as session:
        assert session.execute(sa.text("SELECT auth.uid()")).scalar_one() == who
    with db.session() as session:  # same pooled connection, new transaction: nobody
        assert session.execute(sa.text("SELECT auth.uid()")).scalar_one() is None
    db.dispose()


def test_openai_connexion_audit_triggers(pg_url: str) -> None:
    owner = sa.create_engine(pg_url)
    with owner.begin() as conn:
        alice = conn.execute(
            sa.text("SELECT users_id FROM users WHERE username='alice'")
        ).scalar_one()
        org = conn.execute(
            sa.text("INSERT INTO organisations (name) VALUES ('acme') RETURNING organisation_id")
        ).scalar_one()
        conn.execute(
            sa.text("SELECT set_config('request.jwt.claims', :c, true)"),
            {"c": f'{{"sub": "{alice}"}}'},
        )
        row = conn.execute(
            sa.text(
                "INSERT INTO openai_connexion (organisation_id, client_id) VALUES (:o, :o) "
                "RETURNING openai_connexion_id, openai_created_by, openai_updated_by, openai_modeles_autorises, "
                "openai_statut_connexion"
            ),
            {"o": org},
        ).one()
    owner.dispose()
    assert row.openai_created_by == alice and row.openai_updated_by == alice
    assert row.openai_modeles_autorises == ["gpt-3.5-turbo", "gpt-4"]
    assert row.openai_statut_connexion == "active"


# ------------------------------------------------------------------ RLS as a non-owner role
def _seed_rows(pg_url: str) -> dict[str, uuid.UUID]:
    """Two members, "alice" (carol) and bob, each with one row in every user table (inserted
    as the owner). The template's alice is an admin, who may read every user's limits."""
    owner = sa.create_engine(pg_url)
    ids: dict[str, uuid.UUID] = {}
    with owner.begin() as conn:
        ids["alice"] = conn.execute(
            sa.text("INSERT INTO users (username) VALUES ('carol') RETURNING users_id")
        ).scalar_one()
        ids["bob"] = conn.execute(
            sa.text("INSERT INTO users (username) VALUES ('bob') RETURNING users_id")
        ).scalar_one()
        for name, uid in ids.items():
            for table, values in _row_values(uid, name).items():
                cols = ", ".join(values)
                params = ", ".join(f":{c}" for c in values)
                conn.execute(sa.text(f"INSERT INTO {table} ({cols}) VALUES ({params})"), values)
    owner.dispose()
    return ids


def _row_values(uid: uuid.UUID, tag: str) -> dict[str, dict[str, Any]]:
    return {
        "user_provider_credentials": {
            "user_id": uid,
            "provider_key": "openai",
            "encrypted_key": "x",
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
        "ai_user_limits": {"user_id": uid, "provider_key": f"p-{tag}", "daily_requests": 10},
    }


@pytest.mark.parametrize("table", USER_TABLES)
def test_rls_isolation_matrix(pg_url: str, tester_url: str, table: str) -> None:
    ids = _seed_rows(pg_url)
    db = Database(tester_url)
    count = sa.text(f"SELECT count(*) FROM {table}")
    with db.session() as session:
        assert session.execute(count).scalar_one() == 0  # no identity: nothing
    with db.session(user_id=ids["alice"]) as session:
        owners = set(session.execute(sa.text(f"SELECT user_id FROM {table}")).scalars())
        assert owners == {ids["alice"]}  # a query without a user filter still sees only hers
        assert (
            session.execute(
                sa.text(f"UPDATE {table} SET user_id = user_id WHERE user_id = :b"),
                {"b": ids["bob"]},
            ).rowcount
            == 0
        )
        assert (
            session.execute(
                sa.text(f"DELETE FROM {table} WHERE user_id = :b"), {"b": ids["bob"]}
            ).rowcount
            == 0
        )
    values = _row_values(ids["bob"], "x2")[table]
    cols, params = ", ".join(values), ", ".join(f":{c}" for c in values)
    with (
        pytest.raises(PermissionDeniedError) as info,  # 42501, translated (exit 9)
        db.session(user_id=ids["alice"]) as session,
    ):
        session.execute(sa.text(f"INSERT INTO {table} ({cols}) VALUES ({params})"), values)
    assert getattr(getattr(info.value.__cause__, "orig", None), "sqlstate", None) == "42501"
    with db.session(user_id=ids["bob"]) as session:
        assert session.execute(count).scalar_one() == 1  # bob's row survived alice's attempts
    db.dispose()
