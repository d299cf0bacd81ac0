"""Sealing provider keys into ``user_provider_credentials`` rows and opening them again."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot import vault
from aipilot.db.identity import Identity
from aipilot.db.models import Credential
from aipilot.errors import NotConfiguredError
from aipilot.redaction import hint


def org_key_owner(organisation_id: object) -> str:
    """The owner an organisation's key is sealed for (its associated data), never a user id."""
    return f"org:{organisation_id}"


def now() -> datetime:
    return datetime.now(UTC)


def find(session: Session, identity: Identity, provider_key: str) -> Credential | None:
    query = sa.select(Credential).where(
        Credential.user_id == identity.user_id, Credential.provider_key == provider_key
    )
    return session.scalars(query).first()


def all_for(session: Session, identity: Identity) -> list[Credential]:
    query = sa.select(Credential).where(Credential.user_id == identity.user_id)
    return list(session.scalars(query))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def seal_into(row: Credential, mk: vault.MasterKey, secret: str) -> None:
    sealed = vault.seal(mk, secret, user_id=str(row.user_id), provider_key=row.provider_key)
    row.encrypted_key, row.nonce = _b64(sealed.ciphertext), _b64(sealed.nonce)
    row.key_id, row.format_version = sealed.key_id, sealed.version
    row.key_hint = hint(secret)


def store(
    session: Session, identity: Identity, provider_key: str, secret: str, mk: vault.MasterKey
) -> Credential:
    """Insert or replace the user's key for a provider; the last test result is reset."""
    row = find(session, identity, provider_key)
    if row is None:
        row = Credential(user_id=identity.user_id, provider_key=provider_key)
        session.add(row)
    seal_into(row, mk, secret)
    row.last_tested_at, row.last_test_ok, row.last_test_error = None, None, None
    row.updated_at = now()
    session.flush()
    return row


def require(session: Session, identity: Identity, provider_key: str) -> Credential:
    row = find(session, identity, provider_key)
    if row is None:
        raise NotConfiguredError(
            f"no {provider_key} key is stored for {identity.username}",
            hint=f"run `aipilot keys set {provider_key}`",
        )
    return row
