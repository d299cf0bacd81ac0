"""Tests of aipilot.vault: sealing, master-key sources, keyring handling, input checks."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from keyring.backends import fail, null
from keyring.backends.chainer import ChainerBackend

from aipilot.errors import AipilotError, MasterKeyMissingError, UsageError, VaultError
from aipilot.vault import (
    ENV_VAR,
    KEYRING_SERVICE,
    KEYRING_USERNAME,
    CiphertextIntegrityError,
    MasterKey,
    MasterKeyMismatchError,
    Sealed,
    encode_master_key,
    ensure_master_key,
    generate_master_key,
    load_master_key,
    master_key_source,
    parse_master_key,
    seal,
    store_master_key_in_keyring,
    unseal,
    validate_api_key_input,
)
from tests.memkeyring import (
    DiscardingKeyring,
    HangingKeyring,
    MemoryKeyring,
    WeakKeyring,
    find_leaks,
    installed,
    leak_forms,
)

REPO = Path(__file__).resolve().parents[2]
NO_ENV: dict[str, str] = {}


@pytest.fixture
def canary() -> str:
    return f"sk-aipilot-CANARY-{uuid.uuid4()}"


@pytest.fixture
def mk() -> MasterKey:
    return generate_master_key()


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    with installed(MemoryKeyring()) as backend:
        assert isinstance(backend, MemoryKeyring)
        yield backend


def error_text(err: AipilotError) -> str:
    return " ".join([str(err), repr(err), repr(err.args), str(err.hint)])


# --- sealing --------------------------------------------------------------------------


def test_round_trip(mk: MasterKey, canary: str) -> None:
    sealed = seal(mk, canary, user_id="alice", provider_key="openai")
    assert sealed.key_id == mk.key_id
    assert unseal(mk, sealed, user_id="alice", provider_key="openai") == canary
    assert not find_leaks(sealed.to_text(), canary)


def test_nonces_never_repeat(mk: MasterKey) -> None:
    nonces = {seal(mk, "sk-same", user_id="u", provider_key="p").nonce for _ in range(10_000)}
    assert len(nonces) == 10_000


@pytest.mark.parametrize(
    ("user_id", "provider_key"),
    [("bob", "openai"), ("alice", "anthropic"), ("", "aliceopenai"), ("aliceopenai", "")],
)
def test_ciphertext_bound_to_its_row(
    mk: MasterKey, canary: str, user_id: str, provider_key: str
) -> None:
    sealed = seal(mk, canary, user_id="alice", provider_key="openai")
    with pytest.raises(CiphertextIntegrityError, match="integrity check") as info:
        unseal(mk, sealed, user_id=user_id, provider_key=provider_key)
    assert not find_leaks(error_text(info.value), canary)


def test_ciphertexts_swapped_between_rows_fail(mk: MasterKey) -> None:
    alice = seal(mk, "sk-alice-key", user_id="alice", provider_key="openai")
    bob = seal(mk, "sk-bob-key", user_id="bob", provider_key="openai")
    with pytest.raises(CiphertextIntegrityError):
        unseal(mk, alice, user_id="bob", provider_key="openai")
    with pytest.raises(CiphertextIntegrityError):
        unseal(mk, bob, user_id="alice", provider_key="openai")


@pytest.mark.parametrize("field", ["ciphertext", "nonce"])
@pytest.mark.parametrize("index", [0, -1])
def test_tampered_byte_fails(mk: MasterKey, field: str, index: int) -> None:
    sealed = seal(mk, "sk-secret-value", user_id="alice", provider_key="openai")
    data = bytearray(getattr(sealed, field))
    data[index] ^= 0x01
    tampered = (
        replace(sealed, ciphertext=bytes(data))
        if field == "ciphertext"
        else replace(sealed, nonce=bytes(data))
    )
    with pytest.raises(CiphertextIntegrityError) as info:
        unseal(mk, tampered, user_id="alice", provider_key="openai")
    # No InvalidTag (or its traceback frames, which hold the key) chained onto the error.
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_wrong_master_key_is_a_mismatch(mk: MasterKey, canary: str) -> None:
    other = generate_master_key()
    sealed = seal(mk, canary, user_id="alice", provider_key="openai")
    with pytest.raises(MasterKeyMismatchError) as info:
        unseal(other, sealed, user_id="alice", provider_key="openai")
    err = info.value
    assert isinstance(err, VaultError)
    assert "master key mismatch" in str(err)
    assert mk.key_id in str(err) and other.key_id in str(err)
    assert err.stored_key_id == mk.key_id and err.current_key_id == other.key_id
    assert err.hint is not None and ENV_VAR in err.hint
    for secret in (canary, encode_master_key(mk), encode_master_key(other)):
        assert not find_leaks(error_text(err), secret)


def test_forged_key_id_is_an_integrity_error(mk: MasterKey, canary: str) -> None:
    forged = MasterKey(key=os.urandom(32), key_id=mk.key_id)
    sealed = seal(mk, canary, user_id="alice", provider_key="openai")
    with pytest.raises(CiphertextIntegrityError) as info:
        unseal(forged, sealed, user_id="alice", provider_key="openai")
    assert not find_leaks(error_text(info.value), canary)
    assert not find_leaks(error_text(info.value), encode_master_key(mk))


def test_unknown_format_version_refused(mk: MasterKey) -> None:
    sealed = replace(seal(mk, "sk-x-1234", user_id="a", provider_key="p"), version=2)
    with pytest.raises(VaultError, match="format version 2"):
        unseal(mk, sealed, user_id="a", provider_key="p")


def test_sealed_text_round_trip(mk: MasterKey) -> None:
    sealed = seal(mk, "sk-value-12345", user_id="alice", provider_key="openai")
    text = sealed.to_text()
    assert text.startswith(f"aipilot:v1:{mk.key_id}:")
    assert Sealed.from_text(text) == sealed
    assert (
        unseal(mk, Sealed.from_text(text), user_id="alice", provider_key="openai")
        == "sk-value-12345"
    )


def _sealed_text_variants(text: str) -> list[str]:
    prefix, version, key_id, nonce, ct = text.split(":")
    return [
        "",
        "garbage",
        text + ":extra",
        ":".join(["other", version, key_id, nonce, ct]),
        ":".join([prefix, "1", key_id, nonce, ct]),
        ":".join([prefix, "v0", key_id, nonce, ct]),
        ":".join([prefix, version, "XYZ", nonce, ct]),
        ":".join([prefix, version, key_id, nonce + "!", ct]),
        ":".join([prefix, version, key_id, nonce[:-2], ct]),
        ":".join([prefix, version, key_id, nonce, ct[:10]]),
        ":".join([prefix, version, key_id, nonce, "a"]),
        ":".join([prefix, version, key_id, nonce, ""]),
    ]


def test_malformed_sealed_text_refused(mk: MasterKey) -> None:
    text = seal(mk, "sk-value-12345", user_id="alice", provider_key="openai").to_text()
    for bad in _sealed_text_variants(text):
        with pytest.raises(VaultError, match="sealed format") as info:
            Sealed.from_text(bad)
        assert not bad or bad not in str(info.value)


def test_master_key_repr_hides_key(mk: MasterKey) -> None:
    for form in (repr(mk), str(mk), f"{mk}"):
        assert mk.key_id in form
        assert not find_leaks(form, encode_master_key(mk))
        assert mk.key.hex() not in form


def test_master_key_text_round_trip(mk: MasterKey) -> None:
    text = encode_master_key(mk)
    assert len(base64.b64decode(text)) == 32
    assert parse_master_key(f"  {text}\n") == mk


# --- master key from the environment ------------------------------------------------

BAD_MASTER_KEYS = {
    "empty": "",
    "blank": "  \n",
    "short": base64.b64encode(b"short-master-key").decode(),
    "not base64": "not*base64!!not*base64!!not*base64!!not*base64!!",
    "31 bytes": base64.b64encode(b"K" * 31).decode(),
    "33 bytes": base64.b64encode(b"K" * 33).decode(),
    "url-safe alphabet": base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(),
    "non-ascii": "é" * 44,
}


def test_master_key_from_env(mk: MasterKey) -> None:
    assert load_master_key(env={ENV_VAR: encode_master_key(mk)}) == mk
    assert master_key_source(env={ENV_VAR: encode_master_key(mk)}) == "env"


@pytest.mark.parametrize("bad", BAD_MASTER_KEYS.values(), ids=BAD_MASTER_KEYS.keys())
def test_invalid_env_master_key_refused_without_fallback(
    bad: str, memory_keyring: MemoryKeyring
) -> None:
    good = generate_master_key()
    memory_keyring.set_password(KEYRING_SERVICE, KEYRING_USERNAME, encode_master_key(good))
    with pytest.raises(UsageError, match=f"{ENV_VAR} is not a valid master key") as info:
        load_master_key(env={ENV_VAR: bad})
    if bad.strip():
        assert bad.strip() not in error_text(info.value)
    with pytest.raises(UsageError):
        ensure_master_key(env={ENV_VAR: bad})


# --- master key from the keyring ----------------------------------------------------


def test_master_key_from_memory_keyring(mk: MasterKey) -> None:
    backend = MemoryKeyring()
    backend.set_password(KEYRING_SERVICE, KEYRING_USERNAME, encode_master_key(mk))
    import keyring.core

    before = keyring.core._keyring_backend
    with installed(backend):
        assert load_master_key(env=NO_ENV) == mk
        assert master_key_source(env=NO_ENV) == "keyring"
    assert keyring.core._keyring_backend is before


def test_empty_keyring_says_how_to_create_one(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(MasterKeyMissingError, match="holds no aipilot master key") as info:
        load_master_key(env=NO_ENV)
    assert ENV_VAR in str(info.value) and "aipilot init" in str(info.value.hint)
    assert master_key_source(env=NO_ENV) == "none"


def test_invalid_keyring_entry_is_an_error(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.set_password(KEYRING_SERVICE, KEYRING_USERNAME, "not-a-master-key")
    with pytest.raises(VaultError, match="stored in the keyring") as info:
        load_master_key(env=NO_ENV)
    assert "not-a-master-key" not in error_text(info.value)
    with pytest.raises(VaultError):
        ensure_master_key(env=NO_ENV)
    assert memory_keyring.store[(KEYRING_SERVICE, KEYRING_USERNAME)] == "not-a-master-key"


@pytest.mark.parametrize(
    ("backend", "name"),
    [
        (fail.Keyring(), "fail.Keyring"),
        (null.Keyring(), "null.Keyring"),
        (WeakKeyring(), "WeakKeyring"),
    ],
)
def test_non_recommended_keyring_refused(backend: MemoryKeyring, name: str, mk: MasterKey) -> None:
    with installed(backend):
        with pytest.raises(MasterKeyMissingError) as info:
            load_master_key(env=NO_ENV)
        message = str(info.value)
        assert ENV_VAR in message and "no recommended keyring backend" in message
        assert f"keyring chose {name}" in message or name in message
        assert ENV_VAR in str(info.value.hint)
        assert master_key_source(env=NO_ENV) == "none"
        with pytest.raises(MasterKeyMissingError, match="not a secure store"):
            store_master_key_in_keyring(mk)
    if isinstance(backend, WeakKeyring):
        assert backend.store == {}


def test_store_refused_when_read_back_differs(mk: MasterKey) -> None:
    with installed(DiscardingKeyring()), pytest.raises(MasterKeyMissingError, match="read back"):
        store_master_key_in_keyring(mk)


def test_store_round_trip(memory_keyring: MemoryKeyring, mk: MasterKey) -> None:
    store_master_key_in_keyring(mk)
    assert memory_keyring.store[(KEYRING_SERVICE, KEYRING_USERNAME)] == encode_master_key(mk)
    assert load_master_key(env=NO_ENV) == mk


def test_chained_keyring_uses_recommended_member_only(
    monkeypatch: pytest.MonkeyPatch, mk: MasterKey
) -> None:
    weak, good = WeakKeyring(), MemoryKeyring()
    monkeypatch.setattr(ChainerBackend, "backends", [weak, good])
    with installed(ChainerBackend()):
        store_master_key_in_keyring(mk)
    assert weak.store == {} and good.store
    monkeypatch.setattr(ChainerBackend, "backends", [weak, null.Keyring()])
    with installed(ChainerBackend()), pytest.raises(MasterKeyMissingError):
        store_master_key_in_keyring(mk)


@pytest.fixture
def hanging_keyring() -> Iterator[HangingKeyring]:
    HangingKeyring.release.clear()
    try:
        with installed(HangingKeyring()) as backend:
            assert isinstance(backend, HangingKeyring)
            yield backend
    finally:
        HangingKeyring.release.set()


def test_hanging_keyring_times_out(hanging_keyring: HangingKeyring, mk: MasterKey) -> None:
    started = time.monotonic()
    with pytest.raises(MasterKeyMissingError, match=r"did not answer within 0\.5 s") as info:
        load_master_key(env=NO_ENV, keyring_timeout_s=0.5)
    assert ENV_VAR in str(info.value)
    with pytest.raises(MasterKeyMissingError, match="did not answer"):
        store_master_key_in_keyring(mk, timeout_s=0.5)
    assert master_key_source(env=NO_ENV, keyring_timeout_s=0.5) == "none"
    key, message = ensure_master_key(env=NO_ENV, keyring_timeout_s=0.5)
    assert key is None and ENV_VAR in message
    assert time.monotonic() - started < 5


# --- ensure_master_key (for `aipilot init`) -----------------------------------------


@pytest.fixture
def temp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(name, str(home / name.lower()))
    return home


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()], ids=["fail", "null"])
def test_ensure_without_keyring_explains_and_writes_nothing(
    temp_home: Path, backend: fail.Keyring | null.Keyring
) -> None:
    with installed(backend):
        key, message = ensure_master_key(env=NO_ENV)
    assert key is None
    assert ENV_VAR in message and "no recommended keyring backend" in message
    assert list(temp_home.rglob("*")) == []


def test_ensure_creates_once_then_reuses(memory_keyring: MemoryKeyring) -> None:
    key, message = ensure_master_key(env=NO_ENV)
    assert key is not None and "created" in message and key.key_id in message
    assert memory_keyring.store[(KEYRING_SERVICE, KEYRING_USERNAME)] == encode_master_key(key)
    again, message = ensure_master_key(env=NO_ENV)
    assert again == key and "using" in message


def test_ensure_prefers_env(memory_keyring: MemoryKeyring, mk: MasterKey) -> None:
    key, message = ensure_master_key(env={ENV_VAR: encode_master_key(mk)})
    assert key == mk and ENV_VAR in message
    assert memory_keyring.store == {}


def _run_python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, env=env
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    "backend", ["keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"]
)
def test_ensure_honours_python_keyring_backend(tmp_path: Path, backend: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHON_KEYRING_BACKEND": backend,
    }
    code = "from aipilot.vault import ensure_master_key as e; k, m = e(); print(k is None, m)"
    out = _run_python(code, env)
    assert out.startswith("True ") and ENV_VAR in out
    assert list(tmp_path.rglob("*")) == []


def test_memory_keyring_shared_between_processes(tmp_path: Path) -> None:
    store = tmp_path / "keyring.json"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHON_KEYRING_BACKEND": "tests.memkeyring.MemoryKeyring",
        "KEYRING_PROPERTY_FILE_PATH": str(store),
    }
    code = "from aipilot.vault import ensure_master_key as e; print(e()[0].key_id)"
    first, second = _run_python(code, env), _run_python(code, env)
    assert first == second and len(first) == 12
    assert store.stat().st_mode & 0o777 == 0o600


# --- provider key input -------------------------------------------------------------


def test_surrounding_whitespace_stripped(canary: str) -> None:
    for raw in (f"  {canary}\n", f"\t{canary}\r\n", f"\n\n{canary}   "):
        assert validate_api_key_input(raw, provider_key="openai") == canary


BAD_INPUTS = {
    "inner newline": "{c}\n{c}",
    "inner tab": "{c}\t{c}",
    "inner space": "{c} {c}",
    "NUL": "{c}\x00",
    "DEL": "{c}\x7f",
    "escape": "{c}\x1b[2J",
    "10k chars": "{c}" + "x" * 10_000,
    "513 chars": "{c}" + "y" * 513,
    "unicode": "{c}é",
    "zero-width": "{c}\u200b",
    "empty": "",
    "blank": " \r\n\t ",
}


@pytest.mark.parametrize("template", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_key_input_refused_without_echo(template: str, canary: str) -> None:
    raw = template.format(c=canary)
    with pytest.raises(UsageError, match="the key for openai") as info:
        validate_api_key_input(raw, provider_key="openai")
    text = error_text(info.value)
    assert not find_leaks(text, canary)
    assert raw.strip() == "" or raw.strip() not in text


def test_control_character_position_reported() -> None:
    with pytest.raises(UsageError, match="control character at position 5"):
        validate_api_key_input("abcd\nefgh", provider_key="openai")


def test_longest_key_accepted() -> None:
    assert validate_api_key_input("k" * 512, provider_key="p") == "k" * 512


# --- canary sweep and import hygiene -------------------------------------------------


def test_leak_forms_cover_encodings(canary: str) -> None:
    raw = canary.encode()
    forms = leak_forms(canary)
    for blob in (
        canary,
        raw.hex(),
        base64.b64encode(b"x" + raw).decode(),
        base64.urlsafe_b64encode(b"xy" + raw).decode().rstrip("="),
    ):
        assert any(form in blob for form in forms)


def test_forced_errors_do_not_leak_canary(mk: MasterKey, canary: str) -> None:
    sealed = seal(mk, canary, user_id="alice", provider_key="openai")
    errors: list[VaultError] = []
    for key, user in ((generate_master_key(), "alice"), (mk, "bob")):
        try:
            unseal(key, sealed, user_id=user, provider_key="openai")
        except VaultError as caught:
            errors.append(caught)
    assert [type(e) for e in errors] == [MasterKeyMismatchError, CiphertextIntegrityError]
    for err in errors:
        assert not find_leaks(error_text(err), canary)
        assert err.__context__ is None


def test_import_is_light() -> None:
    code = (
        "import sys, aipilot.vault; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cryptography', 'keyring')))"
    )
    assert _run_python(code, {"PATH": os.environ.get("PATH", "")}) == "[]"


class LockedKeyring(MemoryKeyring):
    """A recommended backend that fails writes with an error quoting the value."""

    def set_password(self, service: str, username: str, password: str) -> None:
        from keyring.errors import KeyringLocked

        raise KeyringLocked(f"collection is locked; could not store {password}")


def test_keyring_error_translated_without_the_key(mk: MasterKey) -> None:
    with installed(LockedKeyring()), pytest.raises(MasterKeyMissingError) as info:
        store_master_key_in_keyring(mk)
    assert "KeyringLocked: collection is locked" in str(info.value)
    assert not find_leaks(error_text(info.value), encode_master_key(mk))
    assert info.value.__context__ is None and info.value.__cause__ is None
