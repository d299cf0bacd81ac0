"""Aipilot through a connection pooler in transaction mode (Supabase's port 6543).

A local PgBouncer 1.18 in transaction mode (tests/pgbouncer.py) stands in for Supavisor:
no session state between transactions, no prepared statements, two server connections per
database shared by every client. psycopg prepares a statement on its sixth execution on one
connection unless told not to; behind such a pooler the next transaction may run on a server
connection that lacks it (``prepared statement "_pg3_0" does not exist``) or holds another
client's of the same name (``… already exists``: a statement prepared inside one
transaction stays on its server connection for the next client). So every test here runs
statements more than five times on one connection, from several clients: the CLI's commands
(`init`, `providers list` and `keys test --all` each run one statement that often), the same
commands' services and the Python API again and again in one process, activations from
several processes at once, and calls served by `aipilot serve`. Each of them fails with
psycopg's default ``prepare_threshold``.

PostgreSQL only. Without a pgbouncer binary the tests skip, naming the package to install;
with ``AIPILOT_TEST_REQUIRE_PG=1`` (CI) they fail instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ADMIN, MASTER_KEY, REPO, REQUIRE_PG_ENV, PgServer, make_cli, pg_backend
from tests.fakeprovider import FakeProvider
from tests.pgbouncer import INSTALL_HINT, PgBouncer, find_pgbouncer
from tests.providers_catalog import point_catalog_at, sql
from tests.serve_support import ServeProcess

KEY = "sk-pooler-0123456789abcdef"
PROMPT = "You answer in one word."


@pytest.fixture(scope="module")
def pgbouncer(pg_server: PgServer | None) -> Iterator[PgBouncer]:
    pg_backend(pg_server)  # skips (or fails in CI) without a PostgreSQL server
    assert pg_server is not None
    binary = find_pgbouncer()
    if binary is None:
        message = f"pgbouncer is not installed: {INSTALL_HINT}"
        if os.environ.get(REQUIRE_PG_ENV):
            pytest.fail(f"{message} ({REQUIRE_PG_ENV}=1 requires the pooler tests)")
        pytest.skip(message)
    server_url = pg_server.url.render_as_string(hide_password=False)
    bouncer = PgBouncer(binary, server_url, pool_size=2).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture
def databases(
    pg_server: PgServer, pg_template: str, pgbouncer: PgBouncer
) -> Iterator[tuple[str, str]]:
    """An initialised database (alice is the admin): (direct URL, URL through the pooler)."""
    name = pg_server.create(template=pg_template)
    pgbouncer.fill(name)
    yield pg_server.url_for(name), pgbouncer.url_for(name)
    pg_server.drop(name)


@pytest.fixture
def quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the CLI gets, for aipilot's Python modules run in this process."""
    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("AIPILOT_QUIET_BYPASSRLS", "1")


def chats(direct_url: str) -> int:
    return int(sql(direct_url, "SELECT count(*) FROM ai_usage_logs WHERE kind = 'chat'")[0][0])


def active_rows(direct_url: str) -> list[tuple[str, str]]:
    rows = sql(
        direct_url,
        "SELECT provider_name, model_name FROM ai_provider_configs WHERE is_active",
    )
    return [(str(r[0]), str(r[1])) for r in rows]


