"""`aipilot serve` as a real process for route tests: the Server, its fixtures (the fake
provider, a started server), and helpers to add users, store keys, mint tokens and count
calls.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import MASTER_KEY, REPO, CliFn
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.providers_catalog import point_catalog_at, sql

INTERNAL = "internal-" + uuid.uuid4().hex
JWT_SECRET = "jwt-secret-" + uuid.uuid4().hex
ORIGIN = "https://app.example.com"
KEYS = "/functions/v1/ai-keys-manager"
ASSIST = "/functions/v1/assist_flut"
CONFIG_TEST = "/functions/v1/ai-config-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One `aipilot serve` process; ``canaries`` are swept from its output when it stops."""

    database_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    canaries: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_for: str = "/readyz") -> Server:
        self.port = free_port()
        env = {
            **os.environ,
            "AIPILOT_DATABASE_URL": self.database_url,
            "AIPILOT_MASTER_KEY": MASTER_KEY,
            "AIPILOT_INTERNAL_TOKEN": INTERNAL,
            "AIPILOT_JWT_SECRET": JWT_SECRET,
            "AIPILOT_CORS_ORIGINS": f"{ORIGIN}, https://other.example.com",
            "AIPILOT_DEBUG": "1",
            **self.env,
        }
        env = {k: v for k, v in env.items() if v is not None and v != "<unset>"}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aipilot", "serve", "--port", str(self.port)],
            env=env,
            cwd=REPO,
            stdout=(self.log_dir / "stdout").open("wb"),
            stderr=(self.log_dir / "stderr").open("wb"),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if httpx.get(self.url + wait_for, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not become ready:\n" + self.output())

    def output(self) -> str:
        return "".join(
            (self.log_dir / name).read_text(errors="replace")
            for name in ("stdout", "stderr")
            if (self.log_dir / name).exists()
        )

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

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
    """A running server; after the test: graceful exit 0 and no canary in its output."""
    srv = Server(database_url, tmp_path / "server").start()
    yield srv
    code = srv.stop()
    out = srv.output()
    assert code == 0, out
    for canary in srv.canaries:
        assert find_leaks(out, canary) == [], "canary in the server's log"


def canary() -> str:
    return f"sk-aipilot-CANARY-{uuid.uuid4()}"


def token_for(cli: CliFn, user: str, *args: str) -> str:
    result = cli("tokens", "create", *args, user=user)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def add_user(cli: CliFn, name: str) -> None:
    assert cli("users", "add", name).exit_code == 0


def store_key(cli: CliFn, user: str, provider: str = "openai") -> str:
    secret = canary()
    result = cli("keys", "set", provider, "--stdin", "--no-test", input=secret, user=user)
    assert result.exit_code == 0, result.stderr
    return secret


def user_id(database_url: str, name: str) -> str:
    return str(
        uuid.UUID(
            str(sql(database_url, "SELECT users_id FROM users WHERE username = :u", u=name)[0][0])
        )
    )


def make_jwt(sub: str, *, expires_in: float = 300, secret: str = JWT_SECRET) -> str:
    exp = datetime.now(UTC) + timedelta(seconds=expires_in)
    claims = {"sub": sub, "exp": exp, "role": "authenticated", "aud": "authenticated"}
    return jwt.encode(claims, secret, algorithm="HS256")


def chat_count(database_url: str, user: str) -> int:
    rows = sql(
        database_url,
        "SELECT count(*) FROM ai_usage_logs l JOIN users u ON u.users_id = l.user_id "
        "WHERE l.kind = 'chat' AND u.username = :u",
        u=user,
    )
    return int(rows[0][0])


# ---------------------------------------------------------------- health, shutdown
