"""SQLAlchemy 2 models of every aipilot table.

Table names and the columns the seeds give are kept exactly, so that aipilot can share a
database with the existing Supabase apps (docs/design.md §9). Constraint names follow
PostgreSQL's own defaults (``<table>_pkey``, ``<table>_<col>_fkey``, ``<table>_<col>_key``),
which is also how the seed's ``openai_connexion`` constraints are named.

Deviation from the seed, on purpose: ``ai_user_models_flut.user_id`` references
``users(users_id)`` (the seed's ``auth.users(id)`` only exists on Supabase, where
``public.users.users_id`` carries the same ids).

Migrations own the schema (`alembic/versions/`); they never import this module. A test
runs ``alembic check`` so the two cannot drift.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.naming import conv

NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "%(table_name)s_%(constraint_name)s_check",
}


class _PostgresVariant(sa.types.TypeDecorator[Any]):
    """JSON everywhere, a PostgreSQL-specific type on PostgreSQL — chosen when a dialect
    asks, so a SQLite-only command never imports SQLAlchemy's PostgreSQL dialect (~35 ms
    of start-up)."""

    impl = sa.JSON
    cache_ok = True

    def _postgres_type(self) -> sa.types.TypeEngine[Any]:
        raise NotImplementedError

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(self._postgres_type())
        return dialect.type_descriptor(sa.JSON())


class JSONB(_PostgresVariant):
    """``jsonb`` on PostgreSQL (the seed's type), JSON text on SQLite."""

    cache_ok = True  # SQLAlchemy asks each subclass: stateless, safe in a cache key

    def _postgres_type(self) -> sa.types.TypeEngine[Any]:
        from sqlalchemy.dialects.postgresql import JSONB as PgJSONB

        return PgJSONB()


class TextArray(_PostgresVariant):
    """``text[]`` on PostgreSQL (the seed's type), a JSON list on SQLite."""

    cache_ok = True

    def _postgres_type(self) -> sa.types.TypeEngine[Any]:
        from sqlalchemy.dialects.postgresql import ARRAY

        return ARRAY(sa.Text())


JSONType = JSONB()
TextList = TextArray()
Timestamp = sa.DateTime(timezone=True)

USER_TABLES = (
    "user_provider_credentials",
    "ai_provider_configs",
    "ai_system_prompts",
    "ai_user_models_flut",
    "ai_usage_logs",
    "ai_user_limits",
)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _now() -> Any:
    return sa.func.now()


class Organisation(Base):
    __tablename__ = "organisations"
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, primary_key=True, default=uuid.uuid4
    )
    name: Mapped[str] = mapped_column(sa.Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class User(Base):
    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint("role IN ('admin', 'member')", name="role"),)
    users_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(sa.Text, unique=True)
    role: Mapped[str] = mapped_column(sa.Text, server_default="member")
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("organisations.organisation_id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class Provider(Base):
    __tablename__ = "ai_providers"
    __table_args__ = (
        sa.CheckConstraint("api_kind IN ('openai', 'anthropic', 'gemini')", name="api_kind"),
        sa.CheckConstraint(
            "api_auth_method IN ('bearer', 'api_key_header', 'query_param', 'none')",
            name="api_auth_method",
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    provider_key: Mapped[str] = mapped_column(sa.Text, unique=True)
    provider_name: Mapped[str] = mapped_column(sa.Text)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    base_url: Mapped[str] = mapped_column(sa.Text)
    api_kind: Mapped[str] = mapped_column(sa.Text, server_default="openai")
    api_auth_method: Mapped[str] = mapped_column(sa.Text, server_default="bearer")
    api_auth_header: Mapped[str | None] = mapped_column(sa.Text)
    api_headers: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    test_endpoint: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class Model(Base):
    __tablename__ = "ai_models"
    __table_args__ = (sa.UniqueConstraint("provider_id", "model_key"),)
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("ai_providers.id", ondelete="RESTRICT")
    )
    model_key: Mapped[str] = mapped_column(sa.Text)
    model_name: Mapped[str] = mapped_column(sa.Text)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    context_window: Mapped[int | None] = mapped_column(sa.Integer)
    input_price_per_mtok: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 6))
    output_price_per_mtok: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 6))
    max_output_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    deprecation_date: Mapped[date | None] = mapped_column(sa.Date)
    cache_read_price_per_mtok: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 6))
    cache_write_price_per_mtok: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 6))
    # NULL: set by hand or by the seed; else where the prices came from, and when
    price_source: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class Credential(Base):
    """One encrypted provider key per (user, provider): ciphertext, nonce, master-key id."""

    __tablename__ = "user_provider_credentials"
    __table_args__ = (sa.UniqueConstraint("user_id", "provider_key"),)
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.users_id", ondelete="CASCADE")
    )
    provider_key: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("ai_providers.provider_key", ondelete="RESTRICT")
    )
    encrypted_key: Mapped[str] = mapped_column(sa.Text)
    nonce: Mapped[str] = mapped_column(sa.Text)
    key_id: Mapped[str] = mapped_column(sa.Text)
    format_version: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    key_hint: Mapped[str] = mapped_column(sa.Text)
    last_tested_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_test_ok: Mapped[bool | None] = mapped_column(sa.Boolean)
    last_test_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class ProviderConfig(Base):
    """The (user, module) choice of provider + model: one row per (user, module)."""

    __tablename__ = "ai_provider_configs"
    __table_args__ = (
        sa.UniqueConstraint(
            "user_id",
            "module_name",
            "provider_name",
            "model_name",
            name=conv("uq_ai_provider_configs_choice"),  # implied by the next one (0005)
        ),
        # one row per (user, module): what the seed's upsert `onConflict: 'user_id,
        # module_name'` needs (migration 0005)
        sa.Index(conv("uq_ai_provider_configs_user_module"), "user_id", "module_name", unique=True),
        sa.Index(
            conv("uq_ai_provider_configs_active"),
            "user_id",
            "module_name",
            unique=True,
            # partial (WHERE is_active) in the migration; dialect-specific keywords here
            # would import the PostgreSQL dialect at start-up just to validate them
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.users_id", ondelete="CASCADE")
    )
    module_name: Mapped[str] = mapped_column(sa.Text, server_default="global")
    provider_name: Mapped[str] = mapped_column(sa.Text)
    model_name: Mapped[str] = mapped_column(sa.Text)
    system_prompt: Mapped[str | None] = mapped_column(sa.Text)
    system_prompt_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("ai_system_prompts.id", ondelete="SET NULL")
    )
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    activated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_test_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_test_ok: Mapped[bool | None] = mapped_column(sa.Boolean)
    last_test_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class SystemPrompt(Base):
    __tablename__ = "ai_system_prompts"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "name"),
        sa.Index(
            conv("uq_ai_system_prompts_active"),
            "user_id",
            unique=True,
            # partial (WHERE is_active) in the migration; dialect-specific keywords here
            # would import the PostgreSQL dialect at start-up just to validate them
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.users_id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.Text)
    prompt_content: Mapped[str] = mapped_column(sa.Text)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class UserModel(Base):
    """The seed's ``ai_user_models_flut`` (§2.2 of seed 000), a user's custom models."""

    __tablename__ = "ai_user_models_flut"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "provider_key", "model_key", name=conv("uq_user_model")),
    )
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.users_id", ondelete="CASCADE")
    )
    provider_key: Mapped[str] = mapped_column(sa.Text)
    model_key: Mapped[str] = mapped_column(sa.Text)
    model_name: Mapped[str] = mapped_column(sa.Text)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class OpenAIConnexion(Base):
    """The seed's ``openai_connexion`` (seed 002): an organisation's OpenAI connection."""

    __tablename__ = "openai_connexion"
    __table_args__ = (
        sa.CheckConstraint(
            "client_type IN ('reseau', 'reseau_agence', 'agence_independante')",
            name="client_type",
        ),
        sa.CheckConstraint(
            "openai_statut_connexion IN "
            "('active', 'inactive', 'error', 'expired', 'quota_exceeded')",
            name="openai_statut_connexion",
        ),
    )
    openai_connexion_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, primary_key=True, default=uuid.uuid4
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("organisations.organisation_id", ondelete="CASCADE")
    )
    client_type: Mapped[str] = mapped_column(sa.Text, server_default="reseau")
    client_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    openai_api_key: Mapped[str | None] = mapped_column(sa.Text)
    openai_email_compte: Mapped[str | None] = mapped_column(sa.Text)
    openai_organisation_id: Mapped[str | None] = mapped_column(sa.Text)
    openai_project_id: Mapped[str | None] = mapped_column(sa.Text)
    openai_actif: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    openai_date_activation: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    openai_derniere_synchro: Mapped[datetime | None] = mapped_column(Timestamp)
    openai_statut_connexion: Mapped[str] = mapped_column(sa.Text, server_default="active")
    openai_derniere_erreur: Mapped[str | None] = mapped_column(sa.Text)
    openai_limite_quotidienne: Mapped[int | None] = mapped_column(sa.Integer)
    openai_usage_quotidien: Mapped[int | None] = mapped_column(sa.Integer, server_default="0")
    openai_reset_quota_at: Mapped[datetime | None] = mapped_column(Timestamp)
    openai_modeles_autorises: Mapped[list[str] | None] = mapped_column(TextList)
    openai_cout_actuel_mois: Mapped[Decimal | None] = mapped_column(
        sa.Numeric(10, 4), server_default="0.0000"
    )
    openai_limite_cout_mois: Mapped[Decimal | None] = mapped_column(sa.Numeric(10, 4))
    openai_created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    openai_created_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.users_id", ondelete="SET NULL")
    )
    openai_updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    openai_updated_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.users_id", ondelete="SET NULL")
    )
    openai_audit_log: Mapped[Any] = mapped_column(JSONType, nullable=True)
    openai_ia_extensions: Mapped[Any] = mapped_column(JSONType, nullable=True)


