"""row-level security on every table, for Supabase's Data API; admin-set limits

On Supabase every table in ``public`` is granted to ``anon`` and ``authenticated`` by default
privileges, and PostgREST serves it to anyone holding the app's public key: row-level
security is the only wall (docs/platform.md). This revision:

- creates the role ``aipilot_service`` (NOLOGIN, member of ``authenticated``) and grants it to
  the role running the migration. aipilot runs as a member of it; the API roles never are.
  Its policies let aipilot resolve identities, tokens and the catalog before it knows who
  acts, while the user tables stay ``auth.uid() = user_id`` for it too;
- creates ``aipilot_is_admin()`` (SECURITY DEFINER, fixed search_path): the caller's
  ``users.role`` is ``admin``;
- enables AND forces RLS on ``users``, ``organisations``, ``ai_providers``, ``ai_models``,
  ``aipilot_api_tokens``, ``alembic_version`` and ``aipilot_config_generation``, with
  policies: a signed-in user reads its own ``users`` row and organisation (admins: all), the
  catalog is read-only for signed-in users and written by admins, tokens, the revision and
  the generation counter are for aipilot only;
- revokes every grant of ``anon`` on aipilot's tables, and of ``authenticated`` on the
  internals and on the key columns of ``user_provider_credentials`` (the seed's app may
  still read a key's status and delete its own key);
- ``ai_user_limits.set_by_admin``, and a trigger that lets only admins raise or clear a limit
  an admin set, or change the counters through the Data API; the table is read-only for
  members through the Data API;
- a trigger on ``openai_connexion`` (beside the seed's, which it does not touch) that lets
  only admins change a connection through the Data API, and keeps a member's own aipilot
  to the usage counters, status and last error.

Downgrade drops what this revision created and restores 0002/0003's policies; grants it
revoked stay revoked (what they were is not known).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_data_api_policies"
down_revision = "0003_config_generation"
branch_labels = None
depends_on = None

SERVICE = "aipilot_service"
ADMIN = "public.aipilot_is_admin()"
# a caller acting for itself, for a user it may act for, or aipilot with no identity yet
MAY_ACT_FOR = f"(auth.uid() IS NULL OR auth.uid() = user_id OR {ADMIN})"
# every table aipilot creates (0001-0003) and alembic's own
AIPILOT_TABLES = (
    "organisations",
    "users",
    "ai_providers",
    "ai_models",
    "user_provider_credentials",
    "ai_system_prompts",
    "ai_provider_configs",
    "ai_user_models_flut",
    "openai_connexion",
    "ai_usage_logs",
    "ai_user_limits",
    "aipilot_api_tokens",
    "aipilot_config_generation",
    "alembic_version",
)
INTERNAL_TABLES = ("aipilot_api_tokens", "aipilot_config_generation", "alembic_version")
# columns a member may read of its own stored keys (never the ciphertext, nonce or key id)
CREDENTIAL_STATUS_COLUMNS = (
    "id",
    "user_id",
    "provider_key",
    "key_hint",
    "last_tested_at",
    "last_test_ok",
    "last_test_error",
    "created_at",
    "updated_at",
)

ROLE_AND_FUNCTIONS = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SERVICE}') THEN
    CREATE ROLE {SERVICE} NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN;
  END IF;
END $$;
DO $$ BEGIN
  GRANT authenticated TO {SERVICE};
EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN NULL; END $$;
DO $$ BEGIN
  EXECUTE format('GRANT {SERVICE} TO %I', current_user);
EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN NULL; END $$;
DO $$ BEGIN
  GRANT USAGE ON SCHEMA public, auth TO {SERVICE};
EXCEPTION WHEN insufficient_privilege THEN NULL; END $$;
CREATE FUNCTION public.aipilot_is_admin() RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $f$
    SELECT EXISTS (SELECT 1 FROM public.users WHERE users_id = auth.uid() AND role = 'admin')
  $f$;
REVOKE ALL ON FUNCTION public.aipilot_is_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.aipilot_is_admin() TO authenticated, {SERVICE};
-- 0001's helpers answer for any user id: not for the public key's callers (/rest/v1/rpc)
REVOKE EXECUTE ON FUNCTION public.is_admin_presenca(uuid), public.get_user_organisation_id(uuid)
  FROM PUBLIC, anon;
GRANT EXECUTE ON FUNCTION public.is_admin_presenca(uuid), public.get_user_organisation_id(uuid)
  TO authenticated, {SERVICE};
"""