# ---------------------------------------------------------------- the CLI and the Python API
def test_cli_commands_and_the_python_api_through_the_pooler(
    pg_server: PgServer, pgbouncer: PgBouncer, quiet_env: None
) -> None:
    name = pg_server.create()  # a fresh database: `aipilot init` runs through the pooler
    pgbouncer.fill(name)
    direct, pooled = pg_server.url_for(name), pgbouncer.url_for(name)
    try:
        cli = make_cli(pooled)
        init = cli("init")
        assert init.exit_code == 0, init.stderr
        stored = cli("keys", "set", "openai", "--stdin", "--no-test", input=KEY)
        assert stored.exit_code == 0, stored.stderr
        keys = cli("keys", "status", "--json")
        assert keys.exit_code == 0, keys.stderr
        assert KEY not in keys.stdout and "openai" in keys.stdout
        with FakeProvider() as fake:
            point_catalog_at(fake, direct)
            activated = cli("model", "activate", "openai", "gpt-4o-mini")
            assert activated.exit_code == 0, activated.stderr
            created = cli("prompts", "create", "terse", "--text", PROMPT)
            assert created.exit_code == 0, created.stderr
            prompt = cli("prompts", "activate", "terse")
            assert prompt.exit_code == 0, prompt.stderr
            status = cli("status")
            assert status.exit_code == 0, status.stderr
            assert "gpt-4o-mini" in status.stdout and "terse" in status.stdout
            shown = cli("model", "show", "--json")
            assert shown.exit_code == 0, shown.stderr
            assert shown.json()["active"]["model"] == "gpt-4o-mini"
            asked = cli("ask", "--no-stream", "hi")
            assert asked.exit_code == 0, asked.stderr
            assert asked.stdout.strip() == "pong"
            # commands that run one statement more than five times in a transaction (init's
            # seeding, the providers list, testing every key): psycopg would prepare it, and
            # leave it on a server connection that the next command then gets
            for provider in ["anthropic", "google", "mistral", "xai", "deepseek", "openrouter"]:
                more = cli("keys", "set", provider, "--stdin", "--no-test", input=KEY)
                assert more.exit_code == 0, more.stderr
            for _ in range(3):
                listed = cli("providers", "list")
                assert listed.exit_code == 0, listed.stderr
                assert "openrouter" in listed.stdout
                tested = cli("keys", "test", "--all", "--json")
                assert tested.exit_code == 0, tested.stderr
                assert KEY not in tested.stdout

            # the same commands again and again in one process, on one connection, as a
            # long-lived caller of aipilot's Python modules runs them: every statement runs
            # far more than five times, each transaction on another server connection
            import aipilot
            from aipilot.config import Settings
            from aipilot.services.config import activation, prompts
            from aipilot.services.keys import keys
            from aipilot.services.runtime import connect

            ctx = connect(Settings.resolve(db=pooled, user=ADMIN))
            models = ["gpt-4o", "gpt-4o-mini"]
            with aipilot.Assistant(user=ADMIN, db=pooled) as assistant:
                for i in range(8):
                    keys.set_key(ctx, "openai", KEY, test=False)
                    assert [k.provider for k in keys.key_status(ctx, "openai")] == ["openai"]
                    prompts.create_prompt(ctx, f"prompt {i}", f"{PROMPT} ({i})")
                    prompts.activate_prompt(ctx, "terse")
                    activation.activate(ctx, "openai", models[i % 2])
                    assert assistant.ask(f"hi {i}").text == "pong"
            ctx.db.dispose()
            sent = [r.json for r in fake.requests if r.path.endswith("/chat/completions")]
            assert len(sent) == 9
            assert all(
                body["messages"][0] == {"role": "system", "content": PROMPT} for body in sent
            )
        assert chats(direct) == 9
        assert active_rows(direct) == [("openai", models[7 % 2])]
        assert cli("status").exit_code == 0
    finally:
        pg_server.drop(name)


def test_direct_reads_through_the_pooler(databases: tuple[str, str]) -> None:
    """The driver-level read path (status, model show, keys status) prepares nothing
    either: reads run more than five times leave no statement on a server connection for
    the next client to trip over."""
    from aipilot.db.direct import open_direct

    _, pooled = databases
    url = pooled.replace("postgresql://", "postgresql+psycopg://", 1)
    for _ in range(6):  # one client after the other, each on another server connection
        handle = open_direct(url, ADMIN)
        assert handle is not None
        with handle:
            for _ in range(8):
                assert handle.rows("SELECT username FROM users WHERE username = :u", u=ADMIN)


