"""The rates a call is priced at — the catalog row's, else genai-prices' — and the
cost of that reference: it is imported only by code that prices something.

The reference numbers are checked against genai-prices' own ``calc_price`` for the same
model and tokens, computed here; the database tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

from aipilot.services.catalog.pricing import (
    BilledTokens,
    Rates,
    RowPrices,
    cost,
    describe,
    rates_for,
    reference_rates,
    reference_source,
    row_rates,
)
from tests.conftest import MASTER_KEY, REPO, CliFn
from tests.providers_catalog import sql

# (aipilot provider key, model, genai-prices provider id): the seeded providers
SEEDED = [
    ("openai", "gpt-4o-mini", "openai"),
    ("anthropic", "claude-sonnet-4-0", "anthropic"),
    ("anthropic", "claude-3-5-haiku-latest", "anthropic"),
    ("google", "gemini-2.5-pro", "google"),  # tiered: under 200k tokens, the base tier
    ("google", "gemini-2.5-flash", "google"),
    ("mistral", "mistral-small-latest", "mistral"),
    ("xai", "grok-3", "x-ai"),
    ("deepseek", "deepseek-chat", "deepseek"),
    ("openrouter", "openai/gpt-4o-mini", "openrouter"),
]


def genai_cost(model: str, provider_id: str, tokens: BilledTokens) -> Decimal:
    usage = genai_prices.Usage(
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cache_read_tokens=tokens.cache_read_tokens,
        cache_write_tokens=tokens.cache_write_tokens,
    )
    price = genai_prices.calc_price(usage, model, provider_id=provider_id)
    return Decimal(price.total_price).quantize(Decimal("0.000001"))


@pytest.mark.parametrize(("provider", "model", "provider_id"), SEEDED)
def test_reference_rates_price_like_genai_prices(
    provider: str, model: str, provider_id: str
) -> None:
    rates = reference_rates(provider, model)
    assert rates is not None and rates.priced
    assert rates.source == f"genai-prices {genai_prices.__version__}"
    assert rates.as_of is not None and len(rates.as_of) == 10
    plain = BilledTokens(input_tokens=120_000, output_tokens=30_000)
    assert cost(rates, plain) == genai_cost(model, provider_id, plain)
    if rates.cache_read is not None:  # input_tokens counts the cache reads, in both
        cached = BilledTokens(input_tokens=150_000, output_tokens=1_000, cache_read_tokens=90_000)
        assert cost(rates, cached) == genai_cost(model, provider_id, cached)
    if rates.cache_write is not None:
        written = BilledTokens(input_tokens=50_000, output_tokens=10, cache_write_tokens=40_000)
        assert cost(rates, written) == genai_cost(model, provider_id, written)


def test_reference_lookups_that_give_nothing() -> None:
    assert reference_rates("ollama", "llama3.2") is None  # local: nobody bills it
    assert reference_rates("openai", "no-such-model-xyz") is None
    assert reference_rates("my-gateway", "gpt-4o-mini") is None  # not a genai-prices id
    assert reference_rates("anthropic-proxy", "claude-sonnet-4-0") is None  # no fuzzy match
    assert reference_rates("openai", "  ") is None
    groq = reference_rates("groq", "llama-3.3-70b-versatile")  # an exact genai-prices id
    assert groq is not None and groq.source == reference_source()


def test_the_catalog_row_wins_with_its_own_source_and_cache_rates() -> None:
    row = RowPrices(Decimal("9"), Decimal("99"), cache_read_price_per_mtok=Decimal("0.9"))
    rates = rates_for(row, "openai", "gpt-4o-mini")
    assert rates == Rates(Decimal("9"), Decimal("99"), Decimal("0.9"), None, "catalog", None)
    listed = RowPrices(Decimal("1"), Decimal("2"), price_source="openrouter model list 2026-12-02")
    got = rates_for(listed, "openrouter", "openai/gpt-4o-mini")
    assert got is not None and (got.source, got.as_of) == (listed.price_source, "2026-12-02")
    assert describe(got) == "openrouter model list 2026-12-02"
    assert describe(rates) == "catalog" and describe(None) == "no price"


def test_a_half_priced_row_uses_the_reference_whole() -> None:
    half = RowPrices(Decimal("5"), None, cache_read_price_per_mtok=Decimal("0.01"))
    assert row_rates(half) is None
    rates = rates_for(half, "openai", "gpt-4o-mini")
    assert rates == reference_rates("openai", "gpt-4o-mini")
    assert rates is not None and rates.cache_read != Decimal("0.01")  # not mixed in
    assert rates_for(half, "openai", "gpt-4o-mini", reference=False) is None
    assert rates_for(None, "ollama", "llama3.2") is None
    assert describe(rates).startswith(f"{reference_source()} (data as of ")


def python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_missing_reference_package_gives_no_price_not_an_error() -> None:
    code = (
        "import sys\n"
        "sys.modules['genai_prices'] = None  # as if it were not installed\n"
        "from aipilot.services.catalog.pricing import RowPrices, rates_for, reference_rates\n"
        "from decimal import Decimal\n"
        "print(reference_rates('openai', 'gpt-4o-mini'),"
        " rates_for(RowPrices(Decimal(1), Decimal(2)), 'openai', 'x').source)\n"
    )
    assert python(code).split() == ["None", "catalog"]


# ---------------------------------------------------------------- through the CLI
def unprice(database_url: str, model: str) -> None:
    sql(
        database_url,
        "UPDATE ai_models SET input_price_per_mtok = NULL, output_price_per_mtok = NULL "
        "WHERE model_key = :m",
        m=model,
    )


def test_show_and_list_use_the_row_else_the_reference(cli: CliFn, database_url: str) -> None:
    shown = cli("models", "show", "openai", "gpt-4o", "--json")
    assert shown.exit_code == 0, shown.stderr
    row = shown.json()["model"]
    assert row["rates"]["source"] == "catalog" and row["rates"]["input"] == 2.5
    assert row["rates_source"] == "catalog"  # the seed's price wins over the reference

    unprice(database_url, "gpt-4o-mini")
    reference = reference_rates("openai", "gpt-4o-mini")
    assert reference is not None
    mini = cli("models", "show", "openai", "gpt-4o-mini", "--json").json()["model"]
    assert mini["input_price_per_mtok"] is None and mini["price_source"] is None
    assert mini["rates"]["source"] == reference_source()
    assert Decimal(str(mini["rates"]["input"])) == reference.input
    assert Decimal(str(mini["rates"]["output"])) == reference.output
    assert Decimal(str(mini["rates"]["cache_read"])) == reference.cache_read
    assert mini["rates_source"] == describe(reference)
    text = cli("models", "show", "openai", "gpt-4o-mini")
    assert text.exit_code == 0 and "genai-prices" in text.stdout and "data as of" in text.stdout

    listed = cli("models", "list", "--provider", "openai", "--json").json()["models"]
    by_key = {m["model_key"]: m for m in listed}
    assert by_key["gpt-4o"]["price_source"] == "catalog" and by_key["gpt-4o"]["reference"] is False
    ref = by_key["gpt-4o-mini"]
    assert ref["reference"] is True and ref["price_source"] == reference_source()
    assert Decimal(str(ref["input_price_per_mtok"])) == reference.input
    table = cli("models", "list", "--provider", "openai")
    assert table.exit_code == 0 and "~$0.15" in table.stdout
    assert "reference price from genai-prices" in table.stderr


def test_a_custom_model_shows_the_reference(cli: CliFn) -> None:
    assert cli("custom", "add", "anthropic", "claude-3-5-haiku-latest").exit_code == 0
    assert cli("models", "remove", "anthropic", "claude-3-5-haiku-latest").exit_code == 0
    shown = cli("models", "show", "anthropic", "claude-3-5-haiku-latest", "--json")
    assert shown.exit_code == 0, shown.stderr
    doc = shown.json()["model"]
    assert doc["source"] == "custom" and doc["rates"]["source"] == reference_source()
    assert doc["rates"]["cache_write"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "gpt-4o"], "unknown provider 'nope'"),
        (["openai", "no-such-model"], "no model 'no-such-model' in the openai catalog"),
    ],
)
def test_show_unknown_is_a_usage_error(cli: CliFn, args: list[str], message: str) -> None:
    result = cli("models", "show", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
    doc = cli("models", "show", *args, "--json")
    assert doc.exit_code == 2


def test_cache_price_options_are_validated_and_make_the_price_a_hand_price(
    cli: CliFn, database_url: str
) -> None:
    sql(
        database_url,
        "UPDATE ai_models SET price_source = 'openrouter model list 2026-12-01' "
        "WHERE model_key = 'openai/gpt-4o-mini'",
    )
    result = cli(
        "models", "update", "openrouter", "openai/gpt-4o-mini",
        "--cache-read-price", "0.075", "--cache-write-price", "0.3", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    model = result.json()["model"]
    assert (model["cache_read_price_per_mtok"], model["cache_write_price_per_mtok"]) == (0.075, 0.3)
    assert model["price_source"] is None
    for bad in ("-1", "abc", "0.0000001"):
        refused = cli("models", "update", "openai", "gpt-4o", "--cache-read-price", bad)
        assert refused.exit_code == 2 and "cache read price" in refused.stderr
    added = cli(
        "models", "add", "openai", "gpt-x", "--name", "X", "--input-price", "1",
        "--output-price", "2", "--cache-write-price", "1.25", "--json",
    )  # fmt: skip
    assert added.exit_code == 0 and added.json()["model"]["cache_write_price_per_mtok"] == 1.25


# ---------------------------------------------------------------- start-up stays lean
def imports_of(database_url: str, *command: str) -> tuple[list[str], str]:
    code = (
        "import sys\n"
        "from aipilot.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('\\nHEAVY', sorted({m.split('.')[0] for m in sys.modules"
        " if m.split('.')[0] in ('genai_prices', 'pydantic', 'httpx2')}), code)\n"
    )
    env = {
        "AIPILOT_DATABASE_URL": database_url,
        "AIPILOT_USER": "alice",
        "AIPILOT_MASTER_KEY": MASTER_KEY,
        "AIPILOT_QUIET_BYPASSRLS": "1",
        "COLUMNS": "200",
    }
    body, _, tail = python(code, *command, env=env).rpartition("HEAVY ")
    heavy, code_text = tail.strip().rsplit(" ", 1)
    return json.loads(heavy.replace("'", '"')), code_text + "\n" + body


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["keys", "status"],
        ["usage"],
        ["history"],
        ["--help"],
        ["models", "list"],  # every shown row has a price
        ["models", "show", "openai", "gpt-4o"],
    ],
)
def test_commands_that_price_nothing_never_import_the_reference(
    database_url: str, command: list[str]
) -> None:
    heavy, output = imports_of(database_url, *command)
    assert heavy == [], output


def test_a_row_without_a_price_imports_it_once_a_day(database_url: str) -> None:
    unprice(database_url, "gpt-4o-mini")
    heavy, first = imports_of(database_url, "models", "list")
    assert "genai_prices" in heavy, first
    assert "~" in first  # the reference price, marked
    # the lookups are kept on disk for the day: the next run prices the same rows without it
    heavy, again = imports_of(database_url, "models", "list")
    assert heavy == [], again
    assert again == first


def test_an_unusable_cache_is_ignored(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/aipilot-cannot-write-here")
    code = (
        "from aipilot.services.catalog.pricing import reference_rates\n"
        "print(reference_rates('openai', 'gpt-4o-mini').input)\n"
    )
    assert python(code).strip() == "0.15"


def test_a_damaged_cache_entry_is_looked_up_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache file edited by hand (NaN, a negative price, junk) never reaches a cost."""
    warm = (
        "from aipilot.services.catalog.pricing import reference_rates\n"
        "print(reference_rates('openai', 'gpt-4o-mini').input)\n"
    )
    assert python(warm).strip() == "0.15"
    folder = Path(os.environ["XDG_CACHE_HOME"]) / "aipilot"
    (cached,) = folder.glob("reference-prices-*.json")
    assert cached.stat().st_mode & 0o777 == 0o600
    for damage in ("NaN", "-15", "junk", None):
        entry = None if damage is None else {"input": damage, "output": "0.6"}
        cached.write_text(json.dumps({"entries": {"openai/gpt-4o-mini": entry}}))
        if damage is None:
            break  # a cached "unknown" is a legitimate entry: checked below
        assert python(warm).strip() == "0.15", damage
    code = (
        "from aipilot.services.catalog.pricing import reference_rates\n"
        "print(reference_rates('openai', 'gpt-4o-mini'))\n"
    )
    assert python(code).strip() == "None"  # as cached: not a price, never a crash
