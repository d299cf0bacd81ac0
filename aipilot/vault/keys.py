"""The master key (generation, text form, fingerprint) and the provider-key input check."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field

from aipilot.errors import UsageError

MASTER_KEY_BYTES = 32
MAX_API_KEY_LENGTH = 512
# Domain-separated so the public fingerprint can never equal any other hash of the key.
_KEY_ID_DOMAIN = b"aipilot-master-key-id:"
_KEY_ID_HEX_CHARS = 12

MASTER_KEY_FORMAT_HINT = (
    "a master key is 32 random bytes in standard base64 (44 characters); generate one with "
    "`aipilot keys new-master` or `head -c 32 /dev/urandom | base64`"
)
_API_KEY_HINT = (
    "paste the key again on its own, without quotes, spaces or line breaks "
    "(API keys are printable ASCII)"
)


def key_fingerprint(key: bytes) -> str:
    """The short public id of a master key, stored next to every ciphertext."""
    return hashlib.sha256(_KEY_ID_DOMAIN + key).hexdigest()[:_KEY_ID_HEX_CHARS]


@dataclass(frozen=True)
class MasterKey:
    """A 32-byte AES-256 key and its fingerprint; ``repr``/``str`` never show the key."""

    key: bytes = field(repr=False)
    key_id: str

    def __post_init__(self) -> None:
        if len(self.key) != MASTER_KEY_BYTES:
            raise ValueError(f"a master key is exactly {MASTER_KEY_BYTES} bytes")

    @classmethod
    def from_bytes(cls, key: bytes) -> MasterKey:
        """Wrap raw key bytes, computing their fingerprint."""
        return cls(key=key, key_id=key_fingerprint(key))


def generate_master_key() -> MasterKey:
    """A fresh master key from the OS CSPRNG."""
    return MasterKey.from_bytes(os.urandom(MASTER_KEY_BYTES))


def encode_master_key(mk: MasterKey) -> str:
    """The text form of a master key: standard base64 of its 32 bytes."""
    return base64.b64encode(mk.key).decode("ascii")


def master_key_problem(text: str) -> str | None:
    """Why ``text`` is not a valid master key (never quoting it), or None if it is."""
    stripped = text.strip()
    if not stripped:
        return "it is empty"
    try:
        raw = base64.b64decode(stripped, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII input
        return "it is not standard base64"
    if len(raw) != MASTER_KEY_BYTES:
        return f"it decodes to {len(raw)} bytes; a master key is exactly {MASTER_KEY_BYTES}"
    return None


def parse_master_key(text: str, *, source: str = "the master key") -> MasterKey:
    """Decode a base64 master key; ``source`` names where it came from in the error."""
    problem = master_key_problem(text)
    if problem is not None:
        raise UsageError(
            f"{source} is not a valid master key: {problem}", hint=MASTER_KEY_FORMAT_HINT
        )
    return MasterKey.from_bytes(base64.b64decode(text.strip(), validate=True))


def _api_key_problem(key: str) -> str | None:
    """Why a stripped API key is unacceptable (positions are 1-based), or None."""
    if not key:
        return "is empty"
    if len(key) > MAX_API_KEY_LENGTH:
        return f"is {len(key)} characters long; keys are at most {MAX_API_KEY_LENGTH}"
    for position, char in enumerate(key, start=1):
        code = ord(char)
        if code < 0x20 or code == 0x7F:
            return f"contains a control character at position {position}"
        if char == " ":
            return f"contains a space at position {position}"
        if code > 0x7E:
            return f"contains a non-ASCII character at position {position}"
    return None


def validate_api_key_input(raw: str, *, provider_key: str) -> str:
    """Strip surrounding whitespace and refuse anything but 1-512 printable ASCII characters."""
    key = raw.strip()
    problem = _api_key_problem(key)
    if problem is not None:
        # The message describes the problem by position only: the value is a secret.
        raise UsageError(f"the key for {provider_key} {problem}", hint=_API_KEY_HINT)
    return key
