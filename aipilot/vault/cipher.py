"""AES-256-GCM sealing of provider keys, bound to (format version, user_id, provider_key)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass

from aipilot.errors import VaultError
from aipilot.vault.keys import MasterKey

FORMAT_VERSION = 1
NONCE_BYTES = 12
_TAG_BYTES = 16
_TEXT_PREFIX = "aipilot"
_VERSION_RE = re.compile(r"v([1-9][0-9]{0,3})")
_KEY_ID_RE = re.compile(r"[0-9a-f]{8,64}")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_MALFORMED_HINT = "re-enter the key with `aipilot keys set <provider>`"


class MasterKeyMismatchError(VaultError):
    """The ciphertext was sealed under another master key than the current one."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        stored_key_id: str = "",
        current_key_id: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.stored_key_id = stored_key_id
        self.current_key_id = current_key_id


class CiphertextIntegrityError(VaultError):
    """The ciphertext failed AES-GCM authentication: tampered, or copied from another row."""


@dataclass(frozen=True)
class Sealed:
    """One encrypted provider key: ciphertext (with GCM tag), nonce and master-key id."""

    ciphertext: bytes
    nonce: bytes
    key_id: str
    version: int = FORMAT_VERSION

    def to_text(self) -> str:
        """The single-string form for a TEXT column."""
        fields = [_TEXT_PREFIX, f"v{self.version}", self.key_id]
        return ":".join([*fields, _b64url(self.nonce), _b64url(self.ciphertext)])

    @classmethod
    def from_text(cls, text: str) -> Sealed:
        """Parse :meth:`to_text` output; VaultError (never quoting the text) if malformed."""
        parts = text.split(":")
        if len(parts) != 5 or parts[0] != _TEXT_PREFIX:
            raise _malformed("it is not of the form aipilot:v<n>:<key id>:<nonce>:<ciphertext>")
        version_match = _VERSION_RE.fullmatch(parts[1])
        if version_match is None or _KEY_ID_RE.fullmatch(parts[2]) is None:
            raise _malformed("its version or master-key id is not well formed")
        nonce, ciphertext = _unb64url(parts[3]), _unb64url(parts[4])
        if nonce is None or ciphertext is None:
            raise _malformed("its nonce or ciphertext is not base64url")
        if len(nonce) != NONCE_BYTES or len(ciphertext) < _TAG_BYTES:
            raise _malformed("its nonce or ciphertext has the wrong length")
        return cls(
            ciphertext=ciphertext, nonce=nonce, key_id=parts[2], version=int(version_match[1])
        )


def _malformed(reason: str) -> VaultError:
    return VaultError(
        f"a stored key is not in aipilot's sealed format: {reason}", hint=_MALFORMED_HINT
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64url(text: str) -> bytes | None:
    # The alphabet check matters: urlsafe_b64decode silently drops foreign characters.
    if _B64URL_RE.fullmatch(text) is None:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return None


def _associated_data(version: int, *, user_id: str, provider_key: str) -> bytes:
    # A JSON array is unambiguous: ("ab", "c") and ("a", "bc") encode differently.
    return json.dumps(["aipilot-provider-key", version, user_id, provider_key]).encode("ascii")


def seal(mk: MasterKey, secret: str, *, user_id: str, provider_key: str) -> Sealed:
    """Encrypt ``secret`` under ``mk`` with a fresh random nonce, bound to its row."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    aad = _associated_data(FORMAT_VERSION, user_id=user_id, provider_key=provider_key)
    ciphertext = AESGCM(mk.key).encrypt(nonce, secret.encode("utf-8"), aad)
    return Sealed(ciphertext=ciphertext, nonce=nonce, key_id=mk.key_id, version=FORMAT_VERSION)


def unseal(mk: MasterKey, sealed: Sealed, *, user_id: str, provider_key: str) -> str:
    """Decrypt a provider key; mismatch and integrity failures are distinct VaultErrors."""
    if sealed.version != FORMAT_VERSION:
        raise VaultError(
            f"the stored key for {provider_key} uses format version {sealed.version}; "
            f"this aipilot reads version {FORMAT_VERSION}",
            hint=f"upgrade aipilot, or re-enter the key with `aipilot keys set {provider_key}`",
        )
    if sealed.key_id != mk.key_id:
        raise _mismatch(mk, sealed, provider_key=provider_key)
    plaintext = _decrypt(mk, sealed, user_id=user_id, provider_key=provider_key)
    if plaintext is None:
        # Raised outside the except block so no InvalidTag context (and its frames) chains on.
        raise CiphertextIntegrityError(
            f"stored key for {provider_key} failed its integrity check "
            "(tampered or copied from another row)",
            hint=f"re-enter it with `aipilot keys set {provider_key}`",
        )
    return plaintext


def _decrypt(mk: MasterKey, sealed: Sealed, *, user_id: str, provider_key: str) -> str | None:
    """The plaintext, or None when AES-GCM authentication fails."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aad = _associated_data(sealed.version, user_id=user_id, provider_key=provider_key)
    try:
        plaintext = AESGCM(mk.key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except (InvalidTag, ValueError):  # ValueError: a nonce of an impossible length
        return None
    return plaintext.decode("utf-8")


def _mismatch(mk: MasterKey, sealed: Sealed, *, provider_key: str) -> MasterKeyMismatchError:
    return MasterKeyMismatchError(
        f"master key mismatch: the stored key for {provider_key} was encrypted with master key "
        f"{sealed.key_id}, the current master key is {mk.key_id}",
        hint=f"set AIPILOT_MASTER_KEY to the master key with id {sealed.key_id} (to change "
        "master keys, rotate them so every stored key is re-encrypted), or re-enter the key "
        f"with `aipilot keys set {provider_key}`",
        stored_key_id=sealed.key_id,
        current_key_id=mk.key_id,
    )
