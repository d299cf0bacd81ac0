"""reasoning and cache tokens in the usage log; what a provider's model list says in the catalog

``ai_usage_logs`` gains ``reasoning_tokens`` (part of ``output_tokens``: providers bill
thinking as output), ``cache_read_tokens`` and ``cache_write_tokens`` (parts of
``input_tokens``). ``ai_models`` gains what ``aipilot models sync`` reads from a provider's
list — ``max_output_tokens``, ``deprecation_date`` — and the rates and source of a price:
``cache_read_price_per_mtok``, ``cache_write_price_per_mtok``, ``price_source`` (NULL: set by
hand or by the seed; otherwise where the numbers came from and when).

Every column is NULLable and has no default: PostgreSQL adds them without rewriting a row,
the Supabase apps that read these tables see extra columns only, and the table grants of
0004 (table-level) cover them. ``IF NOT EXISTS`` on PostgreSQL because ``aipilot init
--adopt`` may already have added them to a database it took over.

Revision ID: 0006_usage_and_model_facts
Revises: 0005_seed_app_calls
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_usage_and_model_facts"
down_revision = "0005_seed_app_calls"
branch_labels = None
depends_on = None

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "ai_usage_logs": (
        ("reasoning_tokens", "INTEGER"),
        ("cache_read_tokens", "INTEGER"),
        ("cache_write_tokens", "INTEGER"),
    ),
    "ai_models": (
        ("max_output_tokens", "INTEGER"),
        ("deprecation_date", "DATE"),
        ("cache_read_price_per_mtok", "NUMERIC(12, 6)"),
        ("cache_write_price_per_mtok", "NUMERIC(12, 6)"),
        ("price_source", "TEXT"),
    ),
}


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    for table, columns in COLUMNS.items():
        present = {c["name"] for c in sa.inspect(bind).get_columns(table)}
        for name, sql_type in columns:
            if pg:
                op.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {sql_type}")
            elif name not in present:
                op.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, _sql_type in reversed(columns):
                batch.drop_column(name)
