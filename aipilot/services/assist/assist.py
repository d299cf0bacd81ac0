"""Assist: chats through the user's active model (the seed's ``assist_flut`` proxy).

Read the active configuration for (user, module), decrypt the key server-side, call the
provider, return the answer — never the key. Every call writes one ``ai_usage_logs`` row,
success, failure, refusal or cancellation, with tokens (reasoning and cache tokens apart),
cost (:mod:`aipilot.services.catalog.pricing`: the catalog's per-million-token prices, else the
reference catalog's; unknown price → NULL, never 0), latency and time to first token. A
refusal (the model declined, or a safety filter blocked the answer) is returned with
``refusal`` set and ``finish_reason`` ``"refusal"``; its row has ``error_code`` ``refusal``.
Prompt and answer text are stored only when the caller opts in (``log_content``); the one
exception is an answer that fails JSON validation, whose raw text is kept so the failure
can be diagnosed.

No database transaction is open while the provider is called: ``_prepare`` reads in one
transaction, the provider call happens, then ``_record`` writes in another.

Key resolution: :func:`aipilot.services.keys.resolve.resolve_key` (the user's own key; for
the ``openai`` provider only, else the user's organisation's connection).
Quotas (:mod:`aipilot.services.accounting.quotas`): when a per-user limit applies or the
organisation's key is used, one request is reserved in a short write transaction before
the call (exit 6 when a limit is reached), and the real cost is settled in ``_record``'s
transaction after it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from aipilot.db.engine import Database, set_identity
from aipilot.db.models import Model, ProviderConfig
from aipilot.errors import (
    AipilotError,
    DatabaseError,
    ModelOutputError,
    NotConfiguredError,
    RefusedError,
    UsageError,
)
from aipilot.services import locks
from aipilot.services.accounting import calls, quotas
from aipilot.services.catalog import pricing
from aipilot.services.catalog.catalog import get_provider, settings_for
from aipilot.services.keys.resolve import resolve_key
from aipilot.services.orgs import org_openai
from aipilot.services.runtime import Context, in_thread
from aipilot.services.validate import json_schema, module_name, schema_mismatch, unicode_text

if TYPE_CHECKING:
    from aipilot.providers.types import (
        ChatChunk,
        ChatMessage,
        ChatRequest,
        ChatResponse,
        ProviderClient,
        ProviderSettings,
        Usage,
    )

log = logging.getLogger("aipilot.assist")
MAX_LOGGED_TEXT = 20_000
REFUSAL = "refusal"  # the finish reason and the usage row's error_code of a refusal


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class AssistRequest:
    messages: Sequence[Message]
    module: str = "global"
    system: str | None = None  # overrides the active prompt snapshot for this call
    max_tokens: int | None = None
    temperature: float | None = None
    json_mode: bool = False
    json_schema: Mapping[str, Any] | None = None
    log_content: bool = False
    model: str | None = None  # a model the caller named: refused unless it is the active one


class ModelNotServedError(UsageError):
    """The request named a model other than the module's active one."""


