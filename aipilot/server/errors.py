"""AipilotError → HTTP status and JSON body, in the seed's shape or OpenAI's.

Bodies carry the error's one-line message and hint (which never contain a secret, see
:mod:`aipilot.errors`); an unexpected exception becomes a generic 500 with no detail.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import JSONResponse

from aipilot.errors import AipilotError, ExitCode
from aipilot.services import documents
from aipilot.services.users.tokens import InvalidTokenError

log = logging.getLogger("aipilot.server")

STATUS = {
    ExitCode.USAGE: 400,
    ExitCode.NOT_CONFIGURED: 409,
    ExitCode.UNHEALTHY: 200,
    ExitCode.PROVIDER: 502,
    ExitCode.QUOTA: 429,
    ExitCode.DATABASE: 503,
    ExitCode.CONFLICT: 409,
    ExitCode.PERMISSION: 403,
    ExitCode.VAULT: 409,
}
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


EXIT_CODES = {  # what the CLI would exit with for an HTTP-only failure (the error's exit_code)
    400: ExitCode.USAGE,
    403: ExitCode.PERMISSION,
    413: ExitCode.USAGE,
    503: ExitCode.NOT_CONFIGURED,  # the schema is unusable
}


class HttpError(AipilotError):
    """A failure that is only an HTTP matter (bad JSON, body too large, refused get-key)."""

    def __init__(self, status: int, message: str, *, code: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status, self.code = status, code
        self.exit_code = EXIT_CODES.get(status, ExitCode.INTERNAL)


def status_of(err: AipilotError) -> int:
    if isinstance(err, HttpError):
        return err.status
    if isinstance(err, InvalidTokenError):
        return 401
    return STATUS.get(err.exit_code, 500)


def code_of(err: AipilotError) -> str:
    if isinstance(err, HttpError):
        return err.code
    if isinstance(err, InvalidTokenError):
        return "invalid_token"
    return documents.error_code(err)


def _headers(status: int) -> dict[str, str] | None:
    return {"WWW-Authenticate": "Bearer"} if status == 401 else None


def function_error(err: AipilotError) -> JSONResponse:
    """The seed's shape, as the CLI's ``--json`` prints it (:func:`documents.error`)."""
    status = status_of(err)
    body = documents.error(err, code=code_of(err))
    return JSONResponse(body, status_code=status, headers=_headers(status))


def openai_error(err: AipilotError) -> JSONResponse:
    """OpenAI's shape: ``{"error": {"message", "type", "code", "param"}}``."""
    status = status_of(err)
    return JSONResponse(
        openai_error_body(err, status), status_code=status, headers=_headers(status)
    )


def openai_error_body(err: AipilotError, status: int) -> dict[str, Any]:
    kind = OPENAI_TYPES.get(status, "api_error")
    message = err.message if not err.hint else f"{err.message} ({err.hint})"
    return {"error": {"message": message, "type": kind, "code": code_of(err), "param": None}}


def unexpected(exc: Exception, *, path: str, debug: bool) -> AipilotError:
    """Log an unexpected exception and hide it from the client.

    The ERROR line names its type only, unless debugging; its traceback goes to the log at
    DEBUG, shown by a handler at that level (the tests capture it), never in the response.
    """
    if debug:
        log.error("unexpected %s on %s", type(exc).__name__, path, exc_info=exc)
    else:
        log.error("unexpected %s on %s", type(exc).__name__, path)
        log.debug("unexpected %s on %s", type(exc).__name__, path, exc_info=exc)
    return HttpError(500, "internal server error", code="internal")
