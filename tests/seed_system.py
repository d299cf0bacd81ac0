"""The existing system of the seeds, as it stood before aipilot touched its database.

A test fixture, no product code: :func:`build_seed_system` rebuilds, on a Supabase-like
project (tests/supabase_like.py), the database that the React app and the Flutter app of
the seeds share — seed 002's ``openai_connexion`` (its DDL verbatim, its two audit triggers
and its two policies as given), the ``organisations`` / ``users`` tables and the two
functions its policies call, and seed 000's tables with the columns its §5 calls use
(``ai_user_models_flut`` verbatim from §2.2) — with rows in every table. Everything is
created by the project owner, so it gets Supabase's default privileges, as objects made in
the dashboard's SQL editor do. :func:`build_seed_system_sqlite` builds the same tables and
rows on SQLite, as far as SQLite can hold them. :func:`clone_seed_system` copies a built
one (``CREATE DATABASE … TEMPLATE`` / a file copy), so that a test module builds it once.

:func:`fingerprint` / :func:`fingerprint_sqlite` take everything that must stay identical
when ``aipilot init --adopt`` only adds: one key per object (``"column users.email"``,
``"policy openai_connexion.admin_presenca_full_access_openai_connexion"``, ``"rows
ai_models"``, …). With ``only=before`` they answer for exactly the keys of ``before`` (a
key whose object is gone maps to :data:`MISSING`) and hash rows over ``before``'s columns
only, so that added columns, tables, indexes, policies or defaults (a default where a
column had none) do not count as changes, while a changed or dropped one does::

    before = fingerprint(seed.admin_url)
    ...  # aipilot init --adopt
    assert changed(before, fingerprint(seed.admin_url, only=before)) == []

Deviations from the seeds, on purpose (each one is what the seeds' calls need):

- ``ai_user_models_flut`` is created with §2.2's statements verbatim, then given
  ``DEFAULT auth.uid()`` on ``user_id`` (the app's §5 insert omits ``user_id``); pass
  ``custom_model_default_uid=False`` for §2.2 exactly.
- the project owner gets ``REFERENCES`` on ``auth.users`` (Supabase grants its ``postgres``
  every privilege on the ``auth`` tables), which the seed's foreign keys to
  ``auth.users(id)`` need.
- on SQLite there is no ``auth.users``: the ``user_id`` columns reference
  ``users(users_id)``, as aipilot's own SQLite schema does.

What the seeds leave open is filled in plausibly and marked as ours: the bodies of the
audit trigger functions (seed 002 names them only; ours also append to
``openai_audit_log -> 'events'``), the React app's policies on the other tables (Supabase
dashboard names, with spaces), ``ai_providers`` / ``ai_models`` readable by
``authenticated`` and managed by ``is_admin_presenca``, and ``public.set_updated_at()``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from tests.supabase_like import OWNER, DataApi, add_auth_user, url_as

MISSING = "<missing>"  # what fingerprint(only=…) gives for an object that no longer exists

ORG_A = "Agence Alpha"
ORG_B = "Réseau Bêta"
ADMIN_EMAIL = "admin@presenca.test"
MEMBER_EMAIL = "membre@alpha.test"
OTHER_EMAIL = "autre@beta.test"

# seed 002 §1, verbatim
OPENAI_CONNEXION_DDL = """
CREATE TABLE public.openai_connexion (
  openai_connexion_id uuid NOT NULL DEFAULT gen_random_uuid(),
  organisation_id uuid NOT NULL,
  client_type text NOT NULL DEFAULT 'reseau'::text,
  client_id uuid NOT NULL,
  openai_api_key text,
  openai_email_compte text,
  openai_organisation_id text,
  openai_project_id text,
  openai_actif boolean NOT NULL DEFAULT true,
  openai_date_activation timestamp with time zone NOT NULL DEFAULT now(),
  openai_derniere_synchro timestamp with time zone,
  openai_statut_connexion text NOT NULL DEFAULT 'active'::text,
  openai_derniere_erreur text,
  openai_limite_quotidienne integer,
  openai_usage_quotidien integer DEFAULT 0,
  openai_reset_quota_at timestamp with time zone,
  openai_modeles_autorises text[] DEFAULT '{gpt-3.5-turbo,gpt-4}'::text[],
  openai_cout_actuel_mois numeric(10,4) DEFAULT 0.0000,
  openai_limite_cout_mois numeric(10,4) DEFAULT NULL::numeric,
  openai_created_at timestamp with time zone NOT NULL DEFAULT now(),
  openai_created_by uuid,
  openai_updated_at timestamp with time zone NOT NULL DEFAULT now(),
  openai_updated_by uuid,
  openai_audit_log jsonb DEFAULT '{}'::jsonb,
  openai_ia_extensions jsonb DEFAULT '{}'::jsonb,
  CONSTRAINT openai_connexion_client_type_check CHECK (client_type = ANY (ARRAY['reseau'::text, 'reseau_agence'::text, 'agence_independante'::text])),
  CONSTRAINT openai_connexion_openai_created_by_fkey FOREIGN KEY (openai_created_by) REFERENCES users(users_id) ON DELETE SET NULL,
  CONSTRAINT openai_connexion_openai_statut_connexion_check CHECK (openai_statut_connexion = ANY (ARRAY['active'::text, 'inactive'::text, 'error'::text, 'expired'::text, 'quota_exceeded'::text])),
  CONSTRAINT openai_connexion_openai_updated_by_fkey FOREIGN KEY (openai_updated_by) REFERENCES users(users_id) ON DELETE SET NULL,
  CONSTRAINT openai_connexion_organisation_id_fkey FOREIGN KEY (organisation_id) REFERENCES organisations(organisation_id) ON DELETE CASCADE,
  CONSTRAINT openai_connexion_pkey PRIMARY KEY (openai_connexion_id)
);
"""

# seed 000 §2.2, verbatim
AI_USER_MODELS_FLUT_DDL = """
create table if not exists public.ai_user_models_flut (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users(id) on delete cascade,
  provider_key text not null,          -- 'openai' | 'anthropic' | 'google' | ...
  model_key text not null,             -- identifiant technique (ex: 'gpt-4o-latest')
  model_name text not null,            -- label affiché (ex: 'GPT-4o Latest (Custom)')
  is_active boolean not null default true,  -- juste pour “masquer” un custom si besoin
  created_at timestamptz not null default now(),
  constraint uq_user_model unique (user_id, provider_key, model_key)
);

