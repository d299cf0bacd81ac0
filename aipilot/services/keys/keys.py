"""Provider keys: set, status, test, delete, rotate the master key.

The seed's ``ai-keys-manager`` (set-key, get-status, test-key, delete-key) as use cases.
Keys are validated and the master key loaded before anything is stored; provider calls
happen outside any database transaction, and their results are recorded afterwards.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot import vault
from aipilot.db.engine import set_identity
from aipilot.db.models import Credential, OpenAIConnexion, User
from aipilot.db.reader import SessionReader
from aipilot.errors import AipilotError, UsageError, VaultError
from aipilot.services.accounting import calls
from aipilot.services.catalog.catalog import active_providers, get_provider
from aipilot.services.config import views
from aipilot.services.config.views import KeyStatus
from aipilot.services.keys import credentials, rotation_guard
from aipilot.services.keys.resolve import resolve_key
from aipilot.services.keys.sealing import (
    forget_master_keys,
    is_plaintext,
    open_row,
    stored_elsewhere,
    unseal_with,
)
from aipilot.services.runtime import Context


@dataclass(frozen=True)
class KeyTestResult:
    provider: str
    ok: bool
    latency_ms: int
    error: str | None = None
    error_code: str | None = None
    auth_failed: bool = False  # the provider refused the key itself (not an outage)


@dataclass(frozen=True)
class SetKeyResult:
    provider: str
    hint: str
    test: KeyTestResult | None


@dataclass(frozen=True)
class RotateResult:
    rows: int
    users: int
    old_key_id: str
    new_key_id: str
    stored_in: str


def set_key(ctx: Context, provider_key: str, raw: str, *, test: bool = True) -> SetKeyResult:
    with ctx.db.session() as session:
        provider = get_provider(session, provider_key).provider_key
    secret = vault.validate_api_key_input(raw, provider_key=provider)
    since = rotation_guard.since(ctx)
    mk = vault.load_master_key()
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        rotation_guard.refuse_retired(session, ctx, mk, since=since)
        row = credentials.store(session, ctx.identity, provider, secret, mk)
        key_hint = row.key_hint
    result = test_keys(ctx, [provider])[0] if test else None
    return SetKeyResult(provider=provider, hint=key_hint, test=result)


def key_status(ctx: Context, provider_key: str | None = None) -> list[KeyStatus]:
    """The user's key state per provider (see :func:`aipilot.services.config.views.key_states`)."""
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        return views.key_states(SessionReader(session), ctx.identity, provider_key)


def check_key(settings: object, secret: str) -> KeyTestResult:
    """The provider's cheapest authenticated call with this key (user's or organisation's)."""
    from aipilot.providers import ProviderSettings, client_for
    from aipilot.providers.errors import ProviderAuthError

    assert isinstance(settings, ProviderSettings)
    started = time.monotonic()
    try:
        with client_for(settings, secret) as client:
            client.check_key()
    except AipilotError as err:
        ms = int((time.monotonic() - started) * 1000)
        out = calls.outcome_of_error(err, latency_ms=ms, secrets=[secret])
        refused = isinstance(err, ProviderAuthError)
        return KeyTestResult(settings.provider_key, False, ms, out.error, out.error_code, refused)
    return KeyTestResult(settings.provider_key, True, int((time.monotonic() - started) * 1000))


def test_keys(ctx: Context, providers: list[str] | None = None) -> list[KeyTestResult]:
    """Check each key with its provider's cheapest authenticated call, concurrently.

    A named provider's key is the one a call would use
    (:func:`aipilot.services.keys.resolve.resolve_key`): for ``openai`` with no key of the
    user's own, the organisation's, with its headers (counted in no quota, the connection's
    status unchanged). Without ``providers`` (``--all``): the user's own stored keys.
    """
    jobs: list[tuple[object, str]] = []
    failed: list[KeyTestResult] = []
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        if providers is None:
            active = {p.provider_key: p for p in active_providers(session)}
            chosen = [
                active[r.provider_key]
                for r in credentials.all_for(session, ctx.identity)
                if r.provider_key in active
            ]
            if not chosen:
                raise UsageError(
                    "no keys to test", hint="store one with `aipilot keys set PROVIDER`"
                )
        else:
            chosen = [get_provider(session, p) for p in providers]
        for provider in chosen:
            try:
                key = resolve_key(session, ctx.identity, provider, None)
            except VaultError as err:  # a stored key that cannot be opened
                failed.append(
                    KeyTestResult(provider.provider_key, False, 0, err.message, "needs re-entry")
                )
                continue
            jobs.append((key.settings, key.secret))
    results = _concurrently(jobs) + failed
    _record_tests(ctx, results)
    return sorted(results, key=lambda r: r.provider)


def _concurrently(jobs: list[tuple[object, str]]) -> list[KeyTestResult]:
    """Run the checks side by side in daemon threads: Ctrl-C returns at once instead of
    waiting for a slow provider (a thread pool's exit, and the interpreter's, would)."""
    if len(jobs) <= 1:
        return [check_key(*job) for job in jobs]
    results: list[KeyTestResult | None] = [None] * len(jobs)
    crashes: list[BaseException] = []

    def work(index: int, settings: object, secret: str) -> None:
        try:
            results[index] = check_key(settings, secret)
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
        # organisations' keys first: their rows are locked before the configuration
        # generation is (migration 0003), the order a call's quota reservation takes too
        count += _reencrypt_org_keys(ctx, session, old, new)
        user_ids = list(session.scalars(sa.select(User.users_id)))
        for user_id in user_ids:
            if ctx.db.dialect == "postgresql":
                set_identity(session, user_id)  # row-level security: one user at a time
            rows = [
                row
                for row in session.scalars(
                    sa.select(Credential).where(Credential.user_id == user_id)
                )
                if not stored_elsewhere(row)  # another system's format: nothing to re-seal
            ]
            for row in rows:
                secret = open_row(row, [old, new])
                credentials.seal_into(row, new, secret)
                row.updated_at = credentials.now()
            session.flush()
            for row in rows:  # prove every row decrypts under the new key before committing
                open_row(row, [new])
            count, user_count = count + len(rows), user_count + bool(rows)
    return count, user_count


def _reencrypt_org_keys(
    ctx: Context, session: Session, old: vault.MasterKey, new: vault.MasterKey
) -> int:
    """Organisations' OpenAI keys (openai_connexion), in the same transaction."""
    if ctx.db.dialect == "postgresql":
        set_identity(session, ctx.identity.user_id)  # an admin sees every organisation's row
    rows = [
        row
        for row in session.scalars(
            sa.select(OpenAIConnexion).where(OpenAIConnexion.openai_api_key.is_not(None))
        )
        if not is_plaintext(row.openai_api_key or "")  # another system's: never sealed by us
    ]
    for row in rows:
        owner = credentials.org_key_owner(row.organisation_id)
        sealed = vault.Sealed.from_text(row.openai_api_key or "")
        secret = unseal_with([old, new], sealed, owner=owner, provider="openai")
        row.openai_api_key = vault.seal(new, secret, user_id=owner, provider_key="openai").to_text()
        vault.unseal(
            new, vault.Sealed.from_text(row.openai_api_key), user_id=owner, provider_key="openai"
        )
    session.flush()
    return len(rows)
