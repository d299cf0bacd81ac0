"""The Python API: chats through the active model from scripts.

    import aipilot
    answer = aipilot.assist("Summarise this ticket: …")            # one call
    print(answer.text, answer.usage.output_tokens, answer.cost_usd)

    with aipilot.Assistant(user="alice") as ai:                     # many calls
        data = ai.ask("Extract the fields as JSON", json_mode=True).data

It uses the same settings as the command line (``AIPILOT_DATABASE_URL``,
``AIPILOT_USER``, ``AIPILOT_MASTER_KEY``), the same path, quotas and usage logs as
``aipilot ask``, and raises :class:`aipilot.errors.AipilotError` subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aipilot.services.assist.assist import AssistResult
    from aipilot.services.runtime import Context

Messages = str | Sequence[Mapping[str, Any]]


class Assistant:
    """A connection to aipilot's database as one user, reused across calls."""

    def __init__(
        self, *, user: str | None = None, db: str | None = None, module: str = "global"
    ) -> None:
        self._user, self._db, self.module = user, db, module
        self._ctx: Context | None = None

    def _context(self) -> Context:
        if self._ctx is None:
            from dataclasses import replace

            from aipilot.config import Settings
            from aipilot.services.runtime import PreparedCalls, connect

            ctx = connect(Settings.resolve(db=self._db, user=self._user))
            self._ctx = replace(ctx, prepared=PreparedCalls())
        return self._ctx

    def ask(
        self,
        prompt: Messages,
        *,
        system: str | None = None,
        json_mode: bool = False,
        schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        log_content: bool = False,
    ) -> AssistResult:
        """Send a prompt (a string, or the seed's list of {role, content} messages).

        A refusal (the model declined, or a safety filter blocked the answer) raises
        :class:`aipilot.errors.RefusedError`, whose ``refusal`` says why; the call is
        billed and recorded like any other."""
        from aipilot.services.assist import assist

        messages = (
            assist.user_message(prompt) if isinstance(prompt, str) else assist.messages_from(prompt)
        )
        request = assist.AssistRequest(
            messages=messages,
            module=self.module,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
            json_mode=json_mode,
            json_schema=schema,
            log_content=log_content,
        )
        result = assist.ask(self._context(), request)
        if result.refusal is not None:
            raise result.refused()
        return result

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.db.dispose()
            self._ctx = None

    def __enter__(self) -> Assistant:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def assist(
    prompt: Messages,
    *,
    user: str | None = None,
    db: str | None = None,
    module: str = "global",
    **options: Any,
) -> AssistResult:
    """One chat through the active model; see :meth:`Assistant.ask` for the options."""
    with Assistant(user=user, db=db, module=module) as assistant:
        return assistant.ask(prompt, **options)
