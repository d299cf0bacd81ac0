"""The configuration test (the seed's ``ai-config-test``): key, model, one round trip.

Three checks against the active model's provider, each timed: the key is accepted (the
provider's cheapest authenticated call), the model is reachable with it, and a one-line
chat comes back. Later checks are skipped when an earlier one fails. The provider is called
outside any transaction; the result is then recorded in ``ai_usage_logs`` (kind
``config_test``) and on the config row (``last_test_*``) in one write transaction.

The key is the one a call would use (:func:`aipilot.services.keys.resolve.resolve_key`): the
user's own, else the organisation's OpenAI connection, with its headers and allowed models.
With the organisation's key the test is a call made with it: one request of the
organisation's daily quota is reserved before (exit 6 when reached), the round trip's cost
is settled after, and a 401 marks the connection ``error``, as for ``ask``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import sqlalchemy as sa

from aipilot.db.models import Model, ProviderConfig
from aipilot.errors import AipilotError, NotConfiguredError, VaultError
from aipilot.services.accounting import calls, quotas
from aipilot.services.catalog import pricing
from aipilot.services.catalog.catalog import get_provider, settings_for
from aipilot.services.config import activation, views
from aipilot.services.keys.resolve import resolve_key
from aipilot.services.orgs import org_openai
from aipilot.services.runtime import Context
from aipilot.services.validate import DEFAULT_MODULE, module_name

if TYPE_CHECKING:
    from aipilot.providers import ProviderClient, ProviderSettings

PING_PROMPT = "Reply with: pong"
PING_MAX_TOKENS = 16
CHECK_NAMES = ("api_key", "model", "round_trip")


@dataclass(frozen=True)
class Check:
    name: str  # "api_key" | "model" | "round_trip"
    ok: bool
    latency_ms: int | None  # None: skipped
    error: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class ConfigTestResult:
    module: str
    provider: str
    model: str
    checks: tuple[Check, ...]
    reply: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def _ok(self, name: str) -> bool:
        return any(c.name == name and c.ok for c in self.checks)

    @property
    def api_key_ok(self) -> bool:
        return self._ok("api_key")

    @property
    def model_accessible(self) -> bool:
        return self._ok("model")

    @property
    def round_trip_ok(self) -> bool:
        return self._ok("round_trip")

    @property
    def success(self) -> bool:
        return all(c.ok for c in self.checks) and len(self.checks) == len(CHECK_NAMES)

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.checks if not c.ok and c.latency_ms is not None), None)

    @property
    def reason(self) -> str | None:
        failed = self.failed
        if failed is None:
            return None
        return f"{failed.name.replace('_', ' ')}: {failed.error}"


@dataclass(frozen=True)
class _Plan:
    config_id: uuid.UUID
    module: str
    model: str
    settings: ProviderSettings
    secret: str | None = field(repr=False)
    key_error: Check | None  # the stored key could not be opened
    connexion_id: uuid.UUID | None = None  # the organisation's key is used
    prices: pricing.RowPrices | None = None  # the model's catalog row (organisation's key)


def run(ctx: Context, *, module: str = DEFAULT_MODULE) -> ConfigTestResult:
    """Test the active model of ``module``; NotConfiguredError when there is none or no key."""
    plan = _plan(ctx, module_name(module))
    reservation, rates, auth_error = quotas.Reservation(), None, None
    if plan.key_error is not None:
        checks: tuple[Check, ...] = (plan.key_error, *_skipped(1))
        result = ConfigTestResult(plan.module, plan.settings.provider_key, plan.model, checks)
    else:
        if plan.connexion_id is not None:  # a call with the organisation's key: its quota
            provider = plan.settings.provider_key
            rates = pricing.rates_for(plan.prices, provider, plan.model)
            reservation = quotas.reserve(
                ctx,
                provider_key=provider,
                user_limits=False,
                connexion_id=plan.connexion_id,
                model=plan.model,
                priced=rates is not None and rates.priced,
            )
        result, auth_error = _probe(plan)
    _record(ctx, plan, result, reservation, rates, auth_error)
    return result


def _plan(ctx: Context, module: str) -> _Plan:
    identity = ctx.identity
    with ctx.db.session(user_id=identity.user_id) as session:
        config = activation.active_config(session, identity, module)
        if config is None:
            raise views.no_active_model(module)
        provider = get_provider(session, config.provider_name, require_active=False)
        if not provider.is_active:
            raise NotConfiguredError(
                f"the active model's provider {provider.provider_key!r} is disabled",
                hint="activate another model, or ask an admin to run "
                f"`aipilot providers enable {provider.provider_key}`",
            )
        settings = settings_for(provider)
        plan = _Plan(config.id, module, config.model_name, settings, None, None)
        if settings.auth_method == "none":
            return plan
        try:
            key = resolve_key(session, identity, provider, config.model_name)
        except VaultError as err:  # a stored key that cannot be opened: a failed check
            failed = Check("api_key", False, 0, err.message, "needs re-entry")
            return replace(plan, key_error=failed)
        plan = replace(plan, settings=key.settings, secret=key.secret)
        if key.connexion_id is None:
            return plan
        prices = session.execute(
            sa.select(
                Model.input_price_per_mtok,
                Model.output_price_per_mtok,
                Model.cache_read_price_per_mtok,
                Model.cache_write_price_per_mtok,
                Model.price_source,
            ).where(Model.provider_id == provider.id, Model.model_key == config.model_name)
        ).first()
        return replace(
            plan,
            connexion_id=key.connexion_id,
            prices=pricing.RowPrices(*prices) if prices is not None else None,
        )


def _skipped(done: int) -> list[Check]:
    return [Check(name, False, None, "skipped") for name in CHECK_NAMES[done:]]


def _timed(
    action: Callable[[], object], name: str, secret: str | None
) -> tuple[Check, object | None]:
    started = time.monotonic()
    try:
        value = action()
    except AipilotError as err:
        ms = int((time.monotonic() - started) * 1000)
        out = calls.outcome_of_error(err, latency_ms=ms, secrets=[secret] if secret else [])
        return Check(name, False, ms, out.error, out.error_code), err
    return Check(name, True, int((time.monotonic() - started) * 1000)), value


def _probe(plan: _Plan) -> tuple[ConfigTestResult, str | None]:
    """The three checks, and the error when the provider refused the key (a 401)."""
    from aipilot.providers import ChatMessage, ChatRequest, ChatResponse, RetryPolicy, client_for
    from aipilot.providers.errors import ProviderAuthError

    request = ChatRequest(
        plan.model, [ChatMessage("user", PING_PROMPT)], max_tokens=PING_MAX_TOKENS
    )
    checks: list[Check] = []
    reply: ChatResponse | None = None
    auth_error: str | None = None
    retry = RetryPolicy(max_attempts=2, max_total_s=15.0)
    with client_for(plan.settings, plan.secret, retry=retry) as client:
        steps: list[tuple[str, Callable[[ProviderClient], object]]] = [
            ("api_key", lambda c: c.check_key()),
            ("model", lambda c: c.check_model(plan.model)),
            ("round_trip", lambda c: c.chat(request)),
        ]
        for name, step in steps:
            check, value = _timed(partial(step, client), name, plan.secret)
            checks.append(check)
            if isinstance(value, ProviderAuthError):
                auth_error = check.error
            if not check.ok:
                checks += _skipped(len(checks))
                break
            if isinstance(value, ChatResponse):
                reply = value
    result = ConfigTestResult(
        module=plan.module,
        provider=plan.settings.provider_key,
        model=plan.model,
        checks=tuple(checks),
        reply=reply.text if reply else None,
        input_tokens=reply.usage.input_tokens if reply else None,
        output_tokens=reply.usage.output_tokens if reply else None,
    )
    return result, auth_error


def _record(
    ctx: Context,
    plan: _Plan,
    result: ConfigTestResult,
    reservation: quotas.Reservation,
    rates: pricing.Rates | None,
    auth_error: str | None,
) -> None:
    latency = sum(c.latency_ms or 0 for c in result.checks)
    failed = result.failed
    outcome = calls.CallOutcome(
        result.success,
        latency,
        failed.error_code if failed else None,
        result.reason,
    )
    # the round trip's cost, on the usage row and on the organisation's counter alike
    cost = pricing.cost(rates, pricing.BilledTokens(result.input_tokens, result.output_tokens))
    with ctx.db.session(user_id=ctx.identity.user_id, write=True) as session:
        calls.record(
            session,
            ctx.identity,
            kind="config_test",
            provider_key=result.provider,
            model=result.model,
            module=result.module,
            outcome=outcome,
            tokens=calls.Tokens(result.input_tokens, result.output_tokens),
            cost=cost,
        )
        config = session.get(ProviderConfig, plan.config_id)
        if config is not None:
            now = datetime.now(UTC)
            config.last_test_at, config.updated_at = now, now
            config.last_test_ok, config.last_test_error = result.success, outcome.error
        quotas.settle(session, reservation, cost)
        if auth_error is not None and plan.connexion_id is not None:
            # the organisation's key was refused: its connection shows 'error' until a test
            org_openai.mark_auth_failure(session, plan.connexion_id, auth_error)
