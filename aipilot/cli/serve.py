"""`aipilot serve`: the Edge Function contracts and an OpenAI-compatible API over HTTP."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from aipilot.cli.state import state
from aipilot.errors import UsageError


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8787,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    grace: Annotated[
        int,
        typer.Option(
            "--shutdown-grace",
            envvar="AIPILOT_SHUTDOWN_GRACE_SECONDS",
            help="Seconds that calls in flight get to finish after SIGTERM; the rest are "
            "cancelled and recorded as such.",
        ),
    ] = 10,
) -> None:
    """Serve /functions/v1/* (the seed's Edge Functions) and /v1/* (OpenAI-compatible).

    Callers authenticate with `Authorization: Bearer` and an `aipilot tokens create` token
    (or a Supabase Auth JWT: ES256/RS256 with AIPILOT_JWKS_URL, HS256 with AIPILOT_JWT_SECRET).
    SIGTERM or Ctrl-C stops it gracefully: no new connection is accepted, calls in flight
    (streams too) get --shutdown-grace seconds to finish, the others are cancelled and
    recorded as cancelled, with what they cost.

    Example: aipilot serve --port 8787
    """
    from aipilot.server import runner

    if not 0 < port < 65536 or workers < 1:
        raise UsageError("--port must be 1-65535 and --workers at least 1")
    if not 0 <= grace <= 3600:
        raise UsageError("--shutdown-grace must be between 0 and 3600 seconds")
    settings = state(ctx).settings
    # the app factory runs in each worker and reads the database URL from the environment
    os.environ["AIPILOT_DATABASE_URL"] = settings.database_url
    runner.run(host=host, port=port, workers=workers, debug=settings.debug, grace_s=grace)