alter table public.ai_user_models_flut enable row level security;

-- RLS: lecture/écriture restreinte à l’utilisateur
do $$
begin
  if not exists (
    select 1 from pg_policies
    where schemaname='public' and tablename='ai_user_models_flut' and policyname='ai_user_models_flut_select_own'
  ) then
    create policy ai_user_models_flut_select_own
      on public.ai_user_models_flut
      for select to authenticated
      using (auth.uid() = user_id);
  end if;

  if not exists (
    select 1 from pg_policies
    where schemaname='public' and tablename='ai_user_models_flut' and policyname='ai_user_models_flut_manage_own'
  ) then
    create policy ai_user_models_flut_manage_own
      on public.ai_user_models_flut
      for all to authenticated
      using (auth.uid() = user_id)
      with check (auth.uid() = user_id);
  end if;
end   $$;
"""

# the React app's organisations / users, and the two functions seed 002's policies call
ORGS_AND_USERS_DDL = """
CREATE TABLE public.organisations (
  organisation_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  created_at timestamptz DEFAULT now()
);
CREATE TABLE public.users (
  users_id uuid PRIMARY KEY REFERENCES auth.users(id) ON DELETE CASCADE,
  organisation_id uuid REFERENCES public.organisations(organisation_id),
  email text,
  nom text,
  prenom text,
  role text NOT NULL DEFAULT 'user' CHECK (role IN ('admin_presenca', 'manager', 'user')),
  created_at timestamptz DEFAULT now()
);
CREATE FUNCTION public.is_admin_presenca(uid uuid) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT EXISTS (SELECT 1 FROM public.users WHERE users_id = uid AND role = 'admin_presenca')
$$;
CREATE FUNCTION public.get_user_organisation_id(uid uuid) RETURNS uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT organisation_id FROM public.users WHERE users_id = uid
$$;
ALTER TABLE public.organisations ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Members can read their organisation" ON public.organisations
  FOR SELECT TO authenticated
  USING (organisation_id = get_user_organisation_id(auth.uid()));
CREATE POLICY "Admin PRESENCA manages organisations" ON public.organisations
  FOR ALL TO authenticated
  USING (is_admin_presenca(auth.uid())) WITH CHECK (is_admin_presenca(auth.uid()));
ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users can read their own row" ON public.users
  FOR SELECT TO authenticated USING (users_id = auth.uid());
CREATE POLICY "Admin PRESENCA manages users" ON public.users
  FOR ALL TO authenticated
  USING (is_admin_presenca(auth.uid())) WITH CHECK (is_admin_presenca(auth.uid()));
"""

# seed 002 §5 and §7: the audit triggers (bodies of ours: the seed names them only) and the
# two policies as given (FOR ALL, roles public)
OPENAI_CONNEXION_SECURITY = """
CREATE FUNCTION public.set_created_audit_fields_openai_connexion() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  NEW.openai_created_at := now();
  NEW.openai_created_by := coalesce(auth.uid(), NEW.openai_created_by);
  NEW.openai_updated_at := now();
  NEW.openai_updated_by := coalesce(auth.uid(), NEW.openai_updated_by);
  NEW.openai_audit_log := coalesce(NEW.openai_audit_log, '{}'::jsonb) || jsonb_build_object(
    'events', coalesce(NEW.openai_audit_log -> 'events', '[]'::jsonb) || jsonb_build_array(
      jsonb_build_object('action', 'insert', 'at', now(), 'by', auth.uid(), 'role', auth.role())
    )
  );
  RETURN NEW;
END
$$;
CREATE FUNCTION public.update_audit_fields_openai_connexion() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  NEW.openai_created_at := OLD.openai_created_at;
  NEW.openai_created_by := OLD.openai_created_by;
  NEW.openai_updated_at := now();
  NEW.openai_updated_by := coalesce(auth.uid(), NEW.openai_updated_by);
  NEW.openai_audit_log := coalesce(NEW.openai_audit_log, '{}'::jsonb) || jsonb_build_object(
    'events', coalesce(NEW.openai_audit_log -> 'events', '[]'::jsonb) || jsonb_build_array(
      jsonb_build_object(
        'action', 'update', 'at', now(), 'by', auth.uid(), 'role', auth.role(),
        'changed', coalesce((
          SELECT jsonb_agg(n.key ORDER BY n.key) FROM jsonb_each(to_jsonb(NEW)) AS n
          WHERE n.value IS DISTINCT FROM to_jsonb(OLD) -> n.key
            AND n.key NOT IN ('openai_updated_at', 'openai_updated_by', 'openai_audit_log')
        ), '[]'::jsonb)
      )
    )
  );
  RETURN NEW;
END
$$;
CREATE TRIGGER trg_set_created_audit_fields_openai_connexion BEFORE INSERT ON public.openai_connexion
  FOR EACH ROW EXECUTE FUNCTION public.set_created_audit_fields_openai_connexion();
CREATE TRIGGER trg_update_audit_fields_openai_connexion BEFORE UPDATE ON public.openai_connexion
  FOR EACH ROW EXECUTE FUNCTION public.update_audit_fields_openai_connexion();
