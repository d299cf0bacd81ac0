"""aipilot: the command-line control centre for LLM providers.

``aipilot.assist(...)`` and ``aipilot.Assistant`` are the Python API (see
:mod:`aipilot.api`); they are imported on first use so ``import aipilot`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Assistant", "__version__", "assist"]

if TYPE_CHECKING:
    from aipilot.api import Assistant, assist


def __getattr__(name: str) -> Any:
    if name in ("assist", "Assistant"):
        from aipilot import api

        return getattr(api, name)
    raise AttributeError(f"module 'aipilot' has no attribute {name!r}")
