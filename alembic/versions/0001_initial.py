"""initial schema: every aipilot table, plus PostgreSQL row-level security

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-21

On PostgreSQL this revision also:
- creates ``auth.uid()`` the way Supabase defines it (reading ``request.jwt.claims``) and
  the ``authenticated`` role, each only where it does not exist yet (on Supabase both do);
- enables AND forces row-level security on every user-owned table with seed-style policies
  (``auth.uid() = user_id``), and on ``openai_connexion`` with the seed's organisation
  policies (``is_admin_presenca``, ``get_user_organisation_id``);
- adds the seed's audit triggers on ``openai_connexion``.

Downgrade drops what this revision created except ``auth.uid()`` and the
``authenticated`` role, which may be shared with Supabase.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TextList = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
TS = sa.DateTime(timezone=True)

USER_TABLES = (
    "user_provider_credentials",
    "ai_provider_configs",
    "ai_system_prompts",
    "ai_user_models_flut",
    "ai_usage_logs",
)


def _created() -> sa.Column[object]:
    return sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False)


def _updated() -> sa.Column[object]:
    return sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False)


def _user_fk() -> sa.Column[object]:
    return sa.Column(
        "user_id",
        sa.Uuid(),
        sa.ForeignKey("users.users_id", name=None, ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    uuid_default = sa.text("gen_random_uuid()") if pg else None

    op.create_table(
        "organisations",
        sa.Column("organisation_id", sa.Uuid(), primary_key=True, server_default=uuid_default),
        sa.Column("name", sa.Text(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("organisation_id", name="organisations_pkey"),
        sa.UniqueConstraint("name", name="organisations_name_key"),
    )
    op.create_table(
        "users",
        sa.Column("users_id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), server_default="member", nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=True),
        _created(),
        sa.PrimaryKeyConstraint("users_id", name="users_pkey"),
        sa.UniqueConstraint("username", name="users_username_key"),
        sa.CheckConstraint("role IN ('admin', 'member')", name=op.f("users_role_check")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.organisation_id"],
            name="users_organisation_id_fkey",
            ondelete="SET NULL",
        ),
    )
    op.create_table(
        "ai_providers",
        sa.Column("id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("provider_key", sa.Text(), nullable=False),
        sa.Column("provider_name", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("api_kind", sa.Text(), server_default="openai", nullable=False),
        sa.Column("api_auth_method", sa.Text(), server_default="bearer", nullable=False),
        sa.Column("api_auth_header", sa.Text(), nullable=True),
        sa.Column("api_headers", JSONType, nullable=False),
        sa.Column("test_endpoint", sa.Text(), nullable=True),
        _created(),
        _updated(),
        sa.PrimaryKeyConstraint("id", name="ai_providers_pkey"),
        sa.UniqueConstraint("provider_key", name="ai_providers_provider_key_key"),
        sa.CheckConstraint(
            "api_kind IN ('openai', 'anthropic', 'gemini')", name=op.f("ai_providers_api_kind_check")
        ),
        sa.CheckConstraint(
            "api_auth_method IN ('bearer', 'api_key_header', 'query_param', 'none')",
            name=op.f("ai_providers_api_auth_method_check"),
        ),
    )
    op.create_table(
        "ai_models",
        sa.Column("id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("model_key", sa.Text(), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("context_window", sa.Integer(), nullable=True),
        sa.Column("input_price_per_mtok", sa.Numeric(12, 6), nullable=True),
        sa.Column("output_price_per_mtok", sa.Numeric(12, 6), nullable=True),
        _created(),
        _updated(),
        sa.PrimaryKeyConstraint("id", name="ai_models_pkey"),
        sa.UniqueConstraint("provider_id", "model_key", name="ai_models_provider_id_model_key_key"),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["ai_providers.id"], name="ai_models_provider_id_fkey", ondelete="RESTRICT"
        ),
    )
    op.create_table(
        "user_provider_credentials",
        sa.Column("id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider_key", sa.Text(), nullable=False),
        sa.Column("encrypted_key", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("format_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("key_hint", sa.Text(), nullable=False),
        sa.Column("last_tested_at", TS, nullable=True),
        sa.Column("last_test_ok", sa.Boolean(), nullable=True),
        sa.Column("last_test_error", sa.Text(), nullable=True),
        _created(),
        _updated(),
        sa.PrimaryKeyConstraint("id", name="user_provider_credentials_pkey"),
        sa.UniqueConstraint(
            "user_id", "provider_key", name="user_provider_credentials_user_id_provider_key_key"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.users_id"], name="user_provider_credentials_user_id_fkey",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider_key"], ["ai_providers.provider_key"],
            name="user_provider_credentials_provider_key_fkey", ondelete="RESTRICT",
        ),
    )
    op.create_table(
        "ai_system_prompts",
        sa.Column("id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prompt_content", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.false(), nullable=False),
        _created(),
        _updated(),
        sa.PrimaryKeyConstraint("id", name="ai_system_prompts_pkey"),
        sa.UniqueConstraint("user_id", "name", name="ai_system_prompts_user_id_name_key"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.users_id"], name="ai_system_prompts_user_id_fkey", ondelete="CASCADE"
        ),
    )
    op.create_index(
        "uq_ai_system_prompts_active", "ai_system_prompts", ["user_id"], unique=True,
        postgresql_where=sa.text("is_active"), sqlite_where=sa.text("is_active"),
    )
    op.create_table(
        "ai_provider_configs",
        sa.Column("id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("module_name", sa.Text(), server_default="global", nullable=False),
        sa.Column("provider_name", sa.Text(), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("system_prompt_id", sa.Uuid(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("activated_at", TS, nullable=True),
        sa.Column("last_test_at", TS, nullable=True),
        sa.Column("last_test_ok", sa.Boolean(), nullable=True),
        sa.Column("last_test_error", sa.Text(), nullable=True),
        _created(),
        _updated(),
        sa.PrimaryKeyConstraint("id", name="ai_provider_configs_pkey"),
        sa.UniqueConstraint(
            "user_id", "module_name", "provider_name", "model_name",
            name="uq_ai_provider_configs_choice",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.users_id"], name="ai_provider_configs_user_id_fkey", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["system_prompt_id"], ["ai_system_prompts.id"],
            name="ai_provider_configs_system_prompt_id_fkey", ondelete="SET NULL",
        ),
    )
    # seed 000 §2.3: one active config per (user, module)
    op.create_index(
        "uq_ai_provider_configs_active", "ai_provider_configs", ["user_id", "module_name"],
        unique=True, postgresql_where=sa.text("is_active"), sqlite_where=sa.text("is_active"),
    )
    # seed 000 §2.2, verbatim but for the users(users_id) reference
    op.create_table(
        "ai_user_models_flut",
        sa.Column("id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider_key", sa.Text(), nullable=False),
        sa.Column("model_key", sa.Text(), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("id", name="ai_user_models_flut_pkey"),
        sa.UniqueConstraint("user_id", "provider_key", "model_key", name="uq_user_model"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.users_id"], name="ai_user_models_flut_user_id_fkey", ondelete="CASCADE"
        ),
    )
    # seed 002, every column, default and constraint
    op.create_table(
        "openai_connexion",
        sa.Column("openai_connexion_id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("client_type", sa.Text(), server_default="reseau", nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("openai_api_key", sa.Text(), nullable=True),
        sa.Column("openai_email_compte", sa.Text(), nullable=True),
        sa.Column("openai_organisation_id", sa.Text(), nullable=True),
        sa.Column("openai_project_id", sa.Text(), nullable=True),
        sa.Column("openai_actif", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("openai_date_activation", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("openai_derniere_synchro", TS, nullable=True),
        sa.Column("openai_statut_connexion", sa.Text(), server_default="active", nullable=False),
        sa.Column("openai_derniere_erreur", sa.Text(), nullable=True),
        sa.Column("openai_limite_quotidienne", sa.Integer(), nullable=True),
        sa.Column("openai_usage_quotidien", sa.Integer(), server_default="0", nullable=True),
        sa.Column("openai_reset_quota_at", TS, nullable=True),
        sa.Column(
            "openai_modeles_autorises",
            TextList,
            server_default=sa.text(
                "'{gpt-3.5-turbo,gpt-4}'::text[]" if pg else "'[\"gpt-3.5-turbo\", \"gpt-4\"]'"
            ),
            nullable=True,
        ),
        sa.Column("openai_cout_actuel_mois", sa.Numeric(10, 4), server_default="0.0000", nullable=True),
        sa.Column("openai_limite_cout_mois", sa.Numeric(10, 4), nullable=True),
        sa.Column("openai_created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("openai_created_by", sa.Uuid(), nullable=True),
        sa.Column("openai_updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("openai_updated_by", sa.Uuid(), nullable=True),
        sa.Column("openai_audit_log", JSONType, server_default=sa.text("'{}'"), nullable=True),
        sa.Column("openai_ia_extensions", JSONType, server_default=sa.text("'{}'"), nullable=True),
        sa.PrimaryKeyConstraint("openai_connexion_id", name="openai_connexion_pkey"),
        sa.CheckConstraint(
            "client_type IN ('reseau', 'reseau_agence', 'agence_independante')",
            name=op.f("openai_connexion_client_type_check"),
        ),
        sa.CheckConstraint(
            "openai_statut_connexion IN ('active', 'inactive', 'error', 'expired', 'quota_exceeded')",
            name=op.f("openai_connexion_openai_statut_connexion_check"),
        ),
        sa.ForeignKeyConstraint(
            ["openai_created_by"], ["users.users_id"],
            name="openai_connexion_openai_created_by_fkey", ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["openai_updated_by"], ["users.users_id"],
            name="openai_connexion_openai_updated_by_fkey", ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.organisation_id"],
            name="openai_connexion_organisation_id_fkey", ondelete="CASCADE",
        ),
    )
    op.create_table(
        "ai_usage_logs",
        sa.Column("id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("module_name", sa.Text(), server_default="global", nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("provider_key", sa.Text(), nullable=False),
        sa.Column("model_name", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(14, 6), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("ttft_ms", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("request_content", sa.Text(), nullable=True),
        sa.Column("response_content", sa.Text(), nullable=True),
        _created(),
        sa.PrimaryKeyConstraint("id", name="ai_usage_logs_pkey"),
        sa.CheckConstraint(
            "kind IN ('chat', 'key_test', 'config_test', 'model_sync')", name=op.f("ai_usage_logs_kind_check")
        ),
        sa.CheckConstraint("outcome IN ('ok', 'error', 'cancelled')", name=op.f("ai_usage_logs_outcome_check")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.users_id"], name="ai_usage_logs_user_id_fkey", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_ai_usage_logs_user_id_created_at", "ai_usage_logs", ["user_id", "created_at"])
    if pg:
        _postgresql_security()


AUTH_UID = """
CREATE SCHEMA IF NOT EXISTS auth;
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'auth' AND p.proname = 'uid'
  ) THEN
    -- as Supabase defines it: the JWT's sub claim, from request.jwt.claim.sub or request.jwt.claims
    CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
      SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
      )::uuid
    $f$;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN;
  END IF;
