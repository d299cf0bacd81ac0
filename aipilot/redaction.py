"""Removing secrets from text before it reaches a message, a log or the database.

This module sits at the bottom of the dependency order (next to :mod:`aipilot.errors`)
so that both the provider clients and the vault can use it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

MASK = "***"

# Shapes of well-known API keys, masked even when we were not told the exact value
# (a provider may echo a different key than the one we sent, e.g. an org key).
_KEY_SHAPES = re.compile(
    r"(?:sk-(?:ant-|proj-|or-v1-|aipilot-)?[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|xai-[A-Za-z0-9]{16,})"
)


def _variants(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    ]


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with every given secret (and its base64/hex forms) and every
    key-shaped token replaced by ``***``."""
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        for variant in _variants(secret):
            if variant:
                text = text.replace(variant, MASK)
    return _KEY_SHAPES.sub(MASK, text)


def hint(secret: str) -> str:
    """The display form of a key: its prefix (up to the first dash) and last four chars.

    ``sk-proj-abcdef…wxyz`` → ``sk-…wxyz``; keys shorter than 12 characters show only
    ``…`` and their last two characters, so a short key is never half-revealed.
    """
    if len(secret) < 12:
        return "…" + secret[-2:]
    prefix = secret.split("-", 1)[0] + "-" if "-" in secret[:8] else ""
    return f"{prefix}…{secret[-4:]}"
