"""The application factory (``uvicorn --factory aipilot.server.app:create_app``), health routes.

Everything expensive is built once per process here: the settings, one Database (one engine
and connection pool), one Authenticator with its cache. The schema revision is checked at
start-up; ``/readyz`` checks the database with a trivial query on every call.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aipilot import debuglog
from aipilot.db.engine import Database
from aipilot.db.migrate import require_current_schema
from aipilot.errors import AipilotError, SchemaError
from aipilot.server import functions, openai_api
from aipilot.server.auth import Authenticator
from aipilot.server.common import (
    SCHEMA_FIX,
    SCHEMA_UNUSABLE,
    ServerState,
    recheck,
    server_state,
)
from aipilot.server.config import ServerConfig
from aipilot.server.jwks import JwksCache
from aipilot.server.limits import BodyLimitMiddleware
from aipilot.services.assist import assist
from aipilot.services.runtime import Batcher, PreparedCalls, Shared, SharedRead

log = logging.getLogger("aipilot.server")
CORS_HEADERS = ["authorization", "content-type", "x-client-info", "apikey"]


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _ping(db: Database) -> None:
    with db.session() as session:
        session.execute(sa.text("SELECT 1"))


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers with a schema this server can use. Anyone may ask:
    the answer names no host, port, database or file, only the error's class; the reason
    goes to the server's log. Warnings about the database (a role that bypasses RLS) too."""
    state = server_state(request)
    try:
        await run_in_threadpool(_ping, state.db)
        broken = state.schema_problem is not None and await run_in_threadpool(recheck, state)
    except Exception as exc:
        reason = exc.message if isinstance(exc, AipilotError) else type(exc).__name__
        log.warning("readyz: the database is unavailable: %s", reason)
        body = {"status": "unavailable", "error": "database unavailable"}
        return JSONResponse({**body, "error_class": type(exc).__name__}, status_code=503)
    if broken:
        body = {"status": "unavailable", "error": SCHEMA_UNUSABLE, "hint": SCHEMA_FIX}
        return JSONResponse({**body, "error_class": "SchemaError"}, status_code=503)
    return JSONResponse({"status": "ready", "warnings": list(state.warnings)})


def _check_schema(state: ServerState) -> None:
    try:
        require_current_schema(state.db)
        state.warnings = _database_warnings(state.db)
    except SchemaError as err:  # keep serving: /readyz and every call report the problem
        state.schema_problem = err.message
        log.warning("%s (%s)", err.message, err.hint or "")
        return
    except AipilotError as err:  # unavailable: /readyz and each call say so while it lasts
        log.warning("%s (%s)", err.message, err.hint or "")


def _database_warnings(db: Database) -> tuple[str, ...]:
    from aipilot.db.reader import SessionReader
    from aipilot.services.config.views import rls_bypass_warning

    with db.session() as session:
        warning = rls_bypass_warning(SessionReader(session))
    if warning is None:
        return ()
    log.warning("%s", warning)  # the role's name goes to the log; /readyz says it generically
    return (
        "the database role bypasses row-level security: the database does not keep users "
        "apart (README: PostgreSQL and Supabase)",
    )


# after uvicorn's graceful period it cancels the calls still running, then shuts the app
# down at once: their cancellation writes their usage rows, which this waits for
DRAIN_S = 5.0


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    from aipilot.providers.http import close_shared_async_client

    current: ServerState = app.state.aipilot
    await run_in_threadpool(_check_schema, current)
    try:
        yield
    finally:
        await current.inflight.drained(DRAIN_S)
        await current.shared.usage.idle()  # the rows of the calls that just ended
        await close_shared_async_client()
        current.db.dispose()


def create_app(config: ServerConfig | None = None) -> Starlette:
    config = config or ServerConfig.from_env()
    if config.debug:
        debuglog.enable()
    db = Database(config.database_url)
    middleware = [Middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)]
    if config.cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=CORS_HEADERS,
                max_age=600,
            ),
        )
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *functions.routes,
            *openai_api.routes,
        ],
        middleware=middleware,
        lifespan=_lifespan,
    )
    auth = Authenticator(
        db,
        jwt_secret=config.jwt_secret,
        cache_s=config.auth_cache_s,
        jwks=JwksCache(config.jwks_url) if config.jwks_url else None,
        audiences=config.jwt_audiences,
        issuer=config.jwt_issuer,
    )
    shared = Shared(
        generation=SharedRead(db.config_generation),
        usage=Batcher(functools.partial(assist.write_rows, db)),
    )
    app.state.aipilot = ServerState(
        config=config, db=db, auth=auth, prepared=PreparedCalls(), shared=shared
    )
    return app
