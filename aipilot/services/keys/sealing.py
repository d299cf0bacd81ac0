"""The master keys in use, and opening a stored provider key: no database code here.

Shared by the services (rows from the ORM) and the read-only views (rows straight from the
driver), so that ``aipilot keys status`` can tell "configured" from "needs re-entry"
without importing SQLAlchemy.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from typing import Protocol

from aipilot import vault
from aipilot.errors import VaultError

_KEYRING_CACHE_S = 60.0
_cached: tuple[float, list[vault.MasterKey]] | None = None


def master_keys() -> list[vault.MasterKey]:
    """The current master key, then one a rotation left pending in the keyring, if any.

    From AIPILOT_MASTER_KEY this is a cheap parse, done each time (the variable may change
    between in-process calls). From the OS keyring it is a D-Bus round trip: the answer is
    kept for a minute so a long-running process (`aipilot serve`) does not ask per request;
    a rotation in this process forgets it at once.
    """
    global _cached
    if os.environ.get(vault.ENV_VAR) is not None:
        return [vault.load_master_key()]
    if _cached is not None and time.monotonic() - _cached[0] < _KEYRING_CACHE_S:
        return _cached[1]
    current = vault.load_master_key()
    pending = vault.pending_master_key()
    keys = [current] if pending is None or pending == current else [current, pending]
    _cached = (time.monotonic(), keys)
    return keys


def forget_master_keys() -> None:
    global _cached
    _cached = None


class SealedRow(Protocol):
    """What a ``user_provider_credentials`` row holds of a key (ORM object or plain data)."""

    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def provider_key(self) -> str: ...
    @property
    def encrypted_key(self) -> str: ...
    @property
    def nonce(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def format_version(self) -> int: ...


def sealed_of(row: SealedRow) -> vault.Sealed:
    if stored_elsewhere(row):
        raise VaultError(
            f"the stored {row.provider_key} key was stored by another system "
            "(not aipilot's format)",
            hint=f"re-enter it with `aipilot keys set {row.provider_key}`",
        )
    try:
        return vault.Sealed(
            ciphertext=base64.b64decode(row.encrypted_key, validate=True),
            nonce=base64.b64decode(row.nonce, validate=True),
            key_id=row.key_id,
            version=row.format_version,
        )
    except ValueError as exc:
        raise VaultError(
            f"the stored key for {row.provider_key} is malformed",
            hint=f"re-enter it with `aipilot keys set {row.provider_key}`",
        ) from exc


def stored_elsewhere(row: SealedRow) -> bool:
    """A credentials row of an adopted database that aipilot never sealed (the old
    ``ai-keys-manager``'s format): aipilot's columns are empty."""
    return row.encrypted_key is None or row.nonce is None or row.key_id is None


def is_plaintext(value: str) -> bool:
    """An organisation key another system (the seed's React app) stored as it is, not
    sealed by aipilot (``aipilot:v<n>:…``)."""
    return not value.startswith("aipilot:")


def unseal_with(
    keys: list[vault.MasterKey], sealed: vault.Sealed, *, owner: str, provider: str
) -> str:
    """Decrypt with the master key whose id ``sealed`` records (current or rotation-pending);
    with none of them, the current one, whose mismatch error says what happened."""
    mk = next((k for k in keys if k.key_id == sealed.key_id), keys[0])
    return vault.unseal(mk, sealed, user_id=owner, provider_key=provider)


def open_row(row: SealedRow, keys: list[vault.MasterKey]) -> str:
    """A user's stored key, decrypted."""
    return unseal_with(keys, sealed_of(row), owner=str(row.user_id), provider=row.provider_key)
