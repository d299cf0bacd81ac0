"""The awaiting driver (``achat``, ``achat_stream``) behaves exactly like the blocking one.

Both drivers run the same protocol code (``chat_exchange``, ``chat_response``,
``stream_reader``) and the same retry loop and error translation; what differs is the
transport (httpx.Client vs httpx.AsyncClient) and how waits and reads are awaited. So every
case here runs the same request through both and compares everything observable:

- every recorded chat of tests/replay (discovered from the directory: a new fixture is
  covered without editing this file): the same ChatResponse (latency aside) or the same
  list of chunks; every recorded error answer: the same exception;
- every fault of tests/fakeprovider.py, for every provider flavour, plain and streamed: the
  same exception (class, message, attributes, cause), the same chunks before it, the same
  number of requests at the fake and the same retry waits (``sleep=`` recorder, with
  ``random`` seeded identically for the backoff jitter);
- an abandoned ``achat_stream`` (``aclose()`` after one chunk, or its task cancelled while
  it awaits the next one) and a cancelled ``achat`` hang up on the upstream at once
  (tests/slow_upstream.py watches the connection);
- the key never shows in what the async path raises.

No database. The async side runs on ``asyncio.run``'s loop and its shared pool
(``shared_async_client()``), closed at the end of each run.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest

from aipilot.errors import AipilotError
from aipilot.providers import client_for
from aipilot.providers.http import close_shared_async_client
from aipilot.providers.types import (
    ApiKind,
    AuthMethod,
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ProviderClient,
    ProviderSettings,
    RetryPolicy,
)
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.replay_server import ReplayServer, all_fixtures, load_fixture
from tests.slow_upstream import Exchange as UpstreamExchange
from tests.slow_upstream import SlowUpstream

T = TypeVar("T")
HI = [ChatMessage("user", "hi")]
SEED = 20240611

# --------------------------------------------------------------------------- drivers


def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Run on a fresh loop, closing that loop's shared pool before the loop goes."""

    async def main() -> T:
        try:
            return await coro
        finally:
            await close_shared_async_client()

    return asyncio.run(main())


def everything_about(error: BaseException) -> str:
    """Every text a log or a traceback could show of an error, its causes included."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        parts += [repr(v) for v in vars(current).values()]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def described(error: BaseException | None) -> dict[str, Any] | None:
    """What a caller can observe of an error: class, message, attributes, cause."""
    if error is None:
        return None
    return {
        "type": type(error),
        "str": str(error),
        "repr": repr(error),
        "args": error.args,
        "vars": dict(vars(error)),
        "exit_code": getattr(error, "exit_code", None),
        "cause": type(error.__cause__),
    }


@dataclass
class Outcome:
    """One driver's run of one request."""

    value: Any  # the ChatResponse (latency zeroed), or the chunks received (even before an error)
    error: dict[str, Any] | None
    attempts: int
    sleeps: list[float]
    raised: BaseException | None = None


def assert_same(sync: Outcome, async_: Outcome) -> None:
    """Field by field, so that a failure names what differs."""
    assert async_.error == sync.error
    assert async_.value == sync.value
    assert async_.attempts == sync.attempts
    assert async_.sleeps == sync.sleeps


def blocking(client: ProviderClient, request: ChatRequest, *, stream: bool) -> tuple[Any, Any]:
    chunks: list[ChatChunk] = []
    try:
        if stream:
            for chunk in client.chat_stream(request):
                chunks.append(chunk)
            return chunks, None
        return replace(client.chat(request), latency_ms=0), None
    except Exception as exc:
        return (chunks if stream else None), exc


async def awaiting(
    client: ProviderClient, request: ChatRequest, *, stream: bool
) -> tuple[Any, Any]:
    chunks: list[ChatChunk] = []
    try:
        if stream:
            async with aclosing(client.achat_stream(request)) as gen:
                async for chunk in gen:
                    chunks.append(chunk)
            return chunks, None
        return replace(await client.achat(request), latency_ms=0), None
    except Exception as exc:
        return (chunks if stream else None), exc


def both(
    make: Callable[[Callable[[float], None]], ProviderClient],
    request: ChatRequest,
    *,
    stream: bool,
    count: Callable[[], int],
    before_each: Callable[[], None] = lambda: None,
) -> tuple[Outcome, Outcome]:
    """The request through the blocking driver, then the awaiting one, each from the same
    starting state (``before_each``, ``random`` seeded for the backoff jitter)."""
    results = []
    for driver in ("blocking", "awaiting"):
        before_each()
        sleeps: list[float] = []
        client = make(sleeps.append)
        start = count()
        random.seed(SEED)
        try:
            if driver == "blocking":
                value, error = blocking(client, request, stream=stream)
            else:
                value, error = arun(awaiting(client, request, stream=stream))
        finally:
            client.close()
        results.append(Outcome(value, described(error), count() - start, sleeps, error))
    return results[0], results[1]


