"""Prices of a call: the catalog row's rates, else a maintained reference catalog's.

Rates are USD per million tokens. ``input_tokens`` counts every input token, cache reads and
writes included; ``output_tokens`` counts every output token, reasoning ("thinking")
included, because that is how every provider bills them. Cache reads and writes are priced
at their own rates when the source has them, else at the input rate.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol

MILLION = Decimal(1_000_000)
CACHE_FORMAT = 1  # bumped when what a cached lookup means changes (mapping, fields)
CENT_FRACTION = Decimal("0.000001")


@dataclass(frozen=True)
class Rates:
    """The rates a call is priced at, and where they come from."""

    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    source: str = "catalog"  # "catalog", a provider's list, or the reference catalog
    as_of: str | None = None  # the date of the numbers, where known

    @property
    def priced(self) -> bool:
        return self.input is not None and self.output is not None


@dataclass(frozen=True)
class BilledTokens:
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


def cost(rates: Rates | None, tokens: BilledTokens) -> Decimal | None:
    """Rates × tokens, to the millionth of a dollar; None when a rate or a count is unknown."""
    if rates is None or rates.input is None or rates.output is None:
        return None
    if tokens.input_tokens is None or tokens.output_tokens is None:
        return None
    read = tokens.cache_read_tokens or 0
    write = tokens.cache_write_tokens or 0
    fresh = max(tokens.input_tokens - read - write, 0)
    total = Decimal(fresh) * rates.input
    total += Decimal(read) * (rates.cache_read if rates.cache_read is not None else rates.input)
    total += Decimal(write) * (rates.cache_write if rates.cache_write is not None else rates.input)
    total += Decimal(tokens.output_tokens) * rates.output
    return (total / MILLION).quantize(CENT_FRACTION)


# ---------------------------------------------------------------- where the rates come from
#
# The reference catalog is the PyPI package ``genai-prices`` (pydantic's price catalog),
# read from the data bundled in the installed package: aipilot never calls its
# ``UpdatePrices`` (which would fetch), so pricing needs no network. Importing it costs
# ~0.2 s (pydantic, httpx2, a 1.6 MB data module), so it is imported inside
# ``reference_rates`` only, by code that prices something (bench/pricing_import.py).

REFERENCE_PACKAGE = "genai-prices"

# aipilot's seeded provider keys → genai-prices provider ids (None: no reference there;
# Ollama runs models locally, nobody bills it). Other keys are looked up as-is, exactly.
REFERENCE_PROVIDERS: dict[str, str | None] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",  # aipilot's "google" is the Gemini API
    "mistral": "mistral",
    "xai": "x-ai",
    "deepseek": "deepseek",
    "openrouter": "openrouter",
    "ollama": None,
}

_CHECKED = re.compile(
    r"\b(?:checked|verified|as of|updated|retrieved)(?: on)? (\d{4}-\d{2}-\d{2})\b", re.I
)


class PricedRow(Protocol):
    """The price columns of a catalog row (``ai_models``), or anything that carries them."""

    @property
    def input_price_per_mtok(self) -> Decimal | None: ...
    @property
    def output_price_per_mtok(self) -> Decimal | None: ...
    @property
    def cache_read_price_per_mtok(self) -> Decimal | None: ...
    @property
    def cache_write_price_per_mtok(self) -> Decimal | None: ...
    @property
    def price_source(self) -> str | None: ...


@dataclass(frozen=True)
class RowPrices:
    """A :class:`PricedRow` for code that read the columns without the ORM."""

    input_price_per_mtok: Decimal | None = None
    output_price_per_mtok: Decimal | None = None
    cache_read_price_per_mtok: Decimal | None = None
    cache_write_price_per_mtok: Decimal | None = None
    price_source: str | None = None


def row_rates(row: PricedRow | None) -> Rates | None:
    """The catalog row's own rates when it has an input and an output price, else None.

    ``price_source`` NULL means the prices were set by hand or by the seed: "catalog".
    A source ending in a date ("openrouter model list 2026-12-02") gives ``as_of``.
    """
    if row is None or row.input_price_per_mtok is None or row.output_price_per_mtok is None:
        return None
    source = row.price_source or "catalog"
    dated = re.search(r"(\d{4}-\d{2}-\d{2})$", source)
    return Rates(
        input=row.input_price_per_mtok,
        output=row.output_price_per_mtok,
        cache_read=row.cache_read_price_per_mtok,
        cache_write=row.cache_write_price_per_mtok,
        source=source,
        as_of=dated.group(1) if dated else None,
    )


def rates_for(
    row: PricedRow | None, provider_key: str, model: str, *, reference: bool = True
) -> Rates | None:
    """The rates a call to ``provider_key``/``model`` is priced at, and their source.

    1. The catalog row, when it has both an input and an output price: it always wins,
       with its own cache rates (where it has none, cache tokens cost the input rate, as
       :func:`cost` says — never less than the provider bills).
    2. Else the reference catalog's rates for the model (:func:`reference_rates`), all
       four from it: a cache rate left on an unpriced row is not mixed in, because a
       rate and its source go together.
    3. Else None: the cost is unknown (stored as NULL, never 0).

    ``reference=False`` stops at 1 (no import of the reference catalog).
    """
    own = row_rates(row)
    if own is not None:
        return own
    return reference_rates(provider_key, model) if reference else None


def reference_provider(provider_key: str) -> str | None:
    """The genai-prices provider id for an aipilot provider key (see REFERENCE_PROVIDERS)."""
    key = provider_key.strip().lower()
    return REFERENCE_PROVIDERS.get(key, key)


@functools.cache
def reference_rates(provider_key: str, model: str) -> Rates | None:
    """genai-prices' standard rates for ``model`` at ``provider_key``, or None.

    - Provider: aipilot's seeded keys map to genai-prices ids (REFERENCE_PROVIDERS); any
      other key must equal a genai-prices provider id exactly (no fuzzy match: a custom
      "anthropic-proxy" is not Anthropic). The model is matched by genai-prices' own
      rules (aliases, dated snapshots, its fallbacks, e.g. OpenRouter → the vendor).
    - Prices: those in effect today (genai-prices dates its price changes), standard
      service tier, no batch discount. Tiered prices (Gemini's and Claude's over-200k-token
      prompts) give their base tier: a call past the threshold is under-counted by the
      difference. ``cache_write`` is the default (5-minute) cache write; the 1-hour one
      is not modelled. Input or output price missing (embeddings, audio): None.
    - ``source`` is "genai-prices <installed version>"; ``as_of`` is the newest review
      date written in the bundled data's price comments ("checked 2026-11-03"), no later
      than today: the data is at least that recent. The package carries no data
      timestamp of its own (its snapshot's ``timestamp`` is the import time, its wheel's
      file dates are fixed), and its release date is not known offline.
    - Never raises: a missing, broken or unexpected package gives None.
    - Cached per (provider, model) for the life of the process, and on disk for the day
      (:class:`_DiskCache`): a later process prices the same rows without importing it.
      A long-running process (``aipilot serve``) keeps what it looked up until it
      restarts: restart it after upgrading genai-prices, as after any upgrade.
    """
    target = reference_provider(provider_key)
    if target is None or not model.strip():
        return None
    key = f"{target}/{model.strip()}"
    cache = _disk_cache()
    if cache is not None and key in cache.entries:
        try:
            return _from_plain(cache.entries[key])
        except ValueError:
            pass  # a damaged entry: looked up again, and written anew
    try:
        rates = _lookup(target, model.strip())
    except Exception:  # a reference is a convenience, never a failure
        return None
    if cache is not None:
        cache.remember(key, rates)
    return rates


# ---------------------------------------------------------------- the lookups, kept on disk
@dataclass
class _DiskCache:
    """The reference lookups already made today with this genai-prices version, found and
    not found alike, so that a read command (``models list``) does not import the package
    (~0.2 s) to price the same rows again. Public prices only; never required: an
    unreadable or unwritable cache is ignored."""

    path: Path
    entries: dict[str, dict[str, str | None] | None]

    def remember(self, key: str, rates: Rates | None) -> None:
        self.entries[key] = None if rates is None else _to_plain(rates)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            # owner-only, as every file aipilot writes (docs/security.md), though it holds
            # public prices only
            handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"entries": self.entries}, out)
            os.replace(partial, self.path)
        except OSError:
            pass


@functools.cache
def _disk_cache() -> _DiskCache | None:
    version = _installed_version()
    if version is None:
        return None
    try:
        from platformdirs import user_cache_dir

        folder = Path(user_cache_dir("aipilot"))
    except Exception:
        return None
    path = folder / f"reference-prices-{CACHE_FORMAT}-{version}-{date.today().isoformat()}.json"
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["entries"]
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError, KeyError, TypeError):
        entries = {}
    return _DiskCache(path, entries)


def _installed_version() -> str | None:
    """The installed genai-prices version, read from its metadata folder without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(REFERENCE_PACKAGE.replace("-", "_"))
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    site = Path(spec.origin).resolve().parent.parent
    found = list(site.glob("genai_prices-*.dist-info"))
    if len(found) != 1:  # none, or leftovers of several versions: no cache rather than a guess
        return None
    return found[0].name.removeprefix("genai_prices-").removesuffix(".dist-info")


