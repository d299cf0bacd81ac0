"""``aipilot init --adopt``: take over a database that already holds the seed's tables.

The existing system (the seed's React and Flutter apps on Supabase) has ``ai_providers``,
``ai_models``, ``user_provider_credentials``, ``ai_provider_configs``, ``ai_system_prompts``,
``ai_user_models_flut``, ``openai_connexion``, ``organisations`` and ``users`` with its own
rows, policies, functions and triggers. Adoption inspects what is there and, in ONE
transaction, adds only what aipilot needs and is missing:

- tables aipilot has and the database lacks, created as the migrations would (with their
  row-level security on PostgreSQL);
- columns aipilot reads and a table lacks, always NULLable (with aipilot's default, which
  PostgreSQL applies without rewriting a row);
- the unique indexes aipilot relies on, under names of its own (``aipilot_uq_…``);
- aipilot's functions, triggers, roles, grants and policies, under names of its own
  (``aipilot_…``), each only where missing — and ``auth.uid()``, ``is_admin_presenca()``,
  ``get_user_organisation_id()`` only where the database has none;
- aipilot's revision, stamped, so that ``aipilot db upgrade`` works from then on, and a
  record of the adoption (``aipilot_adoption``).

It never drops, renames or retypes a column, never replaces a function, trigger or policy
it did not create, never changes a table's row-level security setting, and never writes a
row of the app's tables. Where the existing schema cannot serve (a column of another type,
rows that break a uniqueness aipilot needs, a required column aipilot cannot fill), it
refuses before changing anything, naming the table, the column, what it found and what it
needs. ``--dry-run`` prints the same plan and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aipilot.db.engine import Database, translate_db_errors
from aipilot.db.models import Base
from aipilot.db.revision import HEAD_REVISION

SEED_TABLES = (
    "organisations",
    "users",
    "ai_providers",
    "ai_models",
    "user_provider_credentials",
    "ai_system_prompts",
    "ai_provider_configs",
    "ai_user_models_flut",
    "openai_connexion",
)
MARKER = "aipilot_adoption"
# (table, columns, refuse when impossible): the uniqueness aipilot's writes rely on
UNIQUES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("ai_providers", ("provider_key",), True),
    ("user_provider_credentials", ("user_id", "provider_key"), True),
    ("ai_provider_configs", ("user_id", "module_name"), True),
    ("ai_models", ("provider_id", "model_key"), False),
    ("ai_system_prompts", ("user_id", "name"), False),
    ("users", ("username",), False),
)
# tables aipilot inserts rows into, as opposed to only reading or updating them
INSERTED = (
    "user_provider_credentials",
    "ai_provider_configs",
    "ai_system_prompts",
    "ai_user_models_flut",
)


@dataclass(frozen=True)
class Step:
    kind: str  # role, function, table, column, unique, security, trigger, stamp
    what: str  # one line for people
    sql: tuple[str, ...] = ()


STRUCTURE = ("function", "table", "column", "unique", "trigger")  # what `db check` requires


@dataclass
class Plan:
    database: str
    adopted: list[str] = field(default_factory=list)  # existing tables taken as they are
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    applied: bool = False

    def add(self, kind: str, what: str, *sql: str) -> None:
        self.steps.append(Step(kind, what, tuple(sql)))


# ---------------------------------------------------------------- the use case
def adopt(db: Database, *, dry_run: bool = False) -> Plan:
    """Inspect, then (unless ``dry_run``) apply the plan in one transaction and stamp."""
    with translate_db_errors(db), db.engine.execution_options(aipilot_write=True).begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x6169_7069_6C6F_74})
        plan = inspect_database(conn, db.describe())
        if plan.refusals or dry_run:
            conn.rollback()
            return plan
        escape = db.dialect == "postgresql"  # psycopg reads % as a placeholder (format's %I)
        for step in plan.steps:
            for statement in step.sql:
                conn.exec_driver_sql(statement.replace("%", "%%") if escape else statement)
        plan.applied = True
    return plan


def is_adopted(conn: Connection) -> bool:
    return sa.inspect(conn).has_table(MARKER)


def foreign_tables(conn: Connection) -> list[str]:
    """Seed tables present in a database without aipilot's revision: not aipilot's own."""
    inspector = sa.inspect(conn)
    if inspector.has_table("alembic_version"):
        return []
    return [t for t in SEED_TABLES if inspector.has_table(t)]


# ---------------------------------------------------------------- inspection
def inspect_database(conn: Connection, described: str, *, check_only: bool = False) -> Plan:
    """The plan for this database; ``check_only``: what an adopted database still lacks."""
    plan = Plan(described)
    inspector = sa.inspect(conn)
    pg = conn.dialect.name == "postgresql"
    if inspector.has_table("alembic_version") and not check_only:
        plan.refusals.append(
            "the database already has aipilot's schema (alembic_version): nothing to adopt; "
            "use `aipilot db upgrade`"
        )
        return plan
    existing = [t for t in Base.metadata.sorted_tables if inspector.has_table(t.name)]
    if not existing:
        plan.refusals.append(
            "the database holds none of the seed's tables: nothing to adopt; use `aipilot init`"
        )
        return plan
    if pg:
        _roles(conn, plan)
    for table in Base.metadata.sorted_tables:
        if table in existing:
            plan.adopted.append(table.name)
            _adopt_columns(conn, inspector, table, plan)
        else:
            _create_table(conn, table, plan)
    for table_name, columns, required in UNIQUES:
        _unique(conn, inspector, table_name, columns, required=required, plan=plan)
    created = [t.name for t in Base.metadata.sorted_tables if t not in existing]
    if pg:  # after the tables: SQL functions are checked against the tables they read
        _functions(conn, plan)
        _security(conn, plan, created=created)
        if "openai_connexion" in plan.adopted:
            plan.warnings.append(
                "openai_connexion: the seed's policies let an organisation's members write "
                "its row; aipilot's guard (aipilot_guard_openai_connexion) lets only admins "
                "change it through the Data API from now on"
            )
    _triggers(conn, plan)
    if not check_only:
        _stamp(conn, plan)
    return plan


def missing(db: Database) -> list[str]:
    """What an adopted database lacks of aipilot's structure (for `aipilot db check`)."""
    with translate_db_errors(db), db.engine.connect() as conn:
        plan = inspect_database(conn, db.describe(), check_only=True)
        conn.rollback()
    return plan.refusals + [s.what for s in plan.steps if s.kind in STRUCTURE]


