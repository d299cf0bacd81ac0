"""The overhead of `aipilot ask` over a raw httpx call to the same fake provider.

Three ways to send the same one-line chat to the fake OpenAI-compatible server:
a raw httpx POST (the floor), aipilot's Python API (`Assistant.ask`: configuration
generation read, the prepared call reused, provider call, usage row written), and the whole
`aipilot ask` process (which reads the configuration and decrypts the key once).
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
from tests.providers_catalog import activate_directly, point_catalog_at

RUNS = 50
CLI_RUNS = 10
KEY = "sk-bench-0123456789abcdef"


def main() -> None:
    import httpx

    from aipilot.api import Assistant
    from aipilot.config import Settings
    from aipilot.services.keys import keys
    from aipilot.services.runtime import connect
    from aipilot.services.setup import initialise

    os.environ["AIPILOT_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory() as tmp, FakeProvider() as fake:
        url = f"sqlite:///{tmp}/bench.db"
        initialise(Settings.resolve(db=url, user="bench"))
        point_catalog_at(fake, url)
        ctx = connect(Settings.resolve(db=url, user="bench"))
        keys.set_key(ctx, "openai", KEY, test=False)
        ctx.db.dispose()
        activate_directly(url, "openai", "gpt-4o-mini", user="bench")
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        raw, api, cli = [], [], []
        with httpx.Client() as client:
            for _ in range(RUNS):
                started = time.perf_counter()
                client.post(
                    fake.base_url("openai") + "/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {KEY}"},
                ).raise_for_status()
                raw.append(time.perf_counter() - started)
        with Assistant(db=url, user="bench") as assistant:
            assistant.ask("warm-up")
            for _ in range(RUNS):
                started = time.perf_counter()
                assistant.ask("hi")
                api.append(time.perf_counter() - started)
        env = {**os.environ, "AIPILOT_DATABASE_URL": url, "AIPILOT_USER": "bench"}
        for _ in range(CLI_RUNS):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "aipilot", "ask", "hi"],
                env=env,
                check=True,
                capture_output=True,
            )
            cli.append(time.perf_counter() - started)
    body_md = f"""## ask overhead (`python bench/assist_overhead.py`)

One-line chat to the fake OpenAI-compatible server on 127.0.0.1 (no artificial delay), SQLite;
{machine()}. Medians of {RUNS} calls ({CLI_RUNS} for the CLI process).

| path | median | overhead over raw httpx |
| --- | --- | --- |
| raw `httpx` POST (keep-alive client) | {median_ms(raw)} ms | — |
| `aipilot.Assistant.ask()` (generation read, call, usage row) | {median_ms(api)} ms | +{median_ms(api) - median_ms(raw):.1f} ms |
| `aipilot ask` (whole process: start-up, imports, the same path) | {median_ms(cli)} ms | +{median_ms(cli) - median_ms(raw):.1f} ms |

An `Assistant` keeps its prepared call (active config, provider settings, decrypted key,
prices) until the database's configuration generation changes, so a warm call reads one
number and writes the usage row; provider calls reuse the process-wide kept-alive connection
pool. The CLI process adds interpreter start-up, imports, one configuration read and one
AES-GCM decryption."""
    write_section("assist-overhead", body_md)
    print(body_md)


if __name__ == "__main__":
    main()
