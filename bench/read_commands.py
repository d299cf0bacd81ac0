"""The read-only commands next to `aipilot status`: median wall time of fresh processes.

One SQLite database made by `aipilot init` (the seeded catalog), furnished like a user's
after some weeks: one stored key, one active model, a custom model, 20 prompts (one
active), a limit, and 5,000 `ai_usage_logs` rows over 30 days (chats, key and config
tests, syncs; 5 % errors). Every command runs as a fresh process (`python -m aipilot …`),
all commands interleaved in each round so load changes hit them alike; medians of RUNS.

``--before REV`` also runs the code of git revision REV (exported with `git archive` into
a temporary directory and put first on PYTHONPATH) in the same rounds, on the same
database, so the section shows before and after side by side. Each command is also run
once under ``python -X importtime``: the table says which heavy packages it imports.

Target (issue 16): every read command within 1.25× of `aipilot status`.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import ROOT, machine, write_section

RUNS = 5
USAGE_ROWS = 5_000
PROMPTS = 20
PY = sys.executable
COMMANDS: list[list[str]] = [
    ["status"],
    ["model", "show"],
    ["keys", "status"],
    ["providers", "list"],
    ["providers", "show", "openai"],
    ["models", "list"],
    ["models", "list", "--provider", "anthropic"],  # no custom model: no reference price
    ["models", "show", "openai", "gpt-4o-mini"],
    ["custom", "list"],
    ["prompts", "list"],
    ["prompts", "show", "prompt-07"],
    ["usage"],
    ["usage", "--by", "model"],
    ["history"],
    ["limits", "show"],
]
FAILING: list[list[str]] = [  # checked for identical output with --check, not timed
    ["providers", "show", "nope"],
    ["models", "show", "openai", "nope"],
    ["models", "list", "--provider", "nope"],
    ["models", "list", "--all", "--provider", "OpenAI"],
    ["custom", "list", "--all"],
    ["prompts", "show", "nope"],
    ["usage", "--by", "nope"],
    ["usage", "--since", "30d", "--by", "provider", "--kind", "chat"],
    ["usage", "--since", "30d", "--by", "kind", "--until", "2099-01-01"],
    ["history", "--limit", "0"],
    ["history", "--limit", "1000"],
    ["limits", "show", "--for", "nobody"],
    ["limits", "show", "--for", "bench"],
]
HEAVY = ("sqlalchemy", "rich", "cryptography", "psycopg", "genai_prices", "httpx", "pydantic")
TARGET = 1.25
# `python -m` puts the working directory first on sys.path: run the children elsewhere, so
# that PYTHONPATH (the --before export) or the installed package decides which code runs
NEUTRAL = tempfile.gettempdir()


def _cli(env: dict[str, str], *args: str, given: str | None = None) -> None:
    subprocess.run(
        [PY, "-m", "aipilot", *args],
        env=env,
        input=given,
        text=True,
        check=True,
        capture_output=True,
        cwd=NEUTRAL,
    )


def _furnish(env: dict[str, str]) -> None:
    _cli(env, "init")
    _cli(env, "keys", "set", "openai", "--stdin", "--no-test", given="sk-bench-0123456789abcdef\n")
    _cli(env, "model", "activate", "openai", "gpt-4o-mini")
    _cli(env, "custom", "add", "openai", "my-tuned", "--name", "My tuned")
    _cli(env, "limits", "set", "--daily-requests", "500", "--monthly-cost", "20")
    for n in range(1, PROMPTS + 1):
        text = f"You are assistant number {n}. " * 20
        _cli(env, "prompts", "create", f"prompt-{n:02d}", "--text", text)
    _cli(env, "prompts", "activate", "prompt-07")
    _usage_rows(env["AIPILOT_DATABASE_URL"])


def _usage_rows(url: str) -> None:
    import sqlalchemy as sa

    from aipilot.db.models import UsageLog, User

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        user_id = conn.execute(
            sa.select(User.users_id).where(User.username == "bench")
        ).scalar_one()
        rng, now = random.Random(16), datetime.now(UTC)
        models = {"openai": ("gpt-4o-mini", "gpt-4o"), "anthropic": ("claude-3-5-haiku",)}
        rows = []
        for _ in range(USAGE_ROWS):
            provider = rng.choice(list(models))
            kind = rng.choices(("chat", "key_test", "config_test", "model_sync"), (85, 5, 5, 5))[0]
            ok = rng.random() < 0.95
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": user_id,
                    "module_name": "global",
                    "kind": kind,
                    "provider_key": provider,
                    "model_name": rng.choice(models[provider]),
                    "input_tokens": rng.randint(10, 4000),
                    "output_tokens": rng.randint(0, 1000),
                    "cost_usd": None
                    if rng.random() < 0.1
                    else Decimal(rng.randint(1, 50000)) / 10**6,
                    "latency_ms": rng.randint(80, 5000),
                    "outcome": "ok" if ok else "error",
                    "error_code": None if ok else "rate_limited",
                    "error_message": None if ok else "HTTP 429",
                    "created_at": now - timedelta(seconds=rng.uniform(0, 30 * 86400)),
                }
            )
        conn.execute(sa.insert(UsageLog.__table__), rows)
    engine.dispose()


def _run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=NEUTRAL
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:])} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def _heavy_imports(argv: list[str], env: dict[str, str]) -> str:
    """The heavy packages the command imports, with their cumulative import time."""
    done = subprocess.run(
        [PY, "-X", "importtime", *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=NEUTRAL,
    )
    found: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _self, cumulative, name = line[len("import time:") :].split("|")
        name = name.strip()
        if name in HEAVY and name not in found:
            found[name] = int(cumulative)
    return ", ".join(f"{n} {us / 1000:.0f}" for n, us in found.items()) or "—"


_NOW_RELATIVE = re.compile(rb'("since": )"[^"]*"')


def _clockless(out: bytes) -> bytes:
    """`usage --json` says when "7d ago" was, to the microsecond: not the same twice."""
    return _NOW_RELATIVE.sub(rb'\1"NOW-RELATIVE"', out)


def _check_outputs(before: dict[str, str], after: dict[str, str]) -> None:
    """Exit code, stdout and stderr of each command, text and --json, must be identical."""
    differ = []
    for args in [*COMMANDS, *FAILING]:
        for variant in (args, [*args, "--json"]):
            seen = [
                subprocess.run(
                    [PY, "-m", "aipilot", *variant], env=e, capture_output=True, cwd=NEUTRAL
                )
                for e in (before, after)
            ]
            a, b = seen
            same = (a.returncode, _clockless(a.stdout), a.stderr) == (
                b.returncode,
                _clockless(b.stdout),
                b.stderr,
            )
            print(f"{'same' if same else 'DIFFERENT'}: aipilot {' '.join(variant)}", flush=True)
            if not same:
                differ.append(" ".join(variant))
                for name, done in zip(("before", "after"), seen, strict=True):
                    print(f"  {name}: exit {done.returncode}\n{done.stdout.decode()[:2000]}")
                    print(done.stderr.decode()[-1000:])
    if differ:
        raise SystemExit(f"outputs differ: {differ}")


def _export(rev: str, into: str) -> str:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "aipilot"], capture_output=True, check=True
    )
    os.makedirs(into)
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REV", help="also time the code of this revision")
    parser.add_argument(
        "--before-dir",
        metavar="DIR",
        help="also time the aipilot package under DIR (instead of --before REV)",
    )
    parser.add_argument("--before-label", help="what the section calls the --before-dir code")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--check",
        action="store_true",
        help="with --before: compare every command's output (text and --json) before and after",
    )
    parser.add_argument("--check-only", action="store_true", help="--check, then stop")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "AIPILOT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "AIPILOT_USER": "bench",
            "AIPILOT_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "COLUMNS": "120",
        }
        env.pop("PYTHONPATH", None)
        _furnish(env)
        variants = {"after": env}
        old = options.before_dir
        if options.before and not old:
            old = _export(options.before, os.path.join(tmp, "before"))
        if old:
            variants = {"before": {**env, "PYTHONPATH": old}, "after": env}
        if (options.check or options.check_only) and old:
            _check_outputs(variants["before"], variants["after"])
            if options.check_only:
                return
        times = {(v, i): [] for v in variants for i in range(len(COMMANDS))}
        for _ in range(RUNS):
            for i, args in enumerate(COMMANDS):
                for name, variant_env in variants.items():
                    times[(name, i)].append(_run([PY, "-m", "aipilot", *args], variant_env))
        imports = {
            (name, i): _heavy_imports([PY, "-m", "aipilot", *args], variant_env)
            for name, variant_env in variants.items()
            for i, args in enumerate(COMMANDS)
        }
    med = {key: statistics.median(samples) * 1000 for key, samples in times.items()}
    label = options.before_label or (f"revision `{options.before}`" if options.before else None)
    print(_section(label, variants, med, imports))
    if not options.no_write:
        write_section("read-commands", _section(label, variants, med, imports))


def _section(
    before: str | None,
    variants: dict[str, dict[str, str]],
    med: dict[tuple[str, int], float],
    imports: dict[tuple[str, int], str],
) -> str:
    head = ["command"]
    for name in variants:
        head += [f"{name}: median", f"{name}: × status", f"{name}: heavy imports (ms)"]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    worst = {}
    for i, args in enumerate(COMMANDS):
        cells = [f"`aipilot {' '.join(args)}`"]
        for name in variants:
            ratio = med[(name, i)] / med[(name, 0)]
            worst[name] = max(worst.get(name, 0.0), ratio)
            cells += [f"{med[(name, i)]:.0f} ms", f"{ratio:.2f}×", imports[(name, i)]]
        rows.append("| " + " | ".join(cells) + " |")
    compared = (
        f"`before` is {before}, `after` the working tree, in the same rounds. " if before else ""
    )
    verdict = "; ".join(
        f"{name}: slowest read command {worst[name]:.2f}× `status`" for name in variants
    )
    return "\n".join(
        [
            "## Read commands (`python bench/read_commands.py`)",
            "",
            f"Fresh processes, medians of {RUNS} interleaved rounds, text output, on a SQLite "
            f"database made by `aipilot init` (seeded catalog) with one key, an active model, a "
            f"custom model, {PROMPTS} prompts, a limit and {USAGE_ROWS:,} usage rows; "
            f"{machine()}. {compared}Heavy imports: `python -X importtime`, cumulative.",
            "",
            *rows,
            "",
            f"Target (issue 16): every read command within {TARGET}× `aipilot status`. {verdict}.",
            "",
            "`models list` prices a row without a catalog price (here the custom model) from "
            "the reference catalog (genai-prices, ~0.2 s to import with pydantic). The "
            "lookups are kept on disk for the day (`services/catalog/pricing.py`), so only "
            "the first run of the day imports it; the rounds above are later runs (the "
            '"before" code had no such cache: its `models list` imported it every time).',
        ]
    )


if __name__ == "__main__":
    main()