def _type_family(type_: Any) -> str:
    """What a column holds, for compatibility: uuid, text, integer, numeric, boolean, time, json."""
    if isinstance(type_, sa.ARRAY):
        return "array"
    affinity = getattr(type_, "_type_affinity", type(type_))
    name = affinity.__name__.lower() if isinstance(affinity, type) else str(affinity)
    for family, names in (
        ("uuid", ("uuid",)),
        ("text", ("string", "text", "unicode")),
        ("integer", ("integer", "biginteger", "smallinteger")),
        ("numeric", ("numeric", "float")),
        ("boolean", ("boolean",)),
        ("time", ("datetime", "date", "time")),
        ("json", ("json",)),
    ):
        if any(n in name for n in names):
            return family
    return name


def _wanted_type(conn: Connection, column: sa.Column[Any]) -> Any:
    return column.type.dialect_impl(conn.dialect)


def _adopt_columns(conn: Connection, inspector: Any, table: sa.Table, plan: Plan) -> None:
    found = {c["name"]: c for c in inspector.get_columns(table.name)}
    for column in table.columns:
        have = found.get(column.name)
        wanted = _wanted_type(conn, column)
        if have is None:
            ddl = wanted.compile(dialect=conn.dialect)
            default = _default_sql(conn, column)
            if default and conn.dialect.name == "sqlite" and not _constant(default):
                default = None  # SQLite adds columns with constant defaults only
            suffix = f" DEFAULT {default}" if default else ""
            plan.add(
                "column",
                f"add column {table.name}.{column.name} ({ddl}, NULL{suffix})",
                f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl}{suffix}',
            )
            continue
        if _type_family(have["type"]) != _type_family(wanted) and not _sqlite_lenient(conn, have):
            plan.refusals.append(
                f"{table.name}.{column.name} is {have['type']}, aipilot needs "
                f"{wanted.compile(dialect=conn.dialect)}: change the column's type or move "
                "the table aside, then adopt again"
            )
    known = {c.name for c in table.columns}
    if table.name in INSERTED:
        for name, info in found.items():
            if name not in known and not info["nullable"] and info.get("default") is None:
                if info.get("autoincrement") is True:
                    continue
                plan.refusals.append(
                    f"{table.name}.{name} is NOT NULL without a default, and aipilot does not "
                    f"know it: aipilot could not add rows to {table.name}; give it a default "
                    f"(ALTER TABLE {table.name} ALTER COLUMN {name} SET DEFAULT …) or allow "
                    "NULL, then adopt again"
                )