END $$;
DO $$ BEGIN
  GRANT USAGE ON SCHEMA auth TO authenticated;
EXCEPTION WHEN insufficient_privilege THEN NULL; END $$;
DO $$ BEGIN
  -- lets the role that owns the tables (FORCE RLS) act as an authenticated user
  EXECUTE format('GRANT authenticated TO %I', current_user);
EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN NULL; END $$;
"""

ORG_FUNCTIONS = """
DO $$
BEGIN
  IF to_regprocedure('public.is_admin_presenca(uuid)') IS NULL THEN
    CREATE FUNCTION public.is_admin_presenca(uid uuid) RETURNS boolean
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $f$
        SELECT EXISTS (SELECT 1 FROM public.users WHERE users_id = uid AND role = 'admin')
      $f$;
  END IF;
  IF to_regprocedure('public.get_user_organisation_id(uuid)') IS NULL THEN
    CREATE FUNCTION public.get_user_organisation_id(uid uuid) RETURNS uuid
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $f$
        SELECT organisation_id FROM public.users WHERE users_id = uid
      $f$;
  END IF;
END $$;
-- the seed's audit functions, created only where the database has none: never replace the
-- React app's own (a search_path pointing at another schema would otherwise overwrite them)
DO $do$
BEGIN
  IF to_regprocedure('public.set_created_audit_fields_openai_connexion()') IS NULL THEN
    EXECUTE $q$
