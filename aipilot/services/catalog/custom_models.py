"""A user's own models (``ai_user_models_flut``): add, list, hide, show, remove.

The seed's table, rows owned by the user (row-level security on PostgreSQL): sessions pass
the user id so ``auth.uid()`` sees it. A duplicate (user, provider, model) is a conflict,
checked inside the write transaction and backed by the ``uq_user_model`` constraint.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from aipilot.db.models import UserModel
from aipilot.db.reader import SessionReader
from aipilot.errors import ConflictError, NotFoundError
from aipilot.services.catalog import listing
from aipilot.services.catalog.catalog import get_provider
from aipilot.services.catalog.listing import CustomModel
from aipilot.services.runtime import Context
from aipilot.services.validate import label, model_key


def _info(row: UserModel) -> CustomModel:
    return CustomModel(
        row.provider_key, row.model_key, row.model_name, row.is_active, row.created_at
    )


def _find(ctx: Context, session: Session, provider: str, key: str) -> UserModel | None:
    query = sa.select(UserModel).where(
        UserModel.user_id == ctx.identity.user_id,
        UserModel.provider_key == provider,
        UserModel.model_key == key,
    )
    return session.scalars(query).first()


def _require(ctx: Context, session: Session, provider: str, key: str) -> UserModel:
    provider = get_provider(session, provider, require_active=False).provider_key
    row = _find(ctx, session, provider, key.strip())
    if row is None:
        raise NotFoundError(
            f"you have no custom model {key.strip()!r} for {provider}",
            hint="see `aipilot custom list --all`",
        )
    return row


def add_custom(ctx: Context, provider: str, key: str, *, name: str | None = None) -> CustomModel:
    key = model_key(key)
    shown = label("model name", name if name is not None else key)
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        provider = get_provider(session, provider, require_active=False).provider_key
        conflict = ConflictError(
            f"you already have the custom model {key!r} for {provider}",
            hint=f"see `aipilot custom list --provider {provider} --all`",
        )
        if _find(ctx, session, provider, key) is not None:
            raise conflict
        row = UserModel(
            user_id=ctx.identity.user_id,
            provider_key=provider,
            model_key=key,
            model_name=shown,
            is_active=True,
        )
        session.add(row)
        try:
            session.flush()
        except sa.exc.IntegrityError as exc:  # uq_user_model: a concurrent add won
            raise conflict from exc
        return _info(row)


def list_custom(
    ctx: Context, *, provider: str | None = None, include_hidden: bool = False
) -> list[CustomModel]:
    """:func:`listing.list_custom` in a read session of ``ctx``."""
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        return listing.list_custom(
            SessionReader(session), ctx.identity, provider=provider, include_hidden=include_hidden
        )


def set_visible(ctx: Context, provider: str, key: str, visible: bool) -> CustomModel:
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        row = _require(ctx, session, provider, key)
        row.is_active = visible
        session.flush()
        return _info(row)


def remove_custom(ctx: Context, provider: str, key: str) -> CustomModel:
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        row = _require(ctx, session, provider, key)
        info = _info(row)
        session.delete(row)
        return info
