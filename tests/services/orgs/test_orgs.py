"""Organisations, the organisation's OpenAI connection (``openai_connexion``) and
its use by `aipilot ask`: key resolution, allowed models, quotas, statuses, audit, RLS.

Through the real CLI against the fake provider, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from aipilot.errors import ExitCode, PermissionDeniedError
from tests import orgs_support
from tests.conftest import CliFn
from tests.fakeprovider import FakeProvider
from tests.memkeyring import find_leaks
from tests.orgs_support import (
    MODEL,
    activate,
    audit_actions,
    canary,
    chats,
    connexion,
    run_many,
    set_prices,
)
from tests.providers_catalog import sql

fake = orgs_support.fake  # a fixture, shared through the support module
org = orgs_support.org  # a fixture, shared through the support module


def test_orgs_commands_and_permissions(cli: CliFn, database_url: str) -> None:
    assert cli("users", "add", "bob").exit_code == 0
    assert cli("users", "add", "carol").exit_code == 0
    assert cli("orgs", "add", "acme", "--json").json()["organisation"]["name"] == "acme"
    assert cli("orgs", "add", "beta").exit_code == 0
    assert cli("orgs", "add", "acme").exit_code == ExitCode.CONFLICT
    assert cli("orgs", "add", "gamma", user="bob").exit_code == ExitCode.PERMISSION
    assert cli("orgs", "add-member", "acme", "bob", user="bob").exit_code == ExitCode.PERMISSION
    assert cli("orgs", "add-member", "acme", "bob").exit_code == 0
    assert cli("orgs", "add-member", "beta", "carol").exit_code == 0
    assert cli("orgs", "add-member", "acme", "nobody").exit_code == ExitCode.USAGE
    assert cli("orgs", "show", "nowhere").exit_code == ExitCode.USAGE
    doc = cli("orgs", "show", "acme", "--json").json()
    assert doc["organisation"]["members"] == 1 and doc["members"] == [
        {"username": "bob", "role": "member"}
    ]
    assert [o["name"] for o in cli("orgs", "list", "--json").json()["organisations"]] == [
        "acme",
        "beta",
    ]
    # a member sees their own organisation only
    assert [
        o["name"] for o in cli("orgs", "list", "--json", user="bob").json()["organisations"]
    ] == ["acme"]
    mine = cli("orgs", "mine", "--json", user="bob").json()
    assert mine["organisation"]["name"] == "acme" and mine["organisation"]["is_mine"]
    assert cli("orgs", "show", "beta", user="bob").exit_code == ExitCode.PERMISSION
    assert cli("orgs", "members", "acme", user="bob").exit_code == 0
    assert cli("orgs", "mine", "--json").json()["organisation"] is None  # alice has none
    text = cli("orgs", "show", "acme")
    assert "bob (member)" in text.stdout and "no connection" in text.stdout


# ---------------------------------------------------------------- the connection
def test_org_key_encrypted_hint_only_and_audited(
    cli: CliFn, fake: FakeProvider, database_url: str, org: str
) -> None:
    row = connexion(database_url)
    assert row["openai_api_key"].startswith("aipilot:v")
    assert row["client_id"] == row["organisation_id"] and row["client_type"] == "reseau"
    assert row["openai_statut_connexion"] == "active" and row["openai_actif"] in (True, 1)
    outputs, docs = [], []
    for args in (
        ("org-openai", "show", "acme"),
        ("org-openai", "show", "acme", "--json"),
        ("orgs", "show", "acme", "--json"),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
        docs.append(result.stdout)
    doc = json.loads(docs[1])["connection"]
    assert doc["key_hint"] == f"sk-…{org[-4:]}" and doc["allowed_models"] == [MODEL, "gpt-4"]
    assert find_leaks("\n".join(outputs) + json.dumps(row, default=str), org) == []
    assert audit_actions(database_url) == ["set_key", "allow_models"]
    entry = connexion(database_url)["openai_audit_log"]["entries"][0]
    assert entry["by"] == "alice" and entry["details"]["key_hint"] == doc["key_hint"]
    # members read their own organisation's connection, but change nothing
    assert cli("org-openai", "show", "acme", user="bob").exit_code == 0
    for args in (
        ("org-openai", "set-key", "acme", "--stdin", "--no-test"),
        ("org-openai", "limits", "acme", "--daily-requests", "5"),
        ("org-openai", "allow-models", "acme", "gpt-4"),
        ("org-openai", "disable", "acme"),
        ("org-openai", "test", "acme"),
    ):
        result = cli(*args, input=canary(), user="bob")
        assert result.exit_code == ExitCode.PERMISSION, args
    assert cli("orgs", "add", "beta").exit_code == 0
    assert cli("orgs", "add-member", "beta", "bob").exit_code == 0
    assert cli("org-openai", "show", "acme", user="bob").exit_code == ExitCode.PERMISSION
    # malformed keys are refused before anything is stored, without an echo
    bad = cli("org-openai", "set-key", "acme", "--stdin", input="sk-has space")
    assert bad.exit_code == ExitCode.USAGE and "has space" not in bad.stderr
    assert audit_actions(database_url) == ["set_key", "allow_models"]


def test_limits_enable_disable_and_test_statuses(
    cli: CliFn, fake: FakeProvider, database_url: str, org: str
) -> None:
    doc = cli(
        "org-openai", "limits", "acme", "--daily-requests", "3", "--monthly-cost", "2.5", "--json"
    ).json()["connection"]
    assert doc["daily_requests"] == 3 and doc["monthly_cost_usd"] == 2.5
    assert cli("org-openai", "limits", "acme", "--monthly-cost", "abc").exit_code == ExitCode.USAGE
    assert (
        cli("org-openai", "disable", "acme", "--json").json()["connection"]["status"] == "inactive"
    )
    assert cli("org-openai", "enable", "acme").exit_code == 0
    assert connexion(database_url)["openai_statut_connexion"] == "active"
    fake.set_keys(["sk-something-else-entirely"])
    bad = cli("org-openai", "test", "acme", "--json")
    assert bad.exit_code == ExitCode.PROVIDER
    row = connexion(database_url)
    assert row["openai_statut_connexion"] == "error" and row["openai_derniere_synchro"] is not None
    assert row["openai_derniere_erreur"] and org not in row["openai_derniere_erreur"]
    assert find_leaks(bad.stdout + bad.stderr, org) == []
    fake.set_keys(None)
    good = cli("org-openai", "test", "acme", "--json")
    assert good.exit_code == 0 and good.json()["test"]["status"] == "active"
    row = connexion(database_url)
    assert row["openai_statut_connexion"] == "active" and row["openai_derniere_erreur"] is None
    assert cli("org-openai", "limits", "acme", "--clear").exit_code == 0
    assert connexion(database_url)["openai_limite_quotidienne"] is None
    assert audit_actions(database_url) == [
        "set_key",
        "allow_models",
        "limits",
        "disable",
        "enable",
        "test",
        "test",
        "limits",
    ]


# ---------------------------------------------------------------- the call path
def test_member_calls_with_the_org_key_and_own_key_wins(
    cli: CliFn, fake: FakeProvider, database_url: str, org: str
) -> None:
    cost = set_prices(database_url)
    result = cli("ask", "hi", user="bob")
    assert result.exit_code == 0, result.stderr
    assert chats(fake)[-1].headers["authorization"] == f"Bearer {org}"
    row = connexion(database_url)
    assert row["openai_usage_quotidien"] == 1
    assert Decimal(str(row["openai_cout_actuel_mois"])) == cost.quantize(Decimal("0.0001"))
    assert find_leaks(result.stdout + result.stderr, org) == []
    own = canary()
    assert (
        cli("keys", "set", "openai", "--stdin", "--no-test", input=own, user="bob").exit_code == 0
    )
    assert cli("ask", "hi", user="bob").exit_code == 0
    assert chats(fake)[-1].headers["authorization"] == f"Bearer {own}"
    assert connexion(database_url)["openai_usage_quotidien"] == 1  # the org was not used
    # alice (no organisation, no key) is not configured
    activate(database_url, "alice")
    assert cli("ask", "hi").exit_code == ExitCode.NOT_CONFIGURED


def test_org_calls_name_the_openai_organisation_and_project(
    cli: CliFn, fake: FakeProvider, database_url: str, org: str
) -> None:
    """Ids the seed's app stored on the connection go out as OpenAI's headers; none when
    unset. Tested through `org-openai test` and a member's call."""
    assert cli("ask", "hi", user="bob").exit_code == 0
    plain = chats(fake)[-1].headers
    assert "openai-organization" not in plain and "openai-project" not in plain
    sql(
        database_url,
        "UPDATE openai_connexion SET openai_organisation_id = 'org-acme', "
        "openai_project_id = ' proj_42 '",
    )
    assert cli("ask", "hi", user="bob").exit_code == 0
    sent = chats(fake)[-1].headers
    assert (sent["openai-organization"], sent["openai-project"]) == ("org-acme", "proj_42")
    assert sent["authorization"] == f"Bearer {org}"
    assert cli("org-openai", "test", "acme").exit_code == 0
    checked = fake.last_request.headers
    assert (checked["openai-organization"], checked["openai-project"]) == ("org-acme", "proj_42")


