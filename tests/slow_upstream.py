"""An OpenAI-compatible upstream that takes its time and watches its connections.

asyncio in a background thread, so hundreds of connections cost no thread each. A plain
chat answers after ``delay_s``; a stream sends ``chunks`` deltas ``interval_s`` apart, then
the finish chunk, a usage chunk (``stream_options.include_usage``) and ``[DONE]``. The
bodies follow OpenAI's shapes (the same fields and order as tests/replay/openai/*.http);
the text is ours. For every chat it records whether the client closed the connection before
the answer was complete, and when: an abandoned call must close its upstream response
instead of letting the provider generate (and bill) the rest. A request's ``max_tokens``
(``max_completion_tokens``), when given, is the number of chunks (or answer tokens) instead of ``chunks``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

WORD = "tok "
PROMPT_TOKENS = 12


@dataclass
class Exchange:
    stream: bool
    started: float
    finished: float | None = None  # the whole answer was written
    closed_early: float | None = None  # the client hung up before that
    chunks_sent: int = 0


@dataclass
class SlowUpstream:
    delay_s: float = 1.0
    chunks: int = 20
    interval_s: float = 0.1
    exchanges: list[Exchange] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> SlowUpstream:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> SlowUpstream:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def chats(self) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                path, body = request
                if path.endswith("/models"):
                    models = {"object": "list", "data": [_model("gpt-4o-mini")]}
                    await _write(writer, 200, "application/json", json.dumps(models).encode())
                    continue
                await self._chat(reader, writer, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _chat(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: dict[str, Any]
    ) -> None:
        stream = bool(body.get("stream"))
        asked = body.get("max_completion_tokens", body.get("max_tokens"))
        chunks = asked if isinstance(asked, int) else self.chunks
        exchange = Exchange(stream=stream, started=time.monotonic())
        with self._lock:
            self.exchanges.append(exchange)
        # the client hanging up is seen as the end of what it sends
        hangup = asyncio.ensure_future(reader.read(1))
        try:
            if not stream:
                if await _hung_up(hangup, self.delay_s):
                    exchange.closed_early = time.monotonic()
                    return
                answer = _completion(body.get("model"), WORD * chunks, chunks)
                await _write(writer, 200, "application/json", json.dumps(answer).encode())
                exchange.finished = time.monotonic()
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for event in _events(body, chunks):
                if exchange.chunks_sent and await _hung_up(hangup, self.interval_s):
                    exchange.closed_early = time.monotonic()
                    return
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
                exchange.chunks_sent += 1
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            exchange.finished = time.monotonic()
        except ConnectionError:
            exchange.closed_early = time.monotonic()
        finally:
            hangup.cancel()


async def _hung_up(hangup: asyncio.Future[bytes], wait_s: float) -> bool:
    done, _ = await asyncio.wait({hangup}, timeout=wait_s)
    return bool(done) and not hangup.cancelled() and hangup.result() == b""


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, Any]] | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    raw = await reader.readexactly(length) if length else b""
    return path, json.loads(raw) if raw else {}


async def _write(writer: asyncio.StreamWriter, status: int, kind: str, body: bytes) -> None:
    writer.write(
        b"HTTP/1.1 %d OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
        % (status, kind.encode(), len(body), body)
    )
    await writer.drain()


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1721172741, "owned_by": "system"}


def _usage(completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _completion(model: Any, text: str, tokens: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-slow",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_slow",
    }


def _sse(model: Any, delta: dict[str, Any], finish: str | None) -> bytes:
    chunk = {
        "id": "chatcmpl-slow",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_slow",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _events(body: dict[str, Any], chunks: int) -> list[bytes]:
    model = body.get("model")
    events = [_sse(model, {"role": "assistant", "content": "", "refusal": None}, None)]
    events += [_sse(model, {"content": WORD}, None) for _ in range(chunks)]
    events.append(_sse(model, {}, "stop"))
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        usage = {
            "id": "chatcmpl-slow",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": _usage(chunks),
        }
        events.append(b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events
