"""The SQL of aipilot's own database objects at the head revision, for ``init --adopt``.

The migrations (alembic/versions) are history and must stay frozen; adoption needs the
sum of that history for one table at a time, created only where missing. This module
states it once. ``tests/db/test_adopt.py`` compares an adopted database's aipilot objects
with a migrated one's, so that the two cannot drift apart.

On PostgreSQL: roles, ``auth.uid()`` where missing, the seed's two helper functions where
missing, aipilot's functions (admin check, configuration generation, the two guards), each
table's row-level security and policies, and the triggers. On SQLite: the configuration
generation's triggers.
"""

from __future__ import annotations

SERVICE = "aipilot_service"
ADMIN = "public.aipilot_is_admin()"
NO_IDENTITY_OR_ADMIN = f"(auth.uid() IS NULL OR {ADMIN})"
MAY_ACT_FOR = f"(auth.uid() IS NULL OR auth.uid() = user_id OR {ADMIN})"
ADMIN_WRITES = f"FOR ALL TO authenticated USING ({ADMIN}) WITH CHECK ({ADMIN})"
OWN = "(auth.uid() = user_id)"

SERVICE_GRANTS = (
    f"DO $$ BEGIN GRANT authenticated TO {SERVICE}; "
    "EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN NULL; END $$",
    f"DO $$ BEGIN EXECUTE format('GRANT {SERVICE} TO %I', current_user); "
    "EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN NULL; END $$",
    "CREATE SCHEMA IF NOT EXISTS auth",
    f"DO $$ BEGIN GRANT USAGE ON SCHEMA public, auth TO {SERVICE}; "
    "EXCEPTION WHEN insufficient_privilege THEN NULL; END $$",
)

AUTH_UID = (
    "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$ SELECT coalesce("
    "nullif(current_setting('request.jwt.claim.sub', true), ''), "
    "(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $f$",
)

IS_ADMIN_PRESENCA = """CREATE FUNCTION public.is_admin_presenca(uid uuid) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $f$
    SELECT EXISTS (SELECT 1 FROM public.users WHERE users_id = uid AND role = 'admin')
  $f$"""

GET_USER_ORGANISATION_ID = """CREATE FUNCTION public.get_user_organisation_id(uid uuid)
  RETURNS uuid LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $f$
    SELECT organisation_id FROM public.users WHERE users_id = uid
  $f$"""

# an admin is who the database's is_admin_presenca() says is one (the app's, when it has it)
IS_ADMIN = f"""CREATE FUNCTION public.aipilot_is_admin() RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $f$
    SELECT coalesce(public.is_admin_presenca(auth.uid()), false)
  $f$;
REVOKE ALL ON FUNCTION public.aipilot_is_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.aipilot_is_admin() TO authenticated, {SERVICE}"""

BUMP = """CREATE FUNCTION public.aipilot_bump_config_generation() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $f$
BEGIN
  UPDATE aipilot_config_generation SET generation = generation + 1 WHERE id = 1;
  RETURN NULL;
END
$f$"""

# the Data API: its roles, or PostgREST's login role (a definer function it called), but not
# the platform's own server key
_API = (
    "(current_user IN ('anon', 'authenticated') "
    "OR (session_user = 'authenticator' AND current_user <> 'service_role'))"
)
LIMIT_GUARD = f"""CREATE FUNCTION public.aipilot_guard_user_limits() RETURNS trigger
  LANGUAGE plpgsql SET search_path = public, pg_temp AS $f$
BEGIN
  IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM public.users WHERE users_id = OLD.user_id)
  THEN
    RETURN OLD;  -- the user is being deleted (ON DELETE CASCADE)
  END IF;
  IF {ADMIN} OR (auth.uid() IS NULL AND NOT ({_API})) THEN
    RETURN coalesce(NEW, OLD);
  END IF;
  IF {_API} THEN
    RAISE EXCEPTION 'only an admin changes limits through the Data API' USING ERRCODE = '42501';
  END IF;
  IF TG_OP = 'INSERT' THEN
    IF NEW.set_by_admin THEN
      RAISE EXCEPTION 'only an admin sets an admin limit' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
  END IF;
  IF OLD.set_by_admin THEN
    IF TG_OP = 'DELETE' OR NOT NEW.set_by_admin
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
END $f$"""

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
CONNEXION_GUARD = f"""CREATE FUNCTION public.aipilot_guard_openai_connexion() RETURNS trigger
  LANGUAGE plpgsql SET search_path = public, pg_temp AS $f$
BEGIN
  IF {ADMIN} OR (auth.uid() IS NULL AND NOT ({_API})) THEN
    RETURN coalesce(NEW, OLD);
  END IF;
  IF ({_API}) OR TG_OP <> 'UPDATE' OR ROW({_OLD}) IS DISTINCT FROM ROW({_NEW}) THEN
    RAISE EXCEPTION 'only an admin changes an organisation''s OpenAI connection'
      USING ERRCODE = '42501';
  END IF;
  RETURN NEW;
END $f$"""

