"""The async pieces of ``aipilot serve`` that need no database.

- :class:`aipilot.providers.pool.PooledTransport`, against a small HTTP/1.1 server on
  127.0.0.1 (below) that counts the TCP connections it accepts and sees each one's end: a
  kept-alive connection is reused, concurrent requests each get one and give it back, a
  response abandoned midway closes its connection (that is what tells a provider to stop),
  a connection the server closed while idle or past its keep-alive is replaced without an
  error, and ``aclose()`` closes what is idle.
- :class:`aipilot.services.runtime.SharedRead`: concurrent callers share one read, and a
  caller never gets a value read before it asked (a read function blocked on a
  ``threading.Event`` fixes the order).
- :class:`aipilot.services.runtime.Batcher`: a group commit; every item written exactly
  once, each error to its own submitter, an item written even if its submitter is cancelled,
  ``idle()`` waits for all.

Plain Python functions stand in for the database reads and writes (they run on worker
threads, as the real ones do).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from aipilot.providers import pool
from aipilot.providers.http import ssl_context
from aipilot.providers.pool import PooledTransport
from aipilot.services.runtime import Batcher, SharedRead

T = TypeVar("T")
WAIT_S = 5.0  # the most any condition below is waited for


def arun(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.005)


async def on_thread_event(event: threading.Event, what: str) -> None:
    await until(event.is_set, what)


# --------------------------------------------------------------------------- the server


@dataclass
class Connection:
    """One TCP connection the server accepted."""

    writer: asyncio.StreamWriter
    requests: int = 0
    busy: bool = False
    client_hung_up: bool = False  # the server read EOF: the client closed it
    ended: bool = False
    closed_by_server: bool = False


@dataclass
class Server:
    """HTTP/1.1 with keep-alive on 127.0.0.1, in the test's event loop.

    ``GET /ok`` answers at once, ``GET /together?n=N`` once N requests are in flight at once
    (so each has a connection of its own), ``GET /stream?chunks=N``
    sends N chunks (chunked encoding) 5 ms apart, stopping early if the client hangs up.
    """

    connections: list[Connection] = field(default_factory=list)
    port: int = 0
    together: int = 0  # requests to /together so far

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        for connection in self.connections:
            connection.writer.close()
        await until(lambda: not self.open(), "every connection's handler returns")
        await self._server.wait_closed()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def accepted(self) -> int:
        return len(self.connections)

    def open(self) -> list[Connection]:
        return [c for c in self.connections if not c.ended]

    def close_idle(self) -> int:
        idle = [c for c in self.open() if not c.busy]
        for connection in idle:
            connection.closed_by_server = True
            connection.writer.close()
        return len(idle)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(writer)
        self.connections.append(connection)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    connection.client_hung_up = not exc.partial and not connection.closed_by_server
                    return
                connection.busy = True
                connection.requests += 1
                target = urlsplit(head.split(b" ", 2)[1].decode())
                query = {k: v[0] for k, v in parse_qs(target.query).items()}
                if target.path == "/stream":
                    if not await self._stream(reader, writer, int(query["chunks"])):
                        connection.client_hung_up = True
                        return
                else:
                    if target.path == "/together":  # all n at once: n connections in use
                        n = int(query["n"])
                        self.together += 1
                        group_end = -(-self.together // n) * n  # the last of this one's n
                        await until(
                            lambda end=group_end: self.together >= end, f"{n} requests at once"
                        )
                    body = b"ok %d" % connection.requests
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    await writer.drain()
                connection.busy = False
        except ConnectionError:
            connection.client_hung_up = not connection.closed_by_server
        finally:
            connection.ended = True
            writer.close()

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunks: int
    ) -> bool:
        """False if the client hung up before the end."""
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        hangup = asyncio.ensure_future(reader.read(1))
        try:
            for n in range(chunks):
                part = b"chunk %d\n" % n
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
                done, _ = await asyncio.wait({hangup}, timeout=0.005)
                if done:
                    return False
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        finally:
            hangup.cancel()  # and awaited: the next request's read must not overlap it
            await asyncio.gather(hangup, return_exceptions=True)


def pooled_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=PooledTransport(ssl_context()))


def with_server(test: Callable[[Server, httpx.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Server() as server:
            client = pooled_client()
            try:
                await test(server, client)
            finally:
                await client.aclose()

    arun(main())


# --------------------------------------------------------------------------- the pool


def test_sequential_requests_reuse_one_connection() -> None:
    async def test(server: Server, client: httpx.AsyncClient) -> None:
        texts = [(await client.get(server.url("/ok"))).text for _ in range(5)]
        assert texts == ["ok 1", "ok 2", "ok 3", "ok 4", "ok 5"]  # one connection's count
        assert server.accepted == 1

    with_server(test)


def test_concurrent_requests_open_one_connection_each_and_give_them_back() -> None:
    n = 8

    async def test(server: Server, client: httpx.AsyncClient) -> None:
        async def batch() -> list[int]:
            answers = await asyncio.gather(
                *(client.get(server.url(f"/together?n={n}")) for _ in range(n))
            )
            return [a.status_code for a in answers]

        assert await batch() == [200] * n
        assert server.accepted == n
        assert await batch() == [200] * n
        assert server.accepted == n  # the second batch took the n kept-alive connections
        assert sorted(c.requests for c in server.connections) == [2] * n

    with_server(test)


def test_a_stream_read_to_its_end_gives_its_connection_back() -> None:
    async def test(server: Server, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", server.url("/stream?chunks=3")) as response:
            body = b"".join([part async for part in response.aiter_bytes()])
        assert body == b"chunk 0\nchunk 1\nchunk 2\n"
        assert (await client.get(server.url("/ok"))).text == "ok 2"
        assert server.accepted == 1

    with_server(test)


def test_a_stream_closed_midway_closes_its_connection() -> None:
    async def test(server: Server, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", server.url("/stream?chunks=2000")) as response:
            async for line in response.aiter_lines():
                if line == "chunk 1":
                    break
        first = server.connections[0]
        await until(lambda: first.ended, "the server sees the abandoned connection end")
        assert first.client_hung_up
        assert (await client.get(server.url("/ok"))).text == "ok 1"  # a new connection's
        assert server.accepted == 2

    with_server(test)


def test_a_stream_whose_task_is_cancelled_closes_its_connection() -> None:
    async def test(server: Server, client: httpx.AsyncClient) -> None:
        started = asyncio.Event()

        async def read_forever() -> None:
            async with client.stream("GET", server.url("/stream?chunks=2000")) as response:
                async for _ in response.aiter_bytes():
                    started.set()

        task = asyncio.create_task(read_forever())
        await asyncio.wait_for(started.wait(), WAIT_S)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        first = server.connections[0]
        await until(lambda: first.ended, "the server sees the cancelled call's connection end")
        assert first.client_hung_up
        assert (await client.get(server.url("/ok"))).status_code == 200
        assert server.accepted == 2

    with_server(test)


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def test(server: Server, client: httpx.AsyncClient) -> None:
        assert (await client.get(server.url("/ok"))).status_code == 200
        assert server.close_idle() == 1
        await until(lambda: server.connections[0].ended, "the server closes its side")
        await asyncio.sleep(0.05)  # the FIN reaches the client's socket
        answer = await client.get(server.url("/ok"))
        assert answer.text == "ok 1"  # no error, and a fresh connection's first request
        assert server.accepted == 2

    with_server(test)


def test_keepalive_expiry_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "KEEPALIVE_S", 0.2)

    async def test(server: Server, client: httpx.AsyncClient) -> None:
        assert (await client.get(server.url("/ok"))).text == "ok 1"
        assert (await client.get(server.url("/ok"))).text == "ok 2"  # within 0.2 s: reused
        await asyncio.sleep(0.4)
        assert (await client.get(server.url("/ok"))).text == "ok 1"  # expired: a new one
        assert server.accepted == 2
        first = server.connections[0]
        await until(lambda: first.ended, "the expired connection is closed by the client")
        assert first.client_hung_up

    with_server(test)


def test_idle_connections_past_their_keepalive_are_closed_while_others_are_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pool, "KEEPALIVE_S", 0.2)

    async def test(server: Server, client: httpx.AsyncClient) -> None:
        await asyncio.gather(*(client.get(server.url("/together?n=3")) for _ in range(3)))
        assert server.accepted == 3
        deadline = time.monotonic() + 1.0  # five keep-alive periods of one request at a time
        while time.monotonic() < deadline:
            assert (await client.get(server.url("/ok"))).status_code == 200
            await asyncio.sleep(0.02)
        assert server.accepted == 3
        # the two connections not used for 1 s are past their keep-alive: closed by now
        assert sum(c.client_hung_up for c in server.connections) == 2

    with_server(test)


def test_aclose_closes_the_idle_connections() -> None:
    async def main() -> None:
        async with Server() as server:
            client = pooled_client()
            await asyncio.gather(*(client.get(server.url("/together?n=3")) for _ in range(3)))
            assert server.accepted == 3 and len(server.open()) == 3
            await client.aclose()
            await until(lambda: not server.open(), "every idle connection closed")
            assert all(c.client_hung_up for c in server.connections)

    arun(main())


def test_the_pool_keeps_connections_per_origin() -> None:
    async def main() -> None:
        async with Server() as one, Server() as two:
            client = pooled_client()
            try:
                for _ in range(3):
                    assert (await client.get(one.url("/ok"))).status_code == 200
                    assert (await client.get(two.url("/ok"))).status_code == 200
                assert (one.accepted, two.accepted) == (1, 1)
            finally:
                await client.aclose()

    arun(main())


# --------------------------------------------------------------------------- SharedRead


def test_concurrent_callers_share_one_read() -> None:
    reads: list[float] = []

    def read() -> int:
        reads.append(time.monotonic())
        time.sleep(0.05)
        return len(reads)

    async def main() -> None:
        shared = SharedRead(read)
        # all ask before the read begins (it is a task scheduled after theirs): one read
        assert await asyncio.gather(*(shared.current() for _ in range(50))) == [1] * 50
        assert len(reads) == 1
        assert await shared.current() == 2  # later: a read of its own

    arun(main())


@dataclass
class GatedReads:
    """A read function whose reads each block until the test lets them finish. Each read
    returns the value ``committed`` held when it began (a snapshot, as a database's)."""

    committed: int = 0
    began: list[threading.Event] = field(default_factory=list)
    gates: list[threading.Event] = field(default_factory=list)
    snapshots: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        for _ in range(8):
            self.began.append(threading.Event())
            self.gates.append(threading.Event())

    def read(self) -> int:
        with self._lock:
            n = len(self.snapshots)
            self.snapshots.append(self.committed)
        self.began[n].set()
        assert self.gates[n].wait(WAIT_S * 2)
        return self.snapshots[n]

    def release_all(self) -> None:
        for gate in self.gates:
            gate.set()


def test_a_caller_never_gets_a_value_read_before_it_asked() -> None:
    reads = GatedReads()

    async def main() -> None:
        shared = SharedRead(reads.read)
        try:
            early = [asyncio.create_task(shared.current()) for _ in range(3)]
            await on_thread_event(reads.began[0], "the first read begins")
            reads.committed = 1  # a change committed while the first read is under way
            late = [asyncio.create_task(shared.current()) for _ in range(3)]
            await on_thread_event(reads.began[1], "the late callers' read begins")
            assert reads.snapshots == [0, 1]
            reads.gates[0].set()
            assert await asyncio.gather(*early) == [0, 0, 0]
            assert not any(task.done() for task in late)  # not served by the first read
            reads.gates[1].set()
            assert await asyncio.gather(*late) == [1, 1, 1]
            assert len(reads.snapshots) == 2
        finally:
            reads.release_all()

    arun(main())


def test_a_read_that_fails_fails_its_callers_only() -> None:
    calls: list[int] = []

    def read() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")
        return 7

    async def main() -> None:
        shared = SharedRead(read)
        results = await asyncio.gather(
            *(shared.current() for _ in range(4)), return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in results) and len(calls) == 1
        assert await shared.current() == 7

    arun(main())


def test_a_cancelled_caller_does_not_cancel_the_read_of_the_others() -> None:
    reads = GatedReads()

    async def main() -> None:
        shared = SharedRead(reads.read)
        try:
            leaving = asyncio.create_task(shared.current())
            staying = asyncio.create_task(shared.current())
            await on_thread_event(reads.began[0], "the read begins")
            leaving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leaving
            reads.gates[0].set()
            assert await staying == 0
        finally:
            reads.release_all()

    arun(main())


# --------------------------------------------------------------------------- Batcher


@dataclass
class Writes:
    """A write function recording its batches; ``fail`` items get their own error."""

    fail: frozenset[int] = frozenset()
    delay_s: float = 0.0
    gate: threading.Event | None = None  # the first batch waits for it
    batches: list[list[int]] = field(default_factory=list)
    errors: dict[int, ValueError] = field(default_factory=dict)
    first_began: threading.Event = field(default_factory=threading.Event)

    def write(self, batch: list[int]) -> list[BaseException | None]:
        self.batches.append(list(batch))
        if len(self.batches) == 1:
            self.first_began.set()
            if self.gate is not None:
                assert self.gate.wait(WAIT_S * 2)
        time.sleep(self.delay_s)
        out: list[BaseException | None] = []
        for item in batch:
            error = ValueError(f"item {item} refused") if item in self.fail else None
            if error is not None:
                self.errors[item] = error
            out.append(error)
        return out

    def written(self) -> Counter[int]:
        return Counter(item for batch in self.batches for item in batch)


def test_concurrent_submits_are_written_in_few_batches_each_item_once() -> None:
    writes = Writes(delay_s=0.01)

    async def main() -> None:
        batcher = Batcher(writes.write)

        async def submit_later(item: int) -> None:
            await asyncio.sleep((item % 10) * 0.003)  # arrivals spread over the writes
            await batcher.submit(item)

        await asyncio.gather(*(submit_later(i) for i in range(100)))
        assert writes.written() == Counter(range(100))  # every item, exactly once
        assert len(writes.batches) <= 20, [len(b) for b in writes.batches]

    arun(main())


def test_items_submitted_while_a_batch_is_written_go_into_the_next_one() -> None:
    gate = threading.Event()
    writes = Writes(gate=gate)

    async def main() -> None:
        batcher = Batcher(writes.write)
        try:
            first = asyncio.create_task(batcher.submit(0))
            await on_thread_event(writes.first_began, "the first batch is being written")
            rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 51)]
            await asyncio.sleep(0.05)
            assert not first.done() and not any(t.done() for t in rest)
            gate.set()
            await asyncio.gather(first, *rest)
        finally:
            gate.set()
        assert writes.batches == [[0], list(range(1, 51))]

    arun(main())


