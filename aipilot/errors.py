"""The one error tree of aipilot.

Every expected failure is an :class:`AipilotError` carrying the process exit code and a
hint that tells the user what to do next. The CLI's error boundary
(:mod:`aipilot.cli.app`) prints ``Error: …`` / ``Hint: …`` on stderr and exits with the
code. Foreign exceptions (httpx, keyring, SQLAlchemy, psycopg, cryptography) are
translated where they occur, with ``raise … from``.

Messages never contain a secret: callers pass values through
:func:`aipilot.redaction.redact` before building a message from provider text.

Exit codes are part of the interface (CI scripts branch on them); the README documents
this table.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # unexpected crash (a bug)
    USAGE = 2  # bad arguments or input, unknown provider/model names
    NOT_CONFIGURED = 3  # no database schema, no key, no active model, no master key
    UNHEALTHY = 4  # the configuration test ran and failed
    PROVIDER = 5  # the provider refused or failed (auth, model, rate limit, outage)
    QUOTA = 6  # a quota or budget is exhausted
    DATABASE = 7  # database unreachable or failing
    CONFLICT = 8  # duplicate, or still referenced
    PERMISSION = 9  # admin-only command run by a member
    VAULT = 10  # master key mismatch or a ciphertext that fails its integrity check
    INTERRUPTED = 130  # Ctrl-C


class AipilotError(Exception):
    """Base of every expected failure; ``str(err)`` is the one-line message."""

    exit_code: ExitCode = ExitCode.INTERNAL
    default_hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(AipilotError):
    exit_code = ExitCode.USAGE


class NotFoundError(UsageError):
    """A named thing (provider, model, prompt, user) does not exist."""


class NotConfiguredError(AipilotError):
    exit_code = ExitCode.NOT_CONFIGURED


class SchemaError(NotConfiguredError):
    default_hint = "run `aipilot init` (or `aipilot db upgrade`) to create or upgrade the schema"


class UnhealthyError(AipilotError):
    exit_code = ExitCode.UNHEALTHY


class ProviderError(AipilotError):
    """Base of the provider errors; the subclasses live in :mod:`aipilot.providers.errors`."""

    exit_code = ExitCode.PROVIDER


class RefusedError(ProviderError):
    """The model declined to answer (a refusal or a safety block); ``refusal`` says why.

    The call happened and is billed: its usage row has the tokens, the cost and
    ``error_code`` ``refusal``."""

    default_hint = "rephrase the request; the refused call is billed and shown by `aipilot usage`"

    def __init__(self, message: str, *, refusal: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.refusal = refusal


class ModelOutputError(ProviderError):
    """The model answered, but not in the shape asked for (JSON mode, schema)."""

    default_hint = "retry, simplify the schema, or raise --max-tokens if the answer was cut"


class QuotaExceededError(AipilotError):
    exit_code = ExitCode.QUOTA


class DatabaseError(AipilotError):
    exit_code = ExitCode.DATABASE


class ConflictError(AipilotError):
    exit_code = ExitCode.CONFLICT


class PermissionDeniedError(AipilotError):
    exit_code = ExitCode.PERMISSION


class VaultError(AipilotError):
    """Encryption-side failures: master key mismatch, integrity failure."""

    exit_code = ExitCode.VAULT


class MasterKeyMissingError(NotConfiguredError):
    """No usable master key source (no variable, no recommended keyring backend)."""

    default_hint = (
        "set AIPILOT_MASTER_KEY to 32 random bytes in base64 "
        "(generate one with `aipilot keys new-master`), or use a desktop session with a "
        "system keyring"
    )


class InterruptedError_(AipilotError):
    exit_code = ExitCode.INTERRUPTED
