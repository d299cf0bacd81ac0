"""Scale-out: several `aipilot serve` processes on one database hold the quotas exactly and
see a configuration change on their next call (issue 17).

Two server processes (or one with ``--workers 2``) on one database, one user, many
concurrent HTTP calls from threads, spread over both servers and over
``/v1/chat/completions`` (plain and streamed) and ``/functions/v1/assist_flut``:

- a daily request quota of N: exactly N calls answered, every other one refused with 429
  (``code`` ``quota``), exactly one usage row per reserved call, the counter at N;
- a monthly cost limit: the cost check reads the spend recorded so far, so calls already in
  flight when the limit is reached still settle (quotas.py). Checked per call from the
  client's clocks: a call was answered only if the calls answered before it was sent cost
  less than the limit, and refused only if the calls sent before its answer came back cost
  at least the limit; the counter equals the sum of the usage rows' costs;
- a model switch (the CLI in another process, or straight in the table) answered by the new
  model on the very next call of each server;
- calls in flight while something else holds the database longer than SQLite's busy timeout
  still write their usage rows (expected to fail on SQLite today: see that test).

Every test runs on both databases: processes sharing one SQLite file hold the quotas exactly
too (the file's write lock serialises the reservations; a writer waits up to the busy
timeout). A streamed call the quota refuses may be refused in band, after the 200.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from aipilot.config import normalise_database_url
from aipilot.db.engine import SQLITE_BUSY_TIMEOUT_MS
from tests import serve_routes as _serve
from tests.conftest import REPO, CliFn, run_process
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.orgs_support import set_prices
from tests.providers_catalog import activate_directly, sql
from tests.serve_routes import ASSIST, Server, store_key, token_for

fake = _serve.fake  # fixtures, shared through the support module
server = _serve.server

pytestmark = pytest.mark.slow

CHAT = "/v1/chat/completions"
KINDS = ("chat", "stream", "assist")
HELLO = [{"role": "user", "content": "hi"}]
MODEL_A, MODEL_B = "gpt-4o-mini", "gpt-4o"


# ---------------------------------------------------------------- servers
def _stop(server: Server) -> None:
    code = server.stop()
    out = server.output()
    assert code == 0, out
    for secret in server.canaries:
        assert find_leaks(out, secret) == [], "canary in the server's log"


@dataclass
class WorkersServer(Server):
    """``aipilot serve --workers N``: ready once every worker has started."""

    workers: int = 2

    def start(self, *, wait_for: str = "/readyz") -> WorkersServer:
        self.port = _serve.free_port()
        env = {
            **os.environ,
            "AIPILOT_DATABASE_URL": self.database_url,
            "AIPILOT_MASTER_KEY": _serve.MASTER_KEY,
            "AIPILOT_DEBUG": "1",
            **self.env,
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        args = ["serve", "--port", str(self.port), "--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aipilot", *args],
            env=env,
            cwd=REPO,
            stdout=(self.log_dir / "stdout").open("wb"),
            stderr=(self.log_dir / "stderr").open("wb"),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            started = self.output().count("Application startup complete")
            ready = started >= self.workers and len(self.worker_pids()) == self.workers
            if ready and httpx.get(self.url + wait_for, timeout=2).status_code == 200:
                return self
            time.sleep(0.1)
        raise AssertionError("the workers did not all start:\n" + self.output())

    def worker_pids(self) -> list[int]:
        """The uvicorn workers: the children of the server that multiprocessing spawned."""
        assert self.proc is not None
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
        return sorted(found)

    def connections(self) -> dict[int, int]:
        """Established client connections each worker holds on the listening port."""
        inodes = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == self.port:
                inodes.add(f"socket:[{fields[9]}]")
        counts = {}
        for pid in self.worker_pids():
            held = 0
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    held += os.readlink(fd) in inodes
                except OSError:
                    continue
            counts[pid] = held
        return counts


@pytest.fixture
def alice(cli: CliFn, database_url: str, fake: FakeProvider) -> tuple[str, str]:
    """alice's own openai key (a canary) and gpt-4o-mini active; returns (token, canary)."""
    secret = store_key(cli, "alice")
    activate_directly(database_url, "openai", MODEL_A)
    fake.delay_s = 0.05  # every call spends a moment at the provider: they overlap
    return token_for(cli, "alice"), secret


