"""Shared by the benchmarks: the machine description and docs/benchmarks.md sections."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every section below is written by the benchmark script it names, from a real run on the
machine it describes. Rerun one with `python bench/<script>.py`, or all with
`python bench/run.py`. No benchmark talks to a real provider: they use the fake provider
server of `tests/fakeprovider.py` on 127.0.0.1.
"""


def machine() -> str:
    cpus = os.cpu_count()
    return (
        f"{platform.machine()}, {cpus} CPUs, Python {sys.version.split()[0]}, {platform.system()}"
    )


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between this benchmark's markers."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = DOC.read_text() if DOC.exists() else HEADER
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
