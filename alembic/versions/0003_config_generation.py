"""a configuration generation counter, bumped by triggers, for cached prepared calls

A single row (id = 1) whose ``generation`` goes up whenever a row that decides how a chat is
sent changes: active configs, providers, models and prices, stored keys, organisation
connections, limits, organisation membership. A long-running process (``aipilot serve``,
``aipilot.Assistant``) keeps what it read for a (user, module) and reads only this number
per call. Triggers rather than application code, so writes by the Supabase apps that share
the database are seen too. Per-call counters (requests today, cost this month, last test
results) are not watched: they change on every call and never change where a call goes.
A later migration that rebuilds one of these tables on SQLite (batch mode) must create its
triggers again.

Revision ID: 0003_config_generation
Revises: 0002_limits_and_tokens
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_config_generation"
down_revision = "0002_limits_and_tokens"
branch_labels = None
depends_on = None

TABLE = "aipilot_config_generation"
# table -> the columns whose UPDATE changes a prepared call (None: any column)
WATCHED: dict[str, tuple[str, ...] | None] = {
    "ai_provider_configs": (
        "user_id",
        "module_name",
        "provider_name",
        "model_name",
        "system_prompt",
        "is_active",
    ),
    "ai_providers": None,
    "ai_models": None,
    "user_provider_credentials": (
        "user_id",
        "provider_key",
        "encrypted_key",
        "nonce",
        "key_id",
        "format_version",
    ),
    "openai_connexion": (
        "organisation_id",
        "openai_api_key",
        "openai_organisation_id",
        "openai_project_id",
        "openai_actif",
        "openai_statut_connexion",
        "openai_modeles_autorises",
    ),
    "ai_user_limits": ("user_id", "provider_key"),
    "users": ("organisation_id",),
}
BUMP = f"UPDATE {TABLE} SET generation = generation + 1 WHERE id = 1"

PG_FUNCTION = f"""
CREATE FUNCTION public.aipilot_bump_config_generation() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $f$
BEGIN
  {BUMP};
  RETURN NULL;
END
$f$;
"""


# Only the triggers (SECURITY DEFINER, as the owner) change the number. Supabase grants every
# new table in public to anon and authenticated: revoke writes, and let RLS allow reads only.
PG_READ_ONLY = f"""
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
CREATE POLICY {TABLE}_read ON {TABLE} FOR SELECT USING (true);
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {TABLE} FROM PUBLIC;
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {TABLE} FROM %I', r);
    END IF;
  END LOOP;
  GRANT SELECT ON {TABLE} TO authenticated;
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;
"""


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"{TABLE}_pkey"),
        sa.CheckConstraint("id = 1", name=op.f(f"{TABLE}_single_row_check")),
    )
    op.execute(f"INSERT INTO {TABLE} (id, generation) VALUES (1, 0)")
    if pg:
        op.execute(PG_FUNCTION)
        op.execute(PG_READ_ONLY)
    for table, columns in WATCHED.items():
        update = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
        if pg:
            # deferred to COMMIT: the counter row is then the last lock a transaction takes,
            # so two writers can never hold it and each other's rows in opposite orders (an
            # immediate trigger deadlocked `keys rotate-master` against a quota reservation)
            op.execute(
                f"CREATE CONSTRAINT TRIGGER aipilot_config_generation "
                f"AFTER INSERT OR {update} OR DELETE ON {table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                "EXECUTE FUNCTION public.aipilot_bump_config_generation()"
            )
            op.execute(
                f"CREATE TRIGGER aipilot_config_generation_truncate AFTER TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION public.aipilot_bump_config_generation()"
            )
            continue
        for event, when in (("ins", "INSERT"), ("upd", update), ("del", "DELETE")):
            op.execute(
                f"CREATE TRIGGER aipilot_config_generation_{table}_{event} AFTER {when} "
                f"ON {table} BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        if pg:
            op.execute(f"DROP TRIGGER IF EXISTS aipilot_config_generation ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS aipilot_config_generation_truncate ON {table}")
            continue
        for event in ("ins", "upd", "del"):
            op.execute(f"DROP TRIGGER IF EXISTS aipilot_config_generation_{table}_{event}")
    op.drop_table(TABLE)
    if pg:
        op.execute("DROP FUNCTION IF EXISTS public.aipilot_bump_config_generation()")
