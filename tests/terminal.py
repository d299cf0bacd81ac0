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
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    typed: str = "",
    answers: Sequence[tuple[str, str]] = (),
    timeout: float = 60,
) -> tuple[int, str]:
    """Run ``python -m aipilot ARGS`` with stdin/stdout/stderr on a pty.

    ``typed`` is keyboard input queued at once (fine for line prompts); ``answers`` are
    (text to wait for on screen, keys to type) pairs, for prompts that flush pending input
    first (a hidden password prompt does). Returns the exit code and the whole screen.
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
    pending = list(answers)
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
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
        if pending and pending[0][0].encode() in output:
            time.sleep(0.2)  # let the prompt switch the terminal mode before typing
            os.write(leader, pending.pop(0)[1].encode())
    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    os.close(leader)
    return code, output.decode(errors="replace")