# --------------------------------------------------------------------------- replayed traffic

REPLAY_KINDS: dict[str, tuple[ApiKind, AuthMethod]] = {
    "anthropic": ("anthropic", "api_key_header"),
    "gemini": ("gemini", "api_key_header"),
}
REPLAY_KEY = "sk-replay-async-not-a-real-key-0000"
SCHEMA = {
    "type": "object",
    "properties": {
        "harbour": {"type": "string"},
        "river": {"type": "string"},
        "bridges": {"type": "integer"},
    },
    "required": ["harbour", "river", "bridges"],
}


def replay_settings(replay: ReplayServer, provider: str, scenario: str) -> ProviderSettings:
    kind, auth = REPLAY_KINDS.get(provider, ("openai", "bearer"))
    return ProviderSettings(
        provider_key=provider,
        provider_name=provider,
        base_url=replay.base_url(provider, scenario),
        api_kind=kind,
        auth_method=auth,
        auth_header="x-api-key" if kind == "anthropic" else None,
        timeout_s=10,
    )


def replay_request(scenario: str) -> ChatRequest:
    """The request the fixture answers (as in test_replay_providers)."""
    messages = [ChatMessage("user", "hello")]
    if "json_schema" in scenario:
        return ChatRequest(model="replayed", messages=messages, json_schema=SCHEMA)
    return ChatRequest(
        model="replayed", messages=messages, json_mode=scenario.startswith("chat_json")
    )


def replay_cases(prefix: str) -> list[Any]:
    return [
        pytest.param(p, s, load_fixture(p, s).is_sse, id=f"{p}/{s}")
        for p, s in all_fixtures()
        if s.startswith(prefix)
    ]


CHAT_CASES = replay_cases("chat_")
ERROR_CASES = replay_cases("err_")


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def replay_both(
    replay: ReplayServer, provider: str, scenario: str, *, stream: bool
) -> tuple[Outcome, Outcome]:
    def make(sleep: Callable[[float], None]) -> ProviderClient:
        return client_for(replay_settings(replay, provider, scenario), REPLAY_KEY, sleep=sleep)

    def count() -> int:
        return sum(1 for r in replay.requests if (r.provider, r.scenario) == (provider, scenario))

    return both(make, replay_request(scenario), stream=stream, count=count)


def test_every_provider_and_both_shapes_are_covered() -> None:
    """The parametrization is discovered from tests/replay: make sure it found it."""
    assert len(CHAT_CASES) >= 40 and len(ERROR_CASES) >= 30
    providers = {c.values[0] for c in CHAT_CASES}
    assert providers == {
        "openai",
        "anthropic",
        "gemini",
        "mistral",
        "deepseek",
        "xai",
        "openrouter",
    }
    streamed = {c.values[0] for c in CHAT_CASES if c.values[2]}
    assert streamed == providers  # every provider has at least one recorded stream
    assert sum(1 for c in CHAT_CASES if not c.values[2]) >= 25


@pytest.mark.parametrize(("provider", "scenario", "sse"), CHAT_CASES)
def test_recorded_chats_are_read_the_same(
    replay: ReplayServer, provider: str, scenario: str, sse: bool
) -> None:
    sync, async_ = replay_both(replay, provider, scenario, stream=sse)
    assert sync.error is None, sync.raised
    assert async_.error is None, async_.raised
    if sse:
        assert sync.value and sync.value[-1].usage is not None
    else:
        assert sync.value.text or sync.value.refusal
    assert async_.value == sync.value
    assert async_.attempts == sync.attempts == 1
    assert async_.sleeps == sync.sleeps == []


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(("provider", "scenario", "sse"), ERROR_CASES)
def test_recorded_errors_are_raised_the_same(
    replay: ReplayServer, provider: str, scenario: str, sse: bool, stream: bool
) -> None:
    sync, async_ = replay_both(replay, provider, scenario, stream=stream)
    assert isinstance(sync.raised, AipilotError), sync.raised
    assert_same(sync, async_)
    assert not find_leaks(everything_about(async_.raised), REPLAY_KEY)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- faults

