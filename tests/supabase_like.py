"""A PostgreSQL database shaped like a Supabase project's, and the Data API's statements.

Built from the platform's facts (docs/platform.md): the API roles ``anon``,
``authenticated``, ``service_role`` (BYPASSRLS) and PostgREST's login role (NOINHERIT,
member of the three); a project owner standing in for Supabase's ``postgres`` (not a
superuser, but BYPASSRLS and CREATEROLE) that owns the database; default privileges that
grant every table, sequence and function it creates in ``public`` to the three API roles;
the ``auth`` schema with ``auth.users`` and ``auth.uid()`` / ``auth.role()`` / ``auth.jwt()``
as Supabase defines them. aipilot's schema is then created by ``aipilot init`` connected as
that owner, exactly as an operator would on a real project.

:class:`DataApi` runs a statement as PostgREST runs a request: one transaction, the role and
the JWT claims set with ``set_config(…, true)``, then the statement (a ``json_populate_record``
insert, an ``ON CONFLICT`` upsert, a filtered update or delete), with the SQLSTATE of any
refusal. Roles are cluster-wide: they are created once, under an advisory lock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

OWNER = "supa_postgres"  # Supabase's `postgres`: the project owner, BYPASSRLS, not superuser
AUTHENTICATOR = "authenticator"  # PostgREST's login role, by its name (the guards know it)
AIPILOT_ROLE = "supa_aipilot"  # the role the README recommends aipilot connects as

ROLES = f"""
SELECT pg_advisory_lock(724001);
DO $$
DECLARE spec text[];
BEGIN
  FOREACH spec SLICE 1 IN ARRAY ARRAY[
    ['anon', 'NOLOGIN NOINHERIT'],
    ['authenticated', 'NOLOGIN NOINHERIT'],
    ['service_role', 'NOLOGIN NOINHERIT BYPASSRLS'],
    ['{AUTHENTICATOR}', 'LOGIN NOINHERIT'],
    ['{OWNER}', 'LOGIN CREATEROLE BYPASSRLS'],
    ['{AIPILOT_ROLE}', 'LOGIN']
  ] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = spec[1]) THEN
      EXECUTE format('CREATE ROLE %I %s', spec[1], spec[2]);
    END IF;
  END LOOP;
END $$;
GRANT anon, authenticated, service_role TO {AUTHENTICATOR};
GRANT anon, authenticated, service_role TO {OWNER} WITH ADMIN OPTION;
SELECT pg_advisory_unlock(724001);
"""

# run as a superuser inside the new database (Supabase's own roles own `auth`)
PROJECT = f"""
CREATE SCHEMA auth;
CREATE TABLE auth.users (
  instance_id uuid,
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  aud varchar(255),
  role varchar(255),
  email varchar(255) UNIQUE,
  encrypted_password varchar(255),
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_anonymous boolean NOT NULL DEFAULT false,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now()
);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$f$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$f$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$f$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, {OWNER};
GRANT SELECT ON auth.users TO {OWNER};
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public
  GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public
  GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public
  GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
"""


def ensure_roles(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(ROLES)


def create_project(admin_url: str) -> str:
    """A new database owned by the stand-in for Supabase's ``postgres``; its name."""
    ensure_roles(admin_url)
    name = f"aipilot_supa_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(OWNER)
            )
        )
    with psycopg.connect(url_as(admin_url, database=name), autocommit=True) as conn:
        conn.execute(PROJECT)
    return name


