"""Calls that end when their client goes away, and the calls a shutting-down server waits for.

A client that hangs up while its call waits on the provider (a plain call, or a stream
between two chunks) is noticed at once: a task listens for the ASGI ``http.disconnect``
beside the call and cancels it. The call's cancellation closes the provider's response
(so the provider stops generating) and writes its one usage row as ``cancelled`` with
the tokens and cost known so far, settling its quota reservation
(:class:`aipilot.services.assist.assist.AssistStream`, :func:`~aipilot.services.assist.
assist.aask`). Nothing is left to the garbage collector: the relayed generator is closed
here, in the request's own task, before the response returns.

Every call holds an :class:`InFlight` slot while it runs; at shutdown the server waits for
the slots to empty (the cancelled calls' rows are written) before closing the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

T = TypeVar("T")
log = logging.getLogger("aipilot.server")


class ClientGone(Exception):
    """The client hung up before its answer was ready."""


class InFlight:
    """How many calls this process is running (shutdown waits for them to be recorded)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    @asynccontextmanager
    async def slot(self) -> AsyncGenerator[None, None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until no call is running; False if some still are after ``timeout_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("shutdown: %d call(s) still running", self.count)
            return False
        return True


async def _until_disconnected(receive: Receive) -> None:
    """Returns when the client has hung up (the request body must be read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


@asynccontextmanager
async def _cancelled_on_hangup(receive: Receive) -> AsyncGenerator[anyio.CancelScope, None]:
    """A cancel scope that a watching task cancels when the client hangs up. (Not a task
    group: an error of the call itself then propagates as it is, not in an ExceptionGroup.)"""
    with anyio.CancelScope() as scope:

        async def watch() -> None:
            await _until_disconnected(receive)
            scope.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            yield scope
        finally:
            watcher.cancel()


async def unless_disconnected(request: Request, work: Callable[[], Awaitable[T]]) -> T:
    """``await work()``, cancelled (and :class:`ClientGone` raised) if the client hangs up."""
    async with _cancelled_on_hangup(request.receive):
        return await work()
    raise ClientGone


class RelayResponse(Response):
    """A streamed body relayed from an async generator.

    The client hanging up cancels the relay at once, wherever it waits; the generator is
    always closed (``aclose``) and ``on_close`` always awaited, shielded from cancellation,
    before this returns. When the server cancels the request (uvicorn does, for what is
    still running when the shutdown grace period ends), ``farewell`` is sent to end the
    body, and the request ends there: uvicorn no longer waits for it.
    """

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        *,
        on_close: Callable[[], Awaitable[None]],
        farewell: bytes,
        media_type: str,
        headers: Mapping[str, str],
    ) -> None:
        self._body, self._on_close, self._farewell = body, on_close, farewell
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self._closed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with _cancelled_on_hangup(receive):
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                async for chunk in self._body:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away while a chunk was being written
            pass
        except asyncio.CancelledError:  # the server is shutting down
            with anyio.CancelScope(shield=True):
                await self._close()
                try:
                    body = {"type": "http.response.body", "body": self._farewell}
                    await send({**body, "more_body": False})
                except OSError:
                    pass
            log.info("shutdown: a stream still running was cancelled and recorded")
        finally:
            with anyio.CancelScope(shield=True):
                await self._close()

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._body.aclose()
        await self._on_close()
