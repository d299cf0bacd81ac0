"""What a replay fixture says, read independently of aipilot's clients (for tests/services/assist/test_replay_calls.py).

Each function reads the fixture's own body (tests/replay/<provider>/<scenario>.http) and
applies the provider's documented billing rules, so that a test compares aipilot's numbers
with the provider's, not with aipilot's own arithmetic:

- OpenAI-style usage: input is ``prompt_tokens`` (cached tokens included); output is
  ``completion_tokens``, plus ``completion_tokens_details.reasoning_tokens`` when the body's
  ``total_tokens`` says the reasoning was counted beside the completion (xAI).
- Anthropic: ``input_tokens`` is only the uncached part; cache reads and writes are input too.
- Gemini: ``thoughtsTokenCount`` is billed as output beside ``candidatesTokenCount``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.providers_catalog import sql
from tests.replay_server import ReplayServer, fixture_bytes, sse_events

# fixture directory → (seeded provider key, a seeded model with catalog prices)
PROVIDERS: dict[str, tuple[str, str]] = {
    "openai": ("openai", "gpt-4o-mini"),
    "anthropic": ("anthropic", "claude-sonnet-4-0"),
    "gemini": ("google", "gemini-2.5-flash"),
    "mistral": ("mistral", "mistral-small-latest"),
    "xai": ("xai", "grok-3-mini"),
    "deepseek": ("deepseek", "deepseek-reasoner"),
    "openrouter": ("openrouter", "openai/gpt-4o-mini"),
}
OPENAI_STYLE = frozenset({"openai", "mistral", "xai", "deepseek", "openrouter"})


def body(provider: str, scenario: str) -> Any:
    return json.loads(fixture_bytes(provider, scenario))


def events(provider: str, scenario: str) -> list[Any]:
    """The JSON of every ``data:`` line of an SSE fixture (comments and [DONE] left out)."""
    found = []
    for event in sse_events(fixture_bytes(provider, scenario)):
        for line in event.decode().splitlines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                found.append(json.loads(line[5:]))
    return found


@dataclass(frozen=True)
class Billed:
    input: int
    output: int
    reasoning: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None

    @property
    def total(self) -> int:
        return self.input + self.output


def _openai_usage(u: dict[str, Any]) -> Billed:
    prompt, completion = u["prompt_tokens"], u["completion_tokens"]
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens")
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens")
    outside = reasoning and u.get("total_tokens") == prompt + completion + reasoning
    return Billed(prompt, completion + (reasoning if outside else 0), reasoning, cached)


def _anthropic_usage(u: dict[str, Any]) -> Billed:
    read, write = u.get("cache_read_input_tokens") or 0, u.get("cache_creation_input_tokens") or 0
    return Billed(u["input_tokens"] + read + write, u["output_tokens"], None, read, write)


def _gemini_usage(u: dict[str, Any]) -> Billed:
    thoughts = u.get("thoughtsTokenCount")
    return Billed(
        u["promptTokenCount"], (u.get("candidatesTokenCount") or 0) + (thoughts or 0), thoughts
    )


def billed(provider: str, scenario: str) -> Billed:
    """The tokens the provider bills for this fixture (the last usage of a stream)."""
    if scenario.endswith("_stream"):
        chunks = events(provider, scenario)
        if provider == "anthropic":
            start = next(c["message"]["usage"] for c in chunks if c["type"] == "message_start")
            last = [c["usage"] for c in chunks if c["type"] == "message_delta"][-1]
            return _anthropic_usage({**start, **last})
        key = "usageMetadata" if provider == "gemini" else "usage"
        usage = [c[key] for c in chunks if c.get(key)][-1]
        return _gemini_usage(usage) if provider == "gemini" else _openai_usage(usage)
    doc = body(provider, scenario)
    if provider == "anthropic":
        return _anthropic_usage(doc["usage"])
    if provider == "gemini":
        return _gemini_usage(doc["usageMetadata"])
    return _openai_usage(doc["usage"])


def _text_parts(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p["text"] for p in content or [] if p.get("type") == "text")


def text(provider: str, scenario: str) -> str:
    """The answer's text (reasoning/thinking left out), streamed or not."""
    if scenario.endswith("_stream"):
        chunks = events(provider, scenario)
        if provider == "anthropic":
            return "".join(
                c["delta"].get("text", "")
                for c in chunks
                if c["type"] == "content_block_delta" and c["delta"]["type"] == "text_delta"
            )
        if provider == "gemini":
            return "".join(
                p.get("text", "")
                for c in chunks
                for cand in c.get("candidates", [])
                for p in cand["content"].get("parts", [])
                if not p.get("thought")
            )
        return "".join(
            ch["delta"].get("content") or "" for c in chunks for ch in c.get("choices", [])
        )
    doc = body(provider, scenario)
    if provider == "anthropic":
        return "".join(b["text"] for b in doc["content"] if b["type"] == "text")
    if provider == "gemini":
        parts = doc["candidates"][0]["content"].get("parts", [])
        return "".join(p["text"] for p in parts if not p.get("thought"))
    return _text_parts(doc["choices"][0]["message"]["content"])


@dataclass(frozen=True)
class Prices:
    input: Decimal
    output: Decimal
    cache_read: Decimal | None
    cache_write: Decimal | None

    def cost(self, tokens: Billed) -> Decimal:
        """USD per million tokens × tokens; cache parts at their own rate, else the input's."""
        read, write = tokens.cache_read or 0, tokens.cache_write or 0
        total = Decimal(tokens.input - read - write) * self.input
        total += Decimal(read) * (self.cache_read if self.cache_read is not None else self.input)
        total += Decimal(write) * (self.cache_write if self.cache_write is not None else self.input)
        total += Decimal(tokens.output) * self.output
        return (total / Decimal(1_000_000)).quantize(Decimal("0.000001"))


def prices(database_url: str, provider_key: str, model: str) -> Prices:
    """The catalog row's prices, as the database holds them."""
    (row,) = sql(
        database_url,
        "SELECT m.input_price_per_mtok, m.output_price_per_mtok, m.cache_read_price_per_mtok, "
        "m.cache_write_price_per_mtok FROM ai_models m JOIN ai_providers p ON p.id = m.provider_id "
        "WHERE p.provider_key = :p AND m.model_key = :m",
        p=provider_key,
        m=model,
    )
    dec = [None if v is None else Decimal(str(v)) for v in row]
    assert dec[0] is not None and dec[1] is not None, f"{provider_key}/{model} has no price"
    return Prices(dec[0], dec[1], dec[2], dec[3])


def point(replay: ReplayServer, database_url: str, provider: str, scenario: str) -> None:
    """The seeded provider's base URL → this fixture (as an admin would edit the catalog)."""
    sql(
        database_url,
        "UPDATE ai_providers SET base_url = :u WHERE provider_key = :p",
        u=replay.base_url(provider, scenario),
        p=PROVIDERS[provider][0],
    )


def usage_rows(database_url: str) -> list[dict[str, Any]]:
    rows = sql(database_url, "SELECT * FROM ai_usage_logs WHERE kind = 'chat' ORDER BY created_at")
    return [dict(r._mapping) for r in rows]