@dataclass(frozen=True)
class TokenUsage:
    """Billed tokens: input includes cache reads and writes, output includes reasoning, and
    ``total_tokens`` is always input + output."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass(frozen=True)
class AssistResult:
    text: str
    data: Any
    provider: str
    model: str
    finish_reason: str | None
    usage: TokenUsage
    cost_usd: Decimal | None
    latency_ms: int
    ttft_ms: int | None = None
    refusal: str | None = None  # set when the model declined; text is then usually empty

    def refused(self) -> RefusedError:
        """The error a caller that wants an answer raises for a refusal."""
        assert self.refusal is not None
        return RefusedError(
            f"the {self.provider} model refused to answer: {self.refusal}"[:600],
            refusal=self.refusal,
        )


@dataclass(frozen=True)
class _Prepared:
    settings: ProviderSettings
    api_key: str | None = field(repr=False)
    model: str
    system: str | None
    rates: pricing.Rates | None
    connexion_id: uuid.UUID | None = None  # the organisation's key is used
    user_limits: bool = False  # a per-user limit applies
    reservation: quotas.Reservation = field(default_factory=quotas.Reservation)


def _check_request(request: AssistRequest) -> None:
    if not any(m.role == "user" and m.content.strip() for m in request.messages):
        raise UsageError("nothing to ask: the prompt is empty", hint="give a PROMPT or pipe one in")
    for message in request.messages:
        if message.role not in ("system", "user", "assistant"):
            raise UsageError(
                f"unknown message role {message.role!r}", hint="use system, user or assistant"
            )
    if request.max_tokens is not None and not 0 < request.max_tokens <= 1_000_000:
        raise UsageError("--max-tokens must be between 1 and 1000000")
    if request.temperature is not None and not 0.0 <= request.temperature <= 2.0:
        raise UsageError("--temperature must be between 0 and 2")
    for message in request.messages:
        unicode_text("prompt", message.content)
    if request.system is not None:
        unicode_text("system prompt", request.system)
    if request.json_schema is not None:
        json_schema(request.json_schema)  # never fetched: refused before any call


def _prepare(ctx: Context, request: AssistRequest) -> _Prepared:
    # the generation is read first: a change committed after it is seen on the next call
    generation = ctx.db.config_generation() if ctx.prepared is not None else None
    return _cached(ctx, request, generation) or _prepare_at(ctx, request, generation)


def _cached(ctx: Context, request: AssistRequest, generation: int | None) -> _Prepared | None:
    """The prepared call kept for this generation, if any (no database work)."""
    _check_request(request)
    if ctx.prepared is None:
        return None
    found = ctx.prepared.get((ctx.identity.user_id, module_name(request.module)), generation)
    return None if found is None else _for_request(found, request)


def _prepare_at(ctx: Context, request: AssistRequest, generation: int | None) -> _Prepared:
    """Read what the call needs (configuration, key, prices), kept under ``generation``."""
    module = module_name(request.module)
    found = _read_prepared(ctx, module, request.model)
    if ctx.prepared is not None:
        ctx.prepared.put((ctx.identity.user_id, module), generation, found)
    return _for_request(found, request)


def _for_request(found: _Prepared, request: AssistRequest) -> _Prepared:
    _check_served(request.model, found.model)
    return found if request.system is None else replace(found, system=request.system)


def _check_served(named: str | None, active: str) -> None:
    if named is not None and named != active:
        raise ModelNotServedError(
            f"the model {named!r} is not served: only the active model is",
            hint="use model 'active' (or the active model's key); switch it with "
            "`aipilot model activate`",
        )


def _read_prepared(ctx: Context, module: str, named: str | None = None) -> _Prepared:
    with ctx.db.session(user_id=ctx.identity.user_id) as session:
        config = session.scalars(
            sa.select(ProviderConfig).where(
                ProviderConfig.user_id == ctx.identity.user_id,
                ProviderConfig.module_name == module,
                ProviderConfig.is_active,
            )
        ).first()
        if config is None:
            raise NotConfiguredError(
                f"no active model for module {module!r}",
                hint="choose one with `aipilot model activate PROVIDER MODEL`",
            )
        _check_served(named, config.model_name)  # before the key: a wrong name is a 400
        provider = get_provider(session, config.provider_name)
        settings, api_key, connexion_id = settings_for(provider), None, None
        if provider.api_auth_method != "none":
            key = resolve_key(session, ctx.identity, provider, config.model_name)
            settings, api_key, connexion_id = key.settings, key.secret, key.connexion_id
        row = session.execute(
            sa.select(
                Model.input_price_per_mtok,
                Model.output_price_per_mtok,
                Model.cache_read_price_per_mtok,
                Model.cache_write_price_per_mtok,
                Model.price_source,
            ).where(Model.provider_id == provider.id, Model.model_key == config.model_name)
        ).first()
        prep = _Prepared(
            settings=settings,
            api_key=api_key,
            model=config.model_name,
            system=config.system_prompt,
            rates=pricing.row_rates(pricing.RowPrices(*row)) if row is not None else None,
            connexion_id=connexion_id,
            user_limits=quotas.has_limits(session, ctx.identity.user_id, provider.provider_key),
        )
    if prep.rates is None:  # after the transaction: the reference catalog's first use imports it
        prep = replace(prep, rates=pricing.reference_rates(prep.settings.provider_key, prep.model))
    return prep


def _reserve(ctx: Context, prep: _Prepared) -> _Prepared:
    """Count the request against the applicable limits before calling (exit 6 if reached)."""
    reservation = quotas.reserve(
        ctx,
        provider_key=prep.settings.provider_key,
        user_limits=prep.user_limits,
        connexion_id=prep.connexion_id,
        model=prep.model,
        priced=prep.rates is not None and prep.rates.priced,
    )
    return replace(prep, reservation=reservation)


def _chat_request(prep: _Prepared, request: AssistRequest) -> ChatRequest:
    from aipilot.providers.types import ChatMessage, ChatRequest

    inline = [m.content for m in request.messages if m.role == "system"]
    system = "\n\n".join([*([prep.system] if prep.system else []), *inline]) or None
    messages: list[ChatMessage] = [
        ChatMessage(m.role, m.content)  # type: ignore[arg-type]
        for m in request.messages
        if m.role != "system"
    ]
    return ChatRequest(
        model=prep.model,
        messages=messages,
        system=system,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        json_mode=request.json_mode or request.json_schema is not None,
        json_schema=request.json_schema,
    )


def cost_of(prep: _Prepared, usage: TokenUsage) -> Decimal | None:
    """Rates × tokens; None when a rate or a token count is unknown."""
    tokens = pricing.BilledTokens(
        usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens
    )
    return pricing.cost(prep.rates, tokens)


def _tokens(usage: Usage | None) -> TokenUsage:
    if usage is None:
        return TokenUsage()
    inputs, outputs = usage.input_tokens, usage.output_tokens
    total = inputs + outputs if inputs is not None and outputs is not None else None
    return TokenUsage(
        inputs,
        outputs,
        total,
        reasoning_tokens=usage.reasoning_tokens,
        cache_read_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


def parse_answer(text: str, request: AssistRequest) -> Any:
    """In JSON mode, the answer as a parsed object, validated against the schema if any."""
    if not (request.json_mode or request.json_schema is not None):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise ModelOutputError("the model did not return valid JSON") from None
    if request.json_schema is None:
        if not isinstance(data, dict):
            raise ModelOutputError("the model returned JSON, but not an object")
        return data
    mismatch = schema_mismatch(data, request.json_schema)
    if mismatch is not None:
        raise ModelOutputError(f"the answer does not match the schema {mismatch}")
    return data


ESTIMATED_CHARS_PER_TOKEN = 4  # of a cancelled call whose provider had not counted yet


def _estimated(text: str) -> int:
    return -(-len(text) // ESTIMATED_CHARS_PER_TOKEN)


class _Call:
    """One call from its reservation to its one usage row, whatever drives its I/O.

    :func:`ask` and :class:`AssistStream` drive it blocking (the CLI,
    :class:`aipilot.Assistant`), :func:`aask` and ``AssistStream``'s ``async for`` awaiting
    (``aipilot serve``); they only move bytes and call these methods, which hold every rule
    of the call: the request sent, what a chunk adds, the outcome, tokens, cost, the quota
    settled. Exactly one of :meth:`answered`, :meth:`streamed`, :meth:`failed` or
    :meth:`cancelled` writes the row; the others are then no-ops.
    """

    def __init__(self, ctx: Context, request: AssistRequest, prep: _Prepared) -> None:
        self.ctx, self.request, self.prep = ctx, request, prep
        self.chat = _chat_request(prep, request)
        self.started = time.monotonic()
        self._parts: list[str] = []  # the text received, joined when read (not per chunk)
        self.ttft_ms: int | None = None
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.refusal: str | None = None
        self.ended = False  # the final chunk (finish reason and usage) arrived
        self._recorded = False
        self._lock = threading.Lock()
        # the awaiting drivers keep the row here and submit it (see flush); None: written
        # at once, in the caller's thread
        self.deferred: list[UsageRow] | None = None

    @classmethod
    def open(cls, ctx: Context, request: AssistRequest, prep: _Prepared | None = None) -> _Call:
        """Prepare (unless given) and reserve the quota: from here on a row is owed."""
        return cls(ctx, request, _reserve(ctx, prep or _prepare(ctx, request)))

    def write(self, row: UsageRow) -> None:
        if self.deferred is not None:
            self.deferred.append(row)
        else:
            _raise_first(write_rows(self.ctx.db, [row]))

    async def flush(self) -> None:
        """Submit the row a deferred call computed (awaiting drivers, always, at the end)."""
        rows, self.deferred = self.deferred or [], None
        for row in rows:
            shared = self.ctx.shared
            if shared is not None:
                await shared.usage.submit(row)
            else:
                _raise_first(await in_thread(write_rows, self.ctx.db, [row]))

    def client(self) -> ProviderClient:
        from aipilot.providers import client_for

        return client_for(self.prep.settings, self.prep.api_key)

    def take(self, chunk: ChatChunk) -> str:
        """Count one streamed chunk; the text to pass on."""
        if chunk.text and self.ttft_ms is None:
            self.ttft_ms = int((time.monotonic() - self.started) * 1000)
        if chunk.text:
            self._parts.append(chunk.text)
        self.finish = chunk.finish_reason or self.finish
        self.usage = chunk.usage or self.usage
        self.refusal = chunk.refusal or self.refusal
        self.ended = self.ended or chunk.finish_reason is not None
        return chunk.text

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def _claim(self) -> bool:
        """True for the one caller that writes the row."""
        with self._lock:
            if self._recorded:
                return False
            self._recorded = True
            return True

    def answered(self, response: ChatResponse) -> AssistResult:
        self._claim()
        answer = _Answer(response.text, response.finish_reason, response.refusal)
        return _finish(self, answer, _tokens(response.usage), None)

    def streamed(self) -> AssistResult:
        self._claim()
        answer = _Answer(self.text, self.finish, self.refusal)
        return _finish(self, answer, _tokens(self.usage), self.ttft_ms)

    def failed(self, err: Exception) -> None:
        """The provider refused or broke (or aipilot did: recorded as an internal error)."""
        if self._claim():
            if not isinstance(err, AipilotError):
                err = AipilotError(f"internal error ({type(err).__name__})")
            _record_failure(self, err)

    def cancelled(self, by: str = "the user") -> None:
        """The caller went away (Ctrl-C, a closed iterator, a client that hung up, a server
        shutting down): charged for what the provider did. Its final usage if it came, else
        the counts it sent so far (Anthropic, Gemini), else an estimate from the text: the
        prompt, and the answer received (~4 characters a token)."""
        if not self._claim():
            return
        usage = _tokens(self.usage)
        estimated = not self.ended and (usage.input_tokens is None or usage.output_tokens is None)
        if not self.ended:
            asked = "".join([self.chat.system or "", *(m.content for m in self.chat.messages)])
            inputs = usage.input_tokens if usage.input_tokens is not None else _estimated(asked)
            outputs = max(usage.output_tokens or 0, _estimated(self.text))
            usage = replace(
                usage, input_tokens=inputs, output_tokens=outputs, total_tokens=inputs + outputs
            )
        latency = int((time.monotonic() - self.started) * 1000)
        why = f"cancelled by {by}" + (" (tokens estimated)" if estimated else "")
        outcome = calls.CallOutcome(False, latency, "cancelled", why)
        cost = cost_of(self.prep, usage)
        _record(self, outcome, usage, cost, self.ttft_ms, answer=self.text, cancelled=True)


def ask(ctx: Context, request: AssistRequest) -> AssistResult:
    """One non-streamed chat through the active model, blocking."""
    call = _Call.open(ctx, request)
    try:
        with call.client() as client:
            response = client.chat(call.chat)
    except Exception as err:
        call.failed(err)
        raise
    except BaseException:  # Ctrl-C
        call.cancelled()
        raise
    return call.answered(response)


async def _aopen(ctx: Context, request: AssistRequest) -> _Call:
    """:meth:`_Call.open` for the awaiting drivers: a cached prepared call needs no thread
    (the generation is read once for every call that asks at the same moment), nor does a
    call without limits; the row is deferred (:meth:`_Call.flush`)."""
    shared = ctx.shared
    if shared is not None and ctx.prepared is not None:
        generation = await shared.generation.current()
        prep = _cached(ctx, request, generation)
        if prep is None:
            prep = await in_thread(_prepare_at, ctx, request, generation)
    else:
        prep = await in_thread(_prepare, ctx, request)
    if prep.user_limits or prep.connexion_id is not None:
        call = await in_thread(_Call.open, ctx, request, prep)
    else:
        call = _Call.open(ctx, request, prep)  # nothing to reserve: no database work
    call.deferred = []
    return call


async def aask(ctx: Context, request: AssistRequest) -> AssistResult:
    """:func:`ask`, awaiting the provider: no thread waits while the model thinks.
    Cancelling it (a client that hung up) closes the provider's connection and records the
    call as cancelled. The usage row is written before this returns or raises."""
    call = await _aopen(ctx, request)
    try:
        try:
            response = await call.client().achat(call.chat)
        except Exception as err:
            call.failed(err)
            raise
        except BaseException:  # cancelled: the client hung up, or the server is stopping
            call.cancelled("the client")
            raise
        return call.answered(response)
    finally:
        with anyio_shield():
            await call.flush()


@dataclass(frozen=True)
class _Answer:
    text: str
    finish_reason: str | None
    refusal: str | None = None


def _finish(call: _Call, answer: _Answer, usage: TokenUsage, ttft_ms: int | None) -> AssistResult:
    prep, request = call.prep, call.request
    latency = int((time.monotonic() - call.started) * 1000)
    cost = cost_of(prep, usage)
    text, finish_reason = answer.text, answer.finish_reason
    provider = prep.settings.provider_key
    if answer.refusal is not None:
        # the model's words stay out of error_message: they are answer text (log_content)
        outcome = calls.CallOutcome(False, latency, REFUSAL, "the model refused to answer")
        shown = answer.refusal if not text else f"{text}\n{answer.refusal}"
        _record(call, outcome, usage, cost, ttft_ms, answer=shown)
        return AssistResult(
            text,
            None,
            provider,
            prep.model,
            REFUSAL,
            usage,
            cost,
            latency,
            ttft_ms,
            refusal=answer.refusal,
        )
    try:
        data = parse_answer(text, request)
    except ModelOutputError as err:
        outcome = calls.CallOutcome(False, latency, "invalid_output", err.message)
        _record(call, outcome, usage, cost, ttft_ms, answer=text, keep_answer=True)
        raise
    _record(call, calls.CallOutcome(True, latency), usage, cost, ttft_ms, answer=text)
    return AssistResult(
        text, data, provider, prep.model, finish_reason, usage, cost, latency, ttft_ms
    )


def _record_failure(call: _Call, err: AipilotError) -> None:
    from aipilot.providers.errors import ProviderAuthError

    latency = int((time.monotonic() - call.started) * 1000)
    outcome = calls.outcome_of_error(err, latency_ms=latency, secrets=[call.prep.api_key or ""])
    auth_error = outcome.error if isinstance(err, ProviderAuthError) else None
    _record(call, outcome, TokenUsage(), None, None, auth_error=auth_error)


@dataclass(frozen=True)
class UsageRow:
    """One call's ``ai_usage_logs`` row, and what writing it settles."""

    user_id: uuid.UUID | None
    values: dict[str, object]
    reservation: quotas.Reservation
    cost: Decimal | None
    auth_error: str | None = None  # the organisation's key was refused: mark its connection


