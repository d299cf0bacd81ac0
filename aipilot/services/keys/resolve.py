"""The key for a call: one function, :func:`resolve_key`, used by every path that calls a
provider with a user's key — ``ask``, ``chat``, streams, ``/v1``, ``assist_flut``, ``aipilot
test`` and ``ai-config-test``, ``keys test`` and the ``test-key`` action.

The rule:

1. The user's own stored key for the provider wins (even when it cannot be opened: the
   error then says to re-enter it; the organisation's key is not used instead).
2. Else, for the ``openai`` provider only, the user's organisation's connection
   (``openai_connexion``), when it is enabled (``openai_actif``) and its status is
   ``active`` or ``quota_exceeded`` (the quota reserve re-checks the latter at each call);
   ``inactive``, ``error`` and ``expired`` connections are refused with exit 3. The model
   must be in ``openai_modeles_autorises`` (NULL or empty allows nothing), else exit 9 —
   checked when a model is named (every call names one; a key test does not, see below).
   A key another system stored as plaintext is never used (exit 3). The connection's
   ``openai_organisation_id`` / ``openai_project_id`` go out as OpenAI's
   ``OpenAI-Organization`` / ``OpenAI-Project`` headers.
3. Else: "no KEY is stored for USER" (exit 3), as before.

What the callers do with an organisation's key (``source == "organisation"``):

- A call (``ask``, ``chat``, ``/v1``, ``assist_flut``) and a configuration test (``aipilot
  test``, ``ai-config-test``) reserve one request of the organisation's daily quota before
  calling and settle the cost after it: the test's round trip is a chat sent with the
  organisation's key, so the organisation's counters count it like any call. A 401 from the
  provider marks the connection ``error`` until an admin's ``org-openai test``.
- ``keys test openai`` (and the ``test-key`` action) tests the key a call would use: with
  no key of the user's own, the organisation's (with its headers; no model is named, so the
  allowed-models list is not consulted). It is the provider's free list-models call, not a
  chat, so like ``org-openai test`` it counts no request; and it leaves the connection's
  status alone (a member's check reports; calls and the admin's test set the status).
  ``keys test --all`` tests the user's own stored keys.

No database write happens here: the caller's read session is enough.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot import vault
from aipilot.db.identity import Identity
from aipilot.db.models import OpenAIConnexion, Organisation, Provider, User
from aipilot.errors import NotConfiguredError, PermissionDeniedError
from aipilot.services.catalog.catalog import settings_for
from aipilot.services.keys import credentials
from aipilot.services.keys.sealing import is_plaintext, master_keys, open_row, unseal_with

if TYPE_CHECKING:
    from aipilot.providers.types import ProviderSettings

PROVIDER = "openai"  # the one provider an organisation's connection holds a key for
USABLE = ("active", "quota_exceeded")


@dataclass(frozen=True)
class ResolvedKey:
    """The key for one call (``repr`` hides it) and the settings to call with."""

    secret: str = field(repr=False)
    settings: ProviderSettings  # with the organisation's headers when its key is used
    source: Literal["own", "organisation"]
    connexion_id: uuid.UUID | None = None  # the organisation's connection, when used


def resolve_key(
    session: Session, identity: Identity, provider: Provider, model: str | None
) -> ResolvedKey:
    """The user's own key, else (openai) the organisation's; see the module docstring.

    ``model`` is the model the call uses (``None`` for a key test, which names none).
    Raises NotConfiguredError (no key, unusable connection), PermissionDeniedError (model
    not allowed with the organisation's key) or VaultError (a stored key cannot be opened).
    """
    settings = settings_for(provider)
    row = credentials.find(session, identity, provider.provider_key)
    if row is None and provider.provider_key == PROVIDER:
        found = _organisation_key(session, identity, settings, model)
        if found is not None:
            return found
    row = row or credentials.require(session, identity, provider.provider_key)
    return ResolvedKey(open_row(row, master_keys()), settings, "own")


def _organisation_key(
    session: Session, identity: Identity, settings: ProviderSettings, model: str | None
) -> ResolvedKey | None:
    """The organisation's key, None when the user's organisation has no connection with one."""
    org_id = session.scalar(
        sa.select(User.organisation_id).where(User.users_id == identity.user_id)
    )
    if org_id is None:
        return None
    row = find_connexion(session, org_id)
    if row is None or row.openai_api_key is None:
        return None
    name = session.scalar(
        sa.select(Organisation.name).where(Organisation.organisation_id == org_id)
    )
    state = row.openai_statut_connexion if row.openai_actif else "inactive"
    if state not in USABLE:
        raise NotConfiguredError(
            f"no {PROVIDER} key is stored for {identity.username}, and organisation {name}'s "
            f"OpenAI connection is {state}",
            hint=f"store your own with `aipilot keys set {PROVIDER}`, or ask an admin "
            f"(`aipilot org-openai test {name}` / `enable {name}`)",
        )
    if model is not None and model not in (row.openai_modeles_autorises or []):
        raise PermissionDeniedError(
            f"model {model} is not allowed with organisation {name}'s OpenAI connection",
            hint=f"allowed: {', '.join(row.openai_modeles_autorises or []) or 'none'}; an admin "
            f"changes the list with `aipilot org-openai allow-models {name} MODEL…`",
        )
    headers = org_headers(row)  # an unusable id is refused before the key is opened
    secret = open_org_key(row)
    return ResolvedKey(
        secret, with_headers(settings, headers), "organisation", row.openai_connexion_id
    )


# ---------------------------------------------------------------- the connection's key
def find_connexion(session: Session, organisation_id: uuid.UUID) -> OpenAIConnexion | None:
    """The organisation's connection: the oldest row if a shared database holds several."""
    query = (
        sa.select(OpenAIConnexion)
        .where(OpenAIConnexion.organisation_id == organisation_id)
        .order_by(OpenAIConnexion.openai_created_at, OpenAIConnexion.openai_connexion_id)
    )
    return session.scalars(query).first()


def open_org_key(row: OpenAIConnexion) -> str:
    """The connection's key, decrypted; a missing or plaintext key is refused (exit 3)."""
    if row.openai_api_key is None:
        raise NotConfiguredError(
            "the organisation's OpenAI connection has no key",
            hint="an admin stores one with `aipilot org-openai set-key ORG`",
        )
    if is_plaintext(row.openai_api_key):  # never used: it was readable by anyone who saw the row
        raise NotConfiguredError(
            "the organisation's OpenAI key is stored as plaintext by another system; "
            "aipilot does not use it",
            hint="an admin seals it with `aipilot org-openai set-key ORG` (and rotates it at "
            "OpenAI: it was readable)",
        )
    sealed = vault.Sealed.from_text(row.openai_api_key)
    owner = credentials.org_key_owner(row.organisation_id)
    return unseal_with(master_keys(), sealed, owner=owner, provider=PROVIDER)


def org_headers(row: OpenAIConnexion) -> dict[str, str]:
    """The connection's OpenAI organisation and project ids, as OpenAI's headers (when set):
    with a key that belongs to several organisations or projects, they pick the one billed.
    The seed's app writes these columns: a value no HTTP header can carry is refused here,
    before any call or quota, rather than failing inside the HTTP client."""
    headers = {}
    for column, header in (
        ("openai_organisation_id", "OpenAI-Organization"),
        ("openai_project_id", "OpenAI-Project"),
    ):
        value = (getattr(row, column) or "").strip()
        if not value:
            continue
        if not (value.isascii() and value.isprintable()):
            raise NotConfiguredError(
                f"the organisation's OpenAI connection has an unusable {column} "
                "(non-ASCII or control characters)",
                hint=f"correct openai_connexion.{column} (OpenAI ids look like org-… / proj_…)",
            )
        headers[header] = value
    return headers


def with_headers(settings: ProviderSettings, headers: dict[str, str]) -> ProviderSettings:
    if not headers:
        return settings
    return replace(settings, extra_headers={**settings.extra_headers, **headers})
