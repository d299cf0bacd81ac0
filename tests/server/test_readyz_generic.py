"""An unauthenticated caller learns nothing about where the database is.

`/readyz` (and any route whose token check fails on a database that is down) answers 503
with a generic error and the error's class; the host, port, database name or file path go
to the server's log only. On PostgreSQL (nothing listens on a free port) and SQLite (a file
that is not a database).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests import holes_support
from tests.holes_support import KEYS, Server
from tests.providers_catalog import sql
from tests.serve_support import free_port

server = holes_support.server  # fixture
fake = holes_support.fake  # fixture


def down_url(kind: str, tmp_path: Path) -> tuple[str, list[str]]:
    """A database URL that cannot be reached, and the words that locate it."""
    name = f"secretdb{uuid.uuid4().hex[:12]}"
    if kind == "postgresql":
        port = str(free_port())
        return f"postgresql://aipilot:pw-{name}@127.0.0.1:{port}/{name}", [name, port, "127.0.0.1"]
    folder = tmp_path / f"dir{uuid.uuid4().hex[:8]}"
    folder.mkdir(mode=0o700)
    garbage = folder / f"{name}.db"
    garbage.write_bytes(b"not a database " * 512)
    garbage.chmod(0o600)
    return f"sqlite:///{garbage}", [name, folder.name, str(tmp_path)]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_readyz_names_no_host_port_or_database(kind: str, tmp_path: Path) -> None:
    url, words = down_url(kind, tmp_path)
    srv = Server(url, tmp_path / "srv").start(wait_for="/healthz")
    try:
        with srv.client() as http:
            ready = http.get("/readyz")
            anonymous = http.post(
                KEYS, json={"action": "get-status"}, headers={"Authorization": "Bearer aip_x"}
            )
    finally:
        assert srv.stop() == 0
    assert ready.status_code == 503
    doc = ready.json()
    assert doc["status"] == "unavailable" and doc["error"] == "database unavailable"
    assert doc["error_class"] == "DatabaseError"
    assert anonymous.status_code == 503 and anonymous.json()["success"] is False
    for answer in (ready, anonymous):
        assert [w for w in words if w in answer.text] == [], answer.text
    log = srv.output()
    assert words[0] in log  # the reason, with the database's name, is in the server's log
    assert f"pw-{words[0]}" not in log


def test_readyz_when_the_database_answers(server: Server) -> None:
    with server.client() as http:
        assert http.get("/readyz").json()["status"] == "ready"


def cut_off(database_url: str) -> list[str]:
    """Make the test's database unusable under a running server; the words that locate it."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            extra.unlink(missing_ok=True)
        path.write_bytes(b"not a database " * 512)
        return [path.name, str(path.parent)]
    name = str(url.database)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    sql(admin, f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    sql(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n", n=name)
    return [name, f"{url.host}:{url.port or 5432}"]


def test_a_database_lost_under_a_running_server_is_not_located(
    server: Server, database_url: str
) -> None:
    words = cut_off(database_url)
    with server.client() as http:
        ready = http.get("/readyz")
        anonymous = http.post(
            KEYS, json={"action": "get-status"}, headers={"Authorization": "Bearer aip_x"}
        )
    if database_url.startswith("postgresql"):  # SQLite answers SELECT 1 without its file
        assert ready.status_code == 503 and ready.json()["error"] == "database unavailable"
    assert anonymous.status_code == 503 and anonymous.json()["code"] == "database"
    assert anonymous.json()["error"] == "database unavailable"
    for answer in (ready, anonymous):
        assert [w for w in words if w in answer.text] == [], answer.text
    assert words[0] in server.output()
