"""`aipilot ask` and `aipilot chat`: chats through the active model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json
from aipilot.errors import AipilotError, UsageError
from aipilot.services import documents

if TYPE_CHECKING:
    from aipilot.services.assist.assist import AssistRequest, AssistResult, Message

ModuleOpt = Annotated[
    str, typer.Option("--module", help="Configuration module (the seed uses 'global').")
]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="Cap the answer's length.")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", help="0 to 2.")]
SystemOpt = Annotated[
    str | None,
    typer.Option("--system", help="System prompt for this call (overrides the active prompt)."),
]


def _schema(path: Path | None) -> dict[str, Any] | None:
    import json

    if path is None:
        return None
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no such schema file: {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{path} is not a JSON file: {exc}", hint="give a JSON Schema document"
        ) from None
    if not isinstance(schema, dict):
        raise UsageError(f"{path} is not a JSON Schema object")
    return schema


def _refused(result: AssistResult, *, as_json: bool) -> None:
    """A refusal is not an answer: the reason on stderr (and the document), exit 5."""
    err = result.refused()
    if as_json:
        render.emit_json(documents.assist(result))  # the refusal's error fields included
    render.error(err, json_mode=False)
    raise typer.Exit(int(err.exit_code))


def ask(
    ctx: typer.Context,
    prompt: Annotated[
        str | None, typer.Argument(help="The question; read from stdin when omitted.")
    ] = None,
    system: SystemOpt = None,
    module: ModuleOpt = "global",
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Wait for the whole answer.")
    ] = False,
    json_mode: Annotated[
        bool, typer.Option("--json-mode", help="Ask the model for one JSON object.")
    ] = False,
    schema: Annotated[
        Path | None, typer.Option("--schema", help="A JSON Schema file the answer must match.")
    ] = None,
    log_content: Annotated[
        bool,
        typer.Option("--log-content", help="Keep the prompt and answer text in the usage log."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Ask the active model one question; streams on a terminal.

    A refusal (the model declined, or a safety filter blocked the answer) is not an answer:
    its reason goes to stderr and the exit code is 5; with --json the document has
    "success": false, "refusal" and "finish_reason": "refusal".

    Examples: aipilot ask "Summarise RFC 9110 in one line" | echo "hi" | aipilot ask --json
    """
    from aipilot.services.assist import assist

    context = state(ctx).context()
    if prompt is None:
        if sys.stdin.isatty():
            raise UsageError("no prompt given", hint='aipilot ask "your question", or pipe it in')
        prompt = sys.stdin.read()
    request = assist.AssistRequest(
        messages=assist.user_message(prompt),
        module=module,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        json_mode=json_mode,
        json_schema=_schema(schema),
        log_content=log_content,
    )
    import json

    as_json = wants_json(ctx, json_output)
    if as_json or no_stream or not sys.stdout.isatty() or json_mode or schema:
        with render.progress("asking the model"):
            result = assist.ask(context, request)
        if result.refusal is not None:
            _refused(result, as_json=as_json)
        if as_json:
            render.emit_json(documents.assist(result))
        else:
            typer.echo(
                result.text
                if result.data is None
                else json.dumps(result.data, ensure_ascii=False, indent=2)
            )
        return
    _stream(context, request)


def _stream(context: Any, request: AssistRequest) -> AssistResult | None:
    from aipilot.services.assist import assist

    stream = assist.AssistStream(context, request)
    try:
        for delta in stream:
            sys.stdout.write(delta)
            sys.stdout.flush()
    finally:
        if stream.text and not stream.text.endswith("\n"):
            sys.stdout.write("\n")
            sys.stdout.flush()
    if stream.result is not None and stream.result.refusal is not None:
        raise stream.result.refused()
    return stream.result


def chat(
    ctx: typer.Context,
    system: SystemOpt = None,
    module: ModuleOpt = "global",
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
) -> None:
    """An interactive multi-turn chat on a terminal (/system TEXT, /reset, /exit).

    Example: aipilot chat --system "You are terse."
    """
    from aipilot.services.assist import assist

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("aipilot chat needs a terminal", hint='scripts use `aipilot ask "…"`')
    context = state(ctx).context()
    history: list[Message] = []
    render.note("Chatting with the active model. /system TEXT, /reset, /exit (or Ctrl-D).")
    while True:
        try:
            line = input("you> ")
        except EOFError:
            return
        if not line.strip():
            continue
        if line.strip() in ("/exit", "/quit"):
            return
        if line.strip() == "/reset":
            history.clear()
            render.note("history cleared")
            continue
        if line.startswith("/system"):
            system = line[len("/system") :].strip() or None
            render.note(f"system prompt {'set' if system else 'cleared'} for this chat")
            continue
        history.append(assist.Message("user", line))
        request = assist.AssistRequest(
            messages=tuple(history),
            module=module,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        try:
            result = _stream(context, request)
        except KeyboardInterrupt:
            history.pop()
            render.note("(interrupted)")
            continue
        except AipilotError as err:  # one failed turn does not end the chat
            history.pop()
            render.error(err, json_mode=False)
            continue
        if result is not None:
            history.append(assist.Message("assistant", result.text))
