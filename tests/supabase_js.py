"""The real supabase-js, from the npm registry, run by node (the client the seed's apps use).

Node 20 has no WebSocket, which supabase-js's Realtime client wants at creation; the ws
package is its documented transport there. Nothing is installed at import time.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPT = """
const { createClient } = require('@supabase/supabase-js');
(async () => {
  const { SB_URL, SB_ANON, SB_TOKEN } = process.env;
  const options = { auth: { persistSession: false, autoRefreshToken: false } };
  // Node < 22 has no WebSocket: supabase-js asks for the ws package as Realtime's transport
  if (typeof WebSocket === 'undefined') options.realtime = { transport: require('ws') };
  if (SB_TOKEN) options.global = { headers: { Authorization: 'Bearer ' + SB_TOKEN } };
  const supabase = createClient(SB_URL, SB_ANON, options);
  const { data, error } = await supabase.functions.invoke('ai-keys-manager', {
    body: { action: 'get-status' },
  });
  const status = error && error.context ? error.context.status : null;
  console.log(JSON.stringify({ data, error: error ? { name: error.name, status } : null }));
})();
"""


def invoke(node_modules: Path, *, url: str, anon_key: str, token: str | None) -> dict[str, Any]:
    """``functions.invoke('ai-keys-manager', {action: 'get-status'})``: its data and error."""
    env = {"PATH": str(Path(shutil.which("node") or "node").parent), "NODE_PATH": str(node_modules)}
    env.update(SB_URL=url, SB_ANON=anon_key, SB_TOKEN=token or "")
    done = subprocess.run(
        ["node", "-e", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def install(prefix: Path) -> Path:
    """node_modules under ``prefix`` with supabase-js and ws; skips when npm cannot install."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("node and npm are needed to run supabase-js")
    with (prefix / ".lock").open("w") as lock:  # pytest-xdist workers install one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        modules = prefix / "node_modules"
        if not all(
            (modules / name / "package.json").exists() for name in ("@supabase/supabase-js", "ws")
        ):
            try:
                done = subprocess.run(
                    [
                        npm,
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--prefix",
                        str(prefix),
                        "@supabase/supabase-js",
                        "ws",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
            except subprocess.TimeoutExpired:
                pytest.skip("npm could not install @supabase/supabase-js and ws within 5 minutes")
            if done.returncode != 0:
                pytest.skip(
                    "npm could not install @supabase/supabase-js: " + done.stderr.strip()[-500:]
                )
    return modules
