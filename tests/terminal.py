"""Running the real `aipilot` process on a pseudo-terminal (pickers, prompts, streaming)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from tests.conftest import REPO


def run_on_terminal(
    args: Sequence[str], *, env: Mapping[str, str], typed: str = "", timeout: float = 60
) -> tuple[int, str]:
    """Run ``python -m aipilot ARGS`` with stdin/stdout on a pty; ``typed`` is keyboard input.

    Returns the exit code and everything the terminal showed (stdout and stderr).
    """
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aipilot", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **env, "TERM": "dumb", "COLUMNS": "120"},
        cwd=REPO,
    )
    os.close(follower)
    if typed:
        os.write(leader, typed.encode())  # the line discipline queues it for each prompt
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            output += data
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    os.close(leader)
    return code, output.decode(errors="replace")
