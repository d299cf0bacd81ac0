"""`aipilot prompts create/edit` hand no AIPILOT_* variable to the editor.

The editor is any program the user's $VISUAL / $EDITOR names (a plugin host, a remote
editor, a wrapper that logs): it gets the user's environment minus every AIPILOT_*
variable (the master key, the database URL with its password, the server's tokens and
secrets). A fake editor script dumps the environment it was given.
"""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

from tests.conftest import MASTER_KEY, CliFn

SECRETS = {
    "AIPILOT_INTERNAL_TOKEN": f"internal-{uuid.uuid4().hex}",
    "AIPILOT_JWT_SECRET": f"jwt-{uuid.uuid4().hex}",
    "AIPILOT_SOMETHING_NEW": f"future-{uuid.uuid4().hex}",
}


def fake_editor(tmp_path: Path, text: str) -> tuple[Path, Path]:
    """A script that dumps its environment (NUL-separated) and saves ``text``."""
    dump = tmp_path / "editor-env"
    script = tmp_path / "editor.sh"
    script.write_text(f"#!/bin/sh\nenv -0 > '{dump}'\nprintf '%s' '{text}' > \"$1\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, dump


def received(dump: Path) -> dict[str, str]:
    pairs = [item.partition("=") for item in dump.read_text().split("\0") if item]
    return {name: value for name, _sep, value in pairs}


def test_the_editor_gets_no_aipilot_variable(cli: CliFn, database_url: str, tmp_path: Path) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    for command, text in (("create", "first text"), ("edit", "second text")):
        script, dump = fake_editor(tmp_path, text)
        env = {"VISUAL": str(script), "EDITOR_TEST_MARKER": marker, **SECRETS}
        args = ["prompts", command, "terse", "--editor"]
        result = cli(*args, *(["--keep-snapshot"] if command == "edit" else []), env=env)
        assert result.exit_code == 0, result.stderr
        given = received(dump)
        assert given.get("EDITOR_TEST_MARKER") == marker  # the rest of the environment is kept
        assert [name for name in given if name.startswith("AIPILOT_")] == []
        values = [MASTER_KEY, database_url, *SECRETS.values()]
        assert [v for v in values if v in dump.read_text()] == []
        assert cli("prompts", "show", "terse").stdout == text + "\n"
