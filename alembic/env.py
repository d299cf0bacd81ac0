"""alembic environment for aipilot.

The URL comes from aipilot's settings (``--db`` / ``AIPILOT_DATABASE_URL`` / the default
SQLite file) unless the caller hands over a connection in
``config.attributes["connection"]`` (what ``aipilot init`` and the tests do). SQLite runs in
batch mode; types are compared so ``alembic check`` catches drift against the ORM models.
"""

from __future__ import annotations

from aipilot.db.models import Base
from alembic import context


def _configure(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
        include_schemas=False,
    )


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from aipilot.config import Settings
    from aipilot.db.engine import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or Settings.resolve().database_url
    engine = create_engine(url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("aipilot migrations run online only: use `aipilot db upgrade`")
run_migrations_online()