ALTER TABLE public.openai_connexion ENABLE ROW LEVEL SECURITY;
CREATE POLICY admin_presenca_full_access_openai_connexion ON public.openai_connexion
  AS PERMISSIVE FOR ALL TO public
  USING (is_admin_presenca(auth.uid()))
  WITH CHECK (is_admin_presenca(auth.uid()));
CREATE POLICY organisation_only_access_openai_connexion ON public.openai_connexion
  AS PERMISSIVE FOR ALL TO public
  USING ((organisation_id = get_user_organisation_id(auth.uid())))
  WITH CHECK ((organisation_id = get_user_organisation_id(auth.uid())));
"""

# seed 000 §2.1 with the columns its §5 calls use (and the old ai-keys-manager's own format)
AI_TABLES_DDL = """
CREATE TABLE public.ai_providers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  provider_key text NOT NULL UNIQUE,
  provider_name text NOT NULL,
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.ai_providers ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Authenticated can read providers" ON public.ai_providers
  FOR SELECT TO authenticated USING (true);
CREATE POLICY "Admin PRESENCA manages providers" ON public.ai_providers
  FOR ALL TO authenticated
  USING (is_admin_presenca(auth.uid())) WITH CHECK (is_admin_presenca(auth.uid()));

CREATE TABLE public.ai_models (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  provider_id uuid NOT NULL REFERENCES public.ai_providers(id),
  model_key text NOT NULL,
  model_name text NOT NULL,
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider_id, model_key)
);
ALTER TABLE public.ai_models ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Authenticated can read models" ON public.ai_models
  FOR SELECT TO authenticated USING (true);
CREATE POLICY "Admin PRESENCA manages models" ON public.ai_models
  FOR ALL TO authenticated
  USING (is_admin_presenca(auth.uid())) WITH CHECK (is_admin_presenca(auth.uid()));

CREATE TABLE public.user_provider_credentials (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL DEFAULT auth.uid() REFERENCES auth.users(id) ON DELETE CASCADE,
  provider_key text NOT NULL,
  encrypted_api_key text NOT NULL,
  iv text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, provider_key)
);
ALTER TABLE public.user_provider_credentials ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users manage their own credentials" ON public.user_provider_credentials
  FOR ALL TO authenticated USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);

CREATE TABLE public.ai_provider_configs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL DEFAULT auth.uid(),
  module_name text NOT NULL DEFAULT 'global',
  provider_name text NOT NULL,
  model_name text NOT NULL,
  system_prompt text,
  is_active boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, module_name)
);
-- seed 000 §2.3
create unique index if not exists uq_ai_provider_configs_active
on public.ai_provider_configs(user_id, module_name)
where is_active = true;
ALTER TABLE public.ai_provider_configs ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users manage their own configs" ON public.ai_provider_configs
  FOR ALL TO authenticated USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);

CREATE TABLE public.ai_system_prompts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL DEFAULT auth.uid(),
  name text NOT NULL,
  prompt_content text NOT NULL,
  is_active boolean NOT NULL DEFAULT false,
  created_at timestamptz DEFAULT now()
);
ALTER TABLE public.ai_system_prompts ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users manage their own prompts" ON public.ai_system_prompts
  FOR ALL TO authenticated USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);

-- the React app's updated_at maintenance
CREATE FUNCTION public.set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
CREATE TRIGGER set_ai_provider_configs_updated_at BEFORE UPDATE ON public.ai_provider_configs
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_user_provider_credentials_updated_at BEFORE UPDATE
  ON public.user_provider_credentials
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
"""

CUSTOM_MODEL_DEFAULT_UID = (
    "ALTER TABLE public.ai_user_models_flut ALTER COLUMN user_id SET DEFAULT auth.uid();"
)

# the same tables on SQLite, typed as SQLAlchemy stores aipilot's (UUID as CHAR(32), JSON text)
SQLITE_DDL = """
CREATE TABLE organisations (
  organisation_id CHAR(32) NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  created_at DATETIME DEFAULT (CURRENT_TIMESTAMP)
);
CREATE TABLE users (
  users_id CHAR(32) NOT NULL PRIMARY KEY,
  organisation_id CHAR(32) REFERENCES organisations (organisation_id),
  email TEXT,
  nom TEXT,
  prenom TEXT,
  role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('admin_presenca', 'manager', 'user')),
  created_at DATETIME DEFAULT (CURRENT_TIMESTAMP)
);
CREATE TABLE openai_connexion (
  openai_connexion_id CHAR(32) NOT NULL,
  organisation_id CHAR(32) NOT NULL,
  client_type TEXT NOT NULL DEFAULT 'reseau',
  client_id CHAR(32) NOT NULL,
  openai_api_key TEXT,
  openai_email_compte TEXT,
  openai_organisation_id TEXT,
  openai_project_id TEXT,
  openai_actif BOOLEAN NOT NULL DEFAULT 1,
  openai_date_activation DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP),
  openai_derniere_synchro DATETIME,
  openai_statut_connexion TEXT NOT NULL DEFAULT 'active',
  openai_derniere_erreur TEXT,
  openai_limite_quotidienne INTEGER,
  openai_usage_quotidien INTEGER DEFAULT 0,
  openai_reset_quota_at DATETIME,
  openai_modeles_autorises JSON DEFAULT '["gpt-3.5-turbo", "gpt-4"]',
  openai_cout_actuel_mois NUMERIC(10, 4) DEFAULT 0.0000,
  openai_limite_cout_mois NUMERIC(10, 4) DEFAULT NULL,
  openai_created_at DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP),
  openai_created_by CHAR(32),
  openai_updated_at DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP),
  openai_updated_by CHAR(32),
  openai_audit_log JSON DEFAULT '{}',
  openai_ia_extensions JSON DEFAULT '{}',
  CONSTRAINT openai_connexion_client_type_check CHECK (client_type IN ('reseau', 'reseau_agence', 'agence_independante')),
  CONSTRAINT openai_connexion_openai_created_by_fkey FOREIGN KEY (openai_created_by) REFERENCES users (users_id) ON DELETE SET NULL,
  CONSTRAINT openai_connexion_openai_statut_connexion_check CHECK (openai_statut_connexion IN ('active', 'inactive', 'error', 'expired', 'quota_exceeded')),
  CONSTRAINT openai_connexion_openai_updated_by_fkey FOREIGN KEY (openai_updated_by) REFERENCES users (users_id) ON DELETE SET NULL,
  CONSTRAINT openai_connexion_organisation_id_fkey FOREIGN KEY (organisation_id) REFERENCES organisations (organisation_id) ON DELETE CASCADE,
  CONSTRAINT openai_connexion_pkey PRIMARY KEY (openai_connexion_id)
);
CREATE TABLE ai_providers (
  id CHAR(32) NOT NULL PRIMARY KEY,
  provider_key TEXT NOT NULL UNIQUE,
  provider_name TEXT NOT NULL,
  is_active BOOLEAN NOT NULL DEFAULT 1,
  created_at DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP)
);
CREATE TABLE ai_models (
  id CHAR(32) NOT NULL PRIMARY KEY,
  provider_id CHAR(32) NOT NULL REFERENCES ai_providers (id),
  model_key TEXT NOT NULL,
  model_name TEXT NOT NULL,
  is_active BOOLEAN NOT NULL DEFAULT 1,
  created_at DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP),
  UNIQUE (provider_id, model_key)
);
CREATE TABLE user_provider_credentials (
  id CHAR(32) NOT NULL PRIMARY KEY,
  user_id CHAR(32) NOT NULL REFERENCES users (users_id) ON DELETE CASCADE,
  provider_key TEXT NOT NULL,
  encrypted_api_key TEXT NOT NULL,
  iv TEXT,
  created_at DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP),
  updated_at DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP),
  UNIQUE (user_id, provider_key)
);
CREATE TABLE ai_provider_configs (
  id CHAR(32) NOT NULL PRIMARY KEY,
  user_id CHAR(32) NOT NULL,
  module_name TEXT NOT NULL DEFAULT 'global',
  provider_name TEXT NOT NULL,
  model_name TEXT NOT NULL,
  system_prompt TEXT,
  is_active BOOLEAN NOT NULL DEFAULT 0,
  created_at DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP),
  updated_at DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP),
  UNIQUE (user_id, module_name)
);
CREATE UNIQUE INDEX uq_ai_provider_configs_active
  ON ai_provider_configs (user_id, module_name) WHERE is_active = 1;