def _record(
    call: _Call,
    outcome: calls.CallOutcome,
    usage: TokenUsage,
    cost: Decimal | None,
    ttft_ms: int | None,
    *,
    answer: str | None = None,
    keep_answer: bool = False,
    cancelled: bool = False,
    auth_error: str | None = None,
) -> None:
    ctx, prep, request = call.ctx, call.prep, call.request
    asked = json.dumps([m.content for m in request.messages], ensure_ascii=False)
    values = calls.usage_values(
        ctx.identity,
        kind="chat",
        provider_key=prep.settings.provider_key,
        outcome=outcome,
        model=prep.model,
        module=request.module,
        tokens=calls.Tokens(
            usage.input_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
        ),
        cost=cost,
        ttft_ms=ttft_ms,
        cancelled=cancelled,
        request_content=asked[:MAX_LOGGED_TEXT] if request.log_content else None,
        response_content=(answer or "")[:MAX_LOGGED_TEXT]
        if (request.log_content or keep_answer)
        else None,
    )
    call.write(UsageRow(ctx.identity.user_id, values, prep.reservation, cost, auth_error))


def write_rows(db: Database, rows: list[UsageRow]) -> list[BaseException | None]:
    """Write usage rows and settle their reservations in one transaction; per row, None or
    the error that kept it out (a batch that fails is written again row by row, so one bad
    row cannot keep the others out).

    A Core connection, not an ORM session: this runs after every call. It does not wait for
    the disk (see Database.connection): a power cut may lose the last few usage rows, a
    crash of this process cannot. The provider has answered (and billed) by now: a database
    busy for longer than SQLite's timeout is waited out. On PostgreSQL each row is written
    as its own user (row-level security applies).
    """

    def write(batch: list[UsageRow]) -> None:
        by_user: dict[uuid.UUID | None, list[UsageRow]] = {}
        for row in batch:
            by_user.setdefault(row.user_id, []).append(row)
        first = batch[0].user_id
        with db.connection(user_id=first, write=True, durable=False) as conn:
            for user, rows_of_user in by_user.items():
                if user != first and db.dialect == "postgresql":
                    set_identity(conn, user)
                # one executemany per user: each statement costs the worker thread a wait
                # for the GIL that a busy event loop holds
                values = [row.values for row in rows_of_user]
                conn.execute(calls.USAGE_INSERT, values if len(values) > 1 else values[0])
                for row in rows_of_user:
                    quotas.settle(conn, row.reservation, row.cost)

    errors: list[BaseException | None]
    try:
        locks.retry_when_locked(lambda: write(rows))
        errors = [None] * len(rows)
    except Exception as err:  # also what is not translated: an IntegrityError, an overflow
        if len(rows) == 1 or not _row_refused(err):
            # the database, not a row: every row fails alike (retrying each would multiply
            # the outage, and could write twice a batch whose COMMIT did land)
            return [_refused(err)] * len(rows)
        errors = []
        for row in rows:
            try:
                locks.retry_when_locked(lambda row=row: write([row]))  # type: ignore[misc]
                errors.append(None)
            except Exception as one:
                errors.append(_refused(one))
    for row, error in zip(rows, errors, strict=True):
        if error is None and row.auth_error is not None and row.reservation.connexion_id:
            # the organisation's key was refused: its connection shows 'error' until a test
            # (the row is written: a failure here is logged, not the call's)
            try:
                with db.session(user_id=row.user_id, write=True) as session:
                    org_openai.mark_auth_failure(
                        session, row.reservation.connexion_id, row.auth_error
                    )
            except Exception as exc:
                log.warning("could not mark the organisation's connection: %s", exc)
    return errors


