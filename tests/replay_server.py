"""A real HTTP server on 127.0.0.1 that answers with recorded provider responses.

Each fixture is one raw HTTP response, ``tests/replay/<provider>/<scenario>.http``: a status
line, header lines and an empty line (CRLF), then the body bytes exactly as the provider sent
them (SSE streams whole, with their own LF or CRLF separators). ``tests/replay/SOURCES.md``
names the public recording each fixture follows.

``ReplayServer.base_url(provider, scenario)`` is what a catalog row would hold so that the
aipilot client for that provider lands on the scenario:

- OpenAI-style providers: ``http://127.0.0.1:PORT/r/<provider>/<scenario>/v1``
- anthropic: ``http://127.0.0.1:PORT/r/anthropic/<scenario>`` (the client adds ``/v1/...``)
- gemini: ``http://127.0.0.1:PORT/r/gemini/<scenario>/v1beta``

Every request under ``/r/<provider>/<scenario>/`` (any method, any path below, any query) is
answered with that scenario's fixture. A scenario without its own file but with
``<scenario>_page1.http``, ``_page2.http``, ... is a sequence: the Nth request under that
prefix gets page N, and once the pages run out the last page is served again (so
``base_url("anthropic", "models_list")`` serves page 1, then page 2, then page 2...). The count
is per prefix and per server; ``reset_counts()`` starts the sequences over.

Served as recorded: status code, reason phrase and header lines, in order and repeated
headers kept (Gemini sends three ``Vary``). Not served as recorded: ``Content-Length`` is
recomputed and ``Transfer-Encoding`` / ``Content-Encoding`` are dropped (the body is sent
plain, not chunked or gzipped). ``text/event-stream`` bodies are written one event per write,
flushed, with ``Connection: close``, and the connection is closed after the last event.

Every request is kept in ``server.requests`` (method, path, query, lowercase headers, parsed
JSON body).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).resolve().parent / "replay"
OPENAI_STYLE = frozenset({"openai", "mistral", "deepseek", "xai", "openrouter"})
DROPPED_HEADERS = frozenset({"content-length", "transfer-encoding", "content-encoding"})
_EVENT = re.compile(rb".*?(?:\r\n\r\n|\n\n|\r\r)", re.DOTALL)
_PREFIX = re.compile(r"^/r/(?P<provider>[a-z0-9_-]+)/(?P<scenario>[a-z0-9_-]+)(?P<tail>/.*)?$")

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Fixture:
    status: int
    reason: str
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def is_sse(self) -> bool:
        return (self.header("content-type") or "").startswith("text/event-stream")


def fixture_path(provider: str, scenario: str) -> Path:
    return FIXTURES / provider / f"{scenario}.http"


def parse_fixture(raw: bytes) -> Fixture:
    """Split a raw HTTP response into status, reason, ordered headers and exact body."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("a fixture needs a CRLF CRLF between its head and its body")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    match = re.fullmatch(r"HTTP/1\.1 (\d{3}) ?(.*)", status_line)
    if match is None:
        raise ValueError(f"not an HTTP/1.1 status line: {status_line!r}")
    headers: Headers = []
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"not a header line: {line!r}")
        headers.append((name, value.strip()))
    return Fixture(int(match.group(1)), match.group(2), headers, body)


def load_fixture(provider: str, scenario: str) -> Fixture:
    return parse_fixture(fixture_path(provider, scenario).read_bytes())


def fixture(provider: str, scenario: str) -> tuple[int, Headers, bytes]:
    """(status, headers as recorded, body bytes) of one fixture."""
    loaded = load_fixture(provider, scenario)
    return loaded.status, loaded.headers, loaded.body


def fixture_bytes(provider: str, scenario: str) -> bytes:
    """The body of one fixture, byte for byte."""
    return load_fixture(provider, scenario).body


def all_fixtures() -> list[tuple[str, str]]:
    """Every (provider, scenario) on disk, sorted."""
    return sorted((p.parent.name, p.stem) for p in FIXTURES.glob("*/*.http"))