CREATE TRIGGER set_ai_provider_configs_updated_at AFTER UPDATE ON ai_provider_configs
  FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
  BEGIN
    UPDATE ai_provider_configs SET updated_at = strftime('%Y-%m-%d %H:%M:%f000', 'now')
    WHERE id = NEW.id;
  END;
CREATE TABLE ai_system_prompts (
  id CHAR(32) NOT NULL PRIMARY KEY,
  user_id CHAR(32) NOT NULL,
  name TEXT NOT NULL,
  prompt_content TEXT NOT NULL,
  is_active BOOLEAN NOT NULL DEFAULT 0,
  created_at DATETIME DEFAULT (CURRENT_TIMESTAMP)
);
CREATE TABLE ai_user_models_flut (
  id CHAR(32) NOT NULL PRIMARY KEY,
  user_id CHAR(32) NOT NULL REFERENCES users (users_id) ON DELETE CASCADE,
  provider_key TEXT NOT NULL,
  model_key TEXT NOT NULL,
  model_name TEXT NOT NULL,
  is_active BOOLEAN NOT NULL DEFAULT 1,
  created_at DATETIME NOT NULL DEFAULT (CURRENT_TIMESTAMP),
  CONSTRAINT uq_user_model UNIQUE (user_id, provider_key, model_key)
);
"""

# ---------------------------------------------------------------- what the rows are
PROVIDERS: tuple[tuple[str, str, tuple[tuple[str, str, bool], ...]], ...] = (
    (
        "openai",
        "OpenAI",
        (
            ("gpt-4o-mini", "GPT-4o mini", True),
            ("gpt-4o", "GPT-4o", True),
            ("gpt-3.5-turbo", "GPT-3.5 Turbo", False),
        ),
    ),
    (
        "anthropic",
        "Anthropic",
        (
            ("claude-3-5-haiku-latest", "Claude 3.5 Haiku", True),
            ("claude-sonnet-4-0", "Claude Sonnet 4", True),
        ),
    ),
    (
        "google",
        "Google Gemini",
        (
            ("gemini-2.5-flash", "Gemini 2.5 Flash", True),
            ("gemini-1.5-pro", "Gemini 1.5 Pro", True),
        ),
    ),
)

EPOCH = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)  # rows were written over the weeks after


@dataclass(frozen=True)
class SeedUser:
    """One user of the existing system and what the apps stored for it."""

    key: str  # "admin" | "member" | "other"
    users_id: uuid.UUID  # auth.users.id (= users.users_id); a fresh uuid on SQLite
    email: str
    role: str  # the React app's role: "admin_presenca" | "user"
    organisation_id: uuid.UUID
    provider: str | None = None  # the active 'global' config's provider_name
    model: str | None = None  # … and model_name
    config_id: uuid.UUID | None = None
    prompt_name: str | None = None  # the active prompt (its text is the config's snapshot)
    prompt_text: str | None = None
    prompt_id: uuid.UUID | None = None
    inactive_prompt_name: str | None = None
    credential_provider: str | None = None  # its old-format user_provider_credentials row
    credential_ciphertext: str | None = None  # encrypted_api_key as stored (not aipilot's)
    custom_model: str | None = None  # model_key of its ai_user_models_flut row (of `provider`)


@dataclass
class SeedSystem:
    """What a test needs to know about the database :func:`build_seed_system` left."""

    backend: str  # "postgresql" | "sqlite"
    url: str  # for aipilot: the project owner's URL (PostgreSQL) or sqlite:///…
    admin_url: str  # the superuser's URL (same as url on SQLite): for fingerprint and arranging
    admin: SeedUser
    member: SeedUser  # organisation A
    other: SeedUser  # organisation B
    org_a: uuid.UUID
    org_b: uuid.UUID
    org_names: dict[str, str]  # "A" / "B" -> name
    org_key: str  # openai_connexion.openai_api_key of A, in plaintext as the React app left it
    connexion_a: uuid.UUID
    connexion_b: uuid.UUID  # its openai_api_key is NULL
    providers: dict[str, uuid.UUID]  # provider_key -> ai_providers.id
    models: dict[str, tuple[str, ...]]  # provider_key -> model_keys in ai_models (all)
    api: DataApi | None = None  # the Data API of the project (PostgreSQL)
    tables: tuple[str, ...] = field(default=())  # every table the fixture created
    database: str = ""  # the PostgreSQL database's name (for pg_server.drop) or the file's path

    @property
    def users(self) -> tuple[SeedUser, SeedUser, SeedUser]:
        return (self.admin, self.member, self.other)

    def fingerprint(self, only: Mapping[str, object] | None = None) -> dict[str, object]:
        if self.backend == "sqlite":
            return fingerprint_sqlite(Path(self.database), only=only)
        return fingerprint(self.admin_url, only=only)


@dataclass
class _Plan:
    """Every row, as Python values, shared by the PostgreSQL and SQLite builds."""

    users: dict[str, SeedUser]
    rows: dict[str, list[dict[str, Any]]]
    org_key: str
    connexions: list[dict[str, Any]]  # as the React app posts them
    providers: dict[str, uuid.UUID]


def _old_ciphertext(plaintext_length: int) -> tuple[str, str]:
    """What the old Edge Function stored: base64 of AES-GCM output and base64 of its IV
    (WebCrypto's layout, not aipilot's: no key id, no format version, no associated data)."""
    blob = secrets.token_bytes(plaintext_length + 16)
    return base64.b64encode(blob).decode(), base64.b64encode(secrets.token_bytes(12)).decode()


def _plan(ids: Mapping[str, uuid.UUID], org_a: uuid.UUID, org_b: uuid.UUID) -> _Plan:
    at = {n: EPOCH + timedelta(days=n) for n in range(30)}
    rows: dict[str, list[dict[str, Any]]] = {}
    rows["organisations"] = [
        {"organisation_id": org_a, "name": ORG_A, "created_at": at[0]},
        {"organisation_id": org_b, "name": ORG_B, "created_at": at[0]},
    ]
    people = (
        ("admin", ADMIN_EMAIL, "Admin", "Paula", "admin_presenca", org_a),
        ("member", MEMBER_EMAIL, "Martin", "Léa", "user", org_a),
        ("other", OTHER_EMAIL, "Durand", "Hugo", "user", org_b),
    )
    rows["users"] = [
        {
            "users_id": ids[key],
            "organisation_id": org,
            "email": email,
            "nom": nom,
            "prenom": prenom,
            "role": role,
            "created_at": at[1],
        }
        for key, email, nom, prenom, role, org in people
    ]
    providers: dict[str, uuid.UUID] = {}
    rows["ai_providers"], rows["ai_models"] = [], []
    for key, name, models in PROVIDERS:
        providers[key] = uuid.uuid4()
        rows["ai_providers"].append(
            {"id": providers[key], "provider_key": key, "provider_name": name, "is_active": True}
        )
        for model_key, model_name, active in models:
            rows["ai_models"].append(
                {
                    "id": uuid.uuid4(),
                    "provider_id": providers[key],
                    "model_key": model_key,
                    "model_name": model_name,
                    "is_active": active,
                }
            )
    choices = {
        "member": (
            "openai",
            "gpt-4o-mini",
            "Assistant Devis Standard",
            "Tu es un assistant de devis : réponds en français, chiffre chaque poste.",
            "Résumé de visite",
            ("gpt-4o-latest", "GPT-4o Latest (Custom)"),
        ),
        "other": (
            "anthropic",
            "claude-3-5-haiku-latest",
            "Assistant Réseau",
            "Tu aides les agences du réseau Bêta ; sois bref et précis.",
            "Brouillon d’annonce",
            ("claude-3-7-sonnet-latest", "Claude 3.7 Sonnet (Custom)"),
        ),
    }
    users = {
        "admin": SeedUser("admin", ids["admin"], ADMIN_EMAIL, "admin_presenca", org_a),
    }
    rows["user_provider_credentials"], rows["ai_provider_configs"] = [], []
    rows["ai_system_prompts"], rows["ai_user_models_flut"] = [], []
    for n, (key, (provider, model, prompt, text, draft, custom)) in enumerate(choices.items()):
        uid, day = ids[key], 2 + 5 * n
        ciphertext, iv = _old_ciphertext(51)
        config_id, prompt_id = uuid.uuid4(), uuid.uuid4()
        rows["user_provider_credentials"].append(
            {
                "id": uuid.uuid4(),
                "user_id": uid,
                "provider_key": provider,
                "encrypted_api_key": ciphertext,
                "iv": iv,
                "created_at": at[day],
                "updated_at": at[day],
            }
        )
        rows["ai_system_prompts"] += [
            {
                "id": uuid.uuid4(),
                "user_id": uid,
                "name": draft,
                "prompt_content": f"{draft} : rédige en trois paragraphes.",
                "is_active": False,
                "created_at": at[day + 1],
            },
            {
                "id": prompt_id,
                "user_id": uid,
                "name": prompt,
                "prompt_content": text,
                "is_active": True,
                "created_at": at[day + 2],
            },
        ]
        rows["ai_provider_configs"].append(
            {
                "id": config_id,
                "user_id": uid,
                "module_name": "global",
                "provider_name": provider,
                "model_name": model,
                "system_prompt": text,
                "is_active": True,
                "created_at": at[day + 1],
                "updated_at": at[day + 3],
            }
        )
        rows["ai_user_models_flut"].append(
            {
                "id": uuid.uuid4(),
                "user_id": uid,
                "provider_key": provider,
                "model_key": custom[0],
                "model_name": custom[1],
                "is_active": True,
                "created_at": at[day + 4],
            }
        )
        organisation = org_a if key == "member" else org_b
        users[key] = SeedUser(
            key,
            uid,
            MEMBER_EMAIL if key == "member" else OTHER_EMAIL,
            "user",
            organisation,
            provider=provider,
            model=model,
            config_id=config_id,
            prompt_name=prompt,
            prompt_text=text,
            prompt_id=prompt_id,
            inactive_prompt_name=draft,
            credential_provider=provider,
            credential_ciphertext=ciphertext,
            custom_model=custom[0],
        )
    org_key = "sk-proj-" + secrets.token_urlsafe(48)
    connexions = [
        {
            "organisation_id": org_a,
            "client_type": "agence_independante",
            "client_id": org_a,
            "openai_api_key": org_key,
            "openai_email_compte": "ia@alpha.test",
            "openai_organisation_id": "org-alpha",
            "openai_limite_quotidienne": 500,
            "openai_limite_cout_mois": "50.0000",
            "openai_modeles_autorises": ["gpt-4o-mini", "gpt-4o"],
        },
        {
            "organisation_id": org_b,
            "client_type": "reseau",
            "client_id": org_b,
            "openai_api_key": None,
            "openai_limite_quotidienne": 100,
        },
    ]
    return _Plan(users, rows, org_key, connexions, providers)


def _models(plan: _Plan) -> dict[str, tuple[str, ...]]:
    by_id = {v: k for k, v in plan.providers.items()}
    out: dict[str, list[str]] = {k: [] for k in plan.providers}
    for row in plan.rows["ai_models"]:
        out[by_id[row["provider_id"]]].append(row["model_key"])
    return {k: tuple(v) for k, v in out.items()}


# ---------------------------------------------------------------- PostgreSQL
def build_seed_system(admin_url: str, *, custom_model_default_uid: bool = True) -> SeedSystem:
    """The existing system on a database of ``supabase_like.create_project``.

    ``admin_url`` is the superuser's URL of that database. Tables, functions, triggers and
    policies are created by the project owner; the rows too, except ``openai_connexion``'s,
    which the admin posts through the Data API as the React app does (its triggers run)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # Supabase grants its `postgres` every privilege on the auth tables; the seed's
        # foreign keys to auth.users(id) need REFERENCES
        conn.execute(sql.SQL("GRANT REFERENCES ON auth.users TO {}").format(sql.Identifier(OWNER)))
    ids = {
        "admin": add_auth_user(admin_url, ADMIN_EMAIL),
        "member": add_auth_user(admin_url, MEMBER_EMAIL),
        "other": add_auth_user(admin_url, OTHER_EMAIL),
    }
    plan = _plan(ids, uuid.uuid4(), uuid.uuid4())
    owner_url = url_as(admin_url, user=OWNER)
    with psycopg.connect(owner_url) as conn:
        for ddl in (ORGS_AND_USERS_DDL, OPENAI_CONNEXION_DDL, OPENAI_CONNEXION_SECURITY):
            conn.execute(ddl.encode())
        conn.execute(AI_TABLES_DDL.encode())
        conn.execute(AI_USER_MODELS_FLUT_DDL.encode())
        if custom_model_default_uid:
            conn.execute(CUSTOM_MODEL_DEFAULT_UID.encode())
        for table, rows in plan.rows.items():
            for row in rows:
                _pg_insert(conn, table, row)
    api = DataApi(admin_url)
    for row in plan.connexions:
        api.insert("authenticated", ids["admin"], "openai_connexion", row)
    with psycopg.connect(admin_url) as conn:
        found: dict[uuid.UUID, uuid.UUID] = dict(
            conn.execute(
                "SELECT organisation_id, openai_connexion_id FROM public.openai_connexion"
            ).fetchall()
        )
    org_a, org_b = (row["organisation_id"] for row in plan.rows["organisations"])
    return SeedSystem(
        backend="postgresql",
        url=owner_url,
        admin_url=admin_url,
        admin=plan.users["admin"],
        member=plan.users["member"],
        other=plan.users["other"],
        org_a=org_a,
        org_b=org_b,
        org_names={"A": ORG_A, "B": ORG_B},
        org_key=plan.org_key,
        connexion_a=found[org_a],
        connexion_b=found[org_b],
        providers=plan.providers,
        models=_models(plan),
        api=api,
        tables=(*plan.rows, "openai_connexion"),
        database=str(conninfo_to_dict(admin_url).get("dbname") or ""),
    )


