"""Read-only views: key states, the active model, the active prompt, the control centre.

Written once, in plain SQL over :class:`aipilot.db.reader.Reader`, so the same code serves
the ORM path (the server, the services that write) and the direct driver path that every
read-only command takes to start without SQLAlchemy (``status``, ``model show`` and ``keys
status`` read these views).
Nothing here imports SQLAlchemy. Row-level security applies as on every path: the reader's
transaction carries the user's identity on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aipilot import vault
from aipilot.db.identity import Identity
from aipilot.db.reader import Reader, Row, as_bool, as_time, as_uuid, id_param, uuid_of
from aipilot.errors import (
    AipilotError,
    MasterKeyMissingError,
    NotConfiguredError,
    NotFoundError,
)
from aipilot.services.keys.sealing import master_keys, open_row
from aipilot.services.validate import DEFAULT_MODULE, identifier, module_name


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
class ActiveModel:
    module: str
    provider: str
    provider_name: str
    model: str
    label: str | None
    source: str  # "catalog" | "custom" | "unknown" (removed from both since activation)
    activated_at: datetime | None
    prompt_id: uuid.UUID | None
    prompt_name: str | None
    prompt_summary: str | None
    prompt_stale: bool  # the source prompt's text changed since the snapshot was taken
    last_test_at: datetime | None
    last_test_ok: bool | None
    last_test_error: str | None

    @property
    def health(self) -> str:
        if self.last_test_ok is None:
            return "untested"
        return "healthy" if self.last_test_ok else "unhealthy"


@dataclass(frozen=True)
class ActivePrompt:
    id: uuid.UUID
    name: str
    summary: str | None


@dataclass(frozen=True)
class Overview:
    user: str
    role: str
    database: str
    module: str
    keys: tuple[KeyStatus, ...]
    active: ActiveModel | None
    prompt: ActivePrompt | None  # the user's active system prompt
    warnings: tuple[str, ...] = ()  # about the database itself (a role that bypasses RLS)

    @property
    def health(self) -> str:
        return self.active.health if self.active is not None else "not configured"


def summarise(text: str, width: int = 60) -> str:
    """One line of at most ``width`` characters, for tables."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def summary(text: str | None) -> str | None:
    return summarise(text) if text else None


def no_active_model(module: str) -> NotConfiguredError:
    suffix = "" if module == DEFAULT_MODULE else f" --module {module}"
    return NotConfiguredError(
        f"no active model for module {module!r}",
        hint=f"choose one with `aipilot model activate PROVIDER MODEL{suffix}`",
    )


def unknown_provider(key: str, known: Iterable[str]) -> NotFoundError:
    return NotFoundError(f"unknown provider {key!r}", hint=f"known providers: {', '.join(known)}")


# ---------------------------------------------------------------- keys
@dataclass(frozen=True)
class _StoredKey:
    """A credentials row as the driver returns it, in the shape sealing.open_row reads."""

    user_id: uuid.UUID
    provider_key: str
    encrypted_key: str
    nonce: str
    key_id: str
    format_version: int


_PROVIDER_COLUMNS = "provider_key, provider_name, is_active"


def key_states(
    reader: Reader, identity: Identity, provider_key: str | None = None
) -> list[KeyStatus]:
    """Each provider's key state for the user: every active provider, plus any other provider
    the user holds a key for; or only ``provider_key``. Works without a master key (stored
    keys then read "locked"); with one, a key that does not decrypt reads "needs re-entry"."""
    try:
        keys: list[vault.MasterKey] | None = master_keys()
    except MasterKeyMissingError:
        keys = None
    stored = {
        row["provider_key"]: row
        for row in reader.rows(
            "SELECT provider_key, encrypted_key, nonce, key_id, format_version, key_hint, "
            "last_tested_at, last_test_ok, last_test_error "
            "FROM user_provider_credentials WHERE user_id = :uid",
            uid=id_param(reader, identity.user_id),
        )
    }
    providers = reader.rows(f"SELECT {_PROVIDER_COLUMNS} FROM ai_providers ORDER BY provider_key")
    if provider_key is not None:
        key = identifier("provider", provider_key).lower()
        chosen = [p for p in providers if p["provider_key"] == key]
        if not chosen:
            raise unknown_provider(key, (p["provider_key"] for p in providers))
    else:
        chosen = [p for p in providers if as_bool(p["is_active"])]
        chosen += [
            p for p in providers if not as_bool(p["is_active"]) and p["provider_key"] in stored
        ]
    return [_key_state(identity, p, stored.get(p["provider_key"]), keys) for p in chosen]