FAKE_KINDS: dict[str, tuple[ApiKind, AuthMethod]] = {
    "openai": ("openai", "bearer"),
    "mistral": ("openai", "bearer"),
    "xai": ("openai", "bearer"),
    "deepseek": ("openai", "bearer"),
    "openrouter": ("openai", "bearer"),
    "anthropic": ("anthropic", "api_key_header"),
    "gemini": ("gemini", "api_key_header"),
}
FIRST_MODEL = {
    "openai": "gpt-4o-mini",
    "mistral": "mistral-small-latest",
    "xai": "grok-3-mini",
    "deepseek": "deepseek-chat",
    "openrouter": "openai/gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}
PROTOCOLS = ("openai", "anthropic", "gemini")
PLAIN_FAULTS = ("401", "403", "unknown_model", "quota", "malformed", "stream_break", "stream_error")
RETRIED_FAULTS = ("429", "429_no_header", "500", "529", "drop")  # once (recovers), 3× (gives up)
SLOW_TIMEOUT_S, SLOW_DELAY_S = 0.4, 1.2


def fault_cases() -> list[Any]:
    cases = []
    for name, (kind, _) in FAKE_KINDS.items():
        faults = [(f, 1) for f in PLAIN_FAULTS] + [(f, t) for f in RETRIED_FAULTS for t in (1, 3)]
        if kind == "openai":
            faults.append(("401_code", 1))
        if name in PROTOCOLS:  # each one waits for real timeouts: the three protocols suffice
            faults += [("slow", 1), ("slow", 3)]
        for fault, times in faults:
            cases.append(pytest.param(name, fault, times, id=f"{name}-{fault}x{times}"))
    return cases


FAULT_CASES = fault_cases()


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.start() as server:
        yield server


def fake_client(
    fake: FakeProvider,
    name: str,
    key: str,
    sleep: Callable[[float], None] | None = None,
    **settings: Any,
) -> ProviderClient:
    kind, auth = FAKE_KINDS[name]
    row = ProviderSettings(name, name.title(), fake.base_url(name), kind, auth, **settings)
    return client_for(row, key, retry=RetryPolicy(), sleep=sleep)


def arm(fake: FakeProvider, fault: str, times: int) -> None:
    fake.clear()
    if fault == "429":
        fake.fail("429", times, retry_after=2, only="chat")
    elif fault == "429_no_header":  # no Retry-After: the jittered backoff decides the wait
        fake.fail("429", times, only="chat")
    elif fault == "slow":
        fake.fail("slow", times, delay_s=SLOW_DELAY_S, only="chat")
    else:
        fake.fail(fault, times, only="chat")


def test_the_fault_matrix_covers_every_kind_of_the_fake() -> None:
    from tests.fakeprovider_wire import FAULT_KINDS

    covered = {c.values[1] for c in FAULT_CASES} - {"429_no_header"}
    assert covered == FAULT_KINDS
    assert len(FAULT_CASES) >= 100


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(("name", "fault", "times"), FAULT_CASES)
def test_faults_are_raised_retried_and_waited_the_same(
    fake: FakeProvider, name: str, fault: str, times: int, stream: bool
) -> None:
    canary = f"sk-aipilot-CANARY-{uuid.uuid4()}"
    timeout = {"timeout_s": SLOW_TIMEOUT_S} if fault == "slow" else {}

    def make(sleep: Callable[[float], None]) -> ProviderClient:
        return fake_client(fake, name, canary, sleep, **timeout)

    sync, async_ = both(
        make,
        ChatRequest(FIRST_MODEL[name], HI),
        stream=stream,
        count=lambda: len(fake.requests),
        before_each=lambda: arm(fake, fault, times),
    )
    if sync.raised is not None:
        assert isinstance(sync.raised, AipilotError), repr(sync.raised)
    assert sync.attempts >= 1
    assert_same(sync, async_)
    if async_.raised is not None:
        assert not find_leaks(everything_about(async_.raised), canary)


def test_retries_really_happen_in_the_matrix(fake: FakeProvider) -> None:
    """A guard on the matrix itself: a 500 three times is three requests and two waits."""
    sync, async_ = both(
        lambda sleep: fake_client(fake, "openai", "sk-test-key", sleep),
        ChatRequest("gpt-4o-mini", HI),
        stream=True,
        count=lambda: len(fake.requests),
        before_each=lambda: arm(fake, "500", 3),
    )
    assert sync.attempts == async_.attempts == 3
    assert len(sync.sleeps) == 2 and async_.sleeps == sync.sleeps
    assert sync.error is not None and sync.error["vars"]["status"] == 500
    assert async_.error == sync.error


# --------------------------------------------------------------------------- the key


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("name", list(FAKE_KINDS))
def test_the_key_never_shows_in_what_the_async_path_raises(
    fake: FakeProvider, name: str, stream: bool
) -> None:
    canary = f"sk-aipilot-CANARY-{uuid.uuid4()}"
    fake.set_keys({"sk-the-right-key"})  # the canary is refused (OpenAI-style 401s echo it)
    client = fake_client(fake, name, canary, lambda _s: None)
    faults = ["401", "429", "500", "drop", "malformed", "stream_break", "stream_error"]
    if FAKE_KINDS[name][0] == "openai":
        faults.append("401_code")  # the key comes back as the error code

    async def each() -> list[BaseException]:
        raised: list[BaseException] = []
        for fault in [None, *faults]:
            fake.clear()
            if fault is not None:
                fake.fail(fault, 3, only="chat")
            _, error = await awaiting(client, ChatRequest(FIRST_MODEL[name], HI), stream=stream)
            assert error is not None
            raised.append(error)
        return raised

    try:
        raised = arun(each())
    finally:
        client.close()
    assert len(raised) == len(faults) + 1
    for error in raised:
        assert isinstance(error, AipilotError), repr(error)
        assert not find_leaks(everything_about(error), canary), repr(error)
    assert not find_leaks(repr(client), canary)
    assert all(canary not in r.path and canary not in r.query for r in fake.requests)


# --------------------------------------------------------------------------- cancellation

UPSTREAM_CHUNKS, UPSTREAM_INTERVAL_S = 40, 0.25  # a whole stream takes ~10 s
PROMPT_S = 2.0


@pytest.fixture
def upstream() -> Iterator[SlowUpstream]:
    with SlowUpstream(delay_s=10.0, chunks=UPSTREAM_CHUNKS, interval_s=UPSTREAM_INTERVAL_S) as up:
        yield up


def upstream_client(upstream: SlowUpstream) -> ProviderClient:
    row = ProviderSettings("openai", "OpenAI", upstream.base_url, "openai", "bearer", timeout_s=30)
    return client_for(row, "sk-upstream-test-key", retry=RetryPolicy(max_attempts=1))


async def hung_up(upstream: SlowUpstream, since: float) -> UpstreamExchange:
    """The one exchange, once the upstream saw the client hang up (within PROMPT_S).

    Awaited inside the run, with the loop and its pool still open: closing the pool or the
    loop at the end of ``asyncio.run`` would hang up too, and hide a response left open."""
    deadline = time.monotonic() + PROMPT_S
    while time.monotonic() < deadline:
        chats = upstream.chats()
        if chats and chats[-1].closed_early is not None:
            break
        await asyncio.sleep(0.02)
    (exchange,) = upstream.chats()
    assert exchange.closed_early is not None, f"the upstream was not hung up on: {exchange}"
    assert exchange.finished is None
    assert exchange.closed_early - since < PROMPT_S
    return exchange


def test_aclose_after_one_chunk_closes_the_upstream(upstream: SlowUpstream) -> None:
    client = upstream_client(upstream)

    async def main() -> tuple[ChatChunk, UpstreamExchange]:
        gen = client.achat_stream(ChatRequest("gpt-4o-mini", HI))
        first = await anext(gen)
        closing_at = time.monotonic()
        await gen.aclose()
        return first, await hung_up(upstream, closing_at)

    try:
        first, exchange = arun(main())
    finally:
        client.close()
    assert first.text and first.finish_reason is None
    assert exchange.stream and exchange.chunks_sent < UPSTREAM_CHUNKS


def test_cancelling_the_task_awaiting_the_next_chunk_closes_the_upstream(
    upstream: SlowUpstream,
) -> None:
    client = upstream_client(upstream)

    async def main() -> tuple[list[ChatChunk], UpstreamExchange]:
        got: list[ChatChunk] = []
        first = asyncio.Event()
        # held here, so that no garbage collection of the generator closes it instead
        gen = client.achat_stream(ChatRequest("gpt-4o-mini", HI))

        async def consume() -> None:
            async for chunk in gen:
                got.append(chunk)
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 10)
        await asyncio.sleep(UPSTREAM_INTERVAL_S / 2)  # the task now awaits the next chunk
        cancelling_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return got, await hung_up(upstream, cancelling_at)

    try:
        got, exchange = arun(main())
    finally:
        client.close()
    assert got and all(c.finish_reason is None for c in got)
    assert exchange.stream and exchange.chunks_sent < UPSTREAM_CHUNKS


def test_cancelling_an_awaited_plain_chat_closes_the_upstream(upstream: SlowUpstream) -> None:
    client = upstream_client(upstream)

    async def main() -> UpstreamExchange:
        task = asyncio.create_task(client.achat(ChatRequest("gpt-4o-mini", HI)))
        deadline = time.monotonic() + 10
        while not upstream.chats() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        cancelling_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await hung_up(upstream, cancelling_at)

    try:
        exchange = arun(main())
    finally:
        client.close()
    assert not exchange.stream
