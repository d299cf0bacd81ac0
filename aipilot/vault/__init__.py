"""Encryption of provider keys and the master key that protects them.

Provider keys are sealed with AES-256-GCM under a 32-byte master key, with a fresh
random nonce per seal and associated data binding each ciphertext to
(format version, user_id, provider_key). Each ciphertext records the master key's
fingerprint, so a wrong master key is reported as a mismatch, not as corruption.

The master key comes, fail-closed, from ``AIPILOT_MASTER_KEY`` (if set, even if invalid)
or the OS keyring. Keyring backend selection: we take ``keyring.get_keyring()`` — which
honours ``keyring.set_keyring()``, ``PYTHON_KEYRING_BACKEND`` and keyring's config file —
and refuse it unless ``keyring.core.recommended()`` holds (priority >= 1); for a
``ChainerBackend`` we use its highest-priority recommended member. We do not call
``keyring.core.init_backend(limit=recommended)``: it re-detects and would replace the
process-wide backend (including one a test or an embedding program installed) as a side
effect. Either way the fail, null and keyrings.alt plaintext backends are refused. Every
keyring call runs in a daemon thread with a timeout, because a locked Secret Service can
block forever; a write is read back before the key is used, and nothing is ever written
to a plain file.

Neither ``cryptography`` nor ``keyring`` is imported until a function needs it.
"""

from __future__ import annotations

from aipilot.vault.cipher import (
    FORMAT_VERSION,
    CiphertextIntegrityError,
    MasterKeyMismatchError,
    Sealed,
    seal,
    unseal,
)
from aipilot.vault.keys import (
    MAX_API_KEY_LENGTH,
    MasterKey,
    encode_master_key,
    generate_master_key,
    parse_master_key,
    validate_api_key_input,
)
from aipilot.vault.source import (
    ENV_VAR,
    KEYRING_PENDING_USERNAME,
    KEYRING_SERVICE,
    KEYRING_USERNAME,
    clear_pending_master_key,
    ensure_master_key,
    load_master_key,
    master_key_source,
    pending_master_key,
    store_master_key_in_keyring,
    store_pending_master_key,
)

__all__ = [
    "ENV_VAR",
    "FORMAT_VERSION",
    "KEYRING_PENDING_USERNAME",
    "KEYRING_SERVICE",
    "KEYRING_USERNAME",
    "MAX_API_KEY_LENGTH",
    "CiphertextIntegrityError",
    "MasterKey",
    "MasterKeyMismatchError",
    "Sealed",
    "clear_pending_master_key",
    "encode_master_key",
    "ensure_master_key",
    "generate_master_key",
    "load_master_key",
    "master_key_source",
    "parse_master_key",
    "pending_master_key",
    "seal",
    "store_master_key_in_keyring",
    "store_pending_master_key",
    "unseal",
    "validate_api_key_input",
]
