"""A local PgBouncer in transaction mode, the stand-in for Supabase's pooler (Supavisor, 6543).

PgBouncer before 1.21 (Debian 12 ships 1.18) keeps no session state between transactions
and knows nothing of prepared statements, as Supavisor in transaction mode: a client gets
whichever server connection is free for each transaction, and a statement prepared on one
of them is missing on the next (``prepared statement "_pg3_0" does not exist``) or clashes
with another client's of the same name (``… already exists``).

:class:`PgBouncer` runs one as a subprocess of the tests, on 127.0.0.1 and a free port, with
its own configuration in a private directory, in front of the PostgreSQL server of
``AIPILOT_TEST_DATABASE_URL``: every database of that server is reachable through it under
its own name (``[databases] * = …``), each with ``pool_size`` server connections shared by
all its clients. It is stopped by its pid, never by name.

``server_round_robin = 1`` hands each transaction the server connection that has been idle
longest, so consecutive transactions of one client land on different server connections, as
on a busy Supavisor. (PgBouncer's default, last in first out, would give a lone client the
same server connection every time and hide exactly what these tests look for.)
:meth:`PgBouncer.fill` opens a database's server connections before a test starts.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

INSTALL_HINT = "install it with `apt-get install pgbouncer` (Debian: /usr/sbin/pgbouncer)"


def find_pgbouncer() -> str | None:
    """The pgbouncer binary: on PATH, or where Debian puts it (/usr/sbin, often not on PATH)."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    for candidate in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quote(value: str) -> str:
    """A libpq connection-string value, quoted ('…' with \\ and ' escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PgBouncer:
    """One PgBouncer process in transaction mode in front of ``server_url``'s server."""

    def __init__(self, binary: str, server_url: str, *, pool_size: int = 3) -> None:
        parts = urlsplit(server_url.replace("postgresql+psycopg://", "postgresql://", 1))
        self.binary = binary
        self.user = unquote(parts.username or "postgres")
        self._server = {
            "host": parts.hostname or "127.0.0.1",
            "port": str(parts.port or 5432),
            "user": self.user,
            "password": unquote(parts.password) if parts.password else None,
        }
        self.pool_size = pool_size
        self.port = 0
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def url_for(self, database: str) -> str:
        """A URL of ``database`` through the pooler (the pooler trusts 127.0.0.1 clients)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def fill(self, database: str) -> None:
        """Open all ``pool_size`` server connections of ``database`` now: as many clients,
        each inside a transaction at the same time, so each holds a server connection."""
        import psycopg

        clients = [psycopg.connect(self.url_for(database)) for _ in range(self.pool_size)]
        try:
            rows = [c.execute("SELECT pg_backend_pid()").fetchone() for c in clients]
            assert len({row for row in rows if row}) == self.pool_size, rows
        finally:
            for client in clients:
                client.rollback()
                client.close()

    def _config(self, workdir: Path) -> str:
        server = " ".join(
            f"{key}={_quote(value)}" for key, value in self._server.items() if value is not None
        )
        return "\n".join(
            [
                "[databases]",
                f"* = {server}",
                "",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {workdir / 'users.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {self.pool_size}",
                f"min_pool_size = {self.pool_size}",
                "server_round_robin = 1",
                "reserve_pool_size = 0",
                "max_client_conn = 200",
                "ignore_startup_parameters = extra_float_digits",
                "log_connections = 0",
                "log_disconnections = 0",
                "",
            ]
        )

    def start(self) -> PgBouncer:
        self.workdir = Path(tempfile.mkdtemp(prefix="aipilot-pgbouncer-"))
        self.port = _free_port()
        config = self.workdir / "pgbouncer.ini"
        (self.workdir / "users.txt").write_text(f'"{self.user}" ""\n')
        text = self._config(self.workdir)
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root: it switches to this user after start-up
            runner = _unprivileged_user()
            text += f"user = {runner.pw_name}\n"
            for path in (self.workdir, self.workdir / "users.txt"):
                os.chown(path, runner.pw_uid, runner.pw_gid)
        config.write_text(text)
        log = (self.workdir / "pgbouncer.log").open("wb")
        self.proc = subprocess.Popen(
            [self.binary, str(config)], stdout=log, stderr=subprocess.STDOUT, close_fds=True
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited at start-up:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not listen on port {self.port}:\n{self.output()}")

    def output(self) -> str:
        if self.workdir is None or not (self.workdir / "pgbouncer.log").exists():
            return ""
        return (self.workdir / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to our own pid (immediate shutdown), SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither user 'postgres' nor 'nobody' exists")
