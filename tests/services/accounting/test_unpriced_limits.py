"""Under a cost limit, a call to a model with no known price is refused.

Before, such a call cost nothing against the limit (20 of 20 passed a $0.001 limit). Now,
when a monthly cost limit applies (the user's `limits set --monthly-cost`, or the
organisation connection's `openai_limite_cout_mois`), `aipilot ask` refuses with exit 6,
naming the model and the command that prices it, before any provider call, reservation or
usage row. A request-only limit, or a priced model, is unaffected.
"""

from __future__ import annotations

import pytest

from aipilot.errors import ExitCode
from tests import holes_support
from tests.conftest import CliFn, Run
from tests.fakeprovider import FakeProvider
from tests.holes_support import requests_counted, store_key, usage_rows
from tests.providers_catalog import activate_directly, sql

fake = holes_support.fake  # fixture

# a catalog model whose row has no price and that the reference catalog (genai-prices)
# does not know either: nothing can price it
MODEL = "house-mini"


def chats(fake: FakeProvider) -> int:
    return sum("chat/completions" in r.path for r in fake.requests)


def add_unpriced(cli: CliFn, fake: FakeProvider) -> None:
    fake.set_models("openai", ["gpt-4o-mini", MODEL])
    added = cli("models", "add", "openai", MODEL, "--name", "House mini")
    assert added.exit_code == 0, added.stderr


def assert_refused(run: Run, model: str, limit: str) -> None:
    stderr = run.stderr
    assert run.exit_code == ExitCode.QUOTA, stderr
    assert f"\nError: the model {model} (openai) has no price in the catalog" in "\n" + stderr
    assert limit in stderr, stderr
    assert f"aipilot models update openai {model} --input-price USD --output-price USD" in stderr
    assert "Traceback" not in stderr


@pytest.fixture
def alice(cli: CliFn, fake: FakeProvider, database_url: str) -> str:
    secret = store_key(cli)
    add_unpriced(cli, fake)
    activate_directly(database_url, "openai", MODEL)
    return secret


def test_an_unpriced_catalog_model_is_refused_under_a_cost_limit(
    alice: str, cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    assert cli("limits", "set", "--daily-requests", "100").exit_code == 0
    assert cli("ask", "free?").exit_code == 0  # a request quota needs no price
    assert cli("limits", "set", "--monthly-cost", "0.001").exit_code == 0
    for _ in range(3):
        assert_refused(cli("ask", "free?"), MODEL, "monthly cost limit for all providers ($0.001)")
    doc = cli("ask", "free?", "--json")
    assert doc.exit_code == ExitCode.QUOTA
    assert doc.json()["type"] == "QuotaExceededError"
    assert (
        chats(fake) == 1 and usage_rows(database_url) == 1 and requests_counted(database_url) == 1
    )
    # a limit for another provider does not apply to openai calls
    assert cli("limits", "clear").exit_code == 0
    assert cli("limits", "set", "--provider", "anthropic", "--monthly-cost", "1").exit_code == 0
    assert cli("ask", "not limited").exit_code == 0
    # once priced, the call passes and its cost is counted
    assert cli("limits", "set", "--provider", "openai", "--monthly-cost", "1").exit_code == 0
    assert_refused(cli("ask", "x"), MODEL, "monthly cost limit for openai ($1)")
    priced = cli("models", "update", "openai", MODEL, "--input-price", "1", "--output-price", "1")
    assert priced.exit_code == 0, priced.stderr
    assert cli("ask", "priced").exit_code == 0
    spent = sql(
        database_url, "SELECT cost_this_month FROM ai_user_limits WHERE provider_key = 'openai'"
    )
    assert float(spent[0][0]) > 0


def test_a_custom_model_outside_the_catalog_is_refused_under_a_cost_limit(
    alice: str, cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    fake.set_models("openai", [MODEL, "gpt-4o-latest"])
    assert cli("custom", "add", "openai", "gpt-4o-latest").exit_code == 0
    activated = cli("model", "activate", "openai", "gpt-4o-latest")
    assert activated.exit_code == 0, activated.stderr
    assert cli("limits", "set", "--provider", "openai", "--monthly-cost", "5").exit_code == 0
    assert_refused(cli("ask", "hi"), "gpt-4o-latest", "monthly cost limit for openai ($5)")
    assert chats(fake) == 0 and usage_rows(database_url) == 0


def test_an_unpriced_model_is_refused_under_the_organisations_cost_limit(
    cli: CliFn, fake: FakeProvider, database_url: str
) -> None:
    assert cli("users", "add", "bob").exit_code == 0
    assert cli("orgs", "add", "acme").exit_code == 0
    assert cli("orgs", "add-member", "acme", "bob").exit_code == 0
    key = holes_support.canary()
    set_key = cli("org-openai", "set-key", "acme", "--stdin", "--no-test", input=key)
    assert set_key.exit_code == 0, set_key.stderr
    add_unpriced(cli, fake)
    assert cli("org-openai", "allow-models", "acme", MODEL).exit_code == 0
    activate_directly(database_url, "openai", MODEL, user="bob")
    assert cli("org-openai", "limits", "acme", "--daily-requests", "10").exit_code == 0
    assert cli("ask", "hi", user="bob").exit_code == 0  # a request quota needs no price
    assert cli("org-openai", "limits", "acme", "--monthly-cost", "0.001").exit_code == 0
    refused = cli("ask", "hi", user="bob")
    assert_refused(refused, MODEL, "the organisation's monthly OpenAI cost limit ($0.001)")
    assert key not in refused.stdout + refused.stderr
    row = sql(
        database_url,
        "SELECT openai_usage_quotidien, openai_statut_connexion FROM openai_connexion",
    )[0]
    assert (row[0], row[1]) == (1, "active")  # nothing counted, not "quota_exceeded"
    assert chats(fake) == 1
