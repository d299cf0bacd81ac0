"""The async connection pool of ``aipilot serve``: kept-alive connections found in O(1).

httpcore's ``AsyncConnectionPool`` re-examines every connection it holds on each request
and each response closed (``_assign_requests_to_connections``), and for each of them counts
the idle ones again: with hundreds of calls in flight that nested scan, and a ``poll()``
of each idle socket, took most of a core (``py-spy`` on ``bench/serve_load.py``, 200
clients: 35 % of the server's samples, capping it at about 40 requests a second).

This pool keeps, per origin, a stack of idle :class:`httpcore.AsyncHTTPConnection`. A
request takes the most recently used one that is still usable (one ``has_expired`` check:
the keep-alive deadline, and whether the server closed it) or opens a new one, and gives
it back when its response is closed, unless the response was abandoned midway: httpcore
has then closed the connection, which is what tells the provider to stop. Each time, the
oldest idle connections that have expired are closed too, so a burst's connections do not
outlive their keep-alive under a lighter load. Every other part is httpx's:
:class:`PooledTransport` is its ``AsyncHTTPTransport`` with this pool in place of
httpcore's, so requests, timeouts and exceptions are exactly httpx's.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import AsyncIterator

import anyio
import httpcore
import httpx

KEEPALIVE_S = 5.0  # httpx's default keep-alive expiry
MAX_IDLE_PER_ORIGIN = 1000


class _Pool:
    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl = ssl_context
        # by (scheme, host, port): httpcore's Origin is not hashable
        self._idle: dict[tuple[bytes, bytes, int], deque[httpcore.AsyncHTTPConnection]] = {}

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        connection = await self._take(origin)
        try:
            response = await connection.handle_async_request(request)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await connection.aclose()
            raise
        stream = _ReleasingStream(response.stream, connection, origin, self)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=stream,
            extensions=response.extensions,
        )

    async def _take(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        idle = self._idle.get(_key(origin))
        while idle:
            connection = idle.pop()  # the newest
            if connection.is_idle() and not connection.has_expired():
                await _close_expired(idle)
                return connection
            await connection.aclose()
        return httpcore.AsyncHTTPConnection(
            origin=origin, ssl_context=self._ssl, keepalive_expiry=KEEPALIVE_S
        )

    async def release(
        self, connection: httpcore.AsyncHTTPConnection, origin: httpcore.Origin
    ) -> None:
        """Back to the stack if its response was read to the end, else closed."""
        idle = self._idle.setdefault(_key(origin), deque())
        if connection.is_idle() and len(idle) < MAX_IDLE_PER_ORIGIN:
            idle.append(connection)
        elif not connection.is_closed():
            await connection.aclose()
        await _close_expired(idle)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def __aenter__(self) -> _Pool:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


async def _close_expired(idle: deque[httpcore.AsyncHTTPConnection]) -> None:
    """Close the oldest idle connections, as long as they have expired."""
    while idle and idle[0].has_expired():
        await idle.popleft().aclose()


def _key(origin: httpcore.Origin) -> tuple[bytes, bytes, int]:
    return origin.scheme, origin.host, origin.port


class _ReleasingStream:
    """A response body that gives its connection back to the pool once closed."""

    def __init__(
        self,
        stream: object,
        connection: httpcore.AsyncHTTPConnection,
        origin: httpcore.Origin,
        pool: _Pool,
    ) -> None:
        self._stream = stream
        self._connection, self._origin, self._pool = connection, origin, pool
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:  # type: ignore[attr-defined]
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            # httpcore closes the connection if the body was not read to its end
            await self._stream.aclose()  # type: ignore[attr-defined]
            await self._pool.release(self._connection, self._origin)


class PooledTransport(httpx.AsyncHTTPTransport):
    """httpx's async transport over :class:`_Pool`."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context)
        self._pool = _Pool(ssl_context)  # type: ignore[assignment]