@pytest.fixture
def servers(database_url: str, alice: tuple[str, str], tmp_path: Path) -> Iterator[list[Server]]:
    """Two `aipilot serve` processes on the same database, started side by side."""
    pair = [Server(database_url, tmp_path / f"server{i}", canaries=[alice[1]]) for i in (0, 1)]
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(s.start) for s in pair]
        failures = [f.exception() for f in started]
    try:
        assert failures == [None, None], failures
        yield pair
    finally:
        for server in pair:
            if server.proc is not None:
                _stop(server)


# ---------------------------------------------------------------- calls
@dataclass(frozen=True)
class Outcome:
    server: int
    kind: str
    status: int
    answered: bool  # the model's answer came back
    refused: bool  # a quota refusal (429, or in band in a stream that had started)
    model: str | None
    sent: float  # time.monotonic() before the request
    done: float  # time.monotonic() once the whole answer (a stream's [DONE]) was read
    detail: str


def _stream(client: httpx.Client, model: str) -> tuple[int, bool, bool, str | None, str]:
    body = {"model": model, "messages": HELLO, "stream": True}
    with client.stream("POST", CHAT, json=body) as response:
        if response.status_code != 200:
            response.read()
            error = response.json().get("error", {})
            refused = response.status_code == 429 and error.get("code") == "quota"
            return response.status_code, False, refused, None, response.text[:300]
        text, models, errors, done = "", set(), [], False
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            event = json.loads(line[6:])
            if "error" in event:
                errors.append(event["error"])
                continue
            models.add(event.get("model"))
            for choice in event.get("choices", []):
                text += choice["delta"].get("content") or ""
    refused = bool(errors) and all(e.get("code") == "quota" for e in errors) and text == ""
    answered = not errors and done and text == "pong"
    model_seen = models.pop() if len(models) == 1 else None
    return 200, answered, refused, model_seen, json.dumps(errors)[:300] if errors else text


def call(client: httpx.Client, server: int, kind: str, model: str = "active") -> Outcome:
    """One call; refusals are checked for their documented shape."""
    sent = time.monotonic()
    if kind == "stream":
        status, answered, refused, served, detail = _stream(client, model)
        return Outcome(
            server, kind, status, answered, refused, served, sent, time.monotonic(), detail
        )
    if kind == "chat":
        response = client.post(CHAT, json={"model": model, "messages": HELLO})
        done, doc = time.monotonic(), response.json()
        error = doc.get("error") or {}
        answered = response.status_code == 200 and doc["choices"][0]["message"]["content"] == "pong"
        refused = (response.status_code, error.get("type"), error.get("code")) == (
            429,
            "rate_limit_error",
            "quota",
        )
    else:
        response = client.post(ASSIST, json={"messages": HELLO})
        done, doc = time.monotonic(), response.json()
        answered = response.status_code == 200 and doc["success"] is True and doc["text"] == "pong"
        refused = (response.status_code, doc.get("code"), doc.get("exit_code")) == (429, "quota", 6)
    served = doc.get("model") if response.status_code == 200 else None
    return Outcome(
        server,
        kind,
        response.status_code,
        answered,
        refused,
        served,
        sent,
        done,
        response.text[:300],
    )


