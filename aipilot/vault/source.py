"""Where the master key comes from: AIPILOT_MASTER_KEY, else a recommended OS keyring."""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from aipilot.errors import MasterKeyMissingError, VaultError
from aipilot.redaction import redact
from aipilot.vault.keys import (
    MASTER_KEY_FORMAT_HINT,
    MasterKey,
    encode_master_key,
    generate_master_key,
    master_key_problem,
    parse_master_key,
)

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

ENV_VAR = "AIPILOT_MASTER_KEY"
KEYRING_SERVICE = "aipilot"
KEYRING_USERNAME = "master-key"
# A rotation stores the new key here before re-encrypting, and promotes it after the commit.
KEYRING_PENDING_USERNAME = "master-key-next"
DEFAULT_KEYRING_TIMEOUT_S = 5.0
_MAX_FOREIGN_TEXT = 200
_NOT_SET = f"no master key: {ENV_VAR} is not set and"

T = TypeVar("T")


@dataclass(frozen=True)
class _KeyringAnswer:
    """What one bounded keyring operation found; ``backend`` names it for messages."""

    backend: str
    usable: bool
    value: str | None = field(default=None, repr=False)
    confirmed: bool = False


def _backend_name(backend: KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__.removeprefix('keyring.backends.')}.{cls.__qualname__}"


def _recommended_backend() -> tuple[KeyringBackend | None, str]:
    """The backend keyring chose if it is recommended (None otherwise), and its name."""
    import keyring
    from keyring.backends.chainer import ChainerBackend
    from keyring.core import recommended

    chosen = keyring.get_keyring()
    if isinstance(chosen, ChainerBackend):
        # A chain may also hold a plaintext backend (priority < 1): use a recommended member.
        members = [member for member in chosen.backends if recommended(member)]
        return (members[0], _backend_name(members[0])) if members else (None, _backend_name(chosen))
    return (chosen if recommended(chosen) else None), _backend_name(chosen)


def _describe(exc: Exception, secret: str | None) -> str:
    text = redact(f"{type(exc).__name__}: {exc}", [secret])
    return text if len(text) <= _MAX_FOREIGN_TEXT else text[:_MAX_FOREIGN_TEXT] + "…"


