"""`aipilot keys set | status | test | delete | rotate-master | new-master`.

A key enters only by a hidden prompt (on a terminal), ``--stdin`` or ``--from-env NAME``:
never as an argument (shell history, the process list). No command prints a stored key.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import inputs, render
from aipilot.cli.state import JsonOpt, state, wants_json
from aipilot.errors import ExitCode, UsageError
from aipilot.services import documents

if TYPE_CHECKING:
    from aipilot.services.config.views import KeyStatus
    from aipilot.services.keys.keys import KeyTestResult

app = typer.Typer(
    help="Your provider keys: set, status, test, delete (stored encrypted).", no_args_is_help=True
)

ProviderArg = Annotated[
    str, typer.Argument(help="Provider key: openai, anthropic, google, mistral, xai, deepseek, …")
]


@app.command("set")
def set_(
    ctx: typer.Context,
    provider: ProviderArg,
    stdin: inputs.StdinOpt = False,
    from_env: inputs.FromEnvOpt = None,
    no_test: Annotated[
        bool, typer.Option("--no-test", help="Store without testing it against the provider.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Store (or replace) your key for a provider, encrypted, then test it.

    The key comes from a hidden prompt, --stdin or --from-env NAME; never an argument.
    A failed test keeps the key stored and exits 5.

    Examples: aipilot keys set openai | printf %s "$KEY" | aipilot keys set anthropic --stdin
    """
    from aipilot.services.keys import keys

    current = state(ctx)
    context = current.context()
    raw = inputs.read_secret(
        label=f"{provider} API key",
        stdin=stdin,
        from_env=from_env,
        stdin_example=f"aipilot keys set {provider} --stdin",
    )
    with render.progress(f"testing the {provider} key"):
        result = keys.set_key(context, provider, raw, test=not no_test)
    test = result.test
    if wants_json(ctx, json_output):
        render.emit_json(documents.set_key(result))
    else:
        render.success(f"stored the {result.provider} key {result.hint} (encrypted)")
        if test is not None:
            _print_test(test)
    if test is not None and not test.ok:
        raise typer.Exit(int(ExitCode.PROVIDER))


def _print_test(result: KeyTestResult) -> None:
    if result.ok:
        render.success(f"{result.provider}: key works ({result.latency_ms} ms)")
    else:
        render.failure(f"{result.provider}: {result.error} [{result.error_code}]")


@app.command("status")
def status(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Argument(help="Only this provider.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Show which providers have a key: hint, last test date and result.

    --json keeps the seed's contract: {"data": {"openai": true, …}} plus details.
    """
    from aipilot.services.config import views

    with state(ctx).reading() as (reader, identity, _database):
        rows = views.key_states(reader, identity, provider)
    if wants_json(ctx, json_output):
        render.emit_json(documents.key_status(rows))
        return
    render.table(
        "Provider keys",
        ["provider", "key", "state", "last test", "result"],
        [_status_row(r) for r in rows],
    )


def _status_row(row: KeyStatus) -> tuple[str, ...]:
    result = (
        "—"
        if row.last_test_ok is None
        else ("ok" if row.last_test_ok else f"failed: {row.last_test_error}")
    )
    return (row.provider, row.hint or "—", row.state, render.when(row.last_tested_at), result)


@app.command("test")
def test(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Argument(help="The provider whose key to test.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Test every stored key, concurrently.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Check a key with the provider's cheapest authenticated call (exit 5 if any fails).

    Examples: aipilot keys test openai | aipilot keys test --all --json
    """
    from aipilot.services.keys import keys

    if bool(provider) == all_:
        raise UsageError("give one PROVIDER or --all", hint="e.g. `aipilot keys test openai`")
    with render.progress("testing keys"):
        results = keys.test_keys(state(ctx).context(), None if all_ else [str(provider)])
    ok = all(r.ok for r in results)
    if wants_json(ctx, json_output):
        render.emit_json(documents.key_tests(results) if all_ else documents.key_test(results[0]))
    else:
        for result in results:
            _print_test(result)
    if not ok:
        raise typer.Exit(int(ExitCode.PROVIDER))


@app.command("delete")
def delete(
    ctx: typer.Context,
    provider: ProviderArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Delete your key for a provider (asks first on a terminal; scripts pass --yes)."""
    from aipilot.services.keys import keys

    context = state(ctx).context()
    inputs.confirm_or_yes(f"Delete your {provider} key?", yes=yes, action="deleting a key")
    deleted = keys.delete_key(context, provider)
    if wants_json(ctx, json_output):
        render.emit_json(documents.delete_key(provider, deleted))
    elif deleted:
        render.success(f"deleted your {provider} key")
    else:
        render.note(f"no {provider} key was stored: nothing to delete")


@app.command("new-master")
def new_master(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Print a new random master key (for AIPILOT_MASTER_KEY); stores nothing.

    Example: export AIPILOT_MASTER_KEY=$(aipilot keys new-master --quiet)
    """
    from aipilot import vault

    key = vault.generate_master_key()
    text = vault.encode_master_key(key)
    if wants_json(ctx, json_output):  # the user asked for a new key: printing it is the point
        render.emit_json({"master_key": text, "key_id": key.key_id})
        return
    if quiet:
        typer.echo(text)
        return
    typer.echo(f"export AIPILOT_MASTER_KEY={text}")
    render.note(
        "Keep it like any other secret: without it, stored provider keys cannot be decrypted."
    )


@app.command("rotate-master")
def rotate_master(
    ctx: typer.Context,
    new_from_env: Annotated[
        str | None,
        typer.Option(
            "--new-from-env", metavar="NAME", help="Take the new master key from this variable."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Re-encrypt every stored key under a new master key, in one transaction (admin only).

    With the keyring, a new key is generated and stored. With AIPILOT_MASTER_KEY, give the
    new key by name:  NEW=$(aipilot keys new-master -q); aipilot keys rotate-master
    --new-from-env NEW; then set AIPILOT_MASTER_KEY=$NEW.
    """
    from aipilot import vault
    from aipilot.services.keys import keys

    new = None
    if new_from_env:
        if new_from_env not in os.environ:
            raise UsageError(
                f"environment variable {new_from_env} is not set", hint="export it first"
            )
        new = vault.parse_master_key(os.environ[new_from_env], source=new_from_env)
    result = keys.rotate_master(state(ctx).context(), new)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, **render.to_plain(result)})
        return
    render.success(
        f"re-encrypted {result.rows} keys of {result.users} users: "
        f"master key {result.old_key_id} → {result.new_key_id}"
    )
    if result.stored_in == "env":
        render.note(f"now set AIPILOT_MASTER_KEY to the value of {new_from_env}")
