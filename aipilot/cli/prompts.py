"""`aipilot prompts list | show | create | edit | rename | delete | activate | deactivate`.

Prompt text comes from ``--file PATH``, ``--text TEXT``, standard input (when it is not a
terminal) or ``$VISUAL``/``$EDITOR`` (on a terminal, or with ``--editor``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import inputs, render
from aipilot.cli.state import JsonOpt, state, wants_json
from aipilot.errors import UsageError

if TYPE_CHECKING:
    from aipilot.services.config.prompt_views import PromptInfo
    from aipilot.services.config.prompts import SnapshotChange

app = typer.Typer(
    help="System prompts: create, edit, activate (snapshotted into the active model).",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Prompt name (or id).")]
FileOpt = Annotated[
    Path | None, typer.Option("--file", "-f", help="Read the text from this file (UTF-8).")
]
TextOpt = Annotated[str | None, typer.Option("--text", "-t", help="The text itself.")]
EditorOpt = Annotated[
    bool, typer.Option("--editor", "-e", help="Open $VISUAL / $EDITOR even off a terminal.")
]


def _read_file(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}", hint="check the path") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text", hint="save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _editor_env() -> dict[str, str]:
    """The user's environment without any AIPILOT_* variable: the editor (or a plugin of
    it) has no business with the master key, the database URL's password or a token."""
    import os

    return {name: value for name, value in os.environ.items() if not name.startswith("AIPILOT_")}


def _edit(initial: str) -> str:
    """Open $VISUAL / $EDITOR on a private temporary file and return what was saved."""
    import os
    import shlex
    import subprocess
    import tempfile

    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, path = tempfile.mkstemp(prefix="aipilot-prompt-", suffix=".md")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(initial)
        try:
            done = subprocess.run([*shlex.split(command), path], check=False, env=_editor_env())
        except OSError as exc:
            raise UsageError(
                f"cannot start the editor {command!r}: {exc.strerror}",
                hint="set VISUAL or EDITOR, or use --file / --text",
            ) from None
        if done.returncode != 0:
            raise UsageError(f"the editor exited with status {done.returncode}; nothing saved")
        return _read_file(Path(path))
    finally:
        os.unlink(path)


def _text(*, file: Path | None, text: str | None, editor: bool, initial: str = "") -> str:
    given = [source for source in (file, text) if source is not None]
    if len(given) > 1:
        raise UsageError("give the text one way: --file or --text", hint="see --help")
    if file is not None:
        return _read_file(file)
    if text is not None:
        return text
    if editor or sys.stdin.isatty():
        return _edit(initial)
    return sys.stdin.read()


def _row(info: PromptInfo) -> tuple[str, ...]:
    return (
        "*" if info.is_active else "",
        info.name,
        f"{info.size} chars",
        render.when(info.updated_at),
        info.id,
    )