# ---------------------------------------------------------------- concurrent activation
SWITCHER = """
import os, sys, time
from aipilot.config import Settings
from aipilot.services.config import activation
from aipilot.services.runtime import connect
url, ready, gate, models = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
ctx = connect(Settings.resolve(db=url, user="alice"))
open(ready, "w").close()
while not os.path.exists(gate):
    time.sleep(0.005)
for model in models:
    activation.activate(ctx, "openai", model)
ctx.db.dispose()
"""


@pytest.mark.slow
def test_concurrent_activations_through_the_pooler(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    direct, pooled = databases
    cli = make_cli(pooled)
    # the CLI first: several `aipilot model activate` processes at once
    catalog = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aipilot", "model", "activate", "openai", model],
            env={
                **os.environ,
                "AIPILOT_DATABASE_URL": pooled,
                "AIPILOT_USER": ADMIN,
                "AIPILOT_MASTER_KEY": MASTER_KEY,
                "AIPILOT_QUIET_BYPASSRLS": "1",
            },
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for model in catalog
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(catalog), outputs
    assert len(active_rows(direct)) == 1

    # then long-lived processes, each switching eight times (the same statements on one
    # connection, well past psycopg's threshold), all released at once
    workers, switches = 5, 8
    env = {**os.environ, "AIPILOT_MASTER_KEY": MASTER_KEY, "AIPILOT_QUIET_BYPASSRLS": "1"}
    gate = tmp_path / "go"
    procs = []
    for w in range(workers):
        models = [catalog[(w + s) % len(catalog)] for s in range(switches)]
        ready = str(tmp_path / f"ready-{w}")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", SWITCHER, pooled, ready, str(gate), *models],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 120
    while sum((tmp_path / f"ready-{w}").exists() for w in range(workers)) < workers:
        assert time.monotonic() < deadline, "the processes did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    gate.touch()
    outputs = [p.communicate(timeout=180) for p in procs]
    failures = [
        (p.returncode, err) for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode
    ]
    assert failures == []
    assert len(active_rows(direct)) == 1
    shown = cli("model", "show", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert [(shown.json()["active"]["provider"], shown.json()["active"]["model"])] == active_rows(
        direct
    )


# ---------------------------------------------------------------- aipilot serve
def test_calls_served_through_the_pooler(databases: tuple[str, str], tmp_path: Path) -> None:
    direct, pooled = databases
    cli = make_cli(pooled)
    assert cli("keys", "set", "openai", "--stdin", "--no-test", input=KEY).exit_code == 0
    with FakeProvider() as fake:
        point_catalog_at(fake, direct)
        assert cli("model", "activate", "openai", "gpt-4o-mini").exit_code == 0
        token = cli("tokens", "create").stdout.strip()
        server = ServeProcess(pooled, tmp_path / "serve").start()
        try:
            chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

            def calls(path: str, body: dict[str, object], count: int) -> list[tuple[int, str]]:
                with server.client(token) as http:
                    return [
                        (response.status_code, response.text)
                        for response in (http.post(path, json=body) for _ in range(count))
                    ]

            # four clients at once (the server's connections share the pooler's three),
            # then one at a time: chats through the OpenAI-compatible API
            with ThreadPoolExecutor(4) as pool:
                jobs = [("/v1/chat/completions", chat, 8)] * 4
                results = [r for chunk in pool.map(lambda job: calls(*job), jobs) for r in chunk]
            results += calls("/v1/chat/completions", chat, 8)
            assert [r for r in results if r[0] != 200] == [], server.output()[-3000:]
            assert len(results) == 40 and chats(direct) == 40
            assert all('"content":"pong"' in text.replace(" ", "") for _, text in results)
            # and the seed's ai-keys-manager, whose calls each run one read transaction: the
            # server's connections each run its statements many times over
            status = calls("/functions/v1/ai-keys-manager", {"action": "get-status"}, 40)
            assert [r for r in status if r[0] != 200] == [], server.output()[-3000:]
            assert all('"openai":true' in text.replace(" ", "") for _, text in status)
            with server.client() as http:
                assert http.get("/readyz").status_code == 200
        finally:
            code = server.stop()
        assert code == 0, server.output()
        assert KEY not in server.output()
