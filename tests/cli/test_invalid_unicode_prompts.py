"""Text that is not valid Unicode is refused before a request is counted.

Bytes that are not UTF-8 in a command-line argument reach Python as lone surrogates; no
request body can carry them, so the provider call used to crash after the quota was
reserved (exit 1, a reserved request without its usage row). Now the prompt, the system
prompt and a schema file are checked first: exit 2, nothing counted, nothing sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aipilot.errors import ExitCode, UsageError
from tests import holes_support
from tests.conftest import MASTER_KEY, REPO, CliFn
from tests.fakeprovider import FakeProvider
from tests.holes_support import requests_counted, store_key, usage_rows
from tests.providers_catalog import activate_directly

fake = holes_support.fake  # fixture


@pytest.fixture
def ready(cli: CliFn, fake: FakeProvider, database_url: str) -> None:
    store_key(cli)
    activate_directly(database_url, "openai", "gpt-4o-mini")
    assert cli("limits", "set", "--daily-requests", "100").exit_code == 0


def chats(fake: FakeProvider) -> int:
    return sum("chat/completions" in r.path for r in fake.requests)


def test_ask_refuses_bytes_that_are_not_utf8(
    ready: None, cli: CliFn, fake: FakeProvider, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "AIPILOT_DATABASE_URL": database_url, "AIPILOT_USER": "alice"}
    env |= {"AIPILOT_MASTER_KEY": MASTER_KEY, "LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"}
    proc = subprocess.run(
        [sys.executable.encode(), b"-m", b"aipilot", b"ask", b"caf\xe9 ?"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert b"\nError: the prompt is not valid Unicode text" in b"\n" + proc.stderr
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object", "description": "\\udcff"}')
    for args in (
        ("ask", "bad \udcff byte"),
        ("ask", "hi", "--system", "\udce9"),
        ("ask", "hi", "--schema", str(schema)),
    ):
        run = cli(*args)
        assert run.exit_code == ExitCode.USAGE, (args, run.stderr)
        assert "not valid Unicode" in run.stderr and "Traceback" not in run.stderr
    assert chats(fake) == 0 and usage_rows(database_url) == 0
    assert requests_counted(database_url) == 0
    assert cli("ask", "café ?").exit_code == 0  # real Unicode is fine
    assert requests_counted(database_url) == usage_rows(database_url) == 1


def test_the_python_api_refuses_it_too(
    ready: None, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aipilot

    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    with (
        aipilot.Assistant(user="alice", db=database_url) as ai,
        pytest.raises(UsageError, match="not valid Unicode"),
    ):
        ai.ask("\ud800")
    assert requests_counted(database_url) == usage_rows(database_url) == 0