def test_an_unusable_organisation_or_project_id_is_refused_before_the_call(
    cli: CliFn, fake: FakeProvider, database_url: str, org: str
) -> None:
    sql(database_url, "UPDATE openai_connexion SET openai_organisation_id = '   '")
    assert cli("ask", "hi", user="bob").exit_code == 0  # blank: no header at all
    assert "openai-organization" not in chats(fake)[-1].headers
    for bad in ("proj_é", "proj_1\nX-Injected: 1"):
        sql(database_url, "UPDATE openai_connexion SET openai_project_id = :v", v=bad)
        before = len(fake.requests)
        refused = cli("ask", "hi", user="bob")
        assert refused.exit_code == ExitCode.NOT_CONFIGURED, refused.stderr
        assert "openai_project_id" in refused.stderr and "Traceback" not in refused.stderr
        assert len(fake.requests) == before  # nothing sent
        tested = cli("org-openai", "test", "acme")
        assert tested.exit_code == ExitCode.NOT_CONFIGURED and len(fake.requests) == before
    assert connexion(database_url)["openai_usage_quotidien"] == 1  # only the first call


def test_model_not_allowed_is_refused_before_the_call(
    cli: CliFn, fake: FakeProvider, database_url: str, org: str
) -> None:
    assert cli("org-openai", "allow-models", "acme", "gpt-4").exit_code == 0
    result = cli("ask", "hi", user="bob")
    assert result.exit_code == ExitCode.PERMISSION
    assert "not allowed" in result.stderr and MODEL in result.stderr
    assert chats(fake) == []
    assert connexion(database_url)["openai_usage_quotidien"] in (0, None)


