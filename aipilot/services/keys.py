"""Provider keys: set, status, test, delete, rotate the master key.

The seed's ``ai-keys-manager`` (set-key, get-status, test-key, delete-key) as use cases.
Keys are validated and the master key loaded before anything is stored; provider calls
happen outside any database transaction, and their results are recorded afterwards.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot import vault
from aipilot.db.engine import set_identity
from aipilot.db.models import Credential, OpenAIConnexion, Provider, User
from aipilot.errors import AipilotError, MasterKeyMissingError, UsageError
from aipilot.services import calls, credentials
from aipilot.services.catalog import active_providers, get_provider, settings_for
from aipilot.services.runtime import Context


@dataclass(frozen=True)
class KeyTestResult:
    provider: str
    ok: bool
    latency_ms: int
    error: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class SetKeyResult:
    provider: str
    hint: str
    test: KeyTestResult | None


@dataclass(frozen=True)
class KeyStatus:
    provider: str
    provider_name: str
    configured: bool
    state: str  # "configured" | "not configured" | "needs re-entry" | "locked"
    hint: str | None = None
    last_tested_at: datetime | None = None
    last_test_ok: bool | None = None
    last_test_error: str | None = None


@dataclass(frozen=True)
class RotateResult:
    rows: int
    users: int
    old_key_id: str
    new_key_id: str
    stored_in: str


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


def set_key(ctx: Context, provider_key: str, raw: str, *, test: bool = True) -> SetKeyResult:
    with ctx.db.session() as session:
        provider = get_provider(session, provider_key).provider_key
    secret = vault.validate_api_key_input(raw, provider_key=provider)
    mk = vault.load_master_key()
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        row = credentials.store(session, ctx.identity, provider, secret, mk)
        key_hint = row.key_hint
    result = test_keys(ctx, [provider])[0] if test else None
    return SetKeyResult(provider=provider, hint=key_hint, test=result)


def key_status(ctx: Context, provider_key: str | None = None) -> list[KeyStatus]:
    try:
        keys: list[vault.MasterKey] | None = master_keys()
    except MasterKeyMissingError:
        keys = None
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        stored = {r.provider_key: r for r in credentials.all_for(session, ctx.identity)}
        if provider_key:
            providers = [get_provider(session, provider_key, require_active=False)]
        else:
            providers = active_providers(session)
            extra = set(stored) - {p.provider_key for p in providers}
            providers += [get_provider(session, k, require_active=False) for k in sorted(extra)]
        return [_status(p, stored.get(p.provider_key), keys) for p in providers]


def _status(
    provider: Provider, row: Credential | None, keys: list[vault.MasterKey] | None
) -> KeyStatus:
    if row is None:
        return KeyStatus(provider.provider_key, provider.provider_name, False, "not configured")
    state = "locked" if keys is None else "configured"
    if keys is not None:
        try:
            credentials.open_row(row, keys)
        except AipilotError:
            state = "needs re-entry"
    return KeyStatus(
        provider=provider.provider_key,
        provider_name=provider.provider_name,
        configured=state != "needs re-entry",
        state=state,
        hint=row.key_hint,
        last_tested_at=row.last_tested_at,
        last_test_ok=row.last_test_ok,
        last_test_error=row.last_test_error,
    )


def _check(settings: object, secret: str) -> KeyTestResult:
    from aipilot.providers import ProviderSettings, client_for

    assert isinstance(settings, ProviderSettings)
    started = time.monotonic()
    try:
        with client_for(settings, secret) as client:
            client.check_key()
    except AipilotError as err:
        ms = int((time.monotonic() - started) * 1000)
        out = calls.outcome_of_error(err, latency_ms=ms, secrets=[secret])
        return KeyTestResult(settings.provider_key, False, ms, out.error, out.error_code)
    return KeyTestResult(settings.provider_key, True, int((time.monotonic() - started) * 1000))


def test_keys(ctx: Context, providers: list[str] | None = None) -> list[KeyTestResult]:
    """Check each key with its provider's cheapest authenticated call, concurrently."""
    keys = master_keys()
    jobs: list[tuple[object, str]] = []
    failed: list[KeyTestResult] = []
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        if providers is None:
            active = {p.provider_key: p for p in active_providers(session)}
            rows = [
                r for r in credentials.all_for(session, ctx.identity) if r.provider_key in active
            ]
            if not rows:
                raise UsageError(
                    "no keys to test", hint="store one with `aipilot keys set PROVIDER`"
                )
        else:
            rows = [
                credentials.require(session, ctx.identity, get_provider(session, p).provider_key)
                for p in providers
            ]
        for row in rows:
            provider = get_provider(session, row.provider_key)
            try:
                jobs.append((settings_for(provider), credentials.open_row(row, keys)))
            except AipilotError as err:
                failed.append(
                    KeyTestResult(row.provider_key, False, 0, err.message, "needs re-entry")
                )
    results = _concurrently(jobs) + failed
    _record_tests(ctx, results)
    return sorted(results, key=lambda r: r.provider)