def _key_state(
    identity: Identity, provider: Row, row: Row | None, keys: list[vault.MasterKey] | None
) -> KeyStatus:
    key, name = provider["provider_key"], provider["provider_name"]
    if row is None:
        return KeyStatus(key, name, False, "not configured")
    state = "locked" if keys is None else "configured"
    if row["nonce"] is None or row["key_id"] is None or row["encrypted_key"] is None:
        state = "stored by another system"  # adopted: re-enter it with `aipilot keys set`
    elif keys is not None:
        sealed = _StoredKey(
            identity.user_id,
            key,
            row["encrypted_key"],
            row["nonce"],
            row["key_id"],
            int(row["format_version"] or 1),
        )
        try:
            open_row(sealed, keys)
        except AipilotError:
            state = "needs re-entry"
    return KeyStatus(
        provider=key,
        provider_name=name,
        configured=state not in ("needs re-entry", "stored by another system"),
        state=state,
        hint=row["key_hint"],
        last_tested_at=as_time(row["last_tested_at"]),
        last_test_ok=as_bool(row["last_test_ok"]),
        last_test_error=row["last_test_error"],
    )


# ---------------------------------------------------------------- the active model
CONFIG_COLUMNS = (
    "module_name, provider_name, model_name, activated_at, system_prompt, system_prompt_id, "
    "last_test_at, last_test_ok, last_test_error"
)


def active_model(
    reader: Reader, identity: Identity, module: str = DEFAULT_MODULE
) -> ActiveModel | None:
    """The module's active model, with its label, prompt snapshot and last test; or None."""
    found = reader.rows(
        f"SELECT {CONFIG_COLUMNS} FROM ai_provider_configs "
        "WHERE user_id = :uid AND module_name = :module AND is_active",
        uid=id_param(reader, identity.user_id),
        module=module_name(module),
    )
    return describe(reader, identity, found[0]) if found else None


def describe(reader: Reader, identity: Identity, config: Row) -> ActiveModel:
    """A config row (``CONFIG_COLUMNS``) as the user sees it."""
    provider_key, model = config["provider_name"], config["model_name"]
    providers = reader.rows(
        "SELECT id, provider_name FROM ai_providers WHERE provider_key = :p", p=provider_key
    )
    label, source = None, "unknown"
    if providers:
        label, source = _label(reader, identity, providers[0]["id"], provider_key, model)
    snapshot = config["system_prompt"]
    prompt_id, prompt_name, stale = _provenance(reader, identity, snapshot, config)
    return ActiveModel(
        module=config["module_name"],
        provider=provider_key,
        provider_name=providers[0]["provider_name"] if providers else provider_key,
        model=model,
        label=label,
        source=source,
        activated_at=as_time(config["activated_at"]),
        prompt_id=prompt_id,
        prompt_name=prompt_name,
        prompt_summary=summarise(snapshot) if snapshot is not None else None,
        prompt_stale=stale,
        last_test_at=as_time(config["last_test_at"]),
        last_test_ok=as_bool(config["last_test_ok"]),
        last_test_error=config["last_test_error"],
    )


