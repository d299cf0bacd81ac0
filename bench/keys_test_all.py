"""`aipilot keys test --all` against 6 fake providers that each answer in 300 ms.

The tests run concurrently, so the wall time should be close to the slowest single test,
not to the sum. Measured both in-process (the service) and as a whole CLI process.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import machine, median_ms, write_section
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import point_catalog_at

PROVIDERS = ("openai", "anthropic", "google", "mistral", "xai", "deepseek")
DELAY_S = 0.3
RUNS = 5


def main() -> None:
    from aipilot.config import Settings
    from aipilot.services.keys import keys
    from aipilot.services.runtime import connect
    from aipilot.services.setup import initialise

    os.environ["AIPILOT_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory() as tmp, FakeProvider() as fake:
        url = f"sqlite:///{tmp}/bench.db"
        settings = Settings.resolve(db=url, user="bench")
        initialise(settings)
        point_catalog_at(fake, url)
        ctx = connect(settings)
        for provider in PROVIDERS:
            keys.set_key(ctx, provider, f"sk-bench-{provider}-0123456789", test=False)
        fake.delay_s = DELAY_S
        concurrent, sequential, cli = [], [], []
        for _ in range(RUNS):
            started = time.perf_counter()
            results = keys.test_keys(ctx)
            concurrent.append(time.perf_counter() - started)
            assert all(r.ok for r in results) and len(results) == len(PROVIDERS)
            started = time.perf_counter()
            for provider in PROVIDERS:
                keys.test_keys(ctx, [provider])
            sequential.append(time.perf_counter() - started)
            env = {**os.environ, "AIPILOT_DATABASE_URL": url, "AIPILOT_USER": "bench"}
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "aipilot", "keys", "test", "--all"],
                env=env,
                check=True,
                capture_output=True,
            )
            cli.append(time.perf_counter() - started)
        ctx.db.dispose()
    body = f"""## keys test --all (`python bench/keys_test_all.py`)

{len(PROVIDERS)} providers on the fake server, each answering in {int(DELAY_S * 1000)} ms; medians of {RUNS} runs
on {machine()}, SQLite.

| what | median wall time |
| --- | --- |
| `keys.test_keys(ctx)` — all {len(PROVIDERS)} at once (in-process) | {median_ms(concurrent)} ms |
| the same keys tested one after another (sequential sum) | {median_ms(sequential)} ms |
| `aipilot keys test --all` — whole CLI process | {median_ms(cli)} ms |

Concurrent / sequential: {median_ms(concurrent) / median_ms(sequential):.2f}. The concurrent time stays close to
one {int(DELAY_S * 1000)} ms answer plus recording the results; the sequential sum grows with each provider."""
    write_section("keys-test-all", body)
    print(body)


if __name__ == "__main__":
    main()
