"""The HTTP edge shared by every wire protocol.

One :class:`HttpCaller` per client builds the auth headers, runs the one retry loop
(docs/providers.md §11.3), translates httpx exceptions at a single point with
``raise … from``, and feeds streamed bodies to the one SSE parser (§11.1). Classifying an
error response (status first, then text, §11.2) is
:func:`aipilot.providers.errors.classify_response`.

Keys travel in headers only: ``query_param`` auth is refused because it would put the key
in a URL, which httpx logs and copies into its exception messages.
"""

from __future__ import annotations

import functools
import json
import random
import ssl
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from aipilot.errors import NotConfiguredError, UsageError
from aipilot.providers.errors import (
    BadResponseError,
    ModelNotFoundError,
    ProviderCallError,
    ProviderTimeoutError,
    classify_response,
)
from aipilot.providers.types import ProviderClient, ProviderSettings, RetryPolicy
from aipilot.redaction import redact

CONNECT_TIMEOUT_S = 5.0
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


def iter_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Server-sent events from text lines (LF, CRLF or mixed); comments are skipped."""
    event: str | None = None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SSEEvent(event, "\n".join(data))


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


class HttpCaller:
    """Sends one logical request, retrying within a :class:`RetryPolicy`."""

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
        self.provider = settings.provider_key
        self.base_url = settings.base_url.rstrip("/")
        self._headers = {**settings.extra_headers, **auth_headers(settings, api_key)}
        self._secrets = (api_key,)
        self._timeout = httpx.Timeout(settings.timeout_s, connect=CONNECT_TIMEOUT_S)
        # the caller's client, or the process-wide pool: neither is closed by this object
        self._http = http if http is not None else shared_client()
        self._policy = retry or RetryPolicy()
        self._sleep: Sleep = sleep if sleep is not None else time.sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"HttpCaller(provider={self.provider!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Nothing to release: connections go back to the pool they came from."""

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def get_json(self, path: str, params: dict[str, str | int] | None = None) -> Any:
        return self._json(self._send("GET", path, params=params))

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self._send("POST", path, body=body))

    def stream_events(
        self, path: str, body: dict[str, Any], params: dict[str, str] | None = None
    ) -> Generator[SSEEvent, None, None]:
        """SSE events of a streamed POST; retries happen only before the body starts."""
        response = self._send("POST", path, body=body, params=params, stream=True)
        try:
            yield from iter_sse(self._lines(response))
        finally:
            response.close()

    def _json(self, response: httpx.Response) -> Any:
        return load_json(response.content, provider=self.provider)

    def _lines(self, response: httpx.Response) -> Iterator[str]:
        try:
            yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise ProviderTimeoutError(
                f"the connection to {self.provider} dropped mid-stream ({type(exc).__name__})",
                provider=self.provider,
            ) from exc

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | dict[str, str | int] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(method, path, body=body, params=params, stream=stream)
            except ProviderCallError as error:
                delay = self._retry_delay(error, attempt, started)
                if delay is None:
                    raise
            self._sleep(delay)

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

    def _attempt(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None,
        params: dict[str, str] | dict[str, str | int] | None,
        stream: bool,
    ) -> httpx.Response:
        try:
            request = self._http.build_request(
                method,
                self.base_url + path,
                json=body,
                params=params,
                headers=self._headers,
                timeout=self._timeout,
            )
            response = self._http.send(request, stream=stream)
            if response.is_success:
                return response
            body_bytes = response.read()
            response.close()
        except httpx.InvalidURL as exc:
            raise UsageError(f"the {self.provider} base URL is not a valid URL") from exc
        except httpx.TimeoutException as exc:
            raise self._transport_error(exc, "did not answer in time") from exc
        except httpx.ConnectError as exc:
            raise self._transport_error(exc, "could not be reached") from exc
        except httpx.TransportError as exc:
            raise self._transport_error(exc, "dropped the connection") from exc
        raise classify_response(
            self.provider, response.status_code, response.headers, body_bytes, self._secrets
        )

    def _transport_error(self, exc: Exception, what: str) -> ProviderTimeoutError:
        host = httpx.URL(self.base_url).host
        return ProviderTimeoutError(
            f"{self.provider} ({host}) {what} ({type(exc).__name__})", provider=self.provider
        )


class HttpProviderClient(ProviderClient):
    """What every wire protocol shares: settings, an :class:`HttpCaller`, close and repr."""

    def __init__(
        self,
        settings: ProviderSettings,
        api_key: str | None,
        *,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.settings = self.adapt_settings(settings)
        self._call = HttpCaller(self.settings, api_key, http=http, retry=retry, sleep=sleep)

    @classmethod
    def adapt_settings(cls, settings: ProviderSettings) -> ProviderSettings:
        """Protocol defaults applied to a catalog row (headers, base URL shape)."""
        return settings

    @property
    def provider(self) -> str:
        return self.settings.provider_key

    def close(self) -> None:
        self._call.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, base_url={self._call.base_url!r})"
        )

    def _in_band_error(self, error: Any) -> BadResponseError:
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

    def _stream_ended_early(self) -> ProviderTimeoutError:
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
