"""`aipilot serve` under load: calls in flight, throughput, latency and memory (issue 17).

Three kinds of process, each on its own so that each one's CPU is seen apart:

- a fake OpenAI-compatible upstream on 127.0.0.1 (asyncio streams, uvloop when installed):
  POST /v1/chat/completions answers after a fixed latency (``--latency``, 1 s) with a
  chat.completion carrying usage, or with ``stream: true`` sends 10 SSE chunks spread over
  that latency (the first carries the role, then the finish_reason chunk, a usage chunk when
  ``stream_options.include_usage``, ``data: [DONE]``). GET /v1/models lists the model;
  GET /_stats gives the calls it holds in flight and the peak since the last reset, which
  is how many calls the gateway in front of it really had in flight;
- the gateway under test: `aipilot serve --workers 1` on SQLite (a temp file) and on
  PostgreSQL (a database created on ``--pg`` and dropped afterwards), set up as a user would
  (init, the catalog's openai row pointed at the upstream, a key, an active model, an API
  token); with ``--with-litellm`` the LiteLLM proxy (``--num_workers 1``) in front of the
  same upstream, installed once into its own virtual environment;
- a closed-loop load generator: N clients, each with its own keep-alive connection, sending
  the next request as soon as the previous one ends; what ends inside the measurement
  window (after a warm-up) counts. Latency is to the last byte, for streams too; TTFB
  (streams) is to the first body chunk. A request slower than ``--timeout`` is closed and
  counted as an error; "stuck" counts the requests that were in flight through the whole
  window (not one answer in it). Those are let finish or time out before the next load, and
  a gateway that then does not answer its health route within 5 s is restarted (noted).

The load generator speaks raw HTTP/1.1 over asyncio streams (uvloop), timed with
perf_counter (uvloop's loop.time() counts in milliseconds). Measured here against the
upstream alone, 500 clients, 1 s latency (``--client`` picks): raw, 500 req/s plain with 3 %
of a core and p99 1.015 s, 500 req/s stream with 12 % and p99 1.023 s; httpx.AsyncClient (one
per client), 471 req/s plain with 39 % of a core and p99 1.36 s, 484 req/s stream with 69 %
and p99 1.22 s, +1.9 ms at concurrency 1 (one AsyncClient shared by the 500 clients managed
under 10 req/s). httpx would take CPU from the gateway it measures: raw it is.

Loads: concurrency 1 (direct to the upstream, then through each gateway: the added p50),
200 and 500 clients, plain and stream (every stream asks for ``include_usage``). Ideal
throughput is clients / latency. Each gateway gets two plain and two stream calls before
its first load. Memory is VmRSS of the server's process tree (from /proc): idle after the
concurrency-1 load, and the highest sampled (every 0.25 s) in the 500-client windows;
per call = (that - idle) / 500; the peak is VmHWM at the end. The CPU column is each
process's share of one core in the window, and how busy the whole machine was (other
work on it shows there).

Run: ``python bench/serve_load.py --with-litellm`` writes the ``serve-load`` section of
docs/benchmarks.md (about 11 minutes with a healthy gateway, up to 30 s more for each load
that times out, plus a minute for LiteLLM's first install; without ``--with-litellm``
about 7). ``--quick`` (2 s warm-up, 5 s windows, 10 s timeout, no stream-500, LiteLLM at
200 clients at most; about 3 minutes) prints the tables and writes no doc. Also:
``--only sqlite|postgres``, ``--duration S``, ``--warmup S``, ``--latency S``,
``--timeout S``, ``--pg URL`` (or ``AIPILOT_BENCH_DATABASE_URL``; an unreachable server is
skipped and said so), ``--litellm-venv DIR`` (default ~/.cache/aipilot-bench/litellm-venv).
``aipilot serve`` runs from the tree this script is in (PYTHONPATH), wherever it is run from.

LiteLLM: ``--litellm-spec`` (``litellm[proxy]==1.106.12``) is the newest release whose
``[proxy]`` extra resolves on this machine's package index: later ones need a
``litellm-proxy`` package (or a ``litellm-proxy-extras`` release) that it does not have. A
pin also keeps a future bad release out (1.82.7 and 1.82.8 were compromised and withdrawn).
The proxy runs with a minimal environment (no AIPILOT_* variable), its own HOME, a master
key and the upstream key given by environment only, no database, and every remote catalog
fetch off (``LITELLM_LOCAL_*``, ``LITELLM_OFFLINE_MODE``). If it cannot be installed or
started, the bench says why and reports aipilot alone. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import machine, write_section

HERE = Path(__file__).resolve()
KEY = "sk-bench-0123456789abcdef"  # a fake; only the fake upstream ever sees it
MODEL = "gpt-4o-mini"
PROMPT = [{"role": "user", "content": "Say hello to the load bench in one sentence."}]
REPLY = "Hello, load bench! This answer comes from a fake upstream, ten pieces long."
CHUNKS = 10
LITELLM_SPEC = "litellm[proxy]==1.106.12"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_VENV = Path.home() / ".cache" / "aipilot-bench" / "litellm-venv"
clock = time.perf_counter  # the load generator's clock: uvloop's loop.time() counts in ms


def _run_loop(main: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# --- the fake upstream ------------------------------------------------------------------


@dataclass
class UpstreamState:
    latency: float
    inflight: int = 0
    peak: int = 0
    requests: int = 0


def _parse_head(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    line, _, rest = head.partition(b"\r\n")
    method, target, _ = line.split(b" ", 2)
    headers = {}
    for raw in rest.split(b"\r\n"):
        if raw:
            name, _, value = raw.partition(b":")
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes:
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append((await reader.readexactly(size + 2))[:-2])
    return await reader.readexactly(int(headers.get(b"content-length", b"0")))


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
    return head % (status.encode(), content_type, len(body)) + body


def _usage() -> dict[str, Any]:
    return {
        "prompt_tokens": 14,
        "completion_tokens": CHUNKS,
        "total_tokens": 14 + CHUNKS,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion(model: str) -> bytes:
    return json.dumps(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": REPLY,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_bench0001",
        }
    ).encode()


def _stream_events(model: str, include_usage: bool) -> list[bytes]:
    """The SSE events of one answer: CHUNKS deltas, the finish, usage, [DONE]."""
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_bench0001",
    }
    extra = {"usage": None} if include_usage else {}
    step = -(-len(REPLY) // CHUNKS)
    pieces = [REPLY[i * step : (i + 1) * step] for i in range(CHUNKS)]

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + json.dumps({**base, "choices": [choice], **extra}).encode() + b"\n\n"

    events = [event({"role": "assistant", "content": pieces[0], "refusal": None})]
    events += [event({"content": piece}) for piece in pieces[1:]]
    events[-1] += event({}, "stop")
    if include_usage:
        usage = {**base, "choices": [], "usage": _usage()}
        events[-1] += b"data: " + json.dumps(usage).encode() + b"\n\n"
    events[-1] += b"data: [DONE]\n\n"
    return events


async def _chat(writer: asyncio.StreamWriter, body: dict[str, Any], state: UpstreamState) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    model = str(body.get("model") or MODEL)
    if not body.get("stream"):
        await asyncio.sleep(state.latency)
        writer.write(_response("200 OK", _completion(model)))
        await writer.drain()
        return
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    for i, data in enumerate(_stream_events(model, include_usage)):
        await asyncio.sleep(started + (i + 1) * state.latency / CHUNKS - loop.time())
        framed = b"%x\r\n%s\r\n" % (len(data), data)
        writer.write(head + framed if i == 0 else framed)
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _upstream_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: UpstreamState
) -> None:
    try:
        while True:
            method, target, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
            body = await _read_body(reader, headers)
            path, _, query = target.partition(b"?")
            if method == b"POST" and path.endswith(b"/chat/completions"):
                if not headers.get(b"authorization", b"").startswith(b"Bearer "):
                    writer.write(_response("401 Unauthorized", b'{"error":{"message":"no key"}}'))
                    continue
                state.requests += 1
                state.inflight += 1
                state.peak = max(state.peak, state.inflight)
                try:
                    await _chat(writer, json.loads(body), state)
                finally:
                    state.inflight -= 1
            elif method == b"GET" and path.endswith(b"/models"):
                models = {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
                writer.write(_response("200 OK", json.dumps(models).encode()))
            elif path == b"/_stats":
                stats = {"inflight": state.inflight, "peak": state.peak, "requests": state.requests}
                if b"reset" in query:
                    state.peak = state.inflight
                writer.write(_response("200 OK", json.dumps(stats).encode()))
            else:
                writer.write(_response("404 Not Found", b'{"error":{"message":"not found"}}'))
            if headers.get(b"connection", b"").lower() == b"close":
                return
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        return
    except RuntimeError:  # uvloop: writing to a transport the client closed
        return
    finally:
        writer.close()


async def _upstream_main(port: int, latency: float) -> None:
    state = UpstreamState(latency=latency)
    server = await asyncio.start_server(
        lambda r, w: _upstream_connection(r, w, state), "127.0.0.1", port, backlog=4096
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


# --- the load generator -----------------------------------------------------------------


class Failure(Exception):
    """A request that ended without a complete, successful answer (its kind is the text)."""


class RawClient:
    """One keep-alive HTTP/1.1 connection: writes a prepared request, reads the answer."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.host, self.port, self.stream = "127.0.0.1", int(spec["port"]), bool(spec["stream"])
        body = json.dumps(spec["body"]).encode()
        lines = [f"POST {spec['path']} HTTP/1.1", f"host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in spec["headers"].items()]
        lines += ["content-type: application/json", f"content-length: {len(body)}", "", ""]
        self.request = "\r\n".join(lines).encode() + body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def reset(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def close(self) -> None:
        self.reset()

    async def call(self, started: float) -> float:
        """One request; returns the time to the first body chunk (streams) or to the head."""
        if self.reader is None:
            try:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            except OSError as err:
                raise Failure("connect") from err
        assert self.writer is not None
        reader = self.reader
        self.writer.write(self.request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as err:
            raise Failure("closed") from err
        ttfb = clock() - started
        status = head[9:12]
        _, _, headers = _parse_head(b"X " + head)
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            ttfb, body = await self._chunked(reader, started)
        elif b"content-length" in headers:
            body = await reader.readexactly(int(headers[b"content-length"]))
        else:
            body = await reader.read()
            self.reset()
        if headers.get(b"connection", b"").lower() == b"close":
            self.reset()
        if status != b"200":
            raise Failure(f"HTTP {status.decode()}")
        if self.stream:
            if b'{"error"' in body or not body.rstrip().endswith(b"data: [DONE]"):
                raise Failure("bad stream")
        elif b'"choices"' not in body:
            raise Failure("bad body")
        return ttfb

    async def _chunked(self, reader: asyncio.StreamReader, started: float) -> tuple[float, bytes]:
        ttfb, errors, tail = 0.0, False, b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return ttfb, (b'{"error"' if errors else b"") + tail
            data = (await reader.readexactly(size + 2))[:-2]
            if not ttfb:
                ttfb = clock() - started
            errors = errors or b'{"error"' in data
            tail = (tail + data)[-64:]


class HttpxClient:
    """The same request through an httpx.AsyncClient of its own (``--client httpx``)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import httpx

        self.client = httpx.AsyncClient(timeout=None, trust_env=False)
        self.url = f"http://127.0.0.1:{spec['port']}{spec['path']}"
        self.headers = {**spec["headers"], "content-type": "application/json"}
        self.body, self.stream = json.dumps(spec["body"]).encode(), bool(spec["stream"])

    def reset(self) -> None:
        return None

    async def close(self) -> None:
        await self.client.aclose()

    async def call(self, started: float) -> float:
        import httpx

        try:
            async with self.client.stream(
                "POST", self.url, content=self.body, headers=self.headers
            ) as response:
                ttfb, tail = 0.0, b""
                async for data in response.aiter_raw():
                    ttfb = ttfb or clock() - started
                    tail = (tail + data)[-64:] if self.stream else tail + data
        except httpx.TransportError as err:
            raise Failure(type(err).__name__) from err
        if response.status_code != 200:
            raise Failure(f"HTTP {response.status_code}")
        if self.stream and not tail.rstrip().endswith(b"data: [DONE]"):
            raise Failure("bad stream")
        return ttfb


def _percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _loadgen_main(spec: dict[str, Any]) -> dict[str, Any]:
    kind = HttpxClient if spec.get("client") == "httpx" else RawClient
    clients = [kind(spec) for _ in range(int(spec["clients"]))]
    warm_end = clock() + float(spec["warmup"])
    end = warm_end + float(spec["duration"])
    timeout = float(spec["timeout"])
    latencies: list[float] = []
    ttfbs: list[float] = []
    errors: Counter[str] = Counter()
    running: dict[int, float] = {}

    async def client_loop(index: int, client: RawClient | HttpxClient) -> None:
        await asyncio.sleep(index * 0.001)  # spread the first connects over ~0.5 s
        while clock() < end:
            started = running[index] = clock()
            failure = None
            try:
                ttfb = await asyncio.wait_for(client.call(started), timeout)
            except TimeoutError:
                failure = "timeout"
            except Failure as err:
                failure = str(err)
            except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                failure = type(err).__name__
            done = clock()
            del running[index]
            counted = warm_end <= done <= end
            if failure is not None:
                client.reset()
                errors[failure] += counted
                await asyncio.sleep(0.1)  # a failing target is not hammered in a tight loop
            elif counted:
                latencies.append(done - started)
                ttfbs.append(ttfb)

    async def markers() -> tuple[float, int]:
        await asyncio.sleep(warm_end - clock())
        cpu0 = _own_cpu()
        print("start", flush=True)
        await asyncio.sleep(end - clock())
        cpu = _own_cpu() - cpu0
        print("end", flush=True)
        # in flight since before the window opened: not one answer in the whole window
        return cpu, sum(started < warm_end for started in running.values())

    tasks = [asyncio.create_task(client_loop(i, c)) for i, c in enumerate(clients)]
    cpu, unfinished = await markers()
    await asyncio.wait(tasks, timeout=timeout + 5)
    for client in clients:
        await client.close()
    duration = float(spec["duration"])
    return {
        "ok": len(latencies),
        "rps": len(latencies) / duration,
        "p50": _percentile(latencies, 0.5),
        "p99": _percentile(latencies, 0.99),
        "ttfb_p50": _percentile(ttfbs, 0.5),
        "ttfb_p99": _percentile(ttfbs, 0.99),
        "errors": dict(+errors),
        "stuck": unfinished,
        "loadgen_cpu": cpu / duration,
    }


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- processes ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _tree(pid: int) -> list[int]:
    return [pid, *_descendants(pid)]


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _memory_kib(pids: list[int], field_name: str) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total += int(line.split()[1])
    return total


def _started_at(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _stop(proc: subprocess.Popen[Any] | None, *, grace: float = 15) -> None:
    """Terminate a process we started (and what it started), then kill what is left."""
    if proc is None or proc.poll() is not None:
        return
    kids = [(pid, _started_at(pid)) for pid in _descendants(proc.pid)]
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for pid, started in kids:  # the same process still (same start time), not a reused pid
        if started is not None and _started_at(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _get(
    port: int, path: str, timeout: float = 5, *, post: tuple[dict[str, str], bytes] | None = None
) -> tuple[int, bytes]:
    """One request on a fresh connection (``connection: close``): status and raw body."""
    method, headers, body = ("POST", *post) if post else ("GET", {}, b"")
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", "connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if post:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall("\r\n".join([*lines, "", ""]).encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head[9:12]), body


def _wait_ready(proc: subprocess.Popen[Any], port: int, path: str, what: str, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} while starting")
        with contextlib.suppress(OSError, ValueError):
            if _get(port, path, timeout=2)[0] == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {path} within {limit:.0f} s")


def _tail(log: Path, lines: int = 5) -> str:
    return " / ".join(log.read_text(errors="replace").splitlines()[-lines:])


class Upstream:
    def __init__(self, latency: float) -> None:
        self.port = _free_port()
        cmd = [sys.executable, str(HERE), "_upstream", str(self.port), str(latency)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        _wait_ready(self.proc, self.port, "/_stats", "the fake upstream", 30)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self, *, reset: bool = False) -> dict[str, int]:
        stats: dict[str, int] = json.loads(
            _get(self.port, "/_stats?reset" if reset else "/_stats")[1]
        )
        return stats

    def wait_idle(self, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while self.stats()["inflight"] and time.monotonic() < deadline:
            time.sleep(0.2)
        return not self.stats()["inflight"]


# --- targets ----------------------------------------------------------------------------


@dataclass
class Target:
    label: str
    port: int
    model: str
    headers: dict[str, str]
    health: str
    start: Callable[[], subprocess.Popen[bytes]]
    proc: subprocess.Popen[bytes] | None = None
    notes: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)

    def restart(self) -> None:
        _stop(self.proc)
        self.proc = None
        self.proc = self.start()


@contextlib.contextmanager
def _pg_database(server_url: str) -> Iterator[str]:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from aipilot.config import normalise_database_url

    admin_url = make_url(normalise_database_url(server_url))
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"aipilot_bench_load_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def _setup_aipilot(url: str, upstream: Upstream) -> str:
    """init, the openai row pointed at the upstream, a key, the active model; a token."""
    from aipilot.config import Settings
    from aipilot.services.keys import keys
    from aipilot.services.runtime import connect
    from aipilot.services.setup import initialise
    from aipilot.services.users import tokens
    from tests.providers_catalog import activate_directly, sql

    initialise(Settings.resolve(db=url, user="bench"))
    sql(
        url,
        "UPDATE ai_providers SET base_url = :u WHERE provider_key = 'openai'",
        u=upstream.base_url,
    )
    ctx = connect(Settings.resolve(db=url, user="bench"))
    try:
        keys.set_key(ctx, "openai", KEY, test=False)
        token = tokens.create_token(ctx, name="bench-load").token
    finally:
        ctx.db.dispose()
    activate_directly(url, "openai", MODEL, user="bench")
    return token


@contextlib.contextmanager
def aipilot_target(kind: str, upstream: Upstream, pg: str) -> Iterator[Target]:
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="aipilot-bench-"))
        log = Path(tmp) / "serve.log"
        if kind == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            url = stack.enter_context(_pg_database(pg))
        token = _setup_aipilot(url, upstream)
        port = _free_port()
        # the aipilot of the tree this script is in, wherever it is run from
        env = {**os.environ, "AIPILOT_DATABASE_URL": url, "PYTHONPATH": str(HERE.parent.parent)}
        env.pop("AIPILOT_DEBUG", None)
        cmd = [sys.executable, "-m", "aipilot", "serve", "--port", str(port), "--workers", "1"]

        def start() -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
                )
            try:
                _wait_ready(proc, port, "/readyz", "aipilot serve", 60)
            except RuntimeError as err:
                _stop(proc)
                raise RuntimeError(f"{err}: " + _tail(log)) from None
            return proc

        label = f"aipilot {'SQLite' if kind == 'sqlite' else 'PostgreSQL'}"
        target = Target(
            label, port, "active", {"authorization": f"Bearer {token}"}, "/healthz", start
        )
        try:
            target.proc = start()
            yield target
        finally:
            _stop(target.proc)


def _litellm_venv(venv: Path, spec: str) -> tuple[Path | None, str]:
    """The venv's litellm executable (installing it the first time), or None and why."""
    exe = venv / "bin" / "litellm"
    marker = venv / ".bench-spec"
    if exe.exists() and marker.exists() and marker.read_text() == spec:
        return exe, ""
    print(f"installing {spec} into {venv} (once) ...", file=sys.stderr, flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / "litellm-install.log"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        with log.open("w") as out:
            pip = [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", spec]
            done = subprocess.run(pip, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    except (OSError, subprocess.SubprocessError) as err:
        return None, f"creating the virtual environment failed: {err}"
    if done.returncode or not exe.exists():
        lines = [ln for ln in log.read_text().splitlines() if "ignored: it is neither" not in ln]
        return None, f"pip install {spec} failed: " + " / ".join(lines[-3:])
    marker.write_text(spec)
    return exe, ""


def _litellm_version(exe: Path) -> str:
    python = exe.parent / "python"
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


@contextlib.contextmanager
def litellm_target(exe: Path, upstream: Upstream) -> Iterator[Target]:
    master = "sk-" + secrets.token_urlsafe(24)  # only in the proxy's environment and our headers
    with tempfile.TemporaryDirectory(prefix="litellm-bench-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: {upstream.base_url}
      api_key: os.environ/BENCH_UPSTREAM_KEY
litellm_settings:
  num_retries: 0
  request_timeout: 600
  telemetry: false
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""
        )
        config.chmod(0o600)
        home = Path(tmp) / "home"
        home.mkdir()
        env = {
            "PATH": f"{exe.parent}:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "NO_PROXY": "127.0.0.1,localhost",
            "BENCH_UPSTREAM_KEY": KEY,
            "LITELLM_MASTER_KEY": master,
            "LITELLM_OFFLINE_MODE": "true",
            "LITELLM_LOG": "ERROR",
            **{
                f"LITELLM_LOCAL_{name}": "True"
                for name in (
                    "MODEL_COST_MAP",
                    "ANTHROPIC_BETA_HEADERS",
                    "BLOG_POSTS",
                    "POLICY_TEMPLATES",
                    "AUTOROUTER_PRESETS",
                )
            },
        }
        port = _free_port()
        cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--num_workers", "1"]
        log = Path(tmp) / "litellm.log"

        def start() -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    cmd, env=env, cwd=tmp, stdin=subprocess.DEVNULL, stdout=out, stderr=out
                )
            try:
                _wait_ready(proc, port, "/health/liveliness", "the LiteLLM proxy", 180)
            except RuntimeError as err:
                _stop(proc)
                raise RuntimeError(f"{err}: " + _tail(log)) from None
            return proc

        target = Target(
            f"LiteLLM {_litellm_version(exe)}",
            port,
            MODEL,
            {"authorization": f"Bearer {master}"},
            "/health/liveliness",
            start,
        )
        try:
            target.proc = start()
            yield target
        finally:
            _stop(target.proc)


# --- running loads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    name: str
    clients: int
    stream: bool


def _body(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": PROMPT}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


class Sampler(threading.Thread):
    """The highest VmRSS of a process tree, sampled every 0.25 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.25):
            self.peak = max(self.peak, _memory_kib(_tree(self.pid), "VmRSS"))


def run_load(
    *,
    port: int,
    path: str,
    headers: dict[str, str],
    model: str,
    load: Load,
    opts: argparse.Namespace,
    upstream: Upstream,
    server_pid: int | None,
) -> dict[str, Any]:
    warmup = opts.warmup
    spec = {
        "port": port,
        "path": path,
        "headers": headers,
        "body": _body(model, load.stream),
        "stream": load.stream,
        "clients": load.clients,
        "warmup": warmup,
        "duration": opts.duration,
        "timeout": opts.timeout,
        "client": opts.client,
    }
    proc = subprocess.Popen(
        [sys.executable, str(HERE), "_loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: Queue[str] = Queue()

    def pump() -> None:
        for ln in proc.stdout or []:
            lines.put(ln)

    threading.Thread(target=pump, daemon=True).start()
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(spec))  # the bearer goes by stdin, never argv
    proc.stdin.close()
    pids = {"loadgen": [proc.pid], "upstream": [upstream.proc.pid]}
    sampler = None
    if server_pid is not None:
        pids["server"] = _tree(server_pid)
        sampler = Sampler(server_pid)
    cpu0: dict[str, float] = {}
    busy0, calls0 = (0, 0), 0
    result: dict[str, Any] = {}
    deadline = time.monotonic() + warmup + opts.duration + opts.timeout + 60
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1).strip()
            except Empty:
                if proc.poll() is not None and lines.empty():
                    break
                continue
            if line == "start":
                calls0 = upstream.stats(reset=True)["requests"]
                cpu0 = {k: _cpu_seconds(v) for k, v in pids.items() if k != "loadgen"}
                busy0 = _machine_busy()
                if sampler is not None:
                    sampler.start()
            elif line == "end":
                busy1 = _machine_busy()
                result["cpu"] = {
                    k: (_cpu_seconds(pids[k]) - v) / opts.duration for k, v in cpu0.items()
                }
                result["machine_busy"] = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
                stats = upstream.stats()
                result["upstream_peak"] = stats["peak"]
                result["upstream_calls"] = stats["requests"] - calls0
                if sampler is not None:
                    sampler.done.set()
                    result["rss_peak_kib"] = sampler.peak
            elif line.startswith("{"):
                result |= json.loads(line)
                break
    finally:
        if sampler is not None:
            sampler.done.set()
        _stop(proc, grace=5)
    if "ok" not in result:
        raise RuntimeError(f"the load generator gave no result for {load.name}")
    result.setdefault("cpu", {})["loadgen"] = result.pop("loadgen_cpu")
    result.setdefault("upstream_peak", 0)
    result.setdefault("upstream_calls", 0)
    return result


def _settle(target: Target, upstream: Upstream, after: str) -> None:
    """Between loads: the upstream idle again, the target answering; else a restart."""
    if not upstream.wait_idle(30):
        target.notes.append(f"after {after}, calls were still running at the upstream 30 s later")
    try:
        status = _get(target.port, target.health, timeout=5)[0]
    except OSError:
        status = 0
    if status != 200:
        target.notes.append(
            f"after {after} it did not answer {target.health} within 5 s: restarted"
        )
        target.restart()


def _prime(target: Target) -> None:
    """A few calls of each kind first: lazy imports, caches and pools warm before any load."""
    for stream in (False, True, False, True):
        body = json.dumps(_body(target.model, stream)).encode()
        status, answer = _get(target.port, "/v1/chat/completions", 30, post=(target.headers, body))
        if status != 200:
            raise RuntimeError(
                f"{target.label} answered {status} to a first call: {answer[:300]!r}"
            )


def measure_target(
    target: Target, loads: list[Load], opts: argparse.Namespace, up: Upstream
) -> None:
    _prime(target)
    for load in loads:
        print(f"  {target.label}: {load.name} ...", file=sys.stderr, flush=True)
        assert target.proc is not None
        target.results[load.name] = run_load(
            port=target.port,
            path="/v1/chat/completions",
            headers=target.headers,
            model=target.model,
            load=load,
            opts=opts,
            upstream=up,
            server_pid=target.proc.pid,
        )
        if load.clients == 1:
            up.wait_idle(10)
            time.sleep(1)
            pids = _tree(target.proc.pid)
            target.memory["idle"] = _memory_kib(pids, "VmRSS")
        r = target.results[load.name]
        print(
            f"    {r['rps']:.1f} req/s, p50 {_ms(r['p50'])}, p99 {_ms(r['p99'])}, errors "
            f"{_errors(r)}; the upstream got {r['upstream_calls']} calls, "
            f"{r['upstream_peak']} at most at once; CPU {_cpu(r)}",
            file=sys.stderr,
            flush=True,
        )
        _settle(target, up, load.name)
    assert target.proc is not None
    target.memory["hwm"] = _memory_kib(_tree(target.proc.pid), "VmHWM")


# --- the report ---------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


def _mib(kib: int | None) -> str:
    return "—" if not kib else f"{kib / 1024:.0f} MiB"


def _errors(r: dict[str, Any]) -> str:
    total = sum(r["errors"].values())
    text = str(total)
    if total:
        text += " (" + ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) + ")"
    if r["stuck"]:
        text += f" +{r['stuck']} stuck"
    return text


def _cpu(r: dict[str, Any]) -> str:
    c = r.get("cpu", {})
    parts = [f"{c[k] * 100:.0f}" if k in c else "—" for k in ("server", "upstream", "loadgen")]
    return "/".join(parts) + f" ({r.get('machine_busy', 0) * 100:.0f} % of the machine)"


def load_rows(target: Target, loads: list[Load], latency: float) -> list[str]:
    rows = []
    for load in loads:
        r = target.results.get(load.name)
        if r is None or load.clients == 1:
            continue
        ideal = load.clients / latency
        ttfb = f"{_ms(r['ttfb_p50'])} / {_ms(r['ttfb_p99'])}" if load.stream else "—"
        rows.append(
            f"| {load.name} | {target.label} | {r['rps']:.1f} | {ideal:.0f} | {r['rps'] / ideal:.2f} "
            f"| {_ms(r['p50'])} | {_ms(r['p99'])} | {ttfb} | {_errors(r)} | {r['upstream_peak']} "
            f"| {_cpu(r)} |"
        )
    return rows


LOAD_HEADER = """| load | gateway | req/s | ideal | ratio | p50 | p99 | TTFB p50 / p99 | errors | upstream in flight (peak) | CPU % server/upstream/loadgen |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"""


def c1_rows(targets: list[Target], direct: dict[str, Any]) -> list[str]:
    rows = [f"| direct to the upstream | {_ms3(direct['p50'])} | {_ms3(direct['p99'])} | — |"]
    for t in targets:
        r = t.results.get("c1")
        if r is None or r["p50"] is None or direct["p50"] is None:
            continue
        added = (r["p50"] - direct["p50"]) * 1000
        rows.append(f"| {t.label} | {_ms3(r['p50'])} | {_ms3(r['p99'])} | {added:+.2f} ms |")
    return rows


def _ms3(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.2f} ms"


def memory_rows(targets: list[Target]) -> list[str]:
    rows = []
    for t in targets:
        idle = t.memory.get("idle", 0)
        cells = []
        for name in ("plain-500", "stream-500"):
            r = t.results.get(name)
            peak = r.get("rss_peak_kib") if r else None
            per = f"{(peak - idle) / 500:.0f} KiB" if peak and idle else "—"
            cells += [_mib(peak), per]
        rows.append(
            f"| {t.label} | {_mib(idle)} | {' | '.join(cells)} | {_mib(t.memory.get('hwm'))} |"
        )
    return rows


def targets_check(targets: list[Target], direct: dict[str, Any], latency: float) -> list[str]:
    """Issue 17's targets, each against what was measured."""
    lite = next((t for t in targets if t.label.startswith("LiteLLM")), None)
    out = []
    for t in (t for t in targets if t is not lite):
        r = t.results

        def ratio(name: str, clients: int, r: dict[str, Any] = r) -> float | None:
            return r[name]["rps"] * latency / clients if name in r else None

        checks = []
        for name, clients, floor in (
            ("plain-200", 200, 0.9),
            ("stream-200", 200, 0.9),
            ("plain-500", 500, 0.8),
            ("stream-500", 500, 0.8),
        ):
            got = ratio(name, clients)
            if got is None:
                continue
            p99 = r[name]["p99"]
            ok = got >= floor and (clients < 500 or (p99 is not None and p99 < 1.5 * latency))
            extra = f", p99 {_ms(p99)}" if clients == 500 else ""
            checks.append(f"{name} {got:.2f} of ideal{extra} {'✓' if ok else '✗'}")
        if lite is not None:
            for name in ("plain-200", "stream-200"):
                if name in r and name in lite.results and lite.results[name]["rps"]:
                    x = r[name]["rps"] / lite.results[name]["rps"]
                    checks.append(f"{name} {x:.1f}× LiteLLM {'✓' if x >= 4 else '✗'}")
        c1 = r.get("c1")
        if c1 and c1["p50"] is not None and direct["p50"] is not None:
            added = (c1["p50"] - direct["p50"]) * 1000
            checks.append(f"added at concurrency 1 {added:+.2f} ms {'✓' if added < 1 else '✗'}")
        out.append(f"- {t.label}: " + "; ".join(checks))
    return out


def _server_stack() -> str:
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio loop"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn, {http}, {loop}"


def report(
    targets: list[Target], loads: list[Load], direct: dict[str, Any], opts: argparse.Namespace
) -> str:
    rows = [row for load in loads for t in targets for row in load_rows(t, [load], opts.latency)]
    notes = [f"- {t.label}: {note}" for t in targets for note in t.notes]
    skipped = [f"- {line}" for line in opts.skipped]
    return "\n".join(
        [
            "## serve under load (`python bench/serve_load.py --with-litellm`)",
            "",
            f"One worker of each gateway ({_server_stack()} for aipilot), a fake OpenAI-compatible",
            f"upstream answering after {opts.latency:g} s (a stream: {CHUNKS} chunks over that time),",
            "closed-loop clients with keep-alive connections (raw HTTP/1.1 on asyncio), each process",
            f"on its own and all on {machine()}, 127.0.0.1. {opts.warmup:g} s warm-up, then",
            f"{opts.duration:g} s measured; a request over {opts.timeout:g} s is an error. Latency is",
            "to the last byte; TTFB (streams) to the first chunk. Ideal = clients / latency.",
            "",
            LOAD_HEADER,
            *rows,
            "",
            "Concurrency 1 (one client, plain), p50 and p99, and what the gateway adds at p50:",
            "",
            "| path | p50 | p99 | added p50 |",
            "| --- | --- | --- | --- |",
            *c1_rows(targets, direct),
            "",
            "Server memory (VmRSS of its process tree): idle after the warm-up, the highest sampled",
            "with 500 clients, per call = (that − idle) / 500, and the peak (VmHWM) over the run:",
            "",
            "| gateway | idle | 500 plain | per call | 500 stream | per call | peak |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *memory_rows(targets),
            "",
            "Issue 17's targets:",
            "",
            *targets_check(targets, direct, opts.latency),
            *(["", "Notes:", "", *notes, *skipped] if notes or skipped else []),
        ]
    )


# --- main ---------------------------------------------------------------------------------

LOADS = [
    Load("c1", 1, False),
    Load("plain-200", 200, False),
    Load("stream-200", 200, True),
    Load("plain-500", 500, False),
    Load("stream-500", 500, True),
]
QUICK = ("c1", "plain-200", "stream-200", "plain-500")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="short windows, fewer loads, no doc")
    p.add_argument("--duration", type=float, help="measured seconds per load (30; quick 5)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per load (5; quick 2)")
    p.add_argument("--latency", type=float, default=1.0, help="upstream latency, seconds")
    p.add_argument(
        "--timeout", type=float, help="a request slower than this is an error (30; quick 10)"
    )
    p.add_argument("--only", choices=("sqlite", "postgres"), help="one database only")
    p.add_argument("--pg", default=os.environ.get("AIPILOT_BENCH_DATABASE_URL", DEFAULT_PG))
    p.add_argument("--with-litellm", action="store_true", help="measure the LiteLLM proxy too")
    p.add_argument("--litellm-venv", type=Path, default=DEFAULT_VENV)
    p.add_argument("--litellm-spec", default=LITELLM_SPEC)
    p.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator")
    opts = p.parse_args(argv)
    opts.duration = opts.duration or (5.0 if opts.quick else 30.0)
    opts.warmup = opts.warmup if opts.warmup is not None else (2.0 if opts.quick else 5.0)
    opts.timeout = opts.timeout or (10.0 if opts.quick else 30.0)
    opts.skipped = []
    return opts


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard)
        )


def _pg_reachable(url: str) -> str | None:
    import psycopg

    from aipilot.config import normalise_database_url

    conninfo = normalise_database_url(url).replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(conninfo, connect_timeout=5).close()
    except psycopg.Error as err:
        return f"PostgreSQL not reachable ({type(err).__name__}): skipped"
    return None


def main(argv: list[str]) -> int:
    opts = parse(argv)
    _raise_fd_limit()
    loads = [load for load in LOADS if not opts.quick or load.name in QUICK]
    os.environ["AIPILOT_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    kinds = [opts.only] if opts.only else ["sqlite", "postgres"]
    if "postgres" in kinds and (why := _pg_reachable(opts.pg)):
        print(why, file=sys.stderr)
        opts.skipped.append(why)
        kinds.remove("postgres")
    litellm_exe = None
    if opts.with_litellm:
        litellm_exe, why = _litellm_venv(opts.litellm_venv, opts.litellm_spec)
        if litellm_exe is None:
            print(f"LiteLLM not measured: {why}", file=sys.stderr)
            opts.skipped.append(f"LiteLLM not measured: {why}")
    started = time.monotonic()
    targets: list[Target] = []
    upstream = Upstream(opts.latency)
    try:
        print("  direct to the upstream: c1 ...", file=sys.stderr, flush=True)
        direct = run_load(
            port=upstream.port,
            path="/v1/chat/completions",
            headers={"authorization": f"Bearer {KEY}"},
            model=MODEL,
            load=LOADS[0],
            opts=opts,
            upstream=upstream,
            server_pid=None,
        )
        for kind in kinds:
            with aipilot_target(kind, upstream, opts.pg) as target:
                targets.append(target)
                measure_target(target, loads, opts, upstream)
        if litellm_exe is not None:
            lite_loads = loads if not opts.quick else [ld for ld in loads if ld.clients <= 200]
            try:
                with litellm_target(litellm_exe, upstream) as target:
                    targets.append(target)
                    measure_target(target, lite_loads, opts, upstream)
            except RuntimeError as err:
                print(f"LiteLLM not measured: {err}", file=sys.stderr)
                opts.skipped.append(f"LiteLLM not measured: {err}")
    finally:
        _stop(upstream.proc)
    body = report(targets, loads, direct, opts)
    print(body)
    print(f"\n(whole run: {time.monotonic() - started:.0f} s)")
    if not opts.quick:
        write_section("serve-load", body)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_upstream"]:
        _run_loop(_upstream_main(int(sys.argv[2]), float(sys.argv[3])))
    elif sys.argv[1:2] == ["_loadgen"]:
        print(json.dumps(_run_loop(_loadgen_main(json.loads(sys.stdin.read())))), flush=True)
    else:
        raise SystemExit(main(sys.argv[1:]))