class UsageLog(Base):
    """One row per provider call: chat, key test, config test, model sync."""

    __tablename__ = "ai_usage_logs"
    __table_args__ = (
        sa.CheckConstraint(
            "kind IN ('chat', 'key_test', 'config_test', 'model_sync')", name="kind"
        ),
        sa.CheckConstraint("outcome IN ('ok', 'error', 'cancelled')", name="outcome"),
        sa.Index(None, "user_id", "created_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.users_id", ondelete="CASCADE")
    )
    module_name: Mapped[str] = mapped_column(sa.Text, server_default="global")
    kind: Mapped[str] = mapped_column(sa.Text)
    provider_key: Mapped[str] = mapped_column(sa.Text)
    model_name: Mapped[str | None] = mapped_column(sa.Text)
    input_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    output_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    reasoning_tokens: Mapped[int | None] = mapped_column(sa.Integer)  # part of output_tokens
    cache_read_tokens: Mapped[int | None] = mapped_column(sa.Integer)  # part of input_tokens
    cache_write_tokens: Mapped[int | None] = mapped_column(sa.Integer)  # part of input_tokens
    cost_usd: Mapped[Decimal | None] = mapped_column(sa.Numeric(14, 6))
    latency_ms: Mapped[int | None] = mapped_column(sa.Integer)
    ttft_ms: Mapped[int | None] = mapped_column(sa.Integer)
    outcome: Mapped[str] = mapped_column(sa.Text)
    error_code: Mapped[str | None] = mapped_column(sa.Text)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    request_content: Mapped[str | None] = mapped_column(sa.Text)
    response_content: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class UserLimit(Base):
    """Per-user quotas (issue 7): a daily request quota and a monthly cost limit, for one
    provider or (``provider_key`` NULL) all providers, with their running counters."""

    __tablename__ = "ai_user_limits"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "provider_key", name=conv("uq_ai_user_limits_scope")),
    )
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.users_id", ondelete="CASCADE")
    )
    provider_key: Mapped[str | None] = mapped_column(sa.Text)
    daily_requests: Mapped[int | None] = mapped_column(sa.Integer)
    monthly_cost_usd: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 4))
    requests_today: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    requests_day: Mapped[date | None] = mapped_column(sa.Date)
    cost_this_month: Mapped[Decimal] = mapped_column(sa.Numeric(14, 6), server_default="0")
    cost_month: Mapped[date | None] = mapped_column(sa.Date)  # first day of the counted month
    # set by an admin (``--for``): only an admin raises or clears it (migration 0004)
    set_by_admin: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())


class ApiToken(Base):
    """Access tokens for `aipilot serve` (issue 8), stored as SHA-256 hashes only.

    No row-level security: a request is authenticated (token → user) before any identity
    exists. Only ``token_hash`` and the display ``prefix`` are stored, never the token.
    """

    __tablename__ = "aipilot_api_tokens"
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.users_id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.Text)
    token_hash: Mapped[str] = mapped_column(sa.Text, unique=True)
    prefix: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=_now())
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ConfigGeneration(Base):
    """One row (id 1) whose ``generation`` the database bumps whenever configuration changes.

    Triggers (migration 0003) bump it on every write to the rows that decide how a chat is
    sent, so a long-running process can cache what it read and check one number per call.
    """

    __tablename__ = "aipilot_config_generation"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
