"""The root ``aipilot`` command: global options, command groups, the error boundary.

Importing this module must stay cheap: no SQLAlchemy, httpx, alembic, cryptography or
keyring (a test checks ``sys.modules``). Commands import the services they use.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from aipilot import __version__
from aipilot.cli import (
    assist,
    custom,
    health,
    keys,
    limits,
    model,
    models,
    org_openai,
    orgs,
    prompts,
    providers,
    serve,
    setup,
    tokens,
    usage,
    users,
)
from aipilot.cli.state import State, state
from aipilot.errors import AipilotError, ExitCode


def _debug(ctx: typer.Context) -> bool:
    obj = ctx.find_root().obj
    if isinstance(obj, State) and obj.debug:
        return True
    return os.environ.get("AIPILOT_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def _json(ctx: typer.Context) -> bool:
    obj = ctx.find_root().obj
    return isinstance(obj, State) and obj.json


class AipilotGroup(TyperGroup):
    """The one error boundary: expected errors become ``Error:``/``Hint:`` and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        from aipilot.cli import render

        # `--json` given after the subcommand must shape error output too, even when the
        # command fails before it reads its own options.
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if "--json" in rest:
            state(ctx).json = True
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except AipilotError as err:
            if _debug(ctx):
                raise
            render.error(err, json_mode=_json(ctx))
            raise typer.Exit(code=int(err.exit_code)) from None
        except KeyboardInterrupt:
            render.stderr().print("[yellow]Interrupted.[/yellow]")
            raise typer.Exit(code=int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if _debug(ctx):
                raise
            import logging

            # The traceback goes to the log at DEBUG (no handler prints it unless one is
            # configured: --debug re-raises above instead; the tests capture it).
            logging.getLogger("aipilot.cli").debug(
                "unexpected %s", type(exc).__name__, exc_info=exc
            )
            # The message of a foreign exception may carry anything; show only its type.
            internal = AipilotError(
                f"unexpected internal error ({type(exc).__name__})",
                hint="rerun with --debug (or AIPILOT_DEBUG=1) for a traceback and report it",
            )
            render.error(internal, json_mode=_json(ctx))
            raise typer.Exit(code=int(ExitCode.INTERNAL)) from None
        finally:
            obj = ctx.find_root().obj
            if isinstance(obj, State):
                obj.close()
            _end_debug_logging()


app = typer.Typer(
    cls=AipilotGroup,
    name="aipilot",
    help=(
        "aipilot: the control centre for the LLM providers your apps use — encrypted keys, "
        "catalogs, one active model, health tests, prompts, chats and usage.\n\n"
        "Start with `aipilot init`, then `aipilot keys set openai`."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aipilot {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="AIPILOT_DATABASE_URL",
            help="Database URL (postgresql://… or sqlite:///…). Default: a SQLite file in "
            "your user data directory.",
            show_envvar=True,
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            envvar="AIPILOT_USER",
            help="Act as this user (name or id). Default: your OS login.",
            show_envvar=True,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (also AIPILOT_DEBUG=1).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    current = state(ctx)
    current.db, current.user = db, user
    current.json, current.debug = current.json or json_output, debug
    if _debug(ctx):
        _debug_logging()


def _debug_logging() -> None:
    from aipilot import debuglog

    debuglog.enable()


def _end_debug_logging() -> None:
    """The end of a command: its --debug handler goes (bound to that command's stderr, it
    would write a later in-process command's DEBUG records, tracebacks included, there)."""
    import sys

    if "logging" in sys.modules:
        from aipilot import debuglog

        debuglog.disable()


app.add_typer(setup.db_app, name="db")
app.command("init")(setup.init)
app.add_typer(users.app, name="users")
app.add_typer(keys.app, name="keys")
app.add_typer(providers.app, name="providers")
app.add_typer(models.app, name="models")
app.add_typer(custom.app, name="custom")
app.add_typer(model.app, name="model")
app.add_typer(prompts.app, name="prompts")
app.command("test")(health.test)
app.command("history")(health.history)
app.command("status")(health.status)
app.command("usage")(usage.usage)
app.command("ask")(assist.ask)
app.command("chat")(assist.chat)
app.add_typer(orgs.app, name="orgs")
app.add_typer(org_openai.app, name="org-openai")
app.add_typer(limits.app, name="limits")
app.add_typer(tokens.app, name="tokens")
app.command("serve")(serve.serve)


def run() -> None:
    app(prog_name="aipilot")
