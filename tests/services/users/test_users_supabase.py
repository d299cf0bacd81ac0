"""Supabase Auth users are aipilot users: `users add NAME --id UUID`, `users import`.

On a Supabase-like database (tests/supabase_like.py) ids are ``auth.users`` ids: the first
admin found by e-mail, `users add` by id or e-mail, `users import` for every sign-up not
known yet. On SQLite and plain PostgreSQL any UUID may be given with ``--id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from aipilot.errors import ExitCode
from tests.conftest import CliFn, PgServer, make_cli, pg_backend
from tests.supabase_like import OWNER, add_auth_user, create_project, url_as

ADMIN = "ada@example.test"


# ------------------------------------------------------------------ any database
def _users(cli: CliFn, as_user: str = "alice") -> dict[str, str]:
    listed = cli("--json", "users", "list", user=as_user)
    assert listed.exit_code == 0, listed.stderr
    return {u["username"]: u["user_id"] for u in listed.json()["users"]}


def test_add_with_an_id_keeps_that_id(cli: CliFn) -> None:
    wanted = uuid.uuid4()
    added = cli("--json", "users", "add", "bob", "--id", str(wanted))
    assert added.exit_code == 0, added.stderr
    assert added.json()["user"]["user_id"] == str(wanted) == _users(cli)["bob"]
    as_bob = cli("--json", "status", user=str(wanted))  # the id works as --user
    assert as_bob.exit_code == 0 and as_bob.json()["user"] == "bob"


def test_add_with_a_uuid_for_a_name_uses_it_as_the_id(cli: CliFn) -> None:
    wanted = str(uuid.uuid4())
    assert cli("users", "add", wanted).exit_code == 0
    assert _users(cli)[wanted] == wanted


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--id", "not-a-uuid"), ExitCode.USAGE, "is not a UUID"),
        (("--id", ""), ExitCode.USAGE, "is not a UUID"),
    ],
)
def test_a_bad_id_is_refused_and_nothing_is_added(
    cli: CliFn, args: tuple[str, ...], code: int, words: str
) -> None:
    before = _users(cli)
    refused = cli("users", "add", "bob", *args)
    assert refused.exit_code == code and words in refused.stderr
    assert "Traceback" not in refused.stderr and _users(cli) == before


def test_a_taken_id_is_a_conflict(cli: CliFn) -> None:
    alice = _users(cli)["alice"]
    refused = cli("users", "add", "bob", "--id", alice)
    assert refused.exit_code == ExitCode.CONFLICT and "already registered" in refused.stderr
    assert "bob" not in _users(cli)


def test_import_needs_a_supabase_project(cli: CliFn) -> None:
    refused = cli("users", "import")
    assert refused.exit_code == ExitCode.USAGE and "auth.users" in refused.stderr


def test_members_cannot_add_or_import(cli: CliFn) -> None:
    assert cli("users", "add", "bob").exit_code == 0
    for attempt in (("users", "add", "eve"), ("users", "import")):
        assert cli(*attempt, user="bob").exit_code == ExitCode.PERMISSION


# ------------------------------------------------------------------ a Supabase project
@pytest.fixture
def supabase(pg_server: PgServer | None) -> Iterator[tuple[str, CliFn]]:
    """A Supabase-like project with three sign-ups; aipilot initialised by ada's e-mail."""
    pg_backend(pg_server)
    assert pg_server is not None
    server = url_as(pg_server.url_for("postgres"))
    name = create_project(server)
    admin_url = url_as(server, database=name)
    for email in (ADMIN, "max@example.test", "oli@example.test"):
        add_auth_user(admin_url, email)
    add_auth_user(admin_url, None, anonymous=True)
    cli = make_cli(url_as(admin_url, user=OWNER))
    assert cli("init", user=ADMIN).exit_code == 0
    yield admin_url, cli
    pg_server.drop(name)


def _auth_ids(admin_url: str) -> dict[str | None, str]:
    with psycopg.connect(admin_url) as conn:
        return {r[0]: str(r[1]) for r in conn.execute("SELECT email, id FROM auth.users")}


def test_the_first_admin_is_the_supabase_user_with_that_email(
    supabase: tuple[str, CliFn],
) -> None:
    admin_url, cli = supabase
    assert _users(cli, ADMIN)[ADMIN] == _auth_ids(admin_url)[ADMIN]


def test_add_finds_a_supabase_user_by_email_or_id(supabase: tuple[str, CliFn]) -> None:
    admin_url, cli = supabase
    ids = _auth_ids(admin_url)
    assert cli("users", "add", "MAX@example.test", user=ADMIN).exit_code == 0
    assert cli("users", "add", ids["oli@example.test"], "--admin", user=ADMIN).exit_code == 0
    users = _users(cli, ADMIN)
    assert users["MAX@example.test"] == ids["max@example.test"]
    assert users["oli@example.test"] == ids["oli@example.test"]  # named by its e-mail


def test_add_refuses_what_supabase_auth_does_not_know(supabase: tuple[str, CliFn]) -> None:
    _, cli = supabase
    before = _users(cli, ADMIN)
    unknown = cli("users", "add", "ghost@example.test", user=ADMIN)
    assert unknown.exit_code == ExitCode.USAGE and "--id" in unknown.stderr
    stranger = cli("users", "add", "ghost", "--id", str(uuid.uuid4()), user=ADMIN)
    assert stranger.exit_code == ExitCode.USAGE and "no Supabase Auth user" in stranger.stderr
    assert _users(cli, ADMIN) == before


def test_import_registers_every_new_signup_once(supabase: tuple[str, CliFn]) -> None:
    admin_url, cli = supabase
    ids = _auth_ids(admin_url)
    dry = cli("--json", "users", "import", "--dry-run", user=ADMIN)
    assert dry.exit_code == 0, dry.stderr
    assert {u["username"] for u in dry.json()["added"]} == {"max@example.test", "oli@example.test"}
    assert [s["reason"] for s in dry.json()["skipped"]] == ["anonymous sign-in (no e-mail)"]
    assert set(_users(cli, ADMIN)) == {ADMIN}  # the dry run changed nothing
    done = cli("--json", "users", "import", user=ADMIN)
    assert done.exit_code == 0 and len(done.json()["added"]) == 2
    users = _users(cli, ADMIN)
    assert {users[e] for e in ("max@example.test", "oli@example.test")} == {
        ids["max@example.test"],
        ids["oli@example.test"],
    }
    again = cli("--json", "users", "import", user=ADMIN)
    assert again.json()["added"] == [] and len(again.json()["skipped"]) == 1
    roles = cli("--json", "users", "list", user=ADMIN).json()["users"]
    assert {u["username"]: u["role"] for u in roles}["max@example.test"] == "member"


def test_import_skips_a_name_already_taken(supabase: tuple[str, CliFn]) -> None:
    admin_url, cli = supabase
    assert (
        cli(
            "users",
            "add",
            "max@example.test",
            "--id",
            _auth_ids(admin_url)["max@example.test"],
            user=ADMIN,
        ).exit_code
        == 0
    )
    add_auth_user(admin_url, "late@example.test")
    done = cli("--json", "users", "import", user=ADMIN).json()
    assert {u["username"] for u in done["added"]} == {"oli@example.test", "late@example.test"}