def _row_refused(err: BaseException) -> bool:
    """Did the database refuse a row's values (not fail as a whole)?"""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, sa.exc.IntegrityError | sa.exc.DataError | OverflowError):
            return True
        seen = seen.__cause__
    return False


def _refused(err: Exception) -> AipilotError:
    """A refused usage row as aipilot's error (a foreign key: its user was deleted meanwhile;
    a value out of range); a database error already is one."""
    if isinstance(err, AipilotError):
        return err
    refused = DatabaseError(
        f"the database refused the call's usage row ({type(err).__name__})",
        hint="see the server's log",
    )
    refused.__cause__ = err
    return refused


def _raise_first(errors: list[BaseException | None]) -> None:
    for error in errors:
        if error is not None:
            raise error


class AssistStream:
    """Text deltas of a streamed chat; ``result`` is set once the stream has ended.

    Blocking: built in the caller's thread (the call prepared: configuration, key, prices),
    the quota reserved by :meth:`open` (or the first iteration), then iterated with ``for``.
    Awaiting (``aipilot serve``): ``stream = await AssistStream.aopen(ctx, request)``, then
    ``async for``, then always ``await stream.aclose()``. A stream that breaks midway keeps
    what arrived in ``text`` and logs the failure; Ctrl-C, an iterator closed early or
    :meth:`close` log the call as cancelled, with what it cost.
    """

    def __init__(self, ctx: Context, request: AssistRequest, *, call: _Call | None = None) -> None:
        self._ctx, self._request = ctx, request
        self._prep = call.prep if call is not None else _prepare(ctx, request)
        self._call = call
        self.result: AssistResult | None = None

    @classmethod
    async def aopen(cls, ctx: Context, request: AssistRequest) -> AssistStream:
        """Prepared and its quota reserved (a usage row is owed from here on)."""
        return cls(ctx, request, call=await _aopen(ctx, request))

    @property
    def provider(self) -> str:
        return self._prep.settings.provider_key

    @property
    def model(self) -> str:
        return self._prep.model

    @property
    def text(self) -> str:
        return self._call.text if self._call is not None else ""

    def open(self) -> None:
        """Reserve the quota (exit 6 when a limit is reached): a usage row is now owed."""
        if self._call is None:
            self._call = _Call.open(self._ctx, self._request, self._prep)

    def close(self, by: str = "the user") -> None:
        """Log the call as cancelled unless it already ended (idempotent)."""
        if self._call is not None:
            self._call.cancelled(by)

    async def aclose(self, by: str = "the client") -> None:
        """:meth:`close` for a stream opened with :meth:`aopen`: the row is then written."""
        if self._call is not None:
            self._call.cancelled(by)
            with anyio_shield():
                await self._call.flush()

    def __iter__(self) -> Iterator[str]:
        self.open()
        call = self._opened()
        try:
            with call.client() as client:
                for chunk in client.chat_stream(call.chat):
                    if call.take(chunk):
                        yield chunk.text
        except Exception as err:
            call.failed(err)
            raise
        except BaseException:  # Ctrl-C, or the consumer closed the iterator early
            call.cancelled()
            raise
        self.result = call.streamed()

    async def __aiter__(self) -> AsyncGenerator[str, None]:
        """The text deltas; the row is written before the iteration ends, however it ends."""
        call = self._opened()
        try:
            try:
                async with aclosing(call.client().achat_stream(call.chat)) as chunks:
                    async for chunk in chunks:
                        if call.take(chunk):
                            yield chunk.text
            except Exception as err:
                call.failed(err)
                raise
            except BaseException:  # the client hung up, or the server is shutting down
                call.cancelled("the client")
                raise
            self.result = call.streamed()
        finally:
            with anyio_shield():
                await call.flush()

    def _opened(self) -> _Call:
        if self._call is None:
            raise RuntimeError("AssistStream.aopen() must run before async iteration")
        return self._call


def anyio_shield() -> Any:
    """A cancel scope shielded from cancellation (anyio imported only by async callers)."""
    import anyio

    return anyio.CancelScope(shield=True)


def user_message(text: str) -> tuple[Message, ...]:
    return (Message("user", text),)


def messages_from(items: Sequence[Mapping[str, Any]]) -> tuple[Message, ...]:
    """The seed's ``messages`` list ([{"role": ..., "content": ...}]) as Messages."""
    out = []
    for item in items:
        role, content = item.get("role"), item.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise UsageError("each message needs a string 'role' and 'content'")
        out.append(Message(role, content))
    return tuple(out)