def burst(clients: list[tuple[int, httpx.Client]], *, calls_per_client: int) -> list[Outcome]:
    """Every client in its own thread, all released at once, each making its calls in turn
    and cycling through the kinds (so every server gets every kind)."""
    gate = threading.Barrier(len(clients))

    def run(index: int, server: int, client: httpx.Client) -> list[Outcome]:
        gate.wait()
        return [
            call(client, server, KINDS[(index + n) % len(KINDS)]) for n in range(calls_per_client)
        ]

    with ThreadPoolExecutor(len(clients)) as pool:
        futures = [pool.submit(run, i, s, c) for i, (s, c) in enumerate(clients)]
        return [outcome for f in futures for outcome in f.result()]


def clients_for(servers: list[Server], token: str, count: int) -> list[tuple[int, httpx.Client]]:
    return [(i % len(servers), servers[i % len(servers)].client(token)) for i in range(count)]


def close(clients: list[tuple[int, httpx.Client]]) -> None:
    for _, client in clients:
        client.close()


def unexpected(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.answered == o.refused]  # neither (or both: impossible)


def chat_rows(database_url: str) -> list[tuple[str, Decimal | None]]:
    rows = sql(database_url, "SELECT outcome, cost_usd FROM ai_usage_logs WHERE kind = 'chat'")
    return [(str(r[0]), None if r[1] is None else Decimal(str(r[1]))) for r in rows]


def counters(database_url: str) -> tuple[int, Decimal]:
    """The limit row's counters, its cost read as aipilot reads it: to the column's scale
    (SQLite keeps NUMERIC as a binary float, and a sum of them drifts past the 17th digit)."""
    rows = sql(database_url, "SELECT requests_today, cost_this_month FROM ai_user_limits")
    assert len(rows) == 1
    return int(rows[0][0]), Decimal(str(rows[0][1])).quantize(Decimal("0.000001"))


def provider_chats(fake: FakeProvider) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


def warm_up(servers: list[Server], token: str) -> None:
    """One call of each kind on each server: each now holds a prepared call (no limit yet)."""
    for index, server in enumerate(servers):
        with server.client(token) as client:
            for kind in KINDS:
                outcome = call(client, index, kind)
                assert outcome.answered and outcome.model == MODEL_A, outcome


def check_daily_quota(
    database_url: str,
    fake: FakeProvider,
    outcomes: list[Outcome],
    *,
    quota: int,
    before_rows: int,
    before_provider: int,
) -> None:
    assert unexpected(outcomes) == []
    answered = [o for o in outcomes if o.answered]
    assert len(answered) == quota, sorted((o.server, o.kind, o.status) for o in answered)
    assert len(outcomes) - len(answered) == 2 * quota  # every other one refused
    rows = chat_rows(database_url)
    assert len(rows) - before_rows == quota  # one usage row per reserved call, none for refusals
    assert all(outcome == "ok" for outcome, _ in rows)
    assert len(provider_chats(fake)) - before_provider == quota  # refusals never reached it
    assert counters(database_url)[0] == quota


# ---------------------------------------------------------------- two processes, one database
def test_a_daily_quota_is_exact_across_two_servers(
    servers: list[Server],
    alice: tuple[str, str],
    cli: CliFn,
    database_url: str,
    fake: FakeProvider,
) -> None:
    token, quota = alice[0], 10
    warm_up(servers, token)  # the limit comes after: both must see it on their next call
    before_rows, before_provider = len(chat_rows(database_url)), len(provider_chats(fake))
    set_limit = cli("limits", "set", "--provider", "openai", "--daily-requests", str(quota))
    assert set_limit.exit_code == 0, set_limit.stderr
    clients = clients_for(servers, token, 10)
    try:
        outcomes = burst(clients, calls_per_client=3)  # 30 calls for a quota of 10
    finally:
        close(clients)
    assert {(o.server, o.kind) for o in outcomes} == {(s, k) for s in (0, 1) for k in KINDS}
    check_daily_quota(
        database_url,
        fake,
        outcomes,
        quota=quota,
        before_rows=before_rows,
        before_provider=before_provider,
    )
    for index, server in enumerate(servers):  # and it stays reached, on either server
        with server.client(token) as client:
            assert all(call(client, index, kind).refused for kind in KINDS)
    assert (
        counters(database_url)[0] == quota and len(chat_rows(database_url)) == before_rows + quota
    )