def clone_seed_system(seed: SeedSystem, *, path: Path | None = None) -> SeedSystem:
    """A copy of a built system, to spare each test the build: on PostgreSQL a new database
    made with ``CREATE DATABASE … TEMPLATE`` (no session may be connected to ``seed``'s; drop
    the copy with ``pg_server.drop(copy.database)``), on SQLite a copy of the file at
    ``path``. Same ids, rows, key and objects; ``auth.users`` comes along."""
    if seed.backend == "sqlite":
        if path is None:
            raise ValueError("a SQLite copy needs a path")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seed.database, path)
        path.chmod(0o600)
        url = f"sqlite:///{path}"
        return replace(seed, url=url, admin_url=url, database=str(path))
    name = f"aipilot_seed_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url_as(seed.admin_url, database="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(seed.database), sql.Identifier(OWNER)
            )
        )
    admin_url = url_as(seed.admin_url, database=name)
    return replace(
        seed,
        url=url_as(admin_url, user=OWNER),
        admin_url=admin_url,
        api=DataApi(admin_url),
        database=name,
    )


def _pg_insert(conn: psycopg.Connection[Any], table: str, row: Mapping[str, Any]) -> None:
    values = [Jsonb(v) if isinstance(v, dict) else v for v in row.values()]
    conn.execute(
        sql.SQL("INSERT INTO public.{} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c) for c in row),
            sql.SQL(", ").join(sql.Placeholder() for _ in row),
        ),
        values,
    )


