"""A throw-away PostgreSQL server for the test run, from the pip-installed ``pgserver`` wheel.

When ``AIPILOT_TEST_DATABASE_URL`` is not set, ``tests/conftest.py`` starts one of these in
the process that runs pytest (the xdist controller, before it spawns its workers) and points
the variable at it, so every worker shares ONE server, as they share the machine's
PostgreSQL in CI. The run stops it at the end and removes its files.

Only the wheel's binaries are used (``initdb``, ``postgres``), not the package's Python
layer: that one listens on a unix socket only and keeps a lock file in the user's runtime
directory, while the tests need a TCP host and port (PgBouncer in tests/pgbouncer.py connects
to one). The server:

- listens on 127.0.0.1 and a free port only (no unix socket, no other address);
- trusts every local connection (user ``postgres``, a superuser, as the machine's server in
  CI), with ``C.UTF-8`` as its locale where the system has it;
- runs without fsync (a crash loses a throw-away cluster, nothing else): creating the
  per-test databases from their template is several times faster than on a durable server;
- runs as an unprivileged user when pytest runs as root (PostgreSQL refuses root), with its
  files in a private directory under the system's temporary directory;
- is stopped by its own pid (fast shutdown, then immediate), and dies with pytest's process
  if that one is killed (Linux's parent-death signal).

PgServer creates and drops databases on it exactly as on any other server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE = "pgserver"
START_TIMEOUT_S = 30.0


class Unavailable(RuntimeError):
    """No throw-away server could be started (the reason is the message)."""


def _bin_dir() -> Path:
    # find_spec locates the package without importing it (its __init__ sets up a lock in
    # the user's runtime directory and warns when XDG_RUNTIME_DIR is unset)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(f"{PACKAGE} is not installed (pip install -e '.[test]')")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise Unavailable(f"{PACKAGE} has no PostgreSQL binaries in {bin_dir}")
    return bin_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parent_death_signal() -> Callable[[], None] | None:
    """For the child, before exec: SIGQUIT (immediate shutdown) when pytest's process dies
    (Linux only; the library is loaded here, in the parent, not in the forked child)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig, sigquit = 1, int(signal.SIGQUIT)

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, sigquit)

    return set_signal


class LocalPostgres:
    """One PostgreSQL cluster in a private temporary directory, listening on 127.0.0.1."""

    def __init__(self) -> None:
        self.bin_dir = _bin_dir()
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.version = ""
        self._runner: pwd.struct_passwd | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    # ------------------------------------------------------------ start
    def start(self) -> LocalPostgres:
        started = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="aipilot-test-pg-"))
        try:
            if os.geteuid() == 0:
                self._runner = _unprivileged_user()
                os.chown(self.workdir, self._runner.pw_uid, self._runner.pw_gid)
                self._ensure_runnable()
            self._initdb()
            for _attempt in range(3):  # another process may take the free port first
                self.port = _free_port()
                if self._serve(started):
                    return self
            raise Unavailable(f"PostgreSQL did not start:\n{self.log()}")
        except BaseException:
            self.stop()
            raise

    def _as_runner(self) -> dict[str, Any]:
        if self._runner is None:
            return {}
        return {"user": self._runner.pw_uid, "group": self._runner.pw_gid, "extra_groups": []}

    def _ensure_runnable(self) -> None:
        """The unprivileged user may not reach the binaries (a venv under a 0700 home):
        then run a private copy of them from the work directory."""
        try:
            probe = subprocess.run(
                [str(self.bin_dir / "postgres"), "--version"],
                capture_output=True,
                check=False,
                cwd=self.workdir,
                **self._as_runner(),
            )
        except PermissionError:  # the exec itself was refused: a directory on the way is 0700
            probe = None
        if probe is not None and probe.returncode == 0:
            return
        assert self.workdir is not None
        # the wheel's layout is kept: <site>/pgserver/pginstall/bin finds its shared
        # libraries in <site>/pgserver.libs through an $ORIGIN-relative rpath
        install = self.bin_dir.parent
        package = install.parent
        site = self.workdir / "site"
        copy = site / package.name / install.name
        shutil.copytree(install, copy, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, site / libs.name, symlinks=True)
        subprocess.run(["chmod", "-R", "go+rX", str(site)], check=True)
        self.bin_dir = copy / "bin"

    def _initdb(self) -> None:
        assert self.workdir is not None
        base = [str(self.bin_dir / "initdb"), "-D", str(self.workdir / "data"), "-U", "postgres"]
        base += ["--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"]
        for locale in ("C.UTF-8", "C"):
            done = subprocess.run(
                [*base, f"--locale={locale}"],
                capture_output=True,
                text=True,
                check=False,
                cwd=self.workdir,
                **self._as_runner(),
            )
            if done.returncode == 0:
                return
            shutil.rmtree(self.workdir / "data", ignore_errors=True)
        raise Unavailable(f"initdb failed:\n{done.stdout}{done.stderr}")

    def _serve(self, started: float) -> bool:
        assert self.workdir is not None
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "fsync": "off",
            "full_page_writes": "off",
        }
        args = [str(self.bin_dir / "postgres"), "-D", str(self.workdir / "data")]
        for name, value in options.items():
            args += ["-c", f"{name}={value}"]
        with (self.workdir / "postgres.log").open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,  # ^C goes to pytest, which stops the server itself
                preexec_fn=_parent_death_signal(),
                **self._as_runner(),
            )
        import psycopg

        while time.monotonic() - started < START_TIMEOUT_S:
            if self.proc.poll() is not None:
                self.proc = None
                return False  # the port was taken, or another failure: the log tells
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                    self.version = str(row[0]) if row else ""
                    return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        self.stop()
        raise Unavailable(f"PostgreSQL did not accept connections in time:\n{self.log()}")

    # ------------------------------------------------------------ stop
    def log(self) -> str:
        if self.workdir is None or not (self.workdir / "postgres.log").exists():
            return ""
        return (self.workdir / "postgres.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Fast shutdown by our own pid (ends open sessions), immediate if it lingers."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGINT, 15), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise Unavailable("running as root and neither user 'postgres' nor 'nobody' exists")
