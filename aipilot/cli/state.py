"""Per-invocation state: the global options and the lazily opened runtime context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.config import Settings

if TYPE_CHECKING:
    from aipilot.db.engine import Database
    from aipilot.db.identity import Identity
    from aipilot.db.reader import Reader
    from aipilot.services.runtime import Context

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead of text.")
]


@dataclass
class State:
    db: str | None = None
    user: str | None = None
    json: bool = False
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _context: Context | None = field(default=None, repr=False)
    _database: Database | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.resolve(
                db=self.db, user=self.user, json=self.json, debug=self.debug
            )
        return self._settings

    def database(self) -> Database:
        """The database, without a schema check (for `init` and `db` commands)."""
        if self._database is None:
            from aipilot.services.runtime import open_database

            self._database = open_database(self.settings, check_schema=False)
        return self._database

    def context(self) -> Context:
        """The database (schema checked) and the current user, opened on first use."""
        if self._context is None:
            from aipilot.services.runtime import connect

            self._context = connect(self.settings, database=self._database)
            self._database = self._context.db
            if self._database.dialect == "postgresql":
                from aipilot.db.reader import SessionReader

                with self._database.session() as session:
                    warn_rls_bypass(SessionReader(session))
        return self._context

    @contextmanager
    def reading(self) -> Iterator[tuple[Reader, Identity, str]]:
        """For commands that only look: a read transaction as the current user, the user,
        and what the database is. Straight over the driver when it can (no SQLAlchemy
        import, see aipilot.db.direct), else in a session of :meth:`context`."""
        from aipilot.db.direct import open_direct

        settings = self.settings
        direct = (
            open_direct(settings.database_url, settings.user) if self._context is None else None
        )
        if direct is not None:
            with direct:
                warn_rls_bypass(direct)
                yield direct, direct.identity, direct.described
            return
        from aipilot.db.reader import SessionReader

        ctx = self.context()
        with ctx.db.session(user_id=ctx.identity.user_id) as session:
            yield SessionReader(session), ctx.identity, ctx.db.describe()

    def close(self) -> None:
        """Release pooled connections when the command ends."""
        if self._database is not None:
            self._database.dispose()


QUIET_BYPASS_ENV = "AIPILOT_QUIET_BYPASSRLS"
_warned: list[str] = []  # once per process


def warn_rls_bypass(reader: Reader) -> None:
    """Say once on stderr that the database role bypasses row-level security.

    ``AIPILOT_QUIET_BYPASSRLS=1`` silences this line for an operator who chose such a role
    knowingly; `aipilot status` and `/readyz` still say it.
    """
    import os

    from aipilot.cli import render
    from aipilot.services.config.views import rls_bypass_warning

    if _warned or reader.dialect != "postgresql" or os.environ.get(QUIET_BYPASS_ENV) == "1":
        return
    warning = rls_bypass_warning(reader)
    _warned.append(warning or "")
    if warning:
        render.stderr().print(f"[yellow]Warning:[/yellow] {render.escape(warning)}")


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def wants_json(ctx: typer.Context, local: bool) -> bool:
    current = state(ctx)
    if local:
        current.json = True
    return current.json