OWN_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("public.aipilot_is_admin()", IS_ADMIN),
    ("public.aipilot_bump_config_generation()", BUMP),
    ("public.aipilot_guard_user_limits()", LIMIT_GUARD),
    ("public.aipilot_guard_openai_connexion()", CONNEXION_GUARD),
)

# table -> the columns whose UPDATE changes a prepared call (None: any column); see 0003
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


def triggers() -> list[tuple[str, str, str]]:
    """(table, trigger name, CREATE TRIGGER) of aipilot's triggers on PostgreSQL."""
    out: list[tuple[str, str, str]] = []
    for table, columns in WATCHED.items():
        update = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
        out.append(
            (
                table,
                "aipilot_config_generation",
                f"CREATE CONSTRAINT TRIGGER aipilot_config_generation AFTER INSERT OR {update} "
                f"OR DELETE ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                "EXECUTE FUNCTION public.aipilot_bump_config_generation()",
            )
        )
        out.append(
            (
                table,
                "aipilot_config_generation_truncate",
                f"CREATE TRIGGER aipilot_config_generation_truncate AFTER TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION public.aipilot_bump_config_generation()",
            )
        )
    for table, function in (
        ("ai_user_limits", "aipilot_guard_user_limits"),
        ("openai_connexion", "aipilot_guard_openai_connexion"),
    ):
        out.append(
            (
                table,
                function,
                f"CREATE TRIGGER {function} BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION public.{function}()",
            )
        )
    return out


def sqlite_triggers() -> list[tuple[str, str, str]]:
    """(table, trigger name, CREATE TRIGGER) of the generation's triggers on SQLite."""
    bump = "UPDATE aipilot_config_generation SET generation = generation + 1 WHERE id = 1"
    out: list[tuple[str, str, str]] = []
    for table, columns in WATCHED.items():
        update = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
        for event, when in (("ins", "INSERT"), ("upd", update), ("del", "DELETE")):
            name = f"aipilot_config_generation_{table}_{event}"
            out.append(
                (table, name, f"CREATE TRIGGER {name} AFTER {when} ON {table} BEGIN {bump}; END")
            )
    return out


# ---------------------------------------------------------------- policies per table
def _p(table: str, name: str, spec: str) -> tuple[str, str]:
    full = f"{table}_{name}"
    return full, f"CREATE POLICY {full} ON {table} {spec}"


def _service_writes(table: str, check: str) -> list[tuple[str, str]]:
    return [
        _p(table, "service_insert", f"FOR INSERT TO {SERVICE} WITH CHECK {check}"),
        _p(table, "service_update", f"FOR UPDATE TO {SERVICE} USING {check} WITH CHECK {check}"),
        _p(table, "service_delete", f"FOR DELETE TO {SERVICE} USING {check}"),
    ]


def _owner(table: str) -> str:
    return (
        "current_user = pg_get_userbyid((SELECT relowner FROM pg_class "
        f"WHERE oid = 'public.{table}'::regclass))"
    )


PER_USER = (
    "user_provider_credentials",
    "ai_provider_configs",
    "ai_system_prompts",
    "ai_user_models_flut",
    "ai_usage_logs",
)


def policies(table: str) -> list[tuple[str, str]]:
    """(name, CREATE POLICY) of aipilot's policies on one of its tables (migrations 0001–4)."""
    p = _p
    if table == "users":
        return [
            p(
                table,
                "read_own",
                f"FOR SELECT TO authenticated USING (users_id = auth.uid() OR {ADMIN})",
            ),
            p(table, "admin_write", ADMIN_WRITES),
            p(table, "service_read", f"FOR SELECT TO {SERVICE} USING (true)"),
            *_service_writes(table, NO_IDENTITY_OR_ADMIN),
        ]
    if table == "organisations":
        return [
            p(
                table,
                "read_own",
                "FOR SELECT TO authenticated USING "
                f"(organisation_id = public.get_user_organisation_id(auth.uid()) OR {ADMIN})",
            ),
            p(table, "admin_write", ADMIN_WRITES),
            p(table, "service_read", f"FOR SELECT TO {SERVICE} USING (true)"),
            *_service_writes(table, NO_IDENTITY_OR_ADMIN),
        ]
    if table in ("ai_providers", "ai_models"):
        return [
            p(table, "read", "FOR SELECT TO authenticated USING (true)"),
            p(table, "admin_write", ADMIN_WRITES),
            *_service_writes(table, NO_IDENTITY_OR_ADMIN),
        ]
    if table in PER_USER:
        return [p(table, "manage_own", f"FOR ALL TO authenticated USING {OWN} WITH CHECK {OWN}")]
    if table == "ai_user_limits":
        return [
            p(
                table,
                "read_own",
                f"FOR SELECT TO authenticated USING (auth.uid() = user_id OR {ADMIN})",
            ),
            p(table, "admin_write", ADMIN_WRITES),
            p(table, "service_own", f"FOR ALL TO {SERVICE} USING {OWN} WITH CHECK {OWN}"),
        ]
    if table == "aipilot_api_tokens":
        return [
            p(table, "service_read", f"FOR SELECT TO {SERVICE} USING (true)"),
            *_service_writes(table, MAY_ACT_FOR),
        ]
    if table == "aipilot_config_generation":
        return [
            p(table, "service_read", f"FOR SELECT TO {SERVICE} USING (true)"),
            p(table, "owner_bump", f"FOR UPDATE USING ({_owner(table)})"),
        ]
    if table == "openai_connexion":  # the seed's two, verbatim
        return [
            (
                "admin_presenca_full_access_openai_connexion",
                "CREATE POLICY admin_presenca_full_access_openai_connexion ON openai_connexion "
                "FOR ALL USING (is_admin_presenca(auth.uid())) "
                "WITH CHECK (is_admin_presenca(auth.uid()))",
            ),
            (
                "organisation_only_access_openai_connexion",
                "CREATE POLICY organisation_only_access_openai_connexion ON openai_connexion "
                "FOR ALL USING (organisation_id = get_user_organisation_id(auth.uid())) "
                "WITH CHECK (organisation_id = get_user_organisation_id(auth.uid()))",
            ),
        ]
    return []