def test_daily_quota_status_reset_and_401(
    cli: CliFn, fake: FakeProvider, database_url: str, org: str
) -> None:
    assert cli("org-openai", "limits", "acme", "--daily-requests", "2").exit_code == 0
    assert cli("ask", "one", user="bob").exit_code == 0
    assert cli("ask", "two", user="bob").exit_code == 0
    refused = cli("ask", "three", user="bob")
    assert refused.exit_code == ExitCode.QUOTA
    assert "daily" in refused.stderr and "2/2" in refused.stderr and "resets at" in refused.stderr
    assert len(chats(fake)) == 2
    assert connexion(database_url)["openai_statut_connexion"] == "quota_exceeded"
    # the day is over (the stored reset moment passed): counted afresh, status active again
    sql(
        database_url,
        "UPDATE openai_connexion SET openai_reset_quota_at = :t",
        t=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )
    assert cli("ask", "four", user="bob").exit_code == 0
    row = connexion(database_url)
    assert row["openai_statut_connexion"] == "active" and row["openai_usage_quotidien"] == 1
    assert cli("org-openai", "limits", "acme", "--daily-requests", "10").exit_code == 0
    # OpenAI refuses the key during a call: status error, and the connection is no longer used
    fake.fail("401", only="chat")
    failed = cli("ask", "five", user="bob")
    assert failed.exit_code == ExitCode.PROVIDER
    assert find_leaks(failed.stdout + failed.stderr, org) == []
    assert connexion(database_url)["openai_statut_connexion"] == "error"
    unusable = cli("ask", "six", user="bob")
    assert unusable.exit_code == ExitCode.NOT_CONFIGURED and "error" in unusable.stderr
    assert cli("org-openai", "test", "acme").exit_code == 0
    assert connexion(database_url)["openai_statut_connexion"] == "active"
    assert cli("ask", "seven", user="bob").exit_code == 0
    actions = audit_actions(database_url)
    assert actions.count("status") == 3 and actions[-1] == "test"
    assert cli("org-openai", "disable", "acme").exit_code == 0
    assert cli("ask", "eight", user="bob").exit_code == ExitCode.NOT_CONFIGURED


def test_monthly_cost_limit_crossing_and_month_reset(
    cli: CliFn, fake: FakeProvider, database_url: str, org: str
) -> None:
    set_prices(database_url)  # 0.017 per call
    assert cli("org-openai", "limits", "acme", "--monthly-cost", "0.03").exit_code == 0
    assert cli("ask", "one", user="bob").exit_code == 0  # spent 0.017
    assert cli("ask", "two", user="bob").exit_code == 0  # spent 0.034: over the limit now
    refused = cli("ask", "three", user="bob")
    assert refused.exit_code == ExitCode.QUOTA
    assert "monthly" in refused.stderr and "resets at" in refused.stderr
    assert "-01T00:00:00+00:00" in refused.stderr
    assert len(chats(fake)) == 2
    assert connexion(database_url)["openai_statut_connexion"] == "quota_exceeded"
    # the counters were last started 40 days ago: a new month, the spend starts again
    sql(
        database_url,
        "UPDATE openai_connexion SET openai_reset_quota_at = :t",
        t=dt.datetime.now(dt.UTC) - dt.timedelta(days=40),
    )
    assert cli("ask", "four", user="bob").exit_code == 0
    row = connexion(database_url)
    assert Decimal(str(row["openai_cout_actuel_mois"])) == Decimal("0.0170")
    assert row["openai_statut_connexion"] == "active"


