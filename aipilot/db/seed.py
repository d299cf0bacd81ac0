"""The provider catalog and starter model catalog that ``aipilot init`` seeds.

Endpoints are data (docs/design.md §5): base URL, wire protocol, auth method, header
name, extra headers and the key-test endpoint, from docs/providers.md §1. Prices are USD
per million tokens as published when this catalog was written; admins update them with
``aipilot models`` commands. Seeding only inserts what is missing: rows an admin edited are
never overwritten, so running ``aipilot init`` twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class ProviderSeed:
    provider_key: str
    provider_name: str
    base_url: str
    api_kind: str
    api_auth_method: str
    test_endpoint: str
    api_auth_header: str | None = None
    api_headers: dict[str, str] = field(default_factory=dict)
    is_active: bool = True


@dataclass(frozen=True)
class ModelSeed:
    provider_key: str
    model_key: str
    model_name: str
    context_window: int | None
    input_price: Decimal | None
    output_price: Decimal | None


PROVIDERS: tuple[ProviderSeed, ...] = (
    ProviderSeed("openai", "OpenAI", "https://api.openai.com/v1", "openai", "bearer", "/models"),
    ProviderSeed(
        "anthropic",
        "Anthropic",
        "https://api.anthropic.com",
        "anthropic",
        "api_key_header",
        "/v1/models?limit=1",
        api_auth_header="x-api-key",
        api_headers={"anthropic-version": "2023-06-01"},
    ),
    ProviderSeed(
        "google",
        "Google Gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        "gemini",
        "api_key_header",
        "/models?pageSize=1",
        api_auth_header="x-goog-api-key",
    ),
    ProviderSeed(
        "mistral", "Mistral AI", "https://api.mistral.ai/v1", "openai", "bearer", "/models"
    ),
    ProviderSeed("xai", "xAI Grok", "https://api.x.ai/v1", "openai", "bearer", "/models"),
    ProviderSeed("deepseek", "DeepSeek", "https://api.deepseek.com", "openai", "bearer", "/models"),
    # OpenRouter's model list is public, so only /key proves a key works.
    ProviderSeed(
        "openrouter", "OpenRouter", "https://openrouter.ai/api/v1", "openai", "bearer", "/key"
    ),
    ProviderSeed(
        "ollama",
        "Ollama (local, OpenAI-compatible)",
        "http://localhost:11434/v1",
        "openai",
        "none",
        "/models",
        is_active=False,
    ),
)


def _m(p: str, key: str, name: str, ctx: int | None, i: str | None, o: str | None) -> ModelSeed:
    return ModelSeed(p, key, name, ctx, Decimal(i) if i else None, Decimal(o) if o else None)


MODELS: tuple[ModelSeed, ...] = (
    _m("openai", "gpt-4o-mini", "GPT-4o mini", 128000, "0.15", "0.60"),
    _m("openai", "gpt-4o", "GPT-4o", 128000, "2.50", "10.00"),
    _m("openai", "gpt-4.1-mini", "GPT-4.1 mini", 1047576, "0.40", "1.60"),
    _m("anthropic", "claude-3-5-haiku-latest", "Claude 3.5 Haiku", 200000, "0.80", "4.00"),
    _m("anthropic", "claude-sonnet-4-0", "Claude Sonnet 4", 200000, "3.00", "15.00"),
    _m("google", "gemini-2.5-flash", "Gemini 2.5 Flash", 1048576, "0.30", "2.50"),
    _m("google", "gemini-2.5-pro", "Gemini 2.5 Pro", 1048576, "1.25", "10.00"),
    _m("mistral", "mistral-small-latest", "Mistral Small", 128000, "0.10", "0.30"),
    _m("mistral", "mistral-large-latest", "Mistral Large", 128000, "2.00", "6.00"),
    _m("xai", "grok-3-mini", "Grok 3 mini", 131072, "0.30", "0.50"),
    _m("xai", "grok-3", "Grok 3", 131072, "3.00", "15.00"),
    _m("deepseek", "deepseek-chat", "DeepSeek Chat", 65536, "0.27", "1.10"),
    _m("deepseek", "deepseek-reasoner", "DeepSeek Reasoner", 65536, "0.55", "2.19"),
    _m("openrouter", "openai/gpt-4o-mini", "GPT-4o mini (via OpenRouter)", 128000, "0.15", "0.60"),
    _m("ollama", "llama3.2", "Llama 3.2 (local)", 131072, None, None),
)
