"""`aipilot providers list | show | add | update | enable | disable | remove`.

Reads for everyone; writes are admin only. A provider is a row (endpoints are data), so a
new OpenAI-compatible vendor needs no code: `aipilot providers add`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aipilot.cli import render
from aipilot.cli.state import JsonOpt, state, wants_json

if TYPE_CHECKING:
    from aipilot.services.catalog.catalog_admin import ProviderSpec
    from aipilot.services.catalog.listing import ProviderInfo

app = typer.Typer(
    help="The provider catalog: list and show (everyone); add, update, remove (admins).",
    no_args_is_help=True,
)

KeyArg = Annotated[str, typer.Argument(help="Provider key, e.g. openai.")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Display name.")]
UrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="API base URL, e.g. https://api.x.ai/v1.")
]
ProtocolOpt = Annotated[
    str | None, typer.Option("--protocol", help="Wire protocol: openai, anthropic or gemini.")
]
AuthOpt = Annotated[
    str | None, typer.Option("--auth", help="How the key travels: bearer, api_key_header, none.")
]
AuthHeaderOpt = Annotated[
    str | None,
    typer.Option("--auth-header", metavar="NAME", help="Header for api_key_header auth."),
]
HeaderOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--header", metavar="K=V", help="Extra header (repeatable); on update K= removes it."
    ),
]
TestOpt = Annotated[
    str | None, typer.Option("--test-endpoint", metavar="PATH", help="Key-test path, e.g. /models.")
]


def _print(info: ProviderInfo, ctx: typer.Context, json_output: bool, verb: str) -> None:
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "provider": render.to_plain(info)})
    else:
        render.success(f"{verb} provider {info.key} ({info.name})")


def _row(p: ProviderInfo) -> tuple[object, ...]:
    auth = f"{p.auth} ({p.auth_header})" if p.auth_header else p.auth
    return (p.key, p.name, p.protocol, auth, p.base_url, "yes" if p.is_active else "no", p.models)


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include disabled providers.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """List the active providers (--all: disabled ones too). Example: aipilot providers list"""
    from aipilot.services.catalog import listing

    with state(ctx).reading() as (reader, _identity, _database):
        rows = listing.list_providers(reader, include_inactive=all_)
    if wants_json(ctx, json_output):
        render.emit_json({"providers": render.to_plain(rows)})
        return
    columns = ["key", "name", "protocol", "auth", "base URL", "active", "models"]
    render.table("Providers", columns, [_row(p) for p in rows])


@app.command("show")
def show(ctx: typer.Context, key: KeyArg, json_output: JsonOpt = False) -> None:
    """Show one provider's endpoint settings. Example: aipilot providers show anthropic"""
    from aipilot.services.catalog import listing

    with state(ctx).reading() as (reader, _identity, _database):
        info = listing.show_provider(reader, key)
    if wants_json(ctx, json_output):
        render.emit_json({"provider": render.to_plain(info)})
        return
    headers = ", ".join(f"{k}: {v}" for k, v in sorted(info.headers.items())) or "—"
    fields = [
        ("key", info.key),
        ("name", info.name),
        ("protocol", info.protocol),
        ("auth", _row(info)[3]),
        ("base URL", info.base_url),
        ("extra headers", headers),
        ("test endpoint", info.test_endpoint or "—"),
        ("active", "yes" if info.is_active else "no"),
        ("catalog models", info.models),
    ]
    render.table(f"Provider {info.key}", ["field", "value"], fields)


def _spec(
    name: str | None,
    base_url: str | None,
    protocol: str | None,
    auth: str | None,
    auth_header: str | None,
    headers: list[str] | None,
    test_endpoint: str | None,
    active: bool | None,
) -> ProviderSpec:
    from aipilot.services.catalog.catalog_admin import ProviderSpec

    return ProviderSpec(
        name, base_url, protocol, auth, auth_header, tuple(headers or ()), test_endpoint, active
    )


@app.command("add")
def add(
    ctx: typer.Context,
    key: KeyArg,
    name: NameOpt = None,
    base_url: UrlOpt = None,
    protocol: Annotated[
        str, typer.Option("--protocol", help="Wire protocol: openai, anthropic or gemini.")
    ] = "openai",
    auth: Annotated[
        str, typer.Option("--auth", help="How the key travels: bearer, api_key_header, none.")
    ] = "bearer",
    auth_header: AuthHeaderOpt = None,
    header: HeaderOpt = None,
    test_endpoint: TestOpt = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Add it disabled.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Add a provider (admin only).

    Example: aipilot providers add together --name Together --base-url https://api.together.xyz/v1
    """
    from aipilot.services.catalog import catalog_admin

    spec = _spec(name, base_url, protocol, auth, auth_header, header, test_endpoint, not inactive)
    info = catalog_admin.add_provider(state(ctx).context(), key, spec)
    _print(info, ctx, json_output, "added")


@app.command("update")
def update(
    ctx: typer.Context,
    key: KeyArg,
    name: NameOpt = None,
    base_url: UrlOpt = None,
    protocol: ProtocolOpt = None,
    auth: AuthOpt = None,
    auth_header: AuthHeaderOpt = None,
    header: HeaderOpt = None,
    test_endpoint: TestOpt = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Enable or disable it.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Change a provider's settings (admin only); unset options stay as they are.

    Example: aipilot providers update ollama --base-url http://gpu-box:11434/v1
    """
    from aipilot.services.catalog import catalog_admin

    spec = _spec(name, base_url, protocol, auth, auth_header, header, test_endpoint, active)
    info = catalog_admin.update_provider(state(ctx).context(), key, spec)
    _print(info, ctx, json_output, "updated")


@app.command("enable")
def enable(ctx: typer.Context, key: KeyArg, json_output: JsonOpt = False) -> None:
    """Enable a provider (admin only). Example: aipilot providers enable ollama"""
    from aipilot.services.catalog import catalog_admin

    info = catalog_admin.set_provider_active(state(ctx).context(), key, True)
    _print(info, ctx, json_output, "enabled")


@app.command("disable")
def disable(ctx: typer.Context, key: KeyArg, json_output: JsonOpt = False) -> None:
    """Disable a provider (admin only). Example: aipilot providers disable xai"""
    from aipilot.services.catalog import catalog_admin

    info = catalog_admin.set_provider_active(state(ctx).context(), key, False)
    _print(info, ctx, json_output, "disabled")


@app.command("remove")
def remove(ctx: typer.Context, key: KeyArg, json_output: JsonOpt = False) -> None:
    """Delete a provider no model or key references (admin only; exit 8 otherwise).

    Example: aipilot providers remove together
    """
    from aipilot.services.catalog import catalog_admin

    removed = catalog_admin.remove_provider(state(ctx).context(), key)
    if wants_json(ctx, json_output):
        render.emit_json({"success": True, "provider": removed, "removed": True})
    else:
        render.success(f"removed provider {removed}")