def service_policies(table: str) -> list[tuple[str, str]]:
    """Policies for aipilot_service alone on one of the app's tables: aipilot looks up users,
    the catalog and organisations before it knows who acts, and acts on a user's own rows;
    the app's own policies, and what the API roles may do, are left as they are."""
    name = f"{table}_aipilot_service"
    if table in ("users", "organisations", "ai_providers", "ai_models"):
        return [
            (
                f"{name}_read",
                f"CREATE POLICY {name}_read ON {table} FOR SELECT TO {SERVICE} USING (true)",
            ),
            (
                f"{name}_write",
                f"CREATE POLICY {name}_write ON {table} FOR ALL TO {SERVICE} "
                f"USING {NO_IDENTITY_OR_ADMIN} WITH CHECK {NO_IDENTITY_OR_ADMIN}",
            ),
        ]
    if table in PER_USER:
        return [
            (
                f"{name}_own",
                f"CREATE POLICY {name}_own ON {table} FOR ALL TO {SERVICE} "
                f"USING {OWN} WITH CHECK {OWN}",
            )
        ]
    return []


INTERNAL = ("aipilot_api_tokens", "aipilot_config_generation")
CREDENTIAL_STATUS_COLUMNS = (
    "id, user_id, provider_key, key_hint, last_tested_at, last_test_ok, last_test_error, "
    "created_at, updated_at"
)

SEED_AUDIT = """CREATE FUNCTION public.aipilot_openai_connexion_created() RETURNS trigger
  LANGUAGE plpgsql AS $f$
BEGIN
  NEW.openai_created_at := now();
  NEW.openai_created_by := coalesce(NEW.openai_created_by, auth.uid());
  NEW.openai_updated_at := now();
  NEW.openai_updated_by := coalesce(NEW.openai_updated_by, auth.uid());
  RETURN NEW;
END $f$;
CREATE FUNCTION public.aipilot_openai_connexion_updated() RETURNS trigger
  LANGUAGE plpgsql AS $f$
BEGIN
  NEW.openai_created_at := OLD.openai_created_at;
  NEW.openai_created_by := OLD.openai_created_by;
  NEW.openai_updated_at := now();
  NEW.openai_updated_by := coalesce(auth.uid(), NEW.openai_updated_by);
  RETURN NEW;
END $f$;
CREATE TRIGGER aipilot_openai_connexion_created BEFORE INSERT ON openai_connexion
  FOR EACH ROW EXECUTE FUNCTION public.aipilot_openai_connexion_created();
CREATE TRIGGER aipilot_openai_connexion_updated BEFORE UPDATE ON openai_connexion
  FOR EACH ROW EXECUTE FUNCTION public.aipilot_openai_connexion_updated()"""


def table_security(table: str) -> list[str]:
    """Row-level security, policies and grants of a table the adoption creates."""
    out = [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        *(sql for _, sql in policies(table)),
        f"REVOKE ALL ON {table} FROM anon",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SERVICE}",
    ]
    if table in INTERNAL:
        out.append(f"REVOKE ALL ON {table} FROM authenticated")
    if table == "aipilot_config_generation":
        out.append(f"REVOKE INSERT, UPDATE, DELETE ON {table} FROM {SERVICE}")
    if table == "user_provider_credentials":
        out += [
            f"REVOKE ALL ON {table} FROM authenticated",
            f"GRANT SELECT ({CREDENTIAL_STATUS_COLUMNS}), DELETE ON {table} TO authenticated",
        ]
    if table == "ai_usage_logs":
        out.append(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {table} FROM authenticated")
    if table == "openai_connexion":  # the seed's audit fields, under aipilot's own names
        out.append(SEED_AUDIT)
    return out
