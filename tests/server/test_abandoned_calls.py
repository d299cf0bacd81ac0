"""Clients that hang up, and a server stopped with calls in flight (issue 17).

Against a real `aipilot serve` process and a slow upstream that watches its connections
(tests/slow_upstream.py): every call that reserved a quota writes exactly one usage row,
an abandoned call closes its upstream connection and is charged what it used, and the
server keeps answering everyone else.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.conftest import CliFn
from tests.providers_catalog import activate_directly, sql
from tests.serve_routes import Server, store_key, token_for
from tests.slow_upstream import PROMPT_TOKENS, SlowUpstream

ABANDONED = 300
CHAT = "/v1/chat/completions"
ASSIST = "/functions/v1/assist_flut"
INPUT_PRICE, OUTPUT_PRICE = Decimal("1"), Decimal("2")  # USD per million tokens


@pytest.fixture
def upstream(database_url: str) -> Iterator[SlowUpstream]:
    with SlowUpstream(delay_s=3.0, chunks=40, interval_s=0.1) as slow:
        sql(
            database_url,
            "UPDATE ai_providers SET base_url = :u WHERE provider_key = 'openai'",
            u=slow.base_url,
        )
        sql(
            database_url,
            "UPDATE ai_models SET input_price_per_mtok = :i, output_price_per_mtok = :o "
            "WHERE model_key = 'gpt-4o-mini'",
            i=int(INPUT_PRICE),
            o=int(OUTPUT_PRICE),
        )
        yield slow


@pytest.fixture
def token(cli: CliFn, database_url: str, upstream: SlowUpstream) -> str:
    store_key(cli, "alice")
    activate_directly(database_url, "openai", "gpt-4o-mini")
    limits = ("limits", "set", "--provider", "openai", "--daily-requests", "100000")
    assert cli(*limits, "--monthly-cost", "1000").exit_code == 0
    return token_for(cli, "alice")


def _server(database_url: str, tmp_path: Path, **env: str) -> Server:
    return Server(database_url, tmp_path / "server", env=env).start()


def _rows(database_url: str) -> list[tuple[str, int | None, int | None, object, str | None]]:
    rows = sql(
        database_url,
        "SELECT outcome, input_tokens, output_tokens, cost_usd, error_message "
        "FROM ai_usage_logs WHERE kind = 'chat' ORDER BY created_at",
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def _spent(database_url: str) -> tuple[int, Decimal]:
    row = sql(database_url, "SELECT requests_today, cost_this_month FROM ai_user_limits")[0]
    return int(row[0]), Decimal(str(row[1])).quantize(Decimal("0.000001"))


def _wait_for(check: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _body(stream: bool) -> dict[str, object]:
    body: dict[str, object] = {"model": "active", "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


async def _abandon_streams(url: str, token: str, count: int) -> list[float]:
    """``count`` clients open a stream, read its first text delta and hang up; when each did."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:

        async def one() -> float:
            async with http.stream("POST", CHAT, json=_body(True)) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if '"content":"tok' in line.replace(" ", ""):
                        break
            return time.monotonic()  # leaving the block closes this connection

        return list(await asyncio.gather(*(one() for _ in range(count))))


def test_hundreds_of_abandoned_streams_are_closed_recorded_and_charged(
    database_url: str, tmp_path: Path, upstream: SlowUpstream, token: str
) -> None:
    server = _server(database_url, tmp_path)
    try:
        hung_up = asyncio.run(_abandon_streams(server.url, token, ABANDONED))
        # an ordinary call is answered at once: nothing is wedged
        upstream.delay_s = 0.0
        with server.client(token) as http:
            ordinary = http.post(CHAT, json=_body(False), timeout=5)
        assert ordinary.status_code == 200, ordinary.text
        assert ordinary.json()["choices"][0]["message"]["content"].startswith("tok")
        _wait_for(lambda: len(_rows(database_url)) >= ABANDONED + 1)
    finally:
        assert server.stop() == 0, server.output()
    rows = _rows(database_url)
    assert len(rows) == ABANDONED + 1  # exactly one row per call
    cancelled = [r for r in rows if r[0] == "cancelled"]
    assert len(cancelled) == ABANDONED and [r[0] for r in rows].count("ok") == 1
    for _, inputs, outputs, cost, why in cancelled:
        # the prompt and the deltas received were charged (OpenAI counts only at the end)
        assert inputs is not None and inputs > 0 and outputs is not None and outputs > 0
        assert cost is not None and Decimal(str(cost)) > 0
        assert why is not None and "cancelled by the client" in why
    # the quota: every request counted, and the cost limit charged with every row's cost
    total = sum(Decimal(str(r[3])) for r in rows)
    assert _spent(database_url) == (ABANDONED + 1, total.quantize(Decimal("0.000001")))
    # the upstream saw each abandoned connection closed long before its answer was complete
    chats = [e for e in upstream.chats() if e.stream]
    assert len(chats) == ABANDONED
    assert all(e.closed_early is not None and e.finished is None for e in chats)
    assert max(e.chunks_sent for e in chats) < 40
    last_hangup = max(hung_up)
    assert max(e.closed_early or 0 for e in chats) < last_hangup + 5