def _provenance(
    reader: Reader, identity: Identity, snapshot: str | None, config: Row
) -> tuple[uuid.UUID | None, str | None, bool]:
    """(prompt id, name, stale) of a config's prompt snapshot.

    The prompt the snapshot was taken from (``system_prompt_id``) when it still holds that
    text; else the user's active prompt when the snapshot is its text — the seed's app
    activates a prompt and copies its text without touching ``system_prompt_id``; else the
    recorded prompt, marked stale (edited since); else no name (a snapshot of its own).
    """
    recorded = as_uuid(config["system_prompt_id"])
    if snapshot is None:
        return recorded, None, False
    rows = reader.rows(
        "SELECT id, name, prompt_content, is_active FROM ai_system_prompts "
        "WHERE user_id = :uid AND (id = :id OR is_active)",
        uid=id_param(reader, identity.user_id),
        id=id_param(reader, recorded) if recorded is not None else None,
    )
    by_id = {uuid_of(r["id"]): r for r in rows}
    source = by_id.get(recorded) if recorded is not None else None
    if source is not None and source["prompt_content"] == snapshot:
        return recorded, source["name"], False
    for row in rows:
        if as_bool(row["is_active"]) and row["prompt_content"] == snapshot:
            return uuid_of(row["id"]), row["name"], False
    if source is not None:
        return recorded, source["name"], True
    return recorded, None, False


def _label(
    reader: Reader, identity: Identity, provider_id: Any, provider_key: str, model: str
) -> tuple[str | None, str]:
    """(label, source) of the model: the catalog's, else the user's custom one."""
    catalog = reader.rows(
        "SELECT model_name FROM ai_models "
        "WHERE provider_id = :pid AND model_key = :m AND is_active",
        pid=provider_id,
        m=model,
    )
    if catalog:
        return catalog[0]["model_name"], "catalog"
    custom = reader.rows(
        "SELECT model_name FROM ai_user_models_flut "
        "WHERE user_id = :uid AND provider_key = :p AND model_key = :m AND is_active",
        uid=id_param(reader, identity.user_id),
        p=provider_key,
        m=model,
    )
    if custom:
        return custom[0]["model_name"], "custom"
    return None, "unknown"


# ---------------------------------------------------------------- the prompt, the overview
def active_prompt(reader: Reader, identity: Identity) -> ActivePrompt | None:
    found = reader.rows(
        "SELECT id, name, prompt_content FROM ai_system_prompts WHERE user_id = :uid AND is_active",
        uid=id_param(reader, identity.user_id),
    )
    if not found:
        return None
    row = found[0]
    return ActivePrompt(uuid_of(row["id"]), row["name"], summary(row["prompt_content"]))


def overview(
    reader: Reader, identity: Identity, *, database: str, module: str = DEFAULT_MODULE
) -> Overview:
    """Keys per provider, the active model with its last test, and the active prompt.

    Works without a master key: key states then read "locked" (nothing is decrypted).
    Read in the reader's one transaction; nothing is written.
    """
    module = module_name(module)
    return Overview(
        user=identity.username,
        role=identity.role,
        database=database,
        module=module,
        keys=tuple(key_states(reader, identity)),
        active=active_model(reader, identity, module),
        prompt=active_prompt(reader, identity),
        warnings=tuple(w for w in (rls_bypass_warning(reader),) if w),
    )


RLS_BYPASS_HINT = (
    "connect as a role granted aipilot_service without BYPASSRLS (README: PostgreSQL and Supabase)"
)


def rls_bypass_warning(reader: Reader) -> str | None:
    """On PostgreSQL, a sentence when the connected role bypasses row-level security.

    A superuser or a BYPASSRLS role (Supabase's ``postgres`` and ``service_role``) sees every
    user's rows whatever the policies say: aipilot's per-user isolation then rests on its own
    queries alone. Nothing is wrong in the data; it must not be silent.
    """
    if reader.dialect != "postgresql":
        return None
    found = reader.rows(
        "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    if not found or not (found[0]["rolsuper"] or found[0]["rolbypassrls"]):
        return None
    kind = "is a superuser" if found[0]["rolsuper"] else "has BYPASSRLS"
    return (
        f"the database role {found[0]['rolname']!r} {kind}: row-level security does not "
        f"apply to it, so the database does not keep users apart; {RLS_BYPASS_HINT}"
    )