def test_a_cost_limit_is_held_across_two_servers(
    servers: list[Server],
    alice: tuple[str, str],
    cli: CliFn,
    database_url: str,
    fake: FakeProvider,
) -> None:
    token = alice[0]
    cost = set_prices(database_url)  # 0.017 a call (12 + 5 tokens at 1000 USD per million)
    limit = Decimal("0.1")  # reached by the 6th call
    set_limit = cli("limits", "set", "--provider", "openai", "--monthly-cost", str(limit))
    assert set_limit.exit_code == 0, set_limit.stderr
    clients = clients_for(servers, token, 8)
    try:
        outcomes = burst(clients, calls_per_client=4)  # 32 calls, 8 in flight at a time
    finally:
        close(clients)
    assert unexpected(outcomes) == []
    answered = [o for o in outcomes if o.answered]
    refused = [o for o in outcomes if o.refused]
    rows = chat_rows(database_url)
    # every answered call (streams too) wrote its row, priced; refusals wrote none
    assert rows == [("ok", cost)] * len(answered)
    spent = len(answered) * cost
    assert counters(database_url) == (len(answered), spent)  # settled = what the rows say
    assert refused and spent >= limit
    # quotas.py: the check reads the spend recorded so far, so only calls in flight when the
    # limit was reached pass it. A call's cost is recorded before its answer goes out:
    for o in answered:  # the calls answered before this one was sent had not reached the limit
        recorded = sum(1 for a in answered if a.done < o.sent) * cost
        assert recorded < limit, (o, recorded)
    for o in refused:  # the calls sent before its refusal came back had reached it
        possible = sum(1 for a in answered if a.sent < o.done) * cost
        assert possible >= limit, (o, possible)
    in_flight = len(clients) - 1  # besides the call that reached the limit
    assert spent < limit + cost + in_flight * cost
    for index, server in enumerate(servers):  # once reached, every server refuses every call
        with server.client(token) as client:
            assert all(call(client, index, kind).refused for kind in KINDS)
    assert counters(database_url) == (len(answered), spent)


def next_calls_use(servers: list[Server], token: str, fake: FakeProvider, model: str) -> None:
    """The next call of each kind on each server is answered by ``model`` (the provider was
    asked for it), and the other model's name is refused."""
    fake.clear()
    stale = MODEL_A if model == MODEL_B else MODEL_B
    for index, server in enumerate(servers):
        with server.client(token) as client:
            for kind in KINDS:
                outcome = call(client, index, kind)
                assert outcome.answered and outcome.model == model, (model, outcome)
            refused = client.post(CHAT, json={"model": stale, "messages": HELLO})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "model_not_found"
    assert [r.json["model"] for r in provider_chats(fake)] == [model] * 3 * len(servers)


def test_a_model_switch_is_seen_by_both_servers_on_their_next_call(
    servers: list[Server],
    alice: tuple[str, str],
    database_url: str,
    fake: FakeProvider,
) -> None:
    token = alice[0]
    warm_up(servers, token)  # both hold a prepared call for model A
    switched = run_process(["model", "activate", "openai", MODEL_B], database_url=database_url)
    assert switched.exit_code == 0, switched.stderr
    next_calls_use(servers, token, fake, MODEL_B)
    activate_directly(database_url, "openai", MODEL_A)  # straight in the table this time
    next_calls_use(servers, token, fake, MODEL_A)


# ---------------------------------------------------------------- one process, two workers
@pytest.fixture
def workers(database_url: str, alice: tuple[str, str], tmp_path: Path) -> Iterator[WorkersServer]:
    server = WorkersServer(database_url, tmp_path / "workers", canaries=[alice[1]]).start()
    try:
        yield server
    finally:
        _stop(server)
        assert "Stopping parent process" in server.output()


