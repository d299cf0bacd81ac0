"""What every route shares: the per-process state, JSON bodies, auth, the error wrapper."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from aipilot.db.engine import Database
from aipilot.errors import AipilotError, DatabaseError, SchemaError
from aipilot.server.auth import Authenticator
from aipilot.server.config import ServerConfig
from aipilot.server.errors import HttpError, unexpected
from aipilot.server.limits import BodyTooLarge
from aipilot.server.relay import ClientGone, InFlight
from aipilot.services.runtime import Context, PreparedCalls, Shared

Endpoint = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("aipilot.server")


@dataclasses.dataclass
class ServerState:
    """Built once per process: one Database (one engine and pool), one Authenticator, and
    the prepared calls of the assist path (re-read only when the configuration changes).
    ``schema_problem`` and ``warnings`` are set at start-up (and cleared once fixed)."""

    config: ServerConfig
    db: Database
    auth: Authenticator
    prepared: PreparedCalls[Any]
    shared: Shared  # one generation read for concurrent calls, usage rows in batches
    # calls running now: a server shutting down waits for their rows before closing the pool
    inflight: InFlight = dataclasses.field(default_factory=InFlight)
    schema_problem: str | None = None  # set at start-up; every call and /readyz say it
    warnings: tuple[str, ...] = ()  # about the database (a role that bypasses RLS)


SCHEMA_UNUSABLE = (
    "the database has no aipilot schema this server can use (none, another revision, or the "
    "existing system's tables not adopted yet)"
)
SCHEMA_FIX = (
    "an operator runs `aipilot db upgrade`, or `aipilot init --adopt` on the existing "
    "system's database, then restarts `aipilot serve`"
)


SERVER_STOPPING = "the server is shutting down; the call was cancelled"


def schema_error() -> HttpError:
    return HttpError(503, SCHEMA_UNUSABLE, code="schema_unusable", hint=SCHEMA_FIX)


def recheck(state: ServerState) -> bool:
    """Is the schema still unusable? (Checked again only while it is: a fixed schema is
    seen on the next call.)"""
    from aipilot.db.migrate import require_current_schema

    try:
        require_current_schema(state.db)
    except SchemaError as err:
        state.schema_problem = err.message
        return True
    except AipilotError:  # the database is unavailable: the call itself says so
        return False
    state.schema_problem = None
    return False


def _schema_missing(exc: BaseException) -> bool:
    """A statement failed for want of a table or column: the schema, not the caller."""
    import sqlalchemy as sa

    orig = getattr(exc, "orig", None)
    if isinstance(exc, sa.exc.ProgrammingError | sa.exc.OperationalError):
        code = getattr(orig, "sqlstate", None)
        return (
            code in ("42P01", "42703")
            or "no such table" in str(orig)
            or "no such column" in str(orig)
        )
    return False


def server_state(request: Request) -> ServerState:
    found: ServerState = request.app.state.aipilot
    return found


MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 40
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS + 1:
        raise ValueError("integer too long")
    return int(text)


def _json_problem(body: Any) -> str | None:
    """Why a parsed body cannot be used (too deep, a lone surrogate), without recursion."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"is nested more than {MAX_JSON_DEPTH} levels deep"
        if isinstance(node, dict):
            stack.extend((k, depth) for k in node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str) and _SURROGATE.search(node):
            return "has a string that is not valid Unicode (a lone surrogate)"
    return None


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object: strict JSON (no NaN or Infinity, finite numbers, integers
    of at most 40 digits, valid Unicode), at most 64 levels deep; a 400 otherwise."""
    try:
        raw = await request.body()
    except BodyTooLarge:
        raise HttpError(413, "request body too large", code="too_large") from None
    try:
        body = (
            json.loads(
                raw, parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded_int
            )
            if raw
            else {}
        )
    except (ValueError, RecursionError):  # RecursionError: nested too deep for the parser
        raise HttpError(400, "the request body is not valid JSON", code="bad_json") from None
    problem = _json_problem(body)
    if problem is not None:
        raise HttpError(400, f"the request body {problem}", code="bad_json")
    if not isinstance(body, dict):
        raise HttpError(400, "the request body must be a JSON object", code="bad_json")
    return body


async def context(request: Request) -> Context:
    """The caller's identity from ``Authorization: Bearer``; 401 without a valid one."""
    current = server_state(request)
    header = request.headers.get("authorization")
    identity = current.auth.cached(header)  # a cache hit needs no thread hop
    if identity is None:
        identity = await run_in_threadpool(current.auth.identity, header)
    return Context(
        db=current.db, identity=identity, prepared=current.prepared, shared=current.shared
    )


def handled(shape: Callable[[AipilotError], Response]) -> Callable[[Endpoint], Endpoint]:
    """Turn expected errors into ``shape``'s JSON and hide unexpected ones behind a 500."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            state = server_state(request)
            if state.schema_problem is not None and await run_in_threadpool(recheck, state):
                return shape(schema_error())
            try:
                return await endpoint(request)
            except ClientGone:  # nobody reads this answer: the call's row says it was cancelled
                log.info("%s: the client hung up; its call was cancelled", request.url.path)
                return Response(status_code=499)
            except asyncio.CancelledError:
                # only uvicorn cancels a request: at shutdown, past the grace period; the
                # call's row is written (cancelled) and the client is told why
                log.info("%s: cancelled at shutdown", request.url.path)
                return shape(HttpError(503, SERVER_STOPPING, code="shutting_down"))
            except DatabaseError as err:  # before any token check too: say not where it is
                log.warning("%s: the database is unavailable: %s", request.url.path, err.message)
                return shape(DatabaseError("database unavailable", hint="try again later"))
            except AipilotError as err:
                return shape(err)
            except Exception as exc:
                if _schema_missing(exc):  # class and SQLSTATE only: no statement parameters
                    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
                    log.warning(
                        "%s: the schema is not usable: %s %s",
                        request.url.path,
                        type(exc).__name__,
                        code or "",
                    )
                    return shape(schema_error())
                debug = state.config.debug
                return shape(unexpected(exc, path=request.url.path, debug=debug))

        return wrapper

    return decorate


def text_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise HttpError(400, f"'{name}' must be a non-empty string", code="bad_request")
    return value
