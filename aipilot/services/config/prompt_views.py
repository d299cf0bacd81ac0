"""Reading system prompts (``prompts list | show``): plain SQL over a Reader.

The one read path of the prompts: a command that only looks runs it on the direct driver
connection (:mod:`aipilot.db.direct`); the services in :mod:`aipilot.services.config.prompts`
run the same statements inside their session. Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from aipilot.db.identity import Identity
from aipilot.db.reader import Reader, Row, as_bool, as_time, id_param, uuid_of
from aipilot.errors import NotFoundError

_COLUMNS = "id, name, prompt_content, is_active, created_at, updated_at"


@dataclass(frozen=True)
class PromptInfo:
    id: str
    name: str
    size: int
    is_active: bool
    created_at: datetime | None
    updated_at: datetime | None
    content: str | None = None


def prompt_info(row: Row, *, content: bool = False) -> PromptInfo:
    return PromptInfo(
        id=str(uuid_of(row["id"])),
        name=row["name"],
        size=len(row["prompt_content"]),
        is_active=bool(as_bool(row["is_active"])),
        created_at=as_time(row["created_at"]),
        updated_at=as_time(row["updated_at"]),
        content=row["prompt_content"] if content else None,
    )


def list_prompts(reader: Reader, identity: Identity) -> list[PromptInfo]:
    rows = reader.rows(
        f"SELECT {_COLUMNS} FROM ai_system_prompts WHERE user_id = :uid ORDER BY name",
        uid=id_param(reader, identity.user_id),
    )
    return [prompt_info(r) for r in rows]


def show_prompt(reader: Reader, identity: Identity, ref: str) -> PromptInfo:
    """A prompt by name, or by id when ``ref`` is a UUID, with its text."""
    try:
        where, value = "id = :v", id_param(reader, uuid.UUID(ref.strip()))
    except ValueError:
        where, value = "name = :v", ref.strip()
    found = reader.rows(
        f"SELECT {_COLUMNS} FROM ai_system_prompts WHERE user_id = :uid AND {where}",
        uid=id_param(reader, identity.user_id),
        v=value,
    )
    if not found:
        raise NotFoundError(f"no prompt named {ref.strip()!r}", hint="see `aipilot prompts list`")
    return prompt_info(found[0], content=True)
