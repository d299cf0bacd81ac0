"""A fake LLM provider: a real HTTP server on 127.0.0.1 speaking three wire protocols.

Routing (one server, several "providers", each with its own keys and models):

    {url}/openai/v1/...         OpenAI dialect      GET /models, GET /models/{id},
                                                    POST /chat/completions
    {url}/anthropic/v1/...      Anthropic dialect   GET /v1/models[?limit&after_id],
                                                    GET /v1/models/{id}, POST /v1/messages
    {url}/gemini/v1beta/...     Gemini dialect      GET /models[?pageSize&pageToken],
                                                    GET /models/{m}, POST /models/{m}:generateContent,
                                                    POST /models/{m}:streamGenerateContent?alt=sse
    {url}/p/<name>/v1/...       OpenAI dialect for provider <name>, created on first use.
                                <name> in mistral, xai, deepseek, openrouter, ollama selects
                                that vendor's quirks (error shapes, no GET /models/{id} on
                                deepseek/openrouter, Mistral's 422 on stream_options and
                                max_completion_tokens, usage on the finish chunk; ollama
                                needs no key).

``fake.base_url(name)`` gives the base URL a catalog row would hold for each provider
(``…/openai/v1``, ``…/anthropic``, ``…/gemini/v1beta``, ``…/p/<name>/v1``).

Configuration: ``fake.set_keys(keys, prefix=None)`` (no keys configured = any non-empty key
is accepted), ``fake.set_models(prefix, models)``, ``fake.set_reply(model, text)``,
``fake.default_reply`` ("pong"), ``fake.input_tokens`` / ``fake.output_tokens``,
``fake.delay_s`` (every request), ``fake.page_size`` (caps list pages).

Faults: ``fake.fail(kind, times=1, prefix=None, retry_after=None, delay_s=0.5)`` makes the
next ``times`` matching requests fail, then clears. Kinds: 401, 403, unknown_model, 429,
quota, 500, 529, slow, malformed, drop, stream_break (a few events, then the connection
drops), stream_error (a few events, then an in-band error event: OpenRouter-style error
chunk, Anthropic ``event: error``, Gemini error object). Error bodies use each vendor's wire
shape (docs/providers.md §11.2); a Gemini 429 carries ``retry_after`` as RetryInfo.retryDelay, the
others as a Retry-After header. The 401 of OpenAI-style vendors echoes the key it got;
``401_code`` (OpenAI dialect only) is a 401 whose ``error.code`` is that key.

Every request is recorded (``fake.requests``: method, path, query, lowercase headers,
body bytes, parsed ``json``, ``params``, ``route`` name, ``received_at`` monotonic time);
``fake.clear()`` empties the record and pending faults.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakeprovider_anthropic import AnthropicDialect
from tests.fakeprovider_gemini import GeminiDialect
from tests.fakeprovider_openai import OpenAIDialect
from tests.fakeprovider_wire import (
    BASE_SUFFIX,
    DEFAULT_MODELS,
    FAULT_KINDS,
    FLAVORS,
    VERSION,
    Call,
    FakeModel,
    Reply,
    Route,
)

__all__ = ["FakeModel", "FakeProvider", "RecordedRequest"]

DIALECTS: dict[str, OpenAIDialect | AnthropicDialect | GeminiDialect] = {
    "openai": OpenAIDialect(),
    "anthropic": AnthropicDialect(),
    "gemini": GeminiDialect(),
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    route: str | None
    received_at: float = 0.0  # time.monotonic() when the request line arrived

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query).items()}


@dataclass
class Fault:
    kind: str
    times: int
    prefix: str | None
    retry_after: float | None
    delay_s: float
    only: str | None = None  # a substring of the request path the fault is limited to


CHAT_PATHS = ("/chat/completions", "/messages", ":generateContent", ":streamGenerateContent")


def _path_matches(only: str | None, path: str) -> bool:
    """``only="chat"`` means any protocol's chat endpoint; otherwise a path substring."""
    if only is None:
        return True
    if only == "chat":
        return any(marker in path for marker in CHAT_PATHS)
    return only in path


