"""Pointing the seeded provider catalog at the fake provider server, as a user would."""

from __future__ import annotations

import sqlalchemy as sa

from aipilot.config import normalise_database_url
from tests.fakeprovider import FakeProvider

# seeded provider_key → the fake's route serving its wire protocol
FAKE_ROUTES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gemini",
    "mistral": "mistral",
    "xai": "xai",
    "deepseek": "deepseek",
    "openrouter": "openrouter",
}


def point_catalog_at(fake: FakeProvider, database_url: str) -> dict[str, str]:
    """Set every seeded provider's base_url to the fake; returns provider → base URL."""
    urls: dict[str, str] = {}
    for provider, route in FAKE_ROUTES.items():
        if route in ("openai", "anthropic", "gemini"):
            urls[provider] = fake.base_url(route)
        else:
            urls[provider] = fake.add_provider(route)
    engine = sa.create_engine(normalise_database_url(database_url))
    with engine.begin() as conn:
        for provider, url in urls.items():
            conn.execute(
                sa.text("UPDATE ai_providers SET base_url = :u WHERE provider_key = :p"),
                {"u": url, "p": provider},
            )
    engine.dispose()
    return urls


def sql(database_url: str, statement: str, **params: object) -> list[sa.Row[tuple[object, ...]]]:
    """Run one statement as the owner and return its rows (for assertions)."""
    engine = sa.create_engine(normalise_database_url(database_url))
    with engine.begin() as conn:
        result = conn.execute(sa.text(statement), params)
        rows = list(result) if result.returns_rows else []
    engine.dispose()
    return rows


def activate_directly(
    database_url: str,
    provider: str,
    model: str,
    *,
    user: str = "alice",
    system_prompt: str | None = None,
) -> None:
    """Make (provider, model) the user's one active global config, straight in the table."""
    import uuid

    sql(
        database_url,
        "UPDATE ai_provider_configs SET is_active = :f WHERE is_active AND module_name = 'global' "
        "AND user_id = (SELECT users_id FROM users WHERE username = :u)",
        f=False,
        u=user,
    )
    new_id = uuid.uuid4()
    sql(
        database_url,
        # the seed's upsert on (user_id, module_name): one config row per user and module
        "INSERT INTO ai_provider_configs (id, user_id, module_name, provider_name, model_name, system_prompt, is_active) "
        "SELECT :id, users_id, 'global', :p, :m, :s, :t FROM users WHERE username = :u "
        "ON CONFLICT (user_id, module_name) DO UPDATE SET provider_name = excluded.provider_name, "
        "model_name = excluded.model_name, system_prompt = excluded.system_prompt, is_active = excluded.is_active",
        id=new_id.hex if database_url.startswith("sqlite") else str(new_id),
        p=provider,
        m=model,
        s=system_prompt,
        t=True,
        u=user,
    )