CREATE FUNCTION public.set_created_audit_fields_openai_connexion() RETURNS trigger
  LANGUAGE plpgsql AS $f$
BEGIN
  NEW.openai_created_at := now();
  NEW.openai_created_by := coalesce(NEW.openai_created_by, auth.uid());
  NEW.openai_updated_at := now();
  NEW.openai_updated_by := coalesce(NEW.openai_updated_by, auth.uid());
  RETURN NEW;
END $f$
$q$;
  END IF;
  IF to_regprocedure('public.update_audit_fields_openai_connexion()') IS NULL THEN
    EXECUTE $q$
CREATE FUNCTION public.update_audit_fields_openai_connexion() RETURNS trigger
  LANGUAGE plpgsql AS $f$
BEGIN
  NEW.openai_created_at := OLD.openai_created_at;
  NEW.openai_created_by := OLD.openai_created_by;
  NEW.openai_updated_at := now();
  NEW.openai_updated_by := coalesce(auth.uid(), NEW.openai_updated_by);
  RETURN NEW;
END $f$
$q$;
  END IF;
END $do$;
CREATE TRIGGER trg_set_created_audit_fields_openai_connexion BEFORE INSERT ON openai_connexion
  FOR EACH ROW EXECUTE FUNCTION public.set_created_audit_fields_openai_connexion();
