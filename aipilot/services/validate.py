"""Input checks shared by the services: refuse before anything is stored."""

from __future__ import annotations

import re

from aipilot.errors import UsageError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]*")
MAX_NAME = 64


def identifier(kind: str, value: str, *, max_len: int = MAX_NAME) -> str:
    """A user name, provider key or module name: ASCII letters, digits and ``._@+-``."""
    value = value.strip()
    if not value:
        raise UsageError(f"the {kind} is empty", hint=f"give a {kind}")
    if len(value) > max_len:
        raise UsageError(
            f"the {kind} is {len(value)} characters long; the limit is {max_len}",
            hint=f"use a shorter {kind}",
        )
    if not _NAME.fullmatch(value):
        raise UsageError(
            f"the {kind} {value!r} has characters outside letters, digits and ._@+-",
            hint=f"use a plain ASCII {kind} such as 'alice' or 'openai'",
        )
    return value