@app.command("list")
def list_(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """List your prompts (active one marked). Example: aipilot prompts list --json"""
    from aipilot.services.config import prompt_views

    with state(ctx).reading() as (reader, identity, _database):
        rows = prompt_views.list_prompts(reader, identity)
    if wants_json(ctx, json_output):
        render.emit_json({"prompts": render.to_plain(rows)})
        return
    render.table("System prompts", ["", "name", "size", "updated", "id"], [_row(r) for r in rows])


@app.command("show")
def show(ctx: typer.Context, name: NameArg, json_output: JsonOpt = False) -> None:
    """Print a prompt's text (exactly as stored). Example: aipilot prompts show "Devis" """
    from aipilot.services.config import prompt_views

    with state(ctx).reading() as (reader, identity, _database):
        info = prompt_views.show_prompt(reader, identity, name)
    if wants_json(ctx, json_output):
        render.emit_json({"prompt": render.to_plain(info)})
        return
    sys.stdout.write(info.content or "")
    if info.content and not info.content.endswith("\n"):
        sys.stdout.write("\n")


@app.command("create")
def create(
    ctx: typer.Context,
    name: NameArg,
    file: FileOpt = None,
    text: TextOpt = None,
    editor: EditorOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Create a prompt from --file, --text, stdin or your editor.

    Example: aipilot prompts create "Assistant Devis" --file devis.md
    """
    from aipilot.services.config import prompts

    context = state(ctx).context()
    info = prompts.create_prompt(context, name, _text(file=file, text=text, editor=editor))
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "prompt": render.to_plain(info)})
    else:
        render.success(f"created prompt {info.name!r} ({info.size} chars)")


@app.command("edit")
def edit(
    ctx: typer.Context,
    name: NameArg,
    file: FileOpt = None,
    text: TextOpt = None,
    editor: EditorOpt = False,
    refresh_snapshot: Annotated[
        bool | None,
        typer.Option(
            "--refresh-snapshot/--keep-snapshot",
            help="Also update the active model's snapshot of it.",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Replace a prompt's text (editor, --file, --text or stdin).

    If the active model holds a snapshot of this prompt, a terminal asks whether to refresh
    it; scripts say --refresh-snapshot (or --keep-snapshot).
    Example: aipilot prompts edit "Assistant Devis" --file devis.md --refresh-snapshot
    """
    from aipilot.services.config import prompts

    context = state(ctx).context()
    current = prompts.show_prompt(context, name)
    new_text = _text(file=file, text=text, editor=editor, initial=current.content or "")
    if refresh_snapshot is None:
        refresh_snapshot = (
            current.is_active
            and render.is_terminal()
            and typer.confirm("Refresh the active model's snapshot of this prompt?", default=True)
        )
    change = prompts.edit_prompt(context, current.id, new_text, refresh_snapshot=refresh_snapshot)
    _report(
        ctx,
        json_output,
        change,
        f"updated prompt {change.prompt.name!r} ({change.prompt.size} chars)",
    )


def _report(ctx: typer.Context, json_output: bool, change: SnapshotChange, message: str) -> None:
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, **render.to_plain(change)})
        return
    render.success(message)
    if change.configs_updated:
        render.note(f"snapshot updated in {change.configs_updated} active model configuration(s)")
    if change.stale_configs:
        render.note("the active model still holds the previous text: rerun with --refresh-snapshot")


@app.command("rename")
def rename(
    ctx: typer.Context,
    name: NameArg,
    new_name: Annotated[str, typer.Argument(help="The new name.")],
    json_output: JsonOpt = False,
) -> None:
    """Rename a prompt. Example: aipilot prompts rename draft "Assistant Devis" """
    from aipilot.services.config import prompts

    info = prompts.rename_prompt(state(ctx).context(), name, new_name)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "prompt": render.to_plain(info)})
    else:
        render.success(f"renamed to {info.name!r}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Delete a prompt (asks on a terminal; scripts pass --yes).

    Example: aipilot prompts delete old --yes
    """
    from aipilot.services.config import prompts

    context = state(ctx).context()
    inputs.confirm_or_yes(f"Delete the prompt {name!r}?", yes=yes, action="deleting a prompt")
    info = prompts.delete_prompt(context, name)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "prompt": render.to_plain(info)})
    else:
        render.success(f"deleted prompt {info.name!r}")


@app.command("activate")
def activate(ctx: typer.Context, name: NameArg, json_output: JsonOpt = False) -> None:
    """Make this your one active prompt and snapshot it into the active model.

    Example: aipilot prompts activate "Assistant Devis"
    """
    from aipilot.services.config import prompts

    change = prompts.activate_prompt(state(ctx).context(), name)
    _report(ctx, json_output, change, f"active prompt: {change.prompt.name!r}")


@app.command("deactivate")
def deactivate(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Have no active prompt, and clear its snapshot from the active model."""
    from aipilot.services.config import prompts

    change = prompts.deactivate_prompt(state(ctx).context())
    if change is None:
        if wants_json(ctx, json_output):
            render.emit_json({"success": True, "prompt": None, "configs_updated": 0})
        else:
            render.note("no prompt was active")
        return
    _report(ctx, json_output, change, f"deactivated prompt {change.prompt.name!r}")
