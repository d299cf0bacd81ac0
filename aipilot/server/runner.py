"""Run the app with uvicorn; SIGTERM/SIGINT stop it gracefully and the process exits 0.

uvicorn finishes in-flight requests, runs the lifespan shutdown (the pool is disposed),
then re-raises the signal it caught to the handler that was installed before it started.
That handler is a no-op here, so a graceful stop ends with exit status 0, not -15.
"""

from __future__ import annotations

import signal
from types import FrameType

APP = "aipilot.server.app:create_app"


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    return None


def run(*, host: str, port: int, workers: int, debug: bool, grace_s: int = 10) -> None:
    import uvicorn

    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.run(
            APP,
            factory=True,
            host=host,
            port=port,
            workers=workers if workers > 1 else None,
            log_level="debug" if debug else "info",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=grace_s,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