def _sqlite_lenient(conn: Connection, have: dict[str, Any]) -> bool:
    """SQLite stores what it is given: declared types other than aipilot's still hold text."""
    return conn.dialect.name == "sqlite" and _type_family(have["type"]) in ("text", "numeric")


def _constant(sql: str) -> bool:
    return (
        sql.startswith("'")
        or sql.lstrip("-").replace(".", "", 1).isdigit()
        or sql
        in (
            "true",
            "false",
            "0",
            "1",
        )
    )


def _default_sql(conn: Connection, column: sa.Column[Any]) -> str | None:
    default = column.server_default
    if default is None:
        return None
    arg = getattr(default, "arg", None)
    if isinstance(arg, str):
        return "'" + arg.replace("'", "''") + "'"
    if arg is not None:
        return str(arg.compile(dialect=conn.dialect))
    return None


def _create_table(conn: Connection, table: sa.Table, plan: Plan) -> None:
    from sqlalchemy.schema import CreateIndex, CreateTable

    statements = [str(CreateTable(table).compile(dialect=conn.dialect)).strip()]
    statements += [str(CreateIndex(i).compile(dialect=conn.dialect)) for i in table.indexes]
    if conn.dialect.name == "postgresql":
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and _type_family(pk[0].type) == "uuid":
            statements.append(
                f"ALTER TABLE {table.name} ALTER COLUMN {pk[0].name} SET DEFAULT gen_random_uuid()"
            )
        if "user_id" in table.columns:
            statements.append(
                f"ALTER TABLE {table.name} ALTER COLUMN user_id SET DEFAULT auth.uid()"
            )
    if table.name == "aipilot_config_generation":
        statements.append(f"INSERT INTO {table.name} (id, generation) VALUES (1, 0)")
    plan.add("table", f"create table {table.name}", *statements)


def _unique(
    conn: Connection,
    inspector: Any,
    table: str,
    columns: tuple[str, ...],
    *,
    required: bool,
    plan: Plan,
) -> None:
    if table not in plan.adopted:
        return  # created by the plan, with its constraints
    wanted = set(columns)
    have_cols = {c["name"] for c in inspector.get_columns(table)}
    pk = set(inspector.get_pk_constraint(table).get("constrained_columns") or ())
    uniques = [set(u["column_names"]) for u in inspector.get_unique_constraints(table)]
    indexes = [
        set(i["column_names"])
        for i in inspector.get_indexes(table)
        if i.get("unique") and not _partial(i)
    ]
    if wanted == pk or wanted in uniques or wanted in indexes:
        return
    name = f"aipilot_uq_{table}_{'_'.join(columns)}"
    if not wanted <= have_cols:  # a column the plan adds: empty, so unique
        plan.add(
            "unique",
            f"unique index {name}",
            f"CREATE UNIQUE INDEX {name} ON {table} ({', '.join(columns)})",
        )
        return
    cols = ", ".join(columns)
    dupes = conn.execute(
        sa.text(f"SELECT {cols}, count(*) FROM {table} GROUP BY {cols} HAVING count(*) > 1 LIMIT 3")
    ).all()
    if dupes:
        message = (
            f"{table} has rows sharing ({cols}), e.g. {tuple(dupes[0])[:-1]}: aipilot needs one "
            f"row per ({cols})"
        )
        if required:
            plan.refusals.append(message + "; merge the duplicates, then adopt again")
        else:
            plan.warnings.append(message + "; aipilot works without the index")
        return
    plan.add("unique", f"unique index {name}", f"CREATE UNIQUE INDEX {name} ON {table} ({cols})")


def _partial(index: dict[str, Any]) -> bool:
    options = index.get("dialect_options") or {}
    return any(options.get(k) is not None for k in ("postgresql_where", "sqlite_where"))


def _stamp(conn: Connection, plan: Plan) -> None:
    now = datetime.now(UTC).isoformat()
    record = json.dumps({"adopted": plan.adopted, "steps": [s.what for s in plan.steps]})
    record_sql = record.replace("'", "''")
    plan.add(
        "stamp",
        f"stamp revision {HEAD_REVISION} and record the adoption ({MARKER})",
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
        f"INSERT INTO alembic_version (version_num) VALUES ('{HEAD_REVISION}')",
        f"CREATE TABLE {MARKER} (id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), "
        "adopted_at TEXT NOT NULL, plan TEXT NOT NULL)",
        f"INSERT INTO {MARKER} (id, adopted_at, plan) VALUES (1, '{now}', '{record_sql}')",
    )
    if conn.dialect.name == "postgresql":
        plan.add(
            "security",
            "row-level security on alembic_version and the record: aipilot only",
            *_internal_security("alembic_version"),
            *_internal_security(MARKER),
        )