def url_as(url: str, *, database: str | None = None, user: str | None = None) -> str:
    """The same server as ``url``, another database or login role (trust auth here)."""
    parsed = make_url(url.replace("postgresql+psycopg://", "postgresql://"))
    if database is not None:
        parsed = parsed.set(database=database)
    if user is not None:
        parsed = parsed.set(username=user, password=None)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def add_auth_user(url: str, email: str | None, *, anonymous: bool = False) -> uuid.UUID:
    """A Supabase Auth sign-up: a row in auth.users (as the platform writes it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO auth.users (aud, role, email, is_anonymous, raw_user_meta_data) "
            "VALUES ('authenticated', 'authenticated', %s, %s, '{}') RETURNING id",
            (email, anonymous),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


class Refused(Exception):
    """The Data API answered with an error: the SQLSTATE PostgREST puts in ``code``."""

    def __init__(self, sqlstate: str | None, message: str) -> None:
        super().__init__(f"{sqlstate}: {message}")
        self.sqlstate = sqlstate


@dataclass
class DataApi:
    """The statements of ``/rest/v1`` for one database, as PostgREST runs them."""

    url: str  # a URL of the database; the login role is replaced by PostgREST's

    @contextmanager
    def request(
        self, role: str, sub: uuid.UUID | None, *, method: str, path: str, commit: bool = True
    ) -> Iterator[psycopg.Connection[Any]]:
        claims: dict[str, object] = {"role": role, "aud": role}
        if sub is not None:
            claims["sub"] = str(sub)
        with psycopg.connect(url_as(self.url, user=AUTHENTICATOR)) as conn:
            try:
                conn.execute(
                    "SELECT set_config('role', %s, true), "
                    "set_config('request.jwt.claims', %s, true), "
                    "set_config('request.method', %s, true), set_config('request.path', %s, true)",
                    (role, json.dumps(claims), method, path),
                )
                yield conn
            except psycopg.Error as exc:
                conn.rollback()
                raise Refused(exc.sqlstate, str(exc).splitlines()[0]) from None
            if commit:
                conn.commit()
            else:
                conn.rollback()

    def select(
        self,
        role: str,
        sub: uuid.UUID | None,
        table: str,
        columns: str = "*",
        where: Mapping[str, object] | None = None,
    ) -> list[dict[str, Any]]:
        clause, params = _where(where)
        with self.request(role, sub, method="GET", path=f"/{table}") as conn:
            cur = conn.execute(
                sql.SQL("SELECT {} FROM public.{}{}").format(
                    sql.SQL(columns), sql.Identifier(table), clause
                ),
                params,
            )
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def insert(
        self,
        role: str,
        sub: uuid.UUID | None,
        table: str,
        row: Mapping[str, object],
        *,
        on_conflict: Sequence[str] = (),
        commit: bool = True,
    ) -> int:
        """``.insert(row)`` or ``.upsert(row, onConflict: …)``: json_populate_record, as
        PostgREST builds it, so that an omitted column gets its default."""
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in row)
        statement = sql.SQL(
            "INSERT INTO public.{t} ({cols}) SELECT {cols} FROM "
            "json_populate_record(NULL::public.{t}, %s::json)"
        ).format(t=sql.Identifier(table), cols=cols)
        if on_conflict:
            updates = sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in row
            )
            statement += sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in on_conflict), updates
            )
        with self.request(role, sub, method="POST", path=f"/{table}", commit=commit) as conn:
            return conn.execute(statement, (json.dumps(row, default=str),)).rowcount

    def update(
        self,
        role: str,
        sub: uuid.UUID | None,
        table: str,
        values: Mapping[str, object],
        where: Mapping[str, object] | None = None,
        *,
        returning: str,
        commit: bool = True,
    ) -> list[object]:
        """``.update(values).eq(…)``; the ``returning`` column of the rows it changed."""
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values)
        clause, params = _where(where)
        statement = sql.SQL("UPDATE public.{} SET {}{} RETURNING {}").format(
            sql.Identifier(table), sets, clause, sql.Identifier(returning)
        )
        with self.request(role, sub, method="PATCH", path=f"/{table}", commit=commit) as conn:
            return [r[0] for r in conn.execute(statement, [*values.values(), *params])]

    def delete(
        self,
        role: str,
        sub: uuid.UUID | None,
        table: str,
        where: Mapping[str, object] | None = None,
        *,
        returning: str,
        commit: bool = True,
    ) -> list[object]:
        clause, params = _where(where)
        statement = sql.SQL("DELETE FROM public.{}{} RETURNING {}").format(
            sql.Identifier(table), clause, sql.Identifier(returning)
        )
        with self.request(role, sub, method="DELETE", path=f"/{table}", commit=commit) as conn:
            return [r[0] for r in conn.execute(statement, params)]


def _where(where: Mapping[str, object] | None) -> tuple[sql.Composable, list[object]]:
    if not where:
        return sql.SQL(""), []
    parts = [sql.SQL("{} = %s").format(sql.Identifier(c)) for c in where]
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), list(where.values())