@pytest.mark.parametrize("path", [CHAT, ASSIST])
def test_a_plain_call_abandoned_at_the_provider_is_cancelled(
    database_url: str, tmp_path: Path, upstream: SlowUpstream, token: str, path: str
) -> None:
    """A plain call whose client hangs up while the provider thinks: the upstream request is
    closed within a second, and the row is cancelled with the prompt's estimated tokens."""
    server = _server(database_url, tmp_path)
    upstream.delay_s = 30.0
    body = _body(False) if path == CHAT else {"messages": [{"role": "user", "content": "hi"}]}
    try:
        with server.client(token) as http, pytest.raises(httpx.ReadTimeout):
            http.post(path, json=body, timeout=1.0)
        hung_up = time.monotonic()
        _wait_for(lambda: len(_rows(database_url)) == 1)
        [exchange] = upstream.chats()
        _wait_for(lambda: exchange.closed_early is not None, 5)
        # within a second or so (a generous bound: the old server never closed it)
        assert exchange.closed_early is not None and exchange.closed_early - hung_up < 2.0
    finally:
        assert server.stop() == 0, server.output()
    [(outcome, inputs, outputs, cost, why)] = _rows(database_url)
    assert outcome == "cancelled" and why is not None and "(tokens estimated)" in why
    assert inputs == 1 and outputs == 0  # "hi": one token, nothing answered yet
    assert cost is not None
    assert _spent(database_url) == (1, Decimal(str(cost)).quantize(Decimal("0.000001")))


def test_sigterm_lets_short_streams_finish_and_records_the_rest_as_cancelled(
    database_url: str, tmp_path: Path, upstream: SlowUpstream, token: str
) -> None:
    """SIGTERM with streams in flight: within the grace period a stream finishes (ok, full
    usage); past it, the server cancels it, records it (cancelled, tokens so far, cost),
    closes the upstream connection and exits 0."""
    server = _server(database_url, tmp_path, AIPILOT_SHUTDOWN_GRACE_SECONDS="2")
    # the upstream streams max_tokens chunks 0.1 s apart: 1 s (within the grace), or 30 s
    upstream.interval_s = 0.1

    async def streams() -> list[str]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:

            async def one(long: bool) -> str:
                body = _body(True) | {"max_tokens": 300 if long else 10}
                got = ""
                try:
                    async with http.stream("POST", CHAT, json=body) as response:
                        async for line in response.aiter_lines():
                            got += line
                except httpx.HTTPError:
                    pass
                return got

            async def stop_soon() -> None:
                await asyncio.sleep(0.5)
                assert server.proc is not None
                server.proc.send_signal(signal.SIGTERM)

            results = await asyncio.gather(one(False), *(one(True) for _ in range(3)), stop_soon())
            return [r for r in results if isinstance(r, str)]

    started = time.monotonic()
    got = asyncio.run(streams())
    assert server.proc is not None and server.proc.wait(timeout=30) == 0, server.output()
    assert time.monotonic() - started < 20
    assert "[DONE]" in got[0], server.output()  # the short stream finished
    assert '"finish_reason": "stop"' in got[0] and "shutting_down" not in got[0]
    for cut in got[1:]:  # the others were told why they end there
        assert "shutting_down" in cut and cut.endswith("data: [DONE]")
    assert "Traceback" not in server.output()
    rows = _rows(database_url)
    assert sorted(r[0] for r in rows) == ["cancelled", "cancelled", "cancelled", "ok"]
    for outcome, inputs, outputs, cost, _ in rows:
        assert inputs is not None and outputs is not None and cost is not None
        if outcome == "ok":
            assert (inputs, outputs) == (PROMPT_TOKENS, 10)
    assert _spent(database_url)[0] == 4
    assert all(e.finished is not None or e.closed_early is not None for e in upstream.chats())
    assert sum(e.closed_early is not None for e in upstream.chats()) == 3


def test_models_lists_only_what_is_served(
    database_url: str, tmp_path: Path, cli: CliFn, upstream: SlowUpstream
) -> None:
    server = _server(database_url, tmp_path)
    try:
        with server.client(token_for(cli, "alice")) as http:
            assert http.get("/v1/models").json() == {"object": "list", "data": []}
            activate_directly(database_url, "openai", "gpt-4o-mini")
            listed = http.get("/v1/models").json()["data"]
            assert [m["id"] for m in listed] == ["active", "gpt-4o-mini"]
            assert json.dumps(listed).count("openai") == 2
    finally:
        assert server.stop() == 0, server.output()