def _concurrently(jobs: list[tuple[object, str]]) -> list[KeyTestResult]:
    """Run the checks side by side in daemon threads: Ctrl-C returns at once instead of
    waiting for a slow provider (a thread pool's exit, and the interpreter's, would)."""
    if len(jobs) <= 1:
        return [_check(*job) for job in jobs]
    results: list[KeyTestResult | None] = [None] * len(jobs)
    crashes: list[BaseException] = []

    def work(index: int, settings: object, secret: str) -> None:
        try:
            results[index] = _check(settings, secret)
        except BaseException as exc:  # re-raised in the calling thread below
            crashes.append(exc)

    threads = [
        threading.Thread(target=work, args=(i, *job), daemon=True, name="aipilot-key-test")
        for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if crashes:
        raise crashes[0]
    return [r for r in results if r is not None]


def _record_tests(ctx: Context, results: list[KeyTestResult]) -> None:
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        for result in results:
            row = credentials.find(session, ctx.identity, result.provider)
            if row is not None:
                row.last_tested_at = credentials.now()
                row.last_test_ok, row.last_test_error = result.ok, result.error
            outcome = calls.CallOutcome(
                result.ok, result.latency_ms, result.error_code, result.error
            )
            calls.record(
                session,
                ctx.identity,
                kind="key_test",
                provider_key=result.provider,
                outcome=outcome,
            )


def delete_key(ctx: Context, provider_key: str) -> bool:
    """Delete the user's key; False when there was none (idempotent)."""
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        provider = get_provider(session, provider_key, require_active=False).provider_key
        row = credentials.find(session, ctx.identity, provider)
        if row is None:
            return False
        session.delete(row)
        return True


def rotate_master(ctx: Context, new_key: vault.MasterKey | None = None) -> RotateResult:
    """Re-encrypt every user's keys under a new master key, in one transaction.

    The new key is made durable before the transaction commits and the old one stays
    usable until after it, so a process killed at any moment leaves every row decryptable
    with the old or the new key: with ``AIPILOT_MASTER_KEY`` the caller supplies the new
    key (and keeps it); with the keyring, it waits in a pending slot until the commit.
    """
    ctx.identity.require_admin("rotating the master key")
    source = vault.master_key_source()
    old = vault.load_master_key()
    if source == "env" and new_key is None:
        raise UsageError(
            "the master key comes from AIPILOT_MASTER_KEY, so aipilot cannot store a new one",
            hint="NEW=$(aipilot keys new-master --quiet); aipilot keys rotate-master "
            "--new-from-env NEW; then set AIPILOT_MASTER_KEY=$NEW",
        )
    new = new_key or vault.generate_master_key()
    if new == old:
        raise UsageError("the new master key is the current one", hint="generate a new one")
    if source == "keyring":
        vault.store_pending_master_key(new)
    forget_master_keys()
    rows, users = _reencrypt_all(ctx, old, new)
    if source == "keyring":
        vault.store_master_key_in_keyring(new)
        vault.clear_pending_master_key()
    forget_master_keys()
    return RotateResult(rows, users, old.key_id, new.key_id, source)


def _reencrypt_all(ctx: Context, old: vault.MasterKey, new: vault.MasterKey) -> tuple[int, int]:
    count, user_count = 0, 0
    with ctx.db.session(write=True) as session:
        user_ids = list(session.scalars(sa.select(User.users_id)))
        for user_id in user_ids:
            if ctx.db.dialect == "postgresql":
                set_identity(session, user_id)  # row-level security: one user at a time
            rows = list(session.scalars(sa.select(Credential).where(Credential.user_id == user_id)))
            for row in rows:
                secret = credentials.open_row(row, [old, new])
                credentials.seal_into(row, new, secret)
                row.updated_at = credentials.now()
            session.flush()
            for row in rows:  # prove every row decrypts under the new key before committing
                credentials.open_row(row, [new])
            count, user_count = count + len(rows), user_count + bool(rows)
        count += _reencrypt_org_keys(ctx, session, old, new)
    return count, user_count


def _reencrypt_org_keys(
    ctx: Context, session: Session, old: vault.MasterKey, new: vault.MasterKey
) -> int:
    """Organisations' OpenAI keys (openai_connexion), in the same transaction."""
    if ctx.db.dialect == "postgresql":
        set_identity(session, ctx.identity.user_id)  # an admin sees every organisation's row
    rows = list(
        session.scalars(
            sa.select(OpenAIConnexion).where(OpenAIConnexion.openai_api_key.is_not(None))
        )
    )
    for row in rows:
        owner = credentials.org_key_owner(row.organisation_id)
        sealed = vault.Sealed.from_text(row.openai_api_key or "")
        mk = new if sealed.key_id == new.key_id else old
        secret = vault.unseal(mk, sealed, user_id=owner, provider_key="openai")
        row.openai_api_key = vault.seal(new, secret, user_id=owner, provider_key="openai").to_text()
        vault.unseal(
            new, vault.Sealed.from_text(row.openai_api_key), user_id=owner, provider_key="openai"
        )
    session.flush()
    return len(rows)