def _to_plain(rates: Rates) -> dict[str, str | None]:
    money = {
        name: None if value is None else str(value)
        for name, value in (
            ("input", rates.input),
            ("output", rates.output),
            ("cache_read", rates.cache_read),
            ("cache_write", rates.cache_write),
        )
    }
    return {**money, "source": rates.source, "as_of": rates.as_of}


def _from_plain(plain: dict[str, str | None] | None) -> Rates | None:
    """A cached entry back as Rates; a value ``_base`` would refuse (NaN, negative, not a
    number) raises ValueError: the caller then looks the model up again."""
    if plain is None:
        return None
    try:

        def amount(name: str) -> Decimal | None:
            value = plain.get(name)
            if value is None:
                return None
            checked = _base(Decimal(str(value)))
            if checked is None:
                raise ValueError(f"cached {name} price {value!r}")
            return checked

        as_of = plain.get("as_of")
        rates = Rates(
            input=amount("input"),
            output=amount("output"),
            cache_read=amount("cache_read"),
            cache_write=amount("cache_write"),
            source=str(plain.get("source") or REFERENCE_PACKAGE),
            as_of=as_of if isinstance(as_of, str) else None,
        )
    except (ArithmeticError, AttributeError, TypeError) as exc:  # not an entry this wrote
        raise ValueError("a damaged cache entry") from exc
    if not rates.priced:
        raise ValueError("a cached entry without an input and an output price")
    return rates


