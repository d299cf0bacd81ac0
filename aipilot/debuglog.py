"""``--debug`` (CLI) and ``AIPILOT_DEBUG`` (serve): aipilot's and httpx's loggers at DEBUG on
stderr. Keys never reach these loggers (docs/security.md §1): messages are redacted where
they are built, and URLs never carry a key.
"""

from __future__ import annotations

import logging

LOGGERS = ("aipilot", "httpx", "httpcore")
HANDLER_NAME = "aipilot-debug"


def enable() -> None:
    """Add one stderr handler (bound to the current stderr), replacing an earlier one."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.set_name(HANDLER_NAME)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        disable_on(logger)
        logger.addHandler(handler)


def disable() -> None:
    """Remove the handler: a later in-process command must not write to an old stderr."""
    for name in LOGGERS:
        disable_on(logging.getLogger(name))


def disable_on(logger: logging.Logger) -> None:
    for old in [h for h in logger.handlers if h.get_name() == HANDLER_NAME]:
        logger.removeHandler(old)