def test_each_error_goes_to_its_own_submitter() -> None:
    writes = Writes(fail=frozenset({13, 42}))

    async def main() -> None:
        batcher = Batcher(writes.write)
        results = await asyncio.gather(
            *(batcher.submit(i) for i in range(60)), return_exceptions=True
        )
        for item, result in enumerate(results):
            if item in writes.fail:
                assert result is writes.errors[item]
            else:
                assert result is None, (item, result)
        assert writes.written() == Counter(range(60))

    arun(main())


def test_a_write_that_raises_fails_its_batch_and_the_next_batch_is_written() -> None:
    batches: list[list[int]] = []

    def write(batch: list[int]) -> list[BaseException | None]:
        batches.append(batch)
        if len(batches) == 1:
            raise RuntimeError("disk full")
        return [None] * len(batch)

    async def main() -> None:
        batcher = Batcher(write)
        failed = await asyncio.gather(
            *(batcher.submit(i) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in failed)
        assert await asyncio.gather(*(batcher.submit(i) for i in range(5, 8))) == [None] * 3
        assert batches == [[0, 1, 2, 3, 4], [5, 6, 7]]

    arun(main())


def test_a_cancelled_submitter_still_has_its_item_written() -> None:
    gate = threading.Event()
    writes = Writes(gate=gate)

    async def main() -> None:
        batcher = Batcher(writes.write)
        try:
            in_flight = asyncio.create_task(batcher.submit(1))  # its batch is being written
            await on_thread_event(writes.first_began, "the first batch is being written")
            queued = asyncio.create_task(batcher.submit(2))  # waits for the next batch
            await asyncio.sleep(0.01)
            for task in (in_flight, queued):
                task.cancel()
            for task in (in_flight, queued):
                with pytest.raises(asyncio.CancelledError):
                    await task
            gate.set()
            await asyncio.wait_for(batcher.idle(), WAIT_S)
        finally:
            gate.set()
        assert writes.batches == [[1], [2]]

    arun(main())


def test_idle_waits_for_everything_submitted() -> None:
    writes = Writes(delay_s=0.02)

    async def main() -> None:
        batcher = Batcher(writes.write)
        await batcher.idle()  # nothing submitted: returns at once
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(30)]
        await asyncio.sleep(0)  # the submits are queued
        more = [asyncio.create_task(batcher.submit(i)) for i in range(30, 40)]
        await asyncio.sleep(0)
        await batcher.idle()
        assert writes.written() == Counter(range(40))  # before any submitter is awaited
        assert await asyncio.gather(*tasks, *more) == [None] * 40

    arun(main())
