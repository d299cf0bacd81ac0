"""A real `aipilot serve` process for tests, and the users_id of a user (shared helpers).

The server inherits no AIPILOT_* variable from the test process: it gets the database,
the master key, AIPILOT_DEBUG=1 (the debug loggers are on) and exactly the ``env`` a test
passes. It listens on 127.0.0.1 on a free port; SIGTERM stops it (exit 0 is graceful).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import MASTER_KEY, REPO
from tests.providers_catalog import sql


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def user_id(database_url: str, name: str) -> str:
    rows = sql(database_url, "SELECT users_id FROM users WHERE username = :u", u=name)
    return str(uuid.UUID(str(rows[0][0])))


@dataclass
class ServeProcess:
    """One `aipilot serve` process with exactly ``env`` on top of the basics."""

    database_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_for: str = "/readyz") -> ServeProcess:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIPILOT_")}
        env.update(
            {
                "AIPILOT_DATABASE_URL": self.database_url,
                "AIPILOT_MASTER_KEY": MASTER_KEY,
                "AIPILOT_DEBUG": "1",
            }
        )
        env.update(self.env)  # a test may replace any of them (another master key, say)
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

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)
