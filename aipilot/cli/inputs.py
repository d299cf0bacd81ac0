"""Reading secrets and confirmations the same way in every command.

A key enters only by a hidden prompt (on a terminal), ``--stdin`` or ``--from-env NAME``:
never as an argument, which would land in shell history and the process list.
Destructive commands ask on a terminal; off a terminal they need ``--yes``.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from aipilot.cli import render
from aipilot.errors import ExitCode, UsageError

StdinOpt = Annotated[bool, typer.Option("--stdin", help="Read the key from standard input.")]
FromEnvOpt = Annotated[
    str | None,
    typer.Option("--from-env", metavar="NAME", help="Read the key from this environment variable."),
]


def read_secret(*, label: str, stdin: bool, from_env: str | None, stdin_example: str) -> str:
    """The raw key from stdin, an environment variable or a hidden prompt (validated later)."""
    if stdin and from_env:
        raise UsageError("--stdin and --from-env are exclusive", hint="give the key one way")
    if stdin:
        return sys.stdin.read()
    if from_env:
        if from_env not in os.environ:
            raise UsageError(
                f"environment variable {from_env} is not set", hint=f"export {from_env}=… first"
            )
        return os.environ[from_env]
    if not render.is_terminal():
        raise UsageError(
            "no key given, and there is no terminal to prompt on",
            hint=f"pipe it: `{stdin_example}`, or use --from-env NAME",
        )
    return str(typer.prompt(label, hide_input=True))


def confirm_or_yes(question: str, *, yes: bool, action: str) -> None:
    """Go on when --yes was given or the user agrees; exit 0 when they decline."""
    if yes:
        return
    if not render.is_terminal():
        raise UsageError(f"{action} needs confirmation", hint="pass --yes in scripts")
    if not typer.confirm(question, default=False):
        raise typer.Exit(int(ExitCode.OK))