_PG_TABLES = """
SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""
_GRANTEE = "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END"
_PRIVILEGES = (
    "array_agg(a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END "
    "ORDER BY a.privilege_type)"
)
_PG_TABLE_GRANTS = f"""
SELECT c.relname, {_GRANTEE}, {_PRIVILEGES}
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
     LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
GROUP BY 1, 2
"""
_PG_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""
_PG_CONSTRAINTS = """
SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
"""
_PG_INDEXES = "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
_PG_TRIGGERS = """
SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND NOT t.tgisinternal
"""
_PG_POLICIES = """
SELECT tablename, policyname, permissive, roles, cmd, qual, with_check
FROM pg_policies WHERE schemaname = 'public'
"""
_PG_FUNCTIONS = """
SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), pg_get_userbyid(p.proowner)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')
"""
_PG_FUNCTION_GRANTS = f"""
SELECT p.oid::regprocedure::text, {_GRANTEE}, {_PRIVILEGES}
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
     LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')
GROUP BY 1, 2
"""
_PG_PRIMARY_KEY = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = %s AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""


def fingerprint(url: str, *, only: Mapping[str, object] | None = None) -> dict[str, object]:
    """Schema ``public`` as keys → values: per table ``table T`` (RLS, forced RLS, owner),
    ``grant table T to R``, ``column T.c`` (type, nullability), ``default T.c`` (only where a
    column has one), ``constraint T.name``, ``index T.name``, ``trigger T.name``, ``policy
    T.name``, ``function f(args)`` (its definition and owner), ``grant function f(args) to
    R`` and ``rows T`` (count and a hash of every row as text, ordered by primary key).

    ``url`` must see every row (the superuser's or the owner's; rows hidden by RLS raise
    rather than go unseen). With ``only``, the answer holds exactly ``only``'s keys (a gone
    object is :data:`MISSING`) and rows are hashed over ``only``'s columns."""
    out: dict[str, object] = {}
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # deparsed expressions as pg_policies shows them; timestamps in one zone; no row
        # left out by a policy
        conn.execute("SET LOCAL search_path TO public")
        conn.execute("SET LOCAL TimeZone TO 'UTC'")
        conn.execute("SET LOCAL row_security TO off")
        tables: dict[str, int] = {}
        for oid, name, rls, force, owner in conn.execute(_PG_TABLES):
            tables[name] = oid
            out[f"table {name}"] = {"rls": rls, "force_rls": force, "owner": owner}
        for name, grantee, privileges in conn.execute(_PG_TABLE_GRANTS):
            out[f"grant table {name} to {grantee}"] = privileges
        columns: dict[str, list[str]] = {}
        for table, col, typ, notnull, identity, generated, default in conn.execute(_PG_COLUMNS):
            columns.setdefault(table, []).append(col)
            out[f"column {table}.{col}"] = {
                "type": typ,
                "not_null": notnull,
                "identity": identity,
                "generated": generated,
            }
            if default is not None:
                out[f"default {table}.{col}"] = default
        for table, name, definition in conn.execute(_PG_CONSTRAINTS):
            out[f"constraint {table}.{name}"] = definition
        for table, name, definition in conn.execute(_PG_INDEXES):
            out[f"index {table}.{name}"] = definition
        for table, name, definition, enabled in conn.execute(_PG_TRIGGERS):
            out[f"trigger {table}.{name}"] = {"def": definition, "enabled": enabled}
        for table, name, permissive, roles, cmd, qual, check in conn.execute(_PG_POLICIES):
            out[f"policy {table}.{name}"] = {
                "permissive": permissive,
                "roles": sorted(roles),
                "cmd": cmd,
                "qual": qual,
                "with_check": check,
            }
        for signature, definition, owner in conn.execute(_PG_FUNCTIONS):
            out[f"function {signature}"] = {"def": definition, "owner": owner}
        for signature, grantee, privileges in conn.execute(_PG_FUNCTION_GRANTS):
            out[f"grant function {signature} to {grantee}"] = privileges
        for table, oid in tables.items():
            if only is not None and f"rows {table}" not in only:
                continue
            cols = [c for c in columns.get(table, []) if _kept(only, f"column {table}.{c}")]
            pk = [r[0] for r in conn.execute(_PG_PRIMARY_KEY, (oid,))]
            out[f"rows {table}"] = _pg_rows(conn, table, cols, pk)
    return _restrict(out, only)


