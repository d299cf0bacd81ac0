"""per-user limits (quotas, budgets) and API access tokens for `aipilot serve`

Revision ID: 0002_limits_and_tokens
Revises: 0001_initial
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_limits_and_tokens"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    uuid_default = sa.text("gen_random_uuid()") if pg else None
    op.create_table(
        "ai_user_limits",
        sa.Column("id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider_key", sa.Text(), nullable=True),
        sa.Column("daily_requests", sa.Integer(), nullable=True),
        sa.Column("monthly_cost_usd", sa.Numeric(12, 4), nullable=True),
        sa.Column("requests_today", sa.Integer(), server_default="0", nullable=False),
        sa.Column("requests_day", sa.Date(), nullable=True),
        sa.Column("cost_this_month", sa.Numeric(14, 6), server_default="0", nullable=False),
        sa.Column("cost_month", sa.Date(), nullable=True),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="ai_user_limits_pkey"),
        sa.UniqueConstraint("user_id", "provider_key", name="uq_ai_user_limits_scope"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.users_id"], name="ai_user_limits_user_id_fkey", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "aipilot_api_tokens",
        sa.Column("id", sa.Uuid(), server_default=uuid_default, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="aipilot_api_tokens_pkey"),
        sa.UniqueConstraint("token_hash", name="aipilot_api_tokens_token_hash_key"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.users_id"], name="aipilot_api_tokens_user_id_fkey", ondelete="CASCADE"
        ),
    )
    if pg:
        op.execute("ALTER TABLE ai_user_limits ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE ai_user_limits FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY ai_user_limits_manage_own ON ai_user_limits FOR ALL TO authenticated "
            "USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id)"
        )


def downgrade() -> None:
    op.drop_table("aipilot_api_tokens")
    op.drop_table("ai_user_limits")
