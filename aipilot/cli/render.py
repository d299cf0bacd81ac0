"""Output in one place: JSON documents and rich tables on stdout, messages on stderr.

Consoles are built at call time (never at import): a console bound to ``sys.stdout`` at
import escapes the test runner's capture and costs start-up time.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from aipilot.services import documents

to_plain = documents.plain  # the one helper the HTTP routes use too

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

    from aipilot.errors import AipilotError


def stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)  # one message, one line


def is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def emit_json(document: Any) -> None:
    """The one machine-readable document a ``--json`` command prints on stdout."""
    import json

    typer.echo(json.dumps(to_plain(document), ensure_ascii=False, indent=2))


def note(message: str) -> None:
    """Progress and confirmations: stderr, so stdout stays data."""
    stderr().print(message, markup=False)


def success(message: str) -> None:
    stderr().print(f"[green]✓[/green] {escape(message)}")


def failure(message: str) -> None:
    stderr().print(f"[red]✗[/red] {escape(message)}")


@contextmanager
def progress(message: str) -> Iterator[None]:
    """A spinner on a terminal while network work runs; nothing when piped."""
    if not sys.stderr.isatty():
        yield
        return
    with stderr().status(escape(message)):
        yield


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def error(err: AipilotError, *, json_mode: bool) -> None:
    console = stderr()
    console.print(f"[bold red]Error:[/bold red] {escape(err.message)}")
    if err.hint:
        console.print(f"[yellow]Hint:[/yellow] {escape(err.hint)}")
    if json_mode:
        emit_json(documents.error(err))  # the document the HTTP routes answer


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table

    tbl = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        tbl.add_column(column)
    for row in rows:
        tbl.add_row(*("" if cell is None else str(cell) for cell in row))
    stdout().print(tbl)


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"
