"""The HTTP edge shared by every wire protocol.

One caller per client builds the auth headers, runs the one retry loop (docs/providers.md
§11.3), translates httpx exceptions at a single point with ``raise … from``, and feeds
streamed bodies to the one SSE parser (§11.1). Classifying an error response (status
first, then text, §11.2) is :func:`aipilot.providers.errors.classify_response`.

Two drivers share all of that (:class:`_Caller`): :class:`HttpCaller` blocks (the CLI,
:class:`aipilot.Assistant`), :class:`AsyncHttpCaller` awaits (``aipilot serve``: a call
waiting on a provider holds no thread). What a protocol sends and how it reads the answer
is written once, in :class:`HttpProviderClient`'s subclasses, and both drivers run it.

Keys travel in headers only: ``query_param`` auth is refused because it would put the key
in a URL, which httpx logs and copies into its exception messages.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import ssl
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator
from contextlib import aclosing, closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from aipilot.errors import NotConfiguredError, UsageError
from aipilot.providers.errors import (
    BadResponseError,
    ModelNotFoundError,
    ProviderCallError,
    ProviderTimeoutError,
    classify_response,
)
from aipilot.providers.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ProviderClient,
    ProviderSettings,
    RetryPolicy,
)
from aipilot.redaction import redact

CONNECT_TIMEOUT_S = 5.0
DRAIN_AFTER_END_S = 0.5  # what an async stream waits for its body's end after [DONE] (it is
# normally in the same packet; the wait is for a loaded event loop)
Sleep = Callable[[float], None]


def auth_headers(settings: ProviderSettings, api_key: str | None) -> dict[str, str]:
    """The headers that carry the key; refuses ``query_param`` and unsendable keys."""
    method = settings.auth_method
    if method == "none":
        return {}
    if method == "query_param":
        raise UsageError(
            f"{settings.provider_key} is configured to send its API key as a URL query "
            "parameter, which would expose the key in logs and error messages",
            hint="set the provider's auth method to `api_key_header` (Gemini: x-goog-api-key)",
        )
    if not api_key:
        raise NotConfiguredError(
            f"no API key for {settings.provider_key}",
            hint=f"run `aipilot keys set {settings.provider_key}`",
        )
    if not api_key.isascii() or not api_key.isprintable() or any(c.isspace() for c in api_key):
        raise UsageError(
            f"the {settings.provider_key} API key contains characters that cannot be sent "
            "in an HTTP header",
            hint=f"run `aipilot keys set {settings.provider_key}` and paste the key again",
        )
    if method == "bearer":
        return {"Authorization": f"Bearer {api_key}"}
    return {settings.auth_header or "x-api-key": api_key}


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str


class SSEParser:
    """Server-sent events, one text line at a time (LF, CRLF or mixed); comments skipped."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def line(self, raw: str) -> SSEEvent | None:
        """The event this line completes, if any."""
        line = raw.rstrip("\r\n")
        if not line:
            done = self.end()
            self._event = None
            return done
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def end(self) -> SSEEvent | None:
        """The event left unterminated when the body ends."""
        if not self._data:
            return None
        done, self._data = SSEEvent(self._event, "\n".join(self._data)), []
        return done


def iter_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Server-sent events from text lines."""
    parser = SSEParser()
    for raw in lines:
        event = parser.line(raw)
        if event is not None:
            yield event
    last = parser.end()
    if last is not None:
        yield last


def load_json(text: str | bytes, *, provider: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadResponseError(
            f"{provider} sent a body that is not valid JSON", provider=provider
        ) from exc


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (~20 ms each time)."""
    return httpx.create_ssl_context()