def _pg_rows(
    conn: psycopg.Connection[Any], table: str, cols: list[str], pk: list[str]
) -> dict[str, object]:
    rendered = sql.SQL("ROW({})::text").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in cols) if cols else sql.SQL("")
    )
    order = sql.SQL(", ").join(sql.Identifier(c) for c in pk) if pk else sql.SQL("1")
    rows = conn.execute(
        sql.SQL("SELECT {} FROM public.{} ORDER BY {}").format(
            rendered, sql.Identifier(table), order
        )
    ).fetchall()
    return _digest(str(r[0]) for r in rows)


def _kept(only: Mapping[str, object] | None, key: str) -> bool:
    return only is None or key in only


def _digest(lines: Iterable[str]) -> dict[str, object]:
    digest, count = hashlib.sha256(), 0
    for line in lines:
        digest.update(line.encode() + b"\n")
        count += 1
    return {"count": count, "sha256": digest.hexdigest()}


def _restrict(out: dict[str, object], only: Mapping[str, object] | None) -> dict[str, object]:
    if only is None:
        return out
    return {k: out.get(k, MISSING) for k in only}


def changed(before: Mapping[str, object], after: Mapping[str, object]) -> list[str]:
    """The keys of ``before`` whose value differs in ``after`` (or is missing there)."""
    return [k for k, v in before.items() if after.get(k, MISSING) != v]


