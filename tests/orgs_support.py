"""Organisations and their OpenAI connection in tests: the fake provider pointed at the
catalog, an organisation with a stored key (fixture ``org``), activation, prices and
concurrent calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import MASTER_KEY, REPO, CliFn
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import point_catalog_at, sql

MODEL = "gpt-4o-mini"


# ---------------------------------------------------------------- helpers (test_quotas uses them)
@pytest.fixture
def fake(database_url: str) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, database_url)
        yield server


def canary() -> str:
    return f"sk-aipilot-CANARY-{uuid.uuid4()}"


def uid(database_url: str, value: uuid.UUID) -> str:
    return value.hex if database_url.startswith("sqlite") else str(value)


def activate(database_url: str, user: str, provider: str = "openai", model: str = MODEL) -> None:
    """The user's one active global config, straight in the table (others' stay active)."""
    sql(
        database_url,
        "INSERT INTO ai_provider_configs (id, user_id, module_name, provider_name, model_name, "
        "is_active) SELECT :id, users_id, 'global', :p, :m, :t FROM users WHERE username = :u",
        id=uid(database_url, uuid.uuid4()),
        p=provider,
        m=model,
        t=True,
        u=user,
    )


def set_prices(database_url: str, model: str = MODEL, price: int = 1000) -> Decimal:
    """Make a call cost (12 + 5 tokens) × price / 1M; returns that cost."""
    sql(
        database_url,
        "UPDATE ai_models SET input_price_per_mtok = :p, output_price_per_mtok = :p "
        "WHERE model_key = :m",
        p=int(price),
        m=model,
    )
    return Decimal(17 * price) / Decimal(1_000_000)


def chats(fake: FakeProvider) -> list[Any]:
    return [r for r in fake.requests if "chat/completions" in r.path]


def connexion(database_url: str) -> dict[str, Any]:
    rows = sql(database_url, "SELECT * FROM openai_connexion")
    assert len(rows) == 1
    row = dict(rows[0]._mapping)
    for name in ("openai_audit_log", "openai_ia_extensions", "openai_modeles_autorises"):
        if isinstance(row[name], str):  # SQLite JSON
            row[name] = json.loads(row[name])
    return row


def audit_actions(database_url: str) -> list[str]:
    return [e["action"] for e in connexion(database_url)["openai_audit_log"]["entries"]]


def run_many(database_url: str, user: str, count: int) -> list[subprocess.CompletedProcess[str]]:
    """``count`` concurrent `aipilot ask` processes as ``user``."""
    env = {
        **os.environ,
        "AIPILOT_DATABASE_URL": database_url,
        "AIPILOT_USER": user,
        "AIPILOT_MASTER_KEY": MASTER_KEY,
        "NO_COLOR": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aipilot", "ask", "hi", "--no-stream"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


@pytest.fixture
def org(cli: CliFn, fake: FakeProvider, database_url: str) -> str:
    """Organisation acme with bob as a member, an org key (a canary), gpt-4o-mini allowed;
    bob has no key of his own and gpt-4o-mini active. Returns the org key."""
    secret = canary()
    assert cli("users", "add", "bob").exit_code == 0
    assert cli("orgs", "add", "acme").exit_code == 0
    assert cli("orgs", "add-member", "acme", "bob").exit_code == 0
    result = cli("org-openai", "set-key", "acme", "--stdin", "--no-test", input=secret)
    assert result.exit_code == 0, result.stderr
    assert cli("org-openai", "allow-models", "acme", MODEL, "gpt-4").exit_code == 0
    activate(database_url, "bob")
    return secret


# ---------------------------------------------------------------- organisations
