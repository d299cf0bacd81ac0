"""Keyring backends for tests, a context manager that installs one, and leak-sweep encodings.

The backends set ``viable = False`` so keyring's auto-detection never picks them up from
its class registry: a test installs one explicitly with :func:`installed` (in process) or
``PYTHON_KEYRING_BACKEND=tests.memkeyring.MemoryKeyring`` (in a subprocess; add
``KEYRING_PROPERTY_FILE_PATH=<json file>`` to share the store between processes).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keyring
import keyring.core
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    """A recommended (priority 1) backend holding passwords in ``self.store``."""

    priority = 1  # recommended: keyring.core.recommended() is true
    viable = False  # never auto-detected
    file_path: str | None = None  # set from KEYRING_PROPERTY_FILE_PATH by keyring itself

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], str] = {}
        super().__init__()
        if self.file_path and Path(self.file_path).exists():
            loaded = json.loads(Path(self.file_path).read_text())
            self.store = {(s, u): p for s, u, p in loaded}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password
        self._save()

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            raise PasswordDeleteError("no such password")
        self._save()

    def _save(self) -> None:
        if self.file_path:
            rows = [[s, u, p] for (s, u), p in self.store.items()]
            fd = os.open(self.file_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(rows, handle)

    def dump(self) -> str:
        """Everything stored, as one string for a leak sweep."""
        return json.dumps([[s, u, p] for (s, u), p in self.store.items()])


class DiscardingKeyring(MemoryKeyring):
    """Claims to be recommended but forgets every write (like null.Keyring, yet priority 1)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        return None


class WeakKeyring(MemoryKeyring):
    """A non-recommended backend (priority 0.5), like keyrings.alt's plaintext file."""

    priority = 0.5  # type: ignore[assignment]


class HangingKeyring(MemoryKeyring):
    """A recommended backend whose reads block, like a locked Secret Service."""

    release = threading.Event()  # set it in teardown so the stuck thread ends

    def get_password(self, service: str, username: str) -> str | None:
        self.release.wait(30)
        return super().get_password(service, username)


@contextmanager
def installed(backend: KeyringBackend) -> Iterator[KeyringBackend]:
    """Make ``backend`` keyring's process-wide backend, restoring the previous one after."""
    previous = keyring.core._keyring_backend  # may be None (not yet detected)
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.core._keyring_backend = previous


def _base64_cores(raw: bytes, *, urlsafe: bool) -> list[str]:
    """Base64 text that any blob holding ``raw`` at any alignment must contain."""
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    cores = []
    for offset in range(3):
        data = b"\0" * offset + raw
        text = encode(data).decode("ascii")
        start = 4 * -(-offset // 3)  # first group made only of raw's bytes
        end = 4 * (len(data) // 3)  # last full group: padding changes nothing before it
        cores.append(text[start:end])
    return cores


def leak_forms(canary: str) -> list[str]:
    """The canary as plain text, base64, base64url (all alignments) and hex."""
    raw = canary.encode("utf-8")
    forms = [canary, raw.hex(), raw.hex().upper()]
    forms += _base64_cores(raw, urlsafe=False) + _base64_cores(raw, urlsafe=True)
    return list(dict.fromkeys(form for form in forms if form))


def find_leaks(text: str, canary: str) -> list[str]:
    """The leak forms of ``canary`` found in ``text`` (empty means clean)."""
    return [form for form in leak_forms(canary) if form in text]
