"""Shared helpers of the issue-13 "other holes" tests: a real `aipilot serve` process, the
fake provider pointed at the test's database, a silent listener, canaries, tokens.

The server gets the database, a master key, the internal token, a JWT secret and
AIPILOT_DEBUG=1 (the debug loggers are on), plus whatever ``env`` a test passes
(``"<unset>"`` removes a variable). It listens on 127.0.0.1 on a free port; SIGTERM stops
it (exit 0 is graceful).
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import pytest

from tests.conftest import CliFn
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.providers_catalog import point_catalog_at, sql
from tests.serve_support import ServeProcess

INTERNAL = "internal-" + uuid.uuid4().hex
JWT_SECRET = "jwt-secret-" + uuid.uuid4().hex
KEYS = "/functions/v1/ai-keys-manager"
ASSIST = "/functions/v1/assist_flut"
CONFIG_TEST = "/functions/v1/ai-config-test"
COMPLETIONS = "/v1/chat/completions"


def canary() -> str:
    return f"sk-aipilot-CANARY-{uuid.uuid4()}"


@dataclass
class Server(ServeProcess):
    """tests/serve_support.py's server with an internal token and a JWT secret set
    (``"<unset>"`` in ``env`` removes one); ``canaries`` are swept from its output."""

    canaries: list[str] = field(default_factory=list)

    def start(self, *, wait_for: str = "/readyz") -> Server:
        wanted = {"AIPILOT_INTERNAL_TOKEN": INTERNAL, "AIPILOT_JWT_SECRET": JWT_SECRET, **self.env}
        self.env = {k: v for k, v in wanted.items() if v != "<unset>"}
        super().start(wait_for=wait_for)
        return self

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


@pytest.fixture
def server(database_url: str, fake: FakeProvider, tmp_path: Path) -> Iterator[Server]:
    """A running server; after the test: graceful exit 0, no canary and no traceback in
    its output."""
    srv = Server(database_url, tmp_path / "server").start()
    yield srv
    code = srv.stop()
    out = srv.output()
    assert code == 0, out
    assert "Traceback" not in out, out
    for secret in srv.canaries:
        assert find_leaks(out, secret) == [], "canary in the server's log"


def token_for(cli: CliFn, user: str = "alice") -> str:
    result = cli("tokens", "create", user=user)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def store_key(cli: CliFn, user: str = "alice", provider: str = "openai") -> str:
    secret = canary()
    result = cli("keys", "set", provider, "--stdin", "--no-test", input=secret, user=user)
    assert result.exit_code == 0, result.stderr
    return secret


def user_id(database_url: str, name: str) -> str:
    rows = sql(database_url, "SELECT users_id FROM users WHERE username = :u", u=name)
    return str(uuid.UUID(str(rows[0][0])))


def usage_rows(database_url: str, kind: str = "chat") -> int:
    rows = sql(database_url, "SELECT count(*) FROM ai_usage_logs WHERE kind = :k", k=kind)
    return int(rows[0][0])


def requests_counted(database_url: str) -> int:
    """Requests reserved against every ai_user_limits row (0 without any row)."""
    rows = sql(database_url, "SELECT coalesce(sum(requests_today), 0) FROM ai_user_limits")
    return int(rows[0][0])


class SilentListener:
    """A TCP listener on 127.0.0.1 that accepts connections, records what arrives and never
    answers: anything that fetches from it would hang until its own timeout."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.received: list[bytes] = []
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            conn.settimeout(0.5)
            try:
                self.received.append(conn.recv(4096) or b"<connected>")
            except OSError:
                self.received.append(b"<connected>")

    def __enter__(self) -> SilentListener:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._sock.close()
