"""aipilot: the command-line control centre for LLM providers."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
