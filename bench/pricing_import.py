"""The reference price catalog's cost (issue 15): what `import genai_prices` and the first
`reference_rates` call cost, and that commands which price nothing do not pay it.

Every figure is the median of 5 fresh processes (interleaved). Commands run against a
SQLite database made by `aipilot init`; `models list` once with every shown row priced
(the reference is not imported) and once with one row unpriced (it is). The in-process
figures time the call itself inside a fresh process. Asserts nothing; prints a markdown
table (docs/benchmarks.md is written by hand from it).
"""

from __future__ import annotations

import base64
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import machine

RUNS = 5
PY = sys.executable
FIRST_CALL = (
    "import time\n"
    "from aipilot.services.catalog.pricing import reference_rates\n"
    "t = time.perf_counter(); r = reference_rates('openai', 'gpt-4o-mini')\n"
    "first = time.perf_counter() - t\n"
    "t = time.perf_counter(); reference_rates('anthropic', 'claude-sonnet-4-0')\n"
    "other = time.perf_counter() - t\n"
    "t = time.perf_counter(); reference_rates('openai', 'gpt-4o-mini')\n"
    "cached = time.perf_counter() - t\n"
    "assert r is not None\n"
    "print(first, other, cached)\n"
)
PROCESSES: list[tuple[str, list[str]]] = [
    ("python -c pass", [PY, "-c", "pass"]),
    ('python -c "import genai_prices"', [PY, "-c", "import genai_prices"]),
    ("first `reference_rates` call (whole process)", [PY, "-c", FIRST_CALL]),
    ("aipilot --help", [PY, "-m", "aipilot", "--help"]),
    ("aipilot status", [PY, "-m", "aipilot", "status"]),
    ("aipilot models list (all priced)", [PY, "-m", "aipilot", "models", "list"]),
]
UNPRICED = "aipilot models list (one row unpriced)"


def _wall(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, proc.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db, unpriced_db = f"{tmp}/bench.db", f"{tmp}/unpriced.db"
        env = {
            **os.environ,
            "AIPILOT_DATABASE_URL": f"sqlite:///{db}",
            "AIPILOT_USER": "bench",
            "AIPILOT_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "COLUMNS": "120",
        }
        subprocess.run([PY, "-m", "aipilot", "init"], env=env, check=True, capture_output=True)
        with open(db, "rb") as src, open(unpriced_db, "wb") as dst:
            dst.write(src.read())
        with sqlite3.connect(unpriced_db) as conn:
            conn.execute(
                "UPDATE ai_models SET input_price_per_mtok = NULL, output_price_per_mtok = NULL "
                "WHERE model_key = 'gpt-4o-mini'"
            )
        unpriced_env = {**env, "AIPILOT_DATABASE_URL": f"sqlite:///{unpriced_db}"}
        runs = [*PROCESSES, (UNPRICED, [PY, "-m", "aipilot", "models", "list"])]
        walls: dict[str, list[float]] = {name: [] for name, _ in runs}
        calls: list[list[float]] = []
        for _ in range(RUNS):  # interleaved, so load changes hit every row alike
            for name, argv in runs:
                wall, out = _wall(argv, unpriced_env if name == UNPRICED else env)
                walls[name].append(wall)
                if argv[-1] == FIRST_CALL:
                    calls.append([float(x) for x in out.split()])
    med = {name: statistics.median(v) * 1000 for name, v in walls.items()}
    first, other, cached = (statistics.median(c[i] for c in calls) * 1000 for i in range(3))
    print(f"Machine: {machine()}; median of {RUNS} fresh processes.\n")
    print("| what | median ms |")
    print("| --- | ---: |")
    for name, _ in runs:
        print(f"| {name} | {med[name]:.1f} |")
    print(f"| first `reference_rates` call, in process (imports genai-prices) | {first:.1f} |")
    print(f"| next `reference_rates` call, another model | {other:.2f} |")
    print(f"| repeated `reference_rates` call (cached) | {cached:.4f} |")


if __name__ == "__main__":
    main()