def _run_bounded(
    op: Callable[[], T], *, timeout_s: float, failure: str, secret: str | None = None
) -> T:
    """Run a keyring operation in a daemon thread; a hung keyring becomes an error."""
    results: list[T] = []
    problems: list[str] = []

    def target() -> None:
        try:
            results.append(op())
        except Exception as exc:  # any backend or D-Bus error
            # Reduced to text here, so no traceback (whose frames hold the key) leaves the thread.
            problems.append(_describe(exc, secret))

    thread = threading.Thread(target=target, name="aipilot-keyring", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise MasterKeyMissingError(
            f"{failure}: the system keyring did not answer within {timeout_s:g} s "
            "(a locked keyring can block forever)"
        )
    if problems or not results:
        raise MasterKeyMissingError(f"{failure}: {problems[0] if problems else 'no answer'}")
    return results[0]


def _read_keyring(
    *, timeout_s: float, failure: str, username: str = KEYRING_USERNAME
) -> _KeyringAnswer:
    def op() -> _KeyringAnswer:
        backend, name = _recommended_backend()
        if backend is None:
            return _KeyringAnswer(name, usable=False)
        return _KeyringAnswer(
            name, usable=True, value=backend.get_password(KEYRING_SERVICE, username)
        )

    return _run_bounded(op, timeout_s=timeout_s, failure=failure)


def _no_backend(answer: _KeyringAnswer) -> MasterKeyMissingError:
    return MasterKeyMissingError(
        f"{_NOT_SET} no recommended keyring backend is available (keyring chose {answer.backend})"
    )


def _from_keyring_text(answer: _KeyringAnswer) -> MasterKey:
    """Parse a stored master key; an invalid entry is an error, never silently replaced."""
    text = answer.value or ""
    problem = master_key_problem(text)
    if problem is not None:
        raise VaultError(
            f"the master key stored in the keyring ({answer.backend}) is not valid: {problem}",
            hint=f"set {ENV_VAR} to the right master key, or replace the keyring entry "
            f"(service {KEYRING_SERVICE!r}, user {KEYRING_USERNAME!r}); {MASTER_KEY_FORMAT_HINT}",
        )
    return parse_master_key(text)


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def load_master_key(
    *, env: Mapping[str, str] | None = None, keyring_timeout_s: float = DEFAULT_KEYRING_TIMEOUT_S
) -> MasterKey:
    """The master key from AIPILOT_MASTER_KEY, else the keyring; fail closed with a reason."""
    environ = _environ(env)
    if ENV_VAR in environ:  # set but invalid is an error: never fall back to another key
        return parse_master_key(environ[ENV_VAR], source=ENV_VAR)
    answer = _read_keyring(timeout_s=keyring_timeout_s, failure=f"{_NOT_SET} the keyring failed")
    if not answer.usable:
        raise _no_backend(answer)
    if answer.value is None:
        raise MasterKeyMissingError(
            f"{_NOT_SET} the keyring ({answer.backend}) holds no aipilot master key",
            hint=f"run `aipilot init` to create one in the keyring, or set {ENV_VAR} "
            "to 32 random bytes in base64 (generate one with `aipilot keys new-master`)",
        )
    return _from_keyring_text(answer)


def master_key_source(
    *, env: Mapping[str, str] | None = None, keyring_timeout_s: float = DEFAULT_KEYRING_TIMEOUT_S
) -> Literal["env", "keyring", "none"]:
    """Which source would provide the master key; never raises for a missing one."""
    if ENV_VAR in _environ(env):
        return "env"
    try:
        answer = _read_keyring(timeout_s=keyring_timeout_s, failure="keyring")
    except MasterKeyMissingError:
        return "none"
    return "keyring" if answer.usable and answer.value is not None else "none"


def store_master_key_in_keyring(
    mk: MasterKey,
    *,
    timeout_s: float = DEFAULT_KEYRING_TIMEOUT_S,
    username: str = KEYRING_USERNAME,
) -> None:
    """Store ``mk`` in a recommended keyring and read it back; refuse anything less."""
    text = encode_master_key(mk)

    def op() -> _KeyringAnswer:
        backend, name = _recommended_backend()
        if backend is None:
            return _KeyringAnswer(name, usable=False)
        backend.set_password(KEYRING_SERVICE, username, text)
        # Read back: some backends accept writes and discard them.
        stored = backend.get_password(KEYRING_SERVICE, username) or ""
        return _KeyringAnswer(
            name, usable=True, confirmed=hmac.compare_digest(stored.encode(), text.encode())
        )

    failure = "cannot store the master key in the keyring"
    answer = _run_bounded(op, timeout_s=timeout_s, failure=failure, secret=text)
    if not answer.usable:
        raise MasterKeyMissingError(
            f"{failure}: no recommended keyring backend is available "
            f"(keyring chose {answer.backend}, which is not a secure store)"
        )
    if not answer.confirmed:
        raise MasterKeyMissingError(
            f"{failure}: the keyring ({answer.backend}) accepted the master key "
            "but did not return it when read back"
        )


def ensure_master_key(
    *, env: Mapping[str, str] | None = None, keyring_timeout_s: float = DEFAULT_KEYRING_TIMEOUT_S
) -> tuple[MasterKey | None, str]:
    """For `aipilot init`: the existing master key, else a new one in the keyring, else why not."""
    environ = _environ(env)
    if ENV_VAR in environ:
        mk = parse_master_key(environ[ENV_VAR], source=ENV_VAR)
        return mk, f"using the master key from {ENV_VAR} (id {mk.key_id})"
    try:
        return _ensure_in_keyring(keyring_timeout_s)
    except MasterKeyMissingError as err:
        return None, f"{err.message}. To encrypt provider keys, {err.hint}."


def _ensure_in_keyring(timeout_s: float) -> tuple[MasterKey, str]:
    answer = _read_keyring(timeout_s=timeout_s, failure=f"{_NOT_SET} the keyring failed")
    if not answer.usable:
        raise _no_backend(answer)
    if answer.value is not None:
        mk = _from_keyring_text(answer)
        return mk, f"using the master key stored in the keyring ({answer.backend}, id {mk.key_id})"
    mk = generate_master_key()
    store_master_key_in_keyring(mk, timeout_s=timeout_s)
    return mk, f"created a new master key (id {mk.key_id}) in the keyring ({answer.backend})"


def store_pending_master_key(mk: MasterKey) -> None:
    """Make a rotation's new key durable before any row is re-encrypted with it."""
    store_master_key_in_keyring(mk, username=KEYRING_PENDING_USERNAME)


def pending_master_key(*, env: Mapping[str, str] | None = None) -> MasterKey | None:
    """A rotation's new key still waiting in the keyring (only when the keyring is the source)."""
    if ENV_VAR in _environ(env):
        return None
    try:
        answer = _read_keyring(
            timeout_s=DEFAULT_KEYRING_TIMEOUT_S,
            failure="cannot read the keyring",
            username=KEYRING_PENDING_USERNAME,
        )
    except MasterKeyMissingError:
        return None
    if not answer.usable or answer.value is None or master_key_problem(answer.value):
        return None
    return parse_master_key(answer.value)


def clear_pending_master_key() -> None:
    def op() -> bool:
        backend, _ = _recommended_backend()
        if backend is not None:
            backend.delete_password(KEYRING_SERVICE, KEYRING_PENDING_USERNAME)
        return True

    _run_bounded(op, timeout_s=DEFAULT_KEYRING_TIMEOUT_S, failure="cannot clear the pending key")