def _lookup(provider_id: str, model: str) -> Rates | None:
    from genai_prices.data import providers

    provider = next((p for p in providers if p.id == provider_id), None)
    if provider is None:
        return None
    info = provider.find_model(model, all_providers=providers)
    if info is None:
        return None
    prices = info.get_prices(datetime.now(UTC))
    rates = Rates(
        input=_base(getattr(prices, "input_mtok", None)),
        output=_base(getattr(prices, "output_mtok", None)),
        cache_read=_base(getattr(prices, "cache_read_mtok", None)),
        cache_write=_base(getattr(prices, "cache_write_mtok", None)),
        source=reference_source(),
        as_of=_reference_date(),
    )
    return rates if rates.priced else None


def _base(price: object) -> Decimal | None:
    """A flat price, or a tiered price's base tier; anything else is unknown."""
    value = getattr(price, "base", price)
    if isinstance(value, Decimal) and value.is_finite() and value >= 0:
        return value
    return None


@functools.cache
def reference_source() -> str:
    from importlib.metadata import version

    return f"{REFERENCE_PACKAGE} {version(REFERENCE_PACKAGE)}"


@functools.cache
def _reference_date() -> str | None:
    from genai_prices.data import providers

    today = date.today().isoformat()
    found: set[str] = set()
    for provider in providers:
        comments = [provider.price_comments] + [m.price_comments for m in provider.models]
        for text in comments:
            if text:
                found.update(d for d in _CHECKED.findall(text) if d <= today)
    return max(found, default=None)


def describe(rates: Rates | None) -> str:
    """A one-line label: "catalog", "openrouter model list 2026-12-02",
    "genai-prices 0.2.3 (data as of 2026-11-03)", or "no price"."""
    if rates is None:
        return "no price"
    if rates.as_of and rates.as_of not in rates.source:
        return f"{rates.source} (data as of {rates.as_of})"
    return rates.source