CREATE TRIGGER trg_update_audit_fields_openai_connexion BEFORE UPDATE ON openai_connexion
  FOR EACH ROW EXECUTE FUNCTION public.update_audit_fields_openai_connexion();
ALTER TABLE openai_connexion ENABLE ROW LEVEL SECURITY;
ALTER TABLE openai_connexion FORCE ROW LEVEL SECURITY;
CREATE POLICY admin_presenca_full_access_openai_connexion ON openai_connexion FOR ALL
  USING (is_admin_presenca(auth.uid())) WITH CHECK (is_admin_presenca(auth.uid()));
CREATE POLICY organisation_only_access_openai_connexion ON openai_connexion FOR ALL
  USING (organisation_id = get_user_organisation_id(auth.uid()))
  WITH CHECK (organisation_id = get_user_organisation_id(auth.uid()));
"""


def _postgresql_security() -> None:
    op.execute(AUTH_UID)
    for table in USER_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        if table == "ai_user_models_flut":
            continue
        op.execute(
            f"CREATE POLICY {table}_manage_own ON {table} FOR ALL TO authenticated "
            "USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id)"
        )
    # seed 000 §2.2, the two policies verbatim
    op.execute(
        "CREATE POLICY ai_user_models_flut_select_own ON ai_user_models_flut "
        "FOR SELECT TO authenticated USING (auth.uid() = user_id)"
    )
    op.execute(
        "CREATE POLICY ai_user_models_flut_manage_own ON ai_user_models_flut "
        "FOR ALL TO authenticated USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id)"
    )
    op.execute(ORG_FUNCTIONS)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table in (
        "ai_usage_logs",
        "openai_connexion",
        "ai_user_models_flut",
        "ai_provider_configs",
        "ai_system_prompts",
        "user_provider_credentials",
        "ai_models",
        "ai_providers",
        "users",
        "organisations",
    ):
        op.drop_table(table)
    if pg:
        op.execute("DROP FUNCTION IF EXISTS public.set_created_audit_fields_openai_connexion()")
        op.execute("DROP FUNCTION IF EXISTS public.update_audit_fields_openai_connexion()")
        op.execute("DROP FUNCTION IF EXISTS public.is_admin_presenca(uuid)")
        op.execute("DROP FUNCTION IF EXISTS public.get_user_organisation_id(uuid)")
