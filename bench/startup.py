"""Start-up: median wall time and peak memory of aipilot commands next to their floors.

Each command runs as a fresh process (`python -m aipilot ...`) against a SQLite database
made by `aipilot init` (one stored key, one active model), in the same loop as `python -c pass`, `python -c "import typer"`
and `python -c "import sqlalchemy.orm"`. Peak memory is the child's ru_maxrss (os.wait4).
Targets (issue 9): --version and --help within 60 ms of `import typer`; DB-reading
commands within 25 % of the `import sqlalchemy.orm` floor.
"""

from __future__ import annotations

import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import machine, write_section

RUNS = 15
PY = sys.executable
COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass", [PY, "-c", "pass"]),
    ('python -c "import typer"', [PY, "-c", "import typer"]),
    ('python -c "import sqlalchemy.orm"', [PY, "-c", "import sqlalchemy.orm"]),
    ("aipilot --version", [PY, "-m", "aipilot", "--version"]),
    ("aipilot --help", [PY, "-m", "aipilot", "--help"]),
    ("aipilot model show", [PY, "-m", "aipilot", "model", "show"]),
    ("aipilot keys status", [PY, "-m", "aipilot", "keys", "status"]),
    ("aipilot status", [PY, "-m", "aipilot", "status"]),
]


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss  # KiB on Linux


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "AIPILOT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "AIPILOT_USER": "bench",
            "AIPILOT_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "COLUMNS": "120",
        }
        subprocess.run([PY, "-m", "aipilot", "init"], env=env, check=True, capture_output=True)
        for args, given in (
            (["keys", "set", "openai", "--stdin", "--no-test"], "sk-bench-0123456789abcdef\n"),
            (["model", "activate", "openai", "gpt-4o-mini"], None),
        ):
            subprocess.run(
                [PY, "-m", "aipilot", *args],
                env=env,
                input=given,
                text=True,
                check=True,
                capture_output=True,
            )
        times: dict[str, list[float]] = {name: [] for name, _ in COMMANDS}
        rss: dict[str, list[int]] = {name: [] for name, _ in COMMANDS}
        for _ in range(RUNS):  # interleaved, so load changes hit every command alike
            for name, argv in COMMANDS:
                wall, peak = _run(argv, env)
                times[name].append(wall)
                rss[name].append(peak)
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    typer_floor, orm_floor = (
        med['python -c "import typer"'],
        med['python -c "import sqlalchemy.orm"'],
    )
    rows = []
    for name, _ in COMMANDS:
        if name.startswith("aipilot --"):
            versus = f"+{med[name] - typer_floor:.0f} ms over import typer (target ≤ +60)"
        elif name.startswith("aipilot"):
            versus = f"{med[name] / orm_floor:.2f}× import sqlalchemy.orm (target ≤ 1.25×)"
        else:
            versus = "floor"
        peak = statistics.median(rss[name]) / 1024
        rows.append(f"| `{name}` | {med[name]:.0f} ms | {peak:.0f} MiB | {versus} |")
    body = "\n".join(
        [
            "## Start-up (`python bench/startup.py`)",
            "",
            f"Median of {RUNS} interleaved runs per command, SQLite database made by `aipilot init`"
            f" with an active model and a stored key (so `keys status` decrypts it); {machine()}.",
            "",
            "| command | median wall | peak RSS | compared with |",
            "| --- | --- | --- | --- |",
            *rows,
        ]
    )
    write_section("startup", body)
    print(body)


if __name__ == "__main__":
    main()
