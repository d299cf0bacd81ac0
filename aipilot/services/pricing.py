"""Prices of a call: the catalog row's rates, else a maintained reference catalog's.

Rates are USD per million tokens. ``input_tokens`` counts every input token, cache reads and
writes included; ``output_tokens`` counts every output token, reasoning ("thinking")
included, because that is how every provider bills them. Cache reads and writes are priced
at their own rates when the source has them, else at the input rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MILLION = Decimal(1_000_000)
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
