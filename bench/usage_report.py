"""`aipilot usage` over 100,000 ai_usage_logs rows of one user spread over 30 days.

The aggregation runs in SQL (GROUP BY), so the time should stay far below what loading the
rows into Python would cost. Measured in-process (the service) and as a whole CLI process,
on SQLite and, when AIPILOT_BENCH_DATABASE_URL names a PostgreSQL server, on a fresh
database created there (and dropped afterwards).
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import machine, median_ms, write_section

ROWS = 100_000
BATCH = 10_000
DAYS = 30
SERVICE_RUNS = 5
CLI_RUNS = 3
MODELS = {
    "openai": ("gpt-4o-mini", "gpt-4o", "o3-mini"),
    "anthropic": ("claude-3-5-haiku", "claude-sonnet-4"),
    "google": ("gemini-2.0-flash", "gemini-2.5-pro"),
    "mistral": ("mistral-small-latest",),
    "deepseek": ("deepseek-chat",),
}
GROUPINGS = ("day", "model")


def _rows(user_id: uuid.UUID, now: datetime, rng: random.Random) -> Iterator[dict[str, object]]:
    providers = list(MODELS)
    for _ in range(ROWS):
        provider = rng.choice(providers)
        ok = rng.random() < 0.95
        yield {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "module_name": "global",
            "kind": "chat" if rng.random() < 0.9 else "key_test",
            "provider_key": provider,
            "model_name": rng.choice(MODELS[provider]),
            "input_tokens": rng.randint(10, 4000),
            "output_tokens": rng.randint(0, 1000),
            "cost_usd": None if rng.random() < 0.1 else Decimal(rng.randint(1, 50000)) / 10**6,
            "latency_ms": rng.randint(80, 5000),
            "outcome": "ok" if ok else "error",
            "created_at": now - timedelta(seconds=rng.uniform(0, DAYS * 86400 - 600)),
        }


def _fill(url: str) -> None:
    """Initialise the schema for user `bench` and bulk-insert the log rows in batches."""
    import sqlalchemy as sa

    from aipilot.config import Settings
    from aipilot.db.models import UsageLog, User
    from aipilot.services.setup import initialise

    settings = Settings.resolve(db=url, user="bench")
    initialise(settings)
    engine = sa.create_engine(settings.database_url)
    with engine.begin() as conn:
        query = sa.select(User.users_id).where(User.username == "bench")
        user_id = conn.execute(query).scalar_one()
    rows = list(_rows(user_id, datetime.now(UTC), random.Random(42)))
    insert = sa.insert(UsageLog.__table__)
    for start in range(0, ROWS, BATCH):
        with engine.begin() as conn:
            conn.execute(insert, rows[start : start + BATCH])
    engine.dispose()


def _measure(url: str) -> dict[str, float]:
    from aipilot.config import Settings
    from aipilot.services.accounting.usage_report import usage_report
    from aipilot.services.runtime import connect

    ctx = connect(Settings.resolve(db=url, user="bench"))
    results: dict[str, float] = {}
    env = {**os.environ, "AIPILOT_DATABASE_URL": url, "AIPILOT_USER": "bench"}
    for by in GROUPINGS:
        samples = []
        for _ in range(SERVICE_RUNS):
            started = time.perf_counter()
            report = usage_report(ctx, since="30d", by=by)
            samples.append(time.perf_counter() - started)
            assert report.total.calls == ROWS, report.total
        results[f"service-{by}"] = median_ms(samples)
        samples = []
        for _ in range(CLI_RUNS):
            started = time.perf_counter()
            command = [sys.executable, "-m", "aipilot", "usage", "--since", "30d", "--by", by]
            subprocess.run(command, env=env, check=True, capture_output=True)
            samples.append(time.perf_counter() - started)
        results[f"cli-{by}"] = median_ms(samples)
    ctx.db.dispose()
    return results


@contextmanager
def _postgres(server_url: str) -> Iterator[str]:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from aipilot.config import normalise_database_url

    admin_url = make_url(normalise_database_url(server_url))
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"aipilot_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def _run(url: str) -> dict[str, float]:
    started = time.perf_counter()
    _fill(url)
    print(f"filled {ROWS} rows in {time.perf_counter() - started:.1f} s", flush=True)
    return _measure(url)


def _table(results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    lines = ["| what | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for by in GROUPINGS:
        command = f"aipilot usage --since 30d --by {by}"
        service = " | ".join(f"{results[n][f'service-{by}']} ms" for n in names)
        cli = " | ".join(f"{results[n][f'cli-{by}']} ms" for n in names)
        lines.append(f"| `usage_report(ctx, since='30d', by='{by}')` (in-process) | {service} |")
        lines.append(f"| `{command}` — whole CLI process | {cli} |")
    return "\n".join(lines)


def main() -> None:
    os.environ["AIPILOT_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite"] = _run(f"sqlite:///{tmp}/bench.db")
    server = os.environ.get("AIPILOT_BENCH_DATABASE_URL")
    if server:
        with _postgres(server) as url:
            results["PostgreSQL"] = _run(url)
    body = f"""## usage report (`python bench/usage_report.py`)

{ROWS:,} `ai_usage_logs` rows of one user spread over {DAYS} days ({len(MODELS)} providers,
{sum(len(m) for m in MODELS.values())} models, 10 % unpriced, 5 % errors), aggregated in SQL;
medians of {SERVICE_RUNS} in-process runs and {CLI_RUNS} CLI processes on {machine()}.
PostgreSQL is measured when `AIPILOT_BENCH_DATABASE_URL` names a server.

{_table(results)}

The CLI rows include interpreter start-up, the schema check and resolving the user."""
    write_section("usage-report", body)
    print(body)


if __name__ == "__main__":
    main()