# A caller through the Data API runs as anon or authenticated itself (PostgREST's SET ROLE),
# or as a definer function's owner under PostgREST's login role (session_user authenticator);
# the platform's service_role is trusted; aipilot runs as a member of aipilot_service; no
# identity and another role: maintenance.
LIMIT_GUARD = f"""
CREATE FUNCTION public.aipilot_guard_user_limits() RETURNS trigger
  LANGUAGE plpgsql SET search_path = public, pg_temp AS $f$
DECLARE
  api boolean := (current_user IN ('anon', 'authenticated') OR (session_user = 'authenticator' AND current_user <> 'service_role'));
BEGIN
  IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM public.users WHERE users_id = OLD.user_id)
  THEN
    RETURN OLD;  -- the user is being deleted (ON DELETE CASCADE): not the caller's doing
  END IF;
  IF {ADMIN} OR (auth.uid() IS NULL AND NOT api) THEN
    RETURN coalesce(NEW, OLD);
  END IF;
  IF api THEN
    RAISE EXCEPTION 'only an admin changes limits through the Data API'
      USING ERRCODE = '42501';
  END IF;
  IF TG_OP = 'INSERT' THEN
    IF NEW.set_by_admin THEN
      RAISE EXCEPTION 'only an admin sets an admin limit' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
  END IF;
  IF OLD.set_by_admin THEN
    IF TG_OP = 'DELETE'
       OR NOT NEW.set_by_admin
       OR (NEW.user_id, NEW.provider_key) IS DISTINCT FROM (OLD.user_id, OLD.provider_key)
       OR (OLD.daily_requests IS NOT NULL
           AND (NEW.daily_requests IS NULL OR NEW.daily_requests > OLD.daily_requests))
       OR (OLD.monthly_cost_usd IS NOT NULL
           AND (NEW.monthly_cost_usd IS NULL OR NEW.monthly_cost_usd > OLD.monthly_cost_usd))
    THEN
      RAISE EXCEPTION 'only an admin raises or clears a limit an admin set'
        USING ERRCODE = '42501';
    END IF;
  END IF;
  RETURN coalesce(NEW, OLD);
END $f$;
CREATE TRIGGER aipilot_guard_user_limits BEFORE INSERT OR UPDATE OR DELETE ON ai_user_limits
  FOR EACH ROW EXECUTE FUNCTION public.aipilot_guard_user_limits();
"""