def sse_events(body: bytes) -> Iterator[bytes]:
    """The body cut after each blank line (LF or CRLF); a trailing rest comes last."""
    end = 0
    for match in _EVENT.finditer(body):
        end = match.end()
        yield match.group(0)
    if end < len(body):
        yield body[end:]


@dataclass(frozen=True)
class RecordedRequest:
    provider: str
    scenario: str
    method: str
    path: str  # the whole path, /r/<provider>/<scenario>/... without the query
    tail: str  # the part below the scenario prefix, e.g. /v1/chat/completions
    query: dict[str, str]
    headers: dict[str, str]  # lowercase names
    body: Any  # parsed JSON, or None when there was no body or it was not JSON
    raw_body: bytes = field(repr=False)


class ReplayServer:
    """``with ReplayServer() as server:`` serves tests/replay on 127.0.0.1, port 0."""

    def __init__(self, fixtures: Path = FIXTURES) -> None:
        self.fixtures = fixtures
        self.requests: list[RecordedRequest] = []
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> ReplayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = type("ReplayHandler", (_Handler,), {"replay": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="replay-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the replay server is not running")
        return int(self._httpd.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- routing --------------------------------------------------------------------------
    def base_url(self, provider: str, scenario: str) -> str:
        """The base URL a catalog row would hold for this scenario (see the module doc)."""
        if not self._scenario_exists(provider, scenario):
            raise KeyError(f"no replay fixture {provider}/{scenario}")
        prefix = f"{self.root}/r/{provider}/{scenario}"
        if provider == "anthropic":
            return prefix
        if provider == "gemini":
            return prefix + "/v1beta"
        if provider in OPENAI_STYLE:
            return prefix + "/v1"
        return prefix

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def _scenario_exists(self, provider: str, scenario: str) -> bool:
        directory = self.fixtures / provider
        return (directory / f"{scenario}.http").is_file() or (
            directory / f"{scenario}_page1.http"
        ).is_file()

    def _resolve(self, provider: str, scenario: str) -> Path | None:
        """The fixture file for the next request under this prefix (sequences advance)."""
        directory = self.fixtures / provider
        single = directory / f"{scenario}.http"
        if single.is_file():
            return single
        pages = []
        while (page := directory / f"{scenario}_page{len(pages) + 1}.http").is_file():
            pages.append(page)
        if not pages:
            return None
        with self._lock:
            index = self._counts.get((provider, scenario), 0)
            self._counts[(provider, scenario)] = index + 1
        return pages[min(index, len(pages) - 1)]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    replay: ReplayServer
    protocol_version = "HTTP/1.1"
    server_version = "replay"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not every request."""

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        match = _PREFIX.match(split.path)
        if match is None:
            self._plain(404, b"replay: paths look like /r/<provider>/<scenario>/...\n")
            return
        provider, scenario = match.group("provider"), match.group("scenario")
        try:
            body: Any = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        self.replay._record(
            RecordedRequest(
                provider=provider,
                scenario=scenario,
                method=self.command,
                path=split.path,
                tail=match.group("tail") or "",
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                raw_body=raw_body,
            )
        )
        path = self.replay._resolve(provider, scenario)
        if path is None:
            self._plain(404, f"replay: no fixture {provider}/{scenario}\n".encode())
            return
        self._send(parse_fixture(path.read_bytes()))

    def _send(self, recorded: Fixture) -> None:
        stream = recorded.is_sse
        self.send_response_only(recorded.status, recorded.reason)
        for name, value in recorded.headers:
            lowered = name.lower()
            if lowered in DROPPED_HEADERS or (stream and lowered == "connection"):
                continue
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(recorded.body)))
        if stream:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        if stream:
            for event in sse_events(recorded.body):
                self.wfile.write(event)
                self.wfile.flush()
        else:
            self.wfile.write(recorded.body)
        self.wfile.flush()

    def _plain(self, status: int, text: bytes) -> None:
        self.send_response_only(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