# ---------------------------------------------------------------- PostgreSQL: security
def _exists(conn: Connection, sql: str, **params: object) -> bool:
    return bool(conn.execute(sa.text(sql), params).scalar())


def _function_exists(conn: Connection, signature: str) -> bool:
    return _exists(conn, "SELECT to_regprocedure(:s) IS NOT NULL", s=signature)


def _roles(conn: Connection, plan: Plan) -> None:
    from aipilot.db import adopt_sql

    for role in ("anon", "authenticated", "aipilot_service"):
        if not _exists(conn, "SELECT 1 FROM pg_roles WHERE rolname = :r", r=role):
            plan.add("role", f"role {role}", f"CREATE ROLE {role} NOLOGIN")
    plan.add(
        "role",
        "aipilot_service: a member of authenticated, granted to this role",
        *adopt_sql.SERVICE_GRANTS,
    )


def _functions(conn: Connection, plan: Plan) -> None:
    from aipilot.db import adopt_sql

    if not _function_exists(conn, "auth.uid()"):
        plan.add("function", "auth.uid(), as Supabase defines it", *adopt_sql.AUTH_UID)
    for signature, sql in (
        ("public.is_admin_presenca(uuid)", adopt_sql.IS_ADMIN_PRESENCA),
        ("public.get_user_organisation_id(uuid)", adopt_sql.GET_USER_ORGANISATION_ID),
    ):
        if _function_exists(conn, signature):
            plan.warnings.append(f"{signature} is the app's: aipilot uses it as it is")
        else:
            plan.add("function", f"function {signature}", sql)
    for signature, sql in adopt_sql.OWN_FUNCTIONS:
        if not _function_exists(conn, signature):
            plan.add("function", f"function {signature} (aipilot's)", sql)


def _security(conn: Connection, plan: Plan, *, created: list[str]) -> None:
    from aipilot.db import adopt_sql

    for table in created:
        plan.add(
            "security",
            f"row-level security and policies on {table}",
            *adopt_sql.table_security(table),
        )
    for table in plan.adopted:
        rls = conn.execute(
            sa.text("SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(:t)"),
            {"t": f"public.{table}"},
        ).scalar()
        if not rls:
            plan.warnings.append(
                f"{table} has no row-level security: on Supabase anyone holding the anon key "
                "can read and write it; aipilot leaves that to the app"
            )
        policies = set(
            conn.execute(
                sa.text("SELECT policyname FROM pg_policies WHERE tablename = :t"), {"t": table}
            ).scalars()
        )
        missing = [p for p in adopt_sql.service_policies(table) if p[0] not in policies]
        statements = [sql for _, sql in missing]
        statements.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO aipilot_service")
        plan.add(
            "security",
            f"aipilot's own policies and grant on {table} (for aipilot_service only)",
            *statements,
        )


def _internal_security(table: str) -> list[str]:
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY {table}_service_read ON {table} FOR SELECT TO aipilot_service USING (true)",
        f"CREATE POLICY {table}_owner ON {table} FOR ALL USING (current_user = "
        f"pg_get_userbyid((SELECT relowner FROM pg_class WHERE oid = 'public.{table}'::regclass)))",
        f"REVOKE ALL ON {table} FROM anon, authenticated",
        f"GRANT SELECT ON {table} TO aipilot_service",
    ]


def _triggers(conn: Connection, plan: Plan) -> None:
    from aipilot.db import adopt_sql

    if conn.dialect.name == "postgresql":
        query = (
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal"
        )
        wanted = adopt_sql.triggers()
    else:
        query = "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"
        wanted = adopt_sql.sqlite_triggers()
    have = {(r[0], r[1]) for r in conn.execute(sa.text(query))}
    for table, name, sql in wanted:
        if (table, name) not in have:
            plan.add("trigger", f"trigger {name} on {table} (aipilot's)", sql)


def describe_plan(plan: Plan) -> Iterable[str]:
    """The plan as lines for people."""
    yield from (f"adopt {t} as it is" for t in plan.adopted)
    yield from (s.what for s in plan.steps)