# What only an admin may change on an organisation's connection. A member's own aipilot
# updates the usage counters, the status (quota_exceeded and back) and the last error.
CONNEXION_ADMIN_COLUMNS = (
    "openai_connexion_id",
    "organisation_id",
    "client_type",
    "client_id",
    "openai_api_key",
    "openai_email_compte",
    "openai_organisation_id",
    "openai_project_id",
    "openai_actif",
    "openai_date_activation",
    "openai_limite_quotidienne",
    "openai_modeles_autorises",
    "openai_limite_cout_mois",
    "openai_ia_extensions",
)
_OLD = ", ".join(f"OLD.{c}" for c in CONNEXION_ADMIN_COLUMNS)
_NEW = ", ".join(f"NEW.{c}" for c in CONNEXION_ADMIN_COLUMNS)
CONNEXION_GUARD = f"""
CREATE FUNCTION public.aipilot_guard_openai_connexion() RETURNS trigger
  LANGUAGE plpgsql SET search_path = public, pg_temp AS $f$
DECLARE
  api boolean := (current_user IN ('anon', 'authenticated') OR (session_user = 'authenticator' AND current_user <> 'service_role'));
BEGIN
  IF {ADMIN} OR (auth.uid() IS NULL AND NOT api) THEN
    RETURN coalesce(NEW, OLD);
  END IF;
  IF api OR TG_OP <> 'UPDATE' OR ROW({_OLD}) IS DISTINCT FROM ROW({_NEW}) THEN
    RAISE EXCEPTION 'only an admin changes an organisation''s OpenAI connection'
      USING ERRCODE = '42501';
  END IF;
  RETURN NEW;
END $f$;
CREATE TRIGGER aipilot_guard_openai_connexion BEFORE INSERT OR UPDATE OR DELETE
  ON openai_connexion FOR EACH ROW EXECUTE FUNCTION public.aipilot_guard_openai_connexion();
"""


def _policy(table: str, name: str, spec: str) -> str:
    return f"CREATE POLICY {table}_{name} ON {table} {spec}"


def _service_writes(table: str, check: str) -> list[str]:
    """INSERT / UPDATE / DELETE for aipilot, each bounded by ``check``."""
    return [
        _policy(table, "service_insert", f"FOR INSERT TO {SERVICE} WITH CHECK {check}"),
        _policy(table, "service_update", f"FOR UPDATE TO {SERVICE} USING {check} WITH CHECK {check}"),
        _policy(table, "service_delete", f"FOR DELETE TO {SERVICE} USING {check}"),
    ]


def _owner(table: str) -> str:
    return f"current_user = pg_get_userbyid((SELECT relowner FROM pg_class WHERE oid = 'public.{table}'::regclass))"


NO_IDENTITY_OR_ADMIN = f"(auth.uid() IS NULL OR {ADMIN})"
ADMIN_WRITES = f"FOR ALL TO authenticated USING ({ADMIN}) WITH CHECK ({ADMIN})"


def _policies() -> list[str]:
    p = _policy
    out = [
        # users: yourself (admins: everyone); only admins change a role or an organisation
        p("users", "read_own", f"FOR SELECT TO authenticated USING (users_id = auth.uid() OR {ADMIN})"),
        p("users", "admin_write", ADMIN_WRITES),
        p("users", "service_read", f"FOR SELECT TO {SERVICE} USING (true)"),
        *_service_writes("users", NO_IDENTITY_OR_ADMIN),
        # organisations: your own (admins: all)
        p(
            "organisations",
            "read_own",
            "FOR SELECT TO authenticated USING "
            f"(organisation_id = public.get_user_organisation_id(auth.uid()) OR {ADMIN})",
        ),
        p("organisations", "admin_write", ADMIN_WRITES),
        p("organisations", "service_read", f"FOR SELECT TO {SERVICE} USING (true)"),
        *_service_writes("organisations", NO_IDENTITY_OR_ADMIN),
    ]
    for table in ("ai_providers", "ai_models"):  # seed 000 §2.1: "lecture seule"
        out += [
            p(table, "read", "FOR SELECT TO authenticated USING (true)"),
            p(table, "admin_write", ADMIN_WRITES),
            *_service_writes(table, NO_IDENTITY_OR_ADMIN),
        ]
    out += [
        p("aipilot_api_tokens", "service_read", f"FOR SELECT TO {SERVICE} USING (true)"),
        *_service_writes("aipilot_api_tokens", MAY_ACT_FOR),
        # read by aipilot; written only by their owner: the migrations, and the generation's
        # SECURITY DEFINER triggers (whoever else holds write privileges)
        p("alembic_version", "service_read", f"FOR SELECT TO {SERVICE} USING (true)"),
        p("alembic_version", "owner", f"FOR ALL USING ({_owner('alembic_version')})"),
        p("aipilot_config_generation", "service_read", f"FOR SELECT TO {SERVICE} USING (true)"),
        p(
            "aipilot_config_generation",
            "owner_bump",
            f"FOR UPDATE USING ({_owner('aipilot_config_generation')})",
        ),
        # limits: read your own (admins: all); only admins write through the Data API
        p(
            "ai_user_limits",
            "read_own",
            f"FOR SELECT TO authenticated USING (auth.uid() = user_id OR {ADMIN})",
        ),
        p("ai_user_limits", "admin_write", ADMIN_WRITES),
        p(
            "ai_user_limits",
            "service_own",
            f"FOR ALL TO {SERVICE} USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id)",
        ),
    ]
    return out