# --- the server -----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    fake: FakeProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hanging up are normal
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``fake.requests`` instead."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            self.server.fake.serve(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def drop(self) -> None:
        self.close_connection = True

    def write(self, reply: Reply, *, broken: bool = False) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.events is not None:
            self._write_stream(reply.events, broken=broken)
            return
        raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_header("content-type", reply.content_type)
        self.send_header("content-length", str(len(raw) + (100 if broken else 0)))
        self.end_headers()
        self.wfile.write(raw[: len(raw) // 2] if broken else raw)
        self.close_connection = self.close_connection or broken

    def _write_stream(self, events: list[bytes], *, broken: bool) -> None:
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in events[:2] if broken else events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        if broken:  # no terminating chunk: the client sees an incomplete body
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")


class FakeProvider:
    """See the module docstring. Start with ``FakeProvider.start()`` or ``with FakeProvider():``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {
            f"/{name}": Route(name, name, name, list(DEFAULT_MODELS[name]))
            for name in ("openai", "anthropic", "gemini")
        }
        self._keys: set[str] | None = None
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self.replies: dict[str, str] = {}
        self.verbatim: set[str] = set()  # models whose reply ignores JSON mode and schemas
        self.default_reply = "pong"
        self.input_tokens = 12
        self.output_tokens = 5
        self.delay_s = 0.0
        self.page_size: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start(cls) -> FakeProvider:
        fake = cls()
        fake._start()
        return fake

    def _start(self) -> None:
        if self._server is not None:
            return
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), name="fakeprovider", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeProvider:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake provider is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # configuration -----------------------------------------------------------------------

    def base_url(self, name: str) -> str:
        """The base URL a catalog row would hold for provider ``name``."""
        root, route = self._route(name)
        return self.url + root + BASE_SUFFIX[route.dialect]

    def add_provider(
        self,
        name: str,
        *,
        dialect: str = "openai",
        flavor: str | None = None,
        keys: set[str] | None = None,
        models: list[str | FakeModel] | None = None,
    ) -> str:
        """Serve provider ``name`` under ``/p/<name>``; returns its base URL."""
        flavor = flavor or (name if name in FLAVORS and dialect == "openai" else dialect)
        with self._lock:
            route = Route(
                name,
                dialect,
                flavor,
                list(DEFAULT_MODELS.get(flavor, DEFAULT_MODELS[dialect])),
                keys,
            )
            self._routes[f"/p/{name}"] = route
        if models is not None:
            self.set_models(name, models)
        return self.base_url(name)

    def set_keys(self, keys: set[str] | list[str] | None, prefix: str | None = None) -> None:
        """Accepted keys, globally or for one provider; ``None`` accepts any non-empty key."""
        with self._lock:
            value = set(keys) if keys is not None else None
            if prefix is None:
                self._keys = value
            else:
                self._route_locked(prefix)[1].keys = value

    def set_models(self, prefix: str, models: list[str | FakeModel]) -> None:
        with self._lock:
            self._route_locked(prefix)[1].models = [
                m if isinstance(m, FakeModel) else FakeModel(m) for m in models
            ]

    def set_reply(self, model: str, text: str, *, verbatim: bool = False) -> None:
        """The model's answer; ``verbatim`` sends it as-is even in JSON mode or with a schema."""
        self.replies[model] = text
        if verbatim:
            self.verbatim.add(model)

    def fail(
        self,
        kind: str,
        times: int = 1,
        *,
        prefix: str | None = None,
        retry_after: float | None = None,
        delay_s: float = 0.5,
        only: str | None = None,
    ) -> None:
        """The next ``times`` requests (to ``prefix``, or any; whose path contains ``only``,
        if given — e.g. ``only="chat"`` or ``only="generateContent"``) fail with ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; use one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(Fault(kind, times, prefix, retry_after, delay_s, only))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    # used by the dialects ------------------------------------------------------------------

    def keys_for(self, route: Route) -> set[str] | None:
        with self._lock:
            return route.keys if route.keys is not None else self._keys

    def page(self, requested: int) -> int:
        return max(1, min(requested, self.page_size or requested))

    # request handling ---------------------------------------------------------------------

    def _route(self, name: str) -> tuple[str, Route]:
        with self._lock:
            return self._route_locked(name)

    def _route_locked(self, name: str) -> tuple[str, Route]:
        for root, route in self._routes.items():
            if route.name == name:
                return root, route
        flavor = name if name in FLAVORS else "openai"
        route = self._routes[f"/p/{name}"] = Route(
            name, "openai", flavor, list(DEFAULT_MODELS[flavor])
        )
        return f"/p/{name}", route

    def _resolve(self, path: str) -> tuple[Route, str] | None:
        parts = path.split("/")
        root = "/".join(parts[:3]) if len(parts) > 3 and parts[1] == "p" else "/".join(parts[:2])
        with self._lock:
            route = self._routes.get(root)
            if route is None and root.startswith("/p/"):
                route = self._route_locked(parts[2])[1]
        if route is None:
            return None
        rest = path[len(root) :]
        version = VERSION[route.dialect]
        return (route, rest[len(version) :]) if rest.startswith(version + "/") else None

    def _take_fault(self, route: Route, path: str = "") -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.prefix in (None, route.name) and _path_matches(fault.only, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def serve(self, handler: _Handler) -> None:
        arrived = time.monotonic()
        split = urlsplit(handler.path)
        body = handler.read_body()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        resolved = self._resolve(split.path)
        record = RecordedRequest(
            handler.command,
            split.path,
            split.query,
            headers,
            body,
            resolved[0].name if resolved else None,
            arrived,
        )
        with self._lock:
            self._requests.append(record)
        if self.delay_s:
            time.sleep(self.delay_s)
        if resolved is None:
            handler.write(Reply(404, {"error": {"message": f"no fake route for {split.path}"}}))
            return
        route, rest = resolved
        fault = self._take_fault(route, split.path)
        if fault and fault.kind == "slow":
            time.sleep(fault.delay_s)
        if fault and fault.kind == "drop":
            handler.drop()
            return
        call = Call(self, route, handler.command, rest, record.params, headers, record.json)
        handler.write(self._reply(call, fault), broken=bool(fault and fault.kind == "stream_break"))

    def _reply(self, call: Call, fault: Fault | None) -> Reply:
        dialect = DIALECTS[call.route.dialect]
        if fault and fault.kind == "malformed":
            return Reply(200, b'{"id": "broken", "choices": [{"message": ')
        if fault and fault.kind not in ("slow", "stream_break", "stream_error"):
            return dialect.error(fault.kind, call, fault.retry_after)
        reply = dialect.auth_error(call) or dialect.handle(call)
        if fault and fault.kind == "stream_error" and reply.events:
            reply.events = [*reply.events[:2], dialect.stream_error()]
        return reply


if __name__ == "__main__":  # manual use: python -m tests.fakeprovider
    with FakeProvider() as running:
        print(running.url, flush=True)
        threading.Event().wait()