# ---------------------------------------------------------------- SQLite
def build_seed_system_sqlite(path: Path) -> SeedSystem:
    """The same tables (those SQLite can hold) and rows in a new SQLite file at ``path``:
    UUIDs as 32 hex digits, booleans 0/1, timestamps and JSON as SQLAlchemy writes them.
    No RLS, functions or auth schema; the openai_connexion rows carry the audit fields
    PostgreSQL's triggers would have written."""
    ids = {k: uuid.uuid4() for k in ("admin", "member", "other")}
    plan = _plan(ids, uuid.uuid4(), uuid.uuid4())
    rows = {k: [dict(r) for r in v] for k, v in plan.rows.items()}
    now = datetime.now(UTC)
    for row in rows["ai_providers"] + rows["ai_models"]:
        row["created_at"] = now
    connexions: list[dict[str, Any]] = []
    for posted in plan.connexions:
        event = {"action": "insert", "at": now.isoformat(), "by": str(ids["admin"])}
        event["role"] = "authenticated"
        connexions.append(
            {
                "openai_connexion_id": uuid.uuid4(),
                **posted,
                "openai_created_at": now,
                "openai_created_by": ids["admin"],
                "openai_updated_at": now,
                "openai_updated_by": ids["admin"],
                "openai_audit_log": {"events": [event]},
            }
        )
    rows["openai_connexion"] = connexions
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(SQLITE_DDL)
        for table in ("organisations", "users", *(t for t in rows if t not in _FIRST)):
            for row in rows[table]:
                conn.execute(
                    f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    [_sqlite_value(v) for v in row.values()],
                )
        conn.commit()
    finally:
        conn.close()
    path.chmod(0o600)
    org_a, org_b = (row["organisation_id"] for row in plan.rows["organisations"])
    url = f"sqlite:///{path}"
    return SeedSystem(
        backend="sqlite",
        url=url,
        admin_url=url,
        admin=plan.users["admin"],
        member=plan.users["member"],
        other=plan.users["other"],
        org_a=org_a,
        org_b=org_b,
        org_names={"A": ORG_A, "B": ORG_B},
        org_key=plan.org_key,
        connexion_a=connexions[0]["openai_connexion_id"],
        connexion_b=connexions[1]["openai_connexion_id"],
        providers=plan.providers,
        models=_models(plan),
        tables=tuple(rows),
        database=str(path),
    )


_FIRST = ("organisations", "users")


def _sqlite_value(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):  # SQLAlchemy's storage format on SQLite
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def fingerprint_sqlite(
    path: Path, *, only: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The SQLite file as keys → values: ``table T`` (its CREATE TABLE statement, split into
    its top-level items; with ``only``, without the items of columns ``only`` does not know,
    so an ``ALTER TABLE … ADD COLUMN`` is an addition), ``column T.c``, ``default T.c``,
    ``index T.name`` and ``trigger T.name`` (their SQL), ``rows T``, as :func:`fingerprint`."""
    out: dict[str, object] = {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        tables = [name for kind, name, _, _ in objects if kind == "table"]
        columns: dict[str, list[tuple[str, str, int, object, int]]] = {}
        for table in tables:
            info = conn.execute(f'PRAGMA table_xinfo("{table}")').fetchall()
            columns[table] = [(r[1], r[2], r[3], r[4], r[5]) for r in info]
            for name, typ, notnull, default, in_pk in columns[table]:
                out[f"column {table}.{name}"] = {
                    "type": typ,
                    "not_null": bool(notnull),
                    "pk": in_pk,
                }
                if default is not None:
                    out[f"default {table}.{name}"] = default
        for kind, name, table, text in objects:
            if kind == "table":
                known = {c[0] for c in columns[table] if _kept(only, f"column {table}.{c[0]}")}
                out[f"table {name}"] = _table_items(text, known)
            elif text is not None:  # autoindexes of UNIQUE are in their table's statement
                out[f"{kind} {table}.{name}"] = text
        for table in tables:
            if only is not None and f"rows {table}" not in only:
                continue
            cols = [c[0] for c in columns[table] if _kept(only, f"column {table}.{c[0]}")]
            pk = [c[0] for c in sorted(columns[table], key=lambda c: c[4]) if c[4]]
            order = ", ".join(f'"{c}"' for c in pk) if pk else "rowid"
            rendered = " || char(31) || ".join(f'quote("{c}")' for c in cols) or "''"
            rows = conn.execute(f'SELECT {rendered} FROM "{table}" ORDER BY {order}').fetchall()
            out[f"rows {table}"] = _digest(str(r[0]) for r in rows)
    finally:
        conn.close()
    return _restrict(out, only)


_CONSTRAINT_WORDS = ("constraint", "primary", "unique", "check", "foreign")


def _table_items(statement: str, known: set[str]) -> list[str]:
    """A CREATE TABLE statement's head and its top-level items, without the definitions of
    columns outside ``known``."""
    start = statement.index("(")
    head, body = statement[:start].strip(), statement[start + 1 : statement.rindex(")")]
    items: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in body:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "[":
            quote = "]"
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    kept = [head]
    for item in items:
        word = item.split(None, 1)[0].strip("\"'`[]") if item else ""
        if word.lower() in _CONSTRAINT_WORDS or word in known:
            kept.append(item)
    return kept