def test_org_clock_boundaries(database_url: str, cli: CliFn, org: str) -> None:
    """The service-level clock: a day boundary resets requests only, a month boundary both."""
    from aipilot.config import Settings
    from aipilot.services import runtime
    from aipilot.services.accounting import quotas

    assert cli("org-openai", "limits", "acme", "--daily-requests", "1").exit_code == 0
    row_id = uuid.UUID(str(connexion(database_url)["openai_connexion_id"]))
    ctx = runtime.connect(Settings.resolve(db=database_url, user="bob"))

    def at(text: str) -> quotas.Clock:
        return lambda: dt.datetime.fromisoformat(text)

    def reserve(text: str) -> None:
        quotas.reserve(
            ctx, provider_key="openai", user_limits=False, connexion_id=row_id, clock=at(text)
        )

    reserve("2026-03-31T23:59:00+00:00")
    sql(database_url, "UPDATE openai_connexion SET openai_cout_actuel_mois = 5")
    with pytest.raises(quotas.QuotaExceededError, match="2026-04-01T00:00:00"):
        reserve("2026-03-31T23:59:30+00:00")
    reserve("2026-04-01T00:00:01+00:00")  # new day and new month
    assert Decimal(str(connexion(database_url)["openai_cout_actuel_mois"])) == 0
    sql(database_url, "UPDATE openai_connexion SET openai_cout_actuel_mois = 5")
    reserve("2026-04-02T00:00:01+00:00")  # new day, same month: the spend stays
    assert Decimal(str(connexion(database_url)["openai_cout_actuel_mois"])) == 5
    ctx.db.dispose()


@pytest.mark.slow
def test_thirty_concurrent_calls_against_an_org_quota_of_ten(
    cli: CliFn, fake: FakeProvider, database_url: str, org: str
) -> None:
    assert cli("org-openai", "limits", "acme", "--daily-requests", "10").exit_code == 0
    results = run_many(database_url, "bob", 30)
    codes = sorted(r.returncode for r in results)
    assert codes == [0] * 10 + [int(ExitCode.QUOTA)] * 20, [
        r.stderr for r in results if r.returncode not in (0, 6)
    ]
    assert len(chats(fake)) == 10
    assert connexion(database_url)["openai_usage_quotidien"] == 10
    assert connexion(database_url)["openai_statut_connexion"] == "quota_exceeded"
    for result in results:
        assert find_leaks(result.stdout + result.stderr, org) == []


# ---------------------------------------------------------------- RLS on PostgreSQL
def test_openai_connexion_rls_by_organisation(
    backend: str, cli: CliFn, database_url: str, request: pytest.FixtureRequest
) -> None:
    if backend != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    role_url = request.getfixturevalue("tester_url")
    from aipilot.db.engine import Database

    assert cli("users", "add", "bob").exit_code == 0
    assert cli("users", "add", "carol").exit_code == 0
    for name, member in (("acme", "bob"), ("beta", "carol")):
        assert cli("orgs", "add", name).exit_code == 0
        assert cli("orgs", "add-member", name, member).exit_code == 0
        result = cli("org-openai", "set-key", name, "--stdin", "--no-test", input=canary())
        assert result.exit_code == 0, result.stderr
    ids = {r[0]: r[1] for r in sql(database_url, "SELECT username, users_id FROM users")}
    orgs = {
        r[0]: r[1] for r in sql(database_url, "SELECT name, organisation_id FROM organisations")
    }
    db = Database(role_url)
    seen = sa.text("SELECT organisation_id FROM openai_connexion")
    with db.session() as session:
        assert session.execute(seen).all() == []  # no identity: nothing
    with db.session(user_id=ids["bob"]) as session:
        assert set(session.execute(seen).scalars()) == {orgs["acme"]}
        changed = session.execute(
            sa.text("UPDATE openai_connexion SET openai_actif = false WHERE organisation_id = :o"),
            {"o": orgs["beta"]},
        ).rowcount
        assert changed == 0
    with db.session(user_id=ids["carol"]) as session:
        assert set(session.execute(seen).scalars()) == {orgs["beta"]}
    with db.session(user_id=ids["alice"]) as session:  # admin: is_admin_presenca
        assert set(session.execute(seen).scalars()) == {orgs["acme"], orgs["beta"]}
    with (
        pytest.raises(PermissionDeniedError) as info,  # 42501, translated (exit 9)
        db.session(user_id=ids["bob"]) as session,
    ):
        session.execute(
            sa.text("INSERT INTO openai_connexion (organisation_id, client_id) VALUES (:o, :o)"),
            {"o": orgs["beta"]},
        )
    assert getattr(getattr(info.value.__cause__, "orig", None), "sqlstate", None) == "42501"
    db.dispose()