def pinned_clients(server: WorkersServer, token: str, per_worker: int) -> list[httpx.Client]:
    """Keep-alive connections, opened until each worker holds at least ``per_worker``."""
    clients: list[httpx.Client] = []
    while min(server.connections().values()) < per_worker:
        assert len(clients) < 40, server.connections()
        client = server.client(token)
        assert client.get("/healthz").status_code == 200
        clients.append(client)
    return clients


def test_a_daily_quota_is_exact_across_workers(
    workers: WorkersServer,
    alice: tuple[str, str],
    cli: CliFn,
    database_url: str,
    fake: FakeProvider,
) -> None:
    token, quota = alice[0], 6
    assert (
        cli("limits", "set", "--provider", "openai", "--daily-requests", str(quota)).exit_code == 0
    )
    opened = pinned_clients(workers, token, 2)
    assert len(workers.worker_pids()) == 2
    try:
        calls_each = -(-3 * quota // len(opened))  # at least 3 × the quota in all
        outcomes = burst([(0, c) for c in opened], calls_per_client=calls_each)
    finally:
        for client in opened:
            client.close()
    assert unexpected(outcomes) == []
    answered = [o for o in outcomes if o.answered]
    assert len(answered) == quota
    assert len(chat_rows(database_url)) == quota
    assert len(provider_chats(fake)) == quota
    assert counters(database_url)[0] == quota


# ---------------------------------------------------------------- a writer that holds on
def hold_limits(database_url: str, seconds: float) -> None:
    """Hold what a call's usage row must wait for, longer than SQLite's busy timeout: the
    SQLite file's write lock (another process's long write), or on PostgreSQL the user's
    limit row (another transaction that locked it)."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(str(make_url(database_url).database), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()
        return
    engine = sa.create_engine(normalise_database_url(database_url))
    with engine.begin() as held:
        held.execute(sa.text("SELECT id FROM ai_user_limits FOR UPDATE"))
        time.sleep(seconds)
    engine.dispose()


def test_calls_in_flight_wait_out_a_long_lock_and_each_writes_its_row(
    server: Server,
    alice: tuple[str, str],
    cli: CliFn,
    database_url: str,
    fake: FakeProvider,
    request: pytest.FixtureRequest,
) -> None:
    """Every call that reserved a quota writes exactly one usage row (issue 17), even when
    the database keeps it waiting for longer than SQLite's busy timeout."""
    token = alice[0]
    server.canaries.append(alice[1])
    cost = set_prices(database_url)
    assert cli("limits", "set", "--provider", "openai", "--daily-requests", "100").exit_code == 0
    fake.delay_s = 0.5  # the provider answers 0.5 s after a request arrives
    with ThreadPoolExecutor(len(KINDS)) as pool:
        calls = [pool.submit(_one_call, server, token, kind) for kind in KINDS]
        deadline = time.monotonic() + 10
        while len(provider_chats(fake)) < len(KINDS):  # every call reserved and at the provider
            assert time.monotonic() < deadline, [c.result() for c in calls if c.done()]
            time.sleep(0.01)
        hold_limits(database_url, SQLITE_BUSY_TIMEOUT_MS / 1000 + 2)
        outcomes = [c.result() for c in calls]
    assert len(provider_chats(fake)) == len(KINDS) and counters(database_url)[0] == len(KINDS)
    # SQLite: the usage row's write is retried past the busy timeout, as the reservation is
    assert [o for o in outcomes if not o.answered] == []
    assert len(chat_rows(database_url)) == len(KINDS)
    assert counters(database_url)[1] == len(KINDS) * cost


def _one_call(server: Server, token: str, kind: str) -> Outcome:
    with server.client(token) as client:
        return call(client, 0, kind)
