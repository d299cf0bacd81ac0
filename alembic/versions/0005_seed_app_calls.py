"""the seed's Flutter calls on aipilot's schema: one config per (user, module), user_id defaults

Seed 000 §5 upserts ``ai_provider_configs`` with ``onConflict: 'user_id, module_name'``,
which PostgreSQL accepts only with a full unique constraint or index on exactly those
columns (docs/platform.md): one config row per (user, module), switched from model to model. Rows
of earlier revisions (one per model ever chosen) are folded into that one row: the active
one, else the most recently activated. The partial index ``uq_ai_provider_configs_active``
stays.

The app's inserts into ``ai_system_prompts`` and ``ai_user_models_flut`` omit ``user_id``
and rely on row-level security's ``auth.uid() = user_id``: on PostgreSQL the per-user
tables get ``DEFAULT auth.uid()``.

Revision ID: 0005_seed_app_calls
Revises: 0004_data_api_policies
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005_seed_app_calls"
down_revision = "0004_data_api_policies"
branch_labels = None
depends_on = None

USER_TABLES = (
    "user_provider_credentials",
    "ai_provider_configs",
    "ai_system_prompts",
    "ai_user_models_flut",
    "ai_usage_logs",
    "ai_user_limits",
)

# keep, per (user, module), the active row, else the most recently activated or changed
FOLD = """
DELETE FROM ai_provider_configs WHERE id IN (
  SELECT id FROM (
    SELECT id, row_number() OVER (
      PARTITION BY user_id, module_name
      ORDER BY is_active DESC, activated_at DESC NULLS LAST, updated_at DESC, id
    ) AS n FROM ai_provider_configs
  ) ranked WHERE n > 1
)
"""


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:  # the fold must see every user's rows, whoever owns the table (FORCEd RLS)
        op.execute("ALTER TABLE ai_provider_configs NO FORCE ROW LEVEL SECURITY")
    op.execute(FOLD)
    if pg:
        op.execute("ALTER TABLE ai_provider_configs FORCE ROW LEVEL SECURITY")
    # a unique index qualifies for ON CONFLICT as a constraint does, and SQLite can add one
    # without rebuilding the table (and its triggers); uq_ai_provider_configs_choice, now
    # implied by it, stays for the same reason
    op.create_index(
        "uq_ai_provider_configs_user_module",
        "ai_provider_configs",
        ["user_id", "module_name"],
        unique=True,
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in USER_TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN user_id SET DEFAULT auth.uid()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in USER_TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN user_id DROP DEFAULT")
    op.drop_index("uq_ai_provider_configs_user_module", "ai_provider_configs")