REVOKES = """
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY %(tables)s LOOP
    EXECUTE format('REVOKE ALL ON %%I FROM anon', t);
  END LOOP;
  FOREACH t IN ARRAY %(internal)s LOOP
    EXECUTE format('REVOKE ALL ON %%I FROM authenticated', t);
  END LOOP;
  REVOKE ALL ON user_provider_credentials FROM authenticated;
  GRANT SELECT (%(status)s), DELETE ON user_provider_credentials TO authenticated;
  -- usage is written by aipilot: a member can neither forge nor delete its own records
  REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ai_usage_logs FROM authenticated;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE WARNING 'aipilot: could not revoke every grant of the API roles (%%)', SQLERRM;
END $$;
"""


def _array(names: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{n}'" for n in names) + "]"


def upgrade() -> None:
    op.add_column(
        "ai_user_limits",
        sa.Column("set_by_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(ROLE_AND_FUNCTIONS)
    op.execute("DROP POLICY IF EXISTS aipilot_config_generation_read ON aipilot_config_generation")
    op.execute("DROP POLICY IF EXISTS ai_user_limits_manage_own ON ai_user_limits")
    for table in AIPILOT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    for statement in _policies():
        op.execute(statement)
    tables = ", ".join(t for t in AIPILOT_TABLES if t not in INTERNAL_TABLES)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {SERVICE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON aipilot_api_tokens TO {SERVICE}")
    op.execute(f"GRANT SELECT ON aipilot_config_generation, alembic_version TO {SERVICE}")
    op.execute(
        REVOKES
        % {
            "tables": _array(AIPILOT_TABLES),
            "internal": _array(INTERNAL_TABLES),
            "status": ", ".join(CREDENTIAL_STATUS_COLUMNS),
        }
    )
    op.execute(LIMIT_GUARD)
    op.execute(CONNEXION_GUARD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS aipilot_guard_openai_connexion ON openai_connexion")
        op.execute("DROP TRIGGER IF EXISTS aipilot_guard_user_limits ON ai_user_limits")
        op.execute("DROP FUNCTION IF EXISTS public.aipilot_guard_openai_connexion()")
        op.execute("DROP FUNCTION IF EXISTS public.aipilot_guard_user_limits()")
        for statement in _policies():
            table, name = statement.split(" ON ", 1)[1].split(" ", 1)[0], statement.split()[2]
            op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
        for table in (
            "users",
            "organisations",
            "ai_providers",
            "ai_models",
            "aipilot_api_tokens",
            "alembic_version",
        ):
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE aipilot_config_generation NO FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY aipilot_config_generation_read ON aipilot_config_generation "
            "FOR SELECT USING (true)"
        )
        op.execute(
            "CREATE POLICY ai_user_limits_manage_own ON ai_user_limits FOR ALL TO authenticated "
            "USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id)"
        )
        op.execute("GRANT SELECT ON aipilot_config_generation TO authenticated")
        op.execute("DROP FUNCTION IF EXISTS public.aipilot_is_admin()")
    op.drop_column("ai_user_limits", "set_by_admin")  # no batch rebuild: 0003's triggers stay