@functools.cache
def shared_client() -> httpx.Client:
    """One connection pool per process: calls to a provider reuse kept-alive connections
    (a TLS handshake per call costs tens of ms against a real API). httpx.Client is
    thread-safe; every request carries its own timeout."""
    return httpx.Client(
        verify=ssl_context(),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_async_client() -> httpx.AsyncClient:
    """The async pool of the running event loop (one per process in ``aipilot serve``). An
    httpx.AsyncClient belongs to the loop it first ran on, hence one per loop. Hundreds of
    calls in flight each hold a connection; one kept alive after a call saves the next its
    TCP and TLS handshakes (:mod:`aipilot.providers.pool`: httpcore's own pool does not
    scale to that many)."""
    from aipilot.providers.pool import PooledTransport

    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(transport=PooledTransport(ssl_context()))
        _async_clients[loop] = client
    return client


async def close_shared_async_client() -> None:
    """Close the running loop's pool (at server shutdown)."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


@dataclass(frozen=True)
class Exchange:
    """One logical request of a protocol: what to POST or GET, where, with which query."""

    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str | int] | None = field(default=None)
    method: str = "POST"


class _Caller:
    """What both drivers share: headers, timeouts, the retry decisions, error translation."""

    def __init__(
        self,
        settings: ProviderSettings,
        api_key: str | None,
        *,
        retry: RetryPolicy | None,
        sleep: Sleep | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = settings.provider_key
        self.base_url = settings.base_url.rstrip("/")
        self._headers = {**settings.extra_headers, **auth_headers(settings, api_key)}
        self._secrets = (api_key,)
        self._timeout = httpx.Timeout(settings.timeout_s, connect=CONNECT_TIMEOUT_S)
        self._policy = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Nothing to release: connections go back to the pool they came from."""

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _request(self, http: httpx.Client | httpx.AsyncClient, exchange: Exchange) -> httpx.Request:
        return http.build_request(
            exchange.method,
            self.base_url + exchange.path,
            json=exchange.body,
            params=exchange.params,
            headers=self._headers,
            timeout=self._timeout,
        )

    def _retry_delay(self, error: ProviderCallError, attempt: int, started: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        policy = self._policy
        if not error.retryable or attempt >= policy.max_attempts:
            return None
        if error.retry_after is not None:
            if error.retry_after > policy.max_retry_after_s:
                return None
            delay = error.retry_after
        else:
            backoff = min(policy.base_delay_s * 2 ** (attempt - 1), policy.max_delay_s)
            delay = backoff * random.uniform(0.75, 1.0)
        if self._clock() - started + delay > policy.max_total_s:
            return None
        return delay

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """httpx's exceptions as aipilot's, named by what happened (never by the URL)."""
        try:
            yield
        except httpx.InvalidURL as exc:
            raise UsageError(f"the {self.provider} base URL is not a valid URL") from exc
        except httpx.TimeoutException as exc:
            raise self._transport_error(exc, "did not answer in time") from exc
        except httpx.ConnectError as exc:
            raise self._transport_error(exc, "could not be reached") from exc
        except httpx.TransportError as exc:
            raise self._transport_error(exc, "dropped the connection") from exc

    @contextmanager
    def _mid_stream(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            raise ProviderTimeoutError(
                f"the connection to {self.provider} dropped mid-stream ({type(exc).__name__})",
                provider=self.provider,
            ) from exc

    def _refused(self, response: httpx.Response, body: bytes) -> ProviderCallError:
        return classify_response(
            self.provider, response.status_code, response.headers, body, self._secrets
        )

    def _transport_error(self, exc: Exception, what: str) -> ProviderTimeoutError:
        host = httpx.URL(self.base_url).host
        return ProviderTimeoutError(
            f"{self.provider} ({host}) {what} ({type(exc).__name__})", provider=self.provider
        )


class HttpCaller(_Caller):
    """Sends one logical request and blocks until it is answered, retrying within a
    :class:`RetryPolicy`."""

    def __init__(
        self,
        settings: ProviderSettings,
        api_key: str | None,
        *,
        http: httpx.Client | None,
        retry: RetryPolicy | None,
        sleep: Sleep | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, api_key, retry=retry, sleep=sleep, clock=clock)
        # the caller's client, or the process-wide pool: neither is closed by this object
        self._http = http if http is not None else shared_client()

    def get_json(self, path: str, params: dict[str, str | int] | None = None) -> Any:
        return self.json(Exchange(path, params=params, method="GET"))

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return self.json(Exchange(path, body))

    def json(self, exchange: Exchange) -> Any:
        return load_json(self._send(exchange).content, provider=self.provider)

    def stream_events(self, exchange: Exchange) -> Generator[SSEEvent, None, None]:
        """SSE events of a streamed POST; retries happen only before the body starts."""
        response = self._send(exchange, stream=True)
        try:
            parser = SSEParser()
            with self._mid_stream():
                for line in response.iter_lines():
                    event = parser.line(line)
                    if event is not None:
                        yield event
            last = parser.end()
            if last is not None:
                yield last
        finally:
            response.close()

    def _send(self, exchange: Exchange, *, stream: bool = False) -> httpx.Response:
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(exchange, stream=stream)
            except ProviderCallError as error:
                delay = self._retry_delay(error, attempt, started)
                if delay is None:
                    raise
            (self._sleep if self._sleep is not None else time.sleep)(delay)

    def _attempt(self, exchange: Exchange, *, stream: bool) -> httpx.Response:
        with self._translated():
            response = self._http.send(self._request(self._http, exchange), stream=stream)
            if response.is_success:
                return response
            body = response.read()
            response.close()
        raise self._refused(response, body)


class AsyncHttpCaller(_Caller):
    """The same logical request, awaited: while the provider thinks, the event loop serves
    other calls. Cancelling the awaiting task closes the response (and its connection)."""

    def __init__(
        self,
        settings: ProviderSettings,
        api_key: str | None,
        *,
        http: httpx.AsyncClient | None,
        retry: RetryPolicy | None,
        sleep: Sleep | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, api_key, retry=retry, sleep=sleep, clock=clock)
        self._http = http  # None: the running loop's shared pool, looked up per request

    async def json(self, exchange: Exchange) -> Any:
        response = await self._send(exchange)
        return load_json(response.content, provider=self.provider)

    async def stream_events(self, exchange: Exchange) -> AsyncGenerator[SSEEvent, None]:
        response = await self._send(exchange, stream=True)
        try:
            parser = SSEParser()
            with self._mid_stream():
                async for line in response.aiter_lines():
                    event = parser.line(line)
                    if event is not None:
                        yield event
            last = parser.end()
            if last is not None:
                yield last
        finally:
            await response.aclose()

    async def _send(self, exchange: Exchange, *, stream: bool = False) -> httpx.Response:
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(exchange, stream=stream)
            except ProviderCallError as error:
                delay = self._retry_delay(error, attempt, started)
                if delay is None:
                    raise
            if self._sleep is not None:
                self._sleep(delay)  # a test's recorder: it does not wait
            else:
                await asyncio.sleep(delay)

    async def _attempt(self, exchange: Exchange, *, stream: bool) -> httpx.Response:
        http = self._http if self._http is not None else shared_async_client()
        with self._translated():
            response = await http.send(self._request(http, exchange), stream=stream)
            if response.is_success:
                return response
            body = await response.aread()
            await response.aclose()
        raise self._refused(response, body)


class StreamReader(ABC):
    """Reads one protocol's streamed events into :class:`ChatChunk`; both drivers feed it.

    A chunk may carry the usage counted so far (Anthropic's ``message_start``, Gemini's
    ``usageMetadata``) before the final one carries the whole usage: a call cancelled
    midway is charged what is known.
    """

    finished = False  # the protocol's end marker came: stop reading

    @abstractmethod
    def feed(self, event: SSEEvent) -> Iterator[ChatChunk]:
        """The text chunks this event carries (raises on an in-band error)."""

    @abstractmethod
    def end(self) -> ChatChunk:
        """The final chunk (finish reason, usage, refusal); raises if the stream broke off."""


class HttpProviderClient(ProviderClient):
    """What every wire protocol shares: settings, the two callers, chat driven either way.

    A protocol supplies :meth:`chat_exchange`, :meth:`chat_response` and
    :meth:`stream_reader`; :meth:`chat`/:meth:`chat_stream` run them blocking,
    :meth:`achat`/:meth:`achat_stream` awaiting.
    """

    def __init__(
        self,
        settings: ProviderSettings,
        api_key: str | None,
        *,
        http: httpx.Client | None = None,
        ahttp: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.settings = self.adapt_settings(settings)
        self._call = HttpCaller(self.settings, api_key, http=http, retry=retry, sleep=sleep)
        self._acall = AsyncHttpCaller(self.settings, api_key, http=ahttp, retry=retry, sleep=sleep)

    @classmethod
    def adapt_settings(cls, settings: ProviderSettings) -> ProviderSettings:
        """Protocol defaults applied to a catalog row (headers, base URL shape)."""
        return settings

    @abstractmethod
    def chat_exchange(self, request: ChatRequest, *, stream: bool) -> Exchange:
        """The request that asks for this chat."""

    @abstractmethod
    def chat_response(self, request: ChatRequest, body: Any, started: float) -> ChatResponse:
        """The answer in a non-streamed response's JSON body."""

    @abstractmethod
    def stream_reader(self, request: ChatRequest) -> StreamReader:
        """A reader for one streamed answer."""

    def chat(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        body = self._call.json(self.chat_exchange(request, stream=False))
        return self.chat_response(request, body, started)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        body = await self._acall.json(self.chat_exchange(request, stream=False))
        return self.chat_response(request, body, started)

    def chat_stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        reader = self.stream_reader(request)
        with closing(self._call.stream_events(self.chat_exchange(request, stream=True))) as ev:
            for event in ev:
                yield from reader.feed(event)
                if reader.finished:
                    break
        yield reader.end()

    async def achat_stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        events = self._acall.stream_events(self.chat_exchange(request, stream=True))
        reader = self.stream_reader(request)
        async with aclosing(events) as ev:
            async for event in ev:
                for chunk in reader.feed(event):
                    yield chunk
                if reader.finished:
                    # the body's end is usually in the same packet: reading it keeps the
                    # connection for the next call (a body left unread closes it)
                    with anyio.move_on_after(DRAIN_AFTER_END_S):
                        async for _ in ev:
                            pass
                    break
        yield reader.end()

    @property
    def provider(self) -> str:
        return self.settings.provider_key

    def close(self) -> None:
        self._call.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, base_url={self._call.base_url!r})"
        )

    def in_band_error(self, error: Any) -> BadResponseError:
        """An error object received inside a 200 response or stream."""
        err = as_dict(error)
        message = err.get("message", error if isinstance(error, str) else json.dumps(error))
        code = err.get("type") or err.get("code")
        return BadResponseError(
            f"{self.provider} reported an error inside the response: "
            + self._call.redact(str(message))[:300],
            provider=self.provider,
            code=self._call.redact(str(code)) if code is not None else None,
        )

    def stream_ended_early(self) -> ProviderTimeoutError:
        return ProviderTimeoutError(
            f"the {self.provider} stream ended before the response was complete",
            provider=self.provider,
        )

    def _missing_model(self, model: str) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"{self.provider} does not offer the model {model!r} to this key",
            provider=self.provider,
        )


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty dict (tolerant parsing)."""
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
