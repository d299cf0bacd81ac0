"""The Flutter app's own calls of seed 000 §5, on a database that aipilot created.

On PostgreSQL they run as PostgREST runs them, as the signed-in user on a Supabase-like
project (tests/supabase_like.py); on SQLite the same statements run as plain SQL with the
user's id written out (SQLite has no ``auth.uid()``). After the app activates a model or a
prompt, `aipilot model show`, `aipilot ask` and a running `aipilot serve` use exactly that.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aipilot.config import normalise_database_url
from tests.conftest import CliFn, PgServer, make_cli
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import point_catalog_at
from tests.serve_support import ServeProcess
from tests.supabase_like import OWNER, DataApi, add_auth_user, create_project, url_as

USER = "max@example.test"


@dataclass
class App:
    """The Flutter app signed in as one user: ``run(statement, **params)``."""

    database_url: str  # what aipilot connects to
    cli: CliFn
    user_id: uuid.UUID
    run: Callable[..., int]
    dialect: str


def _sqlite_app(database_url: str, cli: CliFn) -> App:
    engine = sa.create_engine(normalise_database_url(database_url))
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT users_id FROM users WHERE username = :u"), {"u": USER})
        user_id = uuid.UUID(str(found.scalar_one()))

    def run(statement: str, **params: Any) -> int:
        # the app's ids as SQLAlchemy stores UUIDs on SQLite; auth.uid() is the signed-in user
        values = {k: v.hex if isinstance(v, uuid.UUID) else v for k, v in params.items()}
        statement = statement.replace("auth.uid()", f"'{user_id.hex}'")
        with engine.begin() as conn:
            return conn.execute(sa.text(statement), values).rowcount

    return App(database_url, cli, user_id, run, "sqlite")


@pytest.fixture
def app(backend: str, database_url: str, pg_server: PgServer | None) -> Iterator[App]:
    if backend == "sqlite":
        cli = make_cli(database_url)
        assert cli("users", "add", USER).exit_code == 0
        yield _sqlite_app(database_url, cli)
        return
    assert pg_server is not None
    server = url_as(pg_server.url_for("postgres"))
    name = create_project(server)
    admin_url = url_as(server, database=name)
    user_id = add_auth_user(admin_url, USER)
    owner_url = url_as(admin_url, user=OWNER)
    cli = make_cli(owner_url)
    assert cli("init").exit_code == 0 and cli("users", "import").exit_code == 0
    api = DataApi(admin_url)

    def run(statement: str, **params: Any) -> int:
        """As the signed-in user through the Data API; ``:name`` becomes ``%(name)s``."""
        values = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in params.items()}
        query = re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", statement)
        with api.request("authenticated", user_id, method="POST", path="/") as conn:
            return conn.execute(query.encode(), values).rowcount

    yield App(owner_url, cli, user_id, run, "postgresql")
    pg_server.drop(name)


@pytest.fixture
def fake(app: App) -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        point_catalog_at(server, app.database_url)
        assert (
            app.cli(
                "keys", "set", "openai", "--stdin", input="sk-app-test-1234567890\n", user=USER
            ).exit_code
            == 0
        )
        yield server


# seed 000 §5.2 "Activer un modèle global", in the app's two calls
DEACTIVATE = (
    "UPDATE ai_provider_configs SET is_active = false "
    "WHERE user_id = :uid AND module_name = 'global' AND is_active = true"
)
UPSERT = (
    "INSERT INTO ai_provider_configs (user_id, module_name, provider_name, model_name, "
    "system_prompt, is_active) VALUES (:uid, 'global', :p, :m, NULL, true) "
    "ON CONFLICT (user_id, module_name) DO UPDATE SET provider_name = EXCLUDED.provider_name, "
    "model_name = EXCLUDED.model_name, system_prompt = EXCLUDED.system_prompt, "
    "is_active = EXCLUDED.is_active"
)


def _activate_from_the_app(app: App, provider: str, model: str) -> None:
    app.run(DEACTIVATE, uid=app.user_id)
    if app.dialect == "sqlite":  # no column defaults there: the id is written out
        upsert = UPSERT.replace("configs (user_id,", "configs (id, user_id,")
        upsert = upsert.replace("(:uid,", "(:id, :uid,")
        assert app.run(upsert, id=uuid.uuid4(), uid=app.user_id, p=provider, m=model) == 1
        return
    assert app.run(UPSERT, uid=app.user_id, p=provider, m=model) == 1


def test_the_apps_activation_is_aipilots_active_model(app: App, fake: FakeProvider) -> None:
    assert app.cli("model", "activate", "openai", "gpt-4o-mini", user=USER).exit_code == 0
    _activate_from_the_app(app, "openai", "gpt-4o")  # the upsert hits aipilot's one row
    shown = app.cli("--json", "model", "show", user=USER)
    assert shown.exit_code == 0 and shown.json()["active"]["model"] == "gpt-4o", shown.stdout
    asked = app.cli("ask", "hello", "--no-stream", user=USER)
    assert asked.exit_code == 0, asked.stderr
    assert fake.last_request.json["model"] == "gpt-4o"
    _activate_from_the_app(app, "openai", "gpt-4.1-mini")  # again: still one row
    assert app.cli("--json", "model", "show", user=USER).json()["active"]["model"] == "gpt-4.1-mini"


def test_the_apps_first_activation_on_an_empty_config(app: App, fake: FakeProvider) -> None:
    _activate_from_the_app(app, "openai", "gpt-4o")
    shown = app.cli("--json", "model", "show", user=USER)
    assert shown.exit_code == 0 and shown.json()["active"]["model"] == "gpt-4o"


def test_inserts_without_user_id_belong_to_the_signed_in_user(
    app: App, backend: str, fake: FakeProvider
) -> None:
    """§5.2 "Ajouter un modèle custom" and §5.3 "Créer" omit user_id: auth.uid() fills it."""
    if backend == "sqlite":
        pytest.skip("SQLite has no signed-in user: its apps always write user_id")
    assert (
        app.run(
            "INSERT INTO ai_user_models_flut (provider_key, model_key, model_name) VALUES ('openai', 'my-ft-model', 'My model')"
        )
        == 1
    )
    assert (
        app.run(
            "INSERT INTO ai_system_prompts (name, prompt_content, is_active) VALUES ('Devis', 'Tu es un assistant devis.', false)"
        )
        == 1
    )
    listed = app.cli("--json", "prompts", "list", user=USER).json()
    assert "Devis" in str(listed)
    assert app.cli("model", "activate", "openai", "my-ft-model", user=USER).exit_code == 0


def _activate_prompt_from_the_app(app: App, name: str, text: str) -> None:
    """§5.3 "Activer un prompt (snapshot dans config)", the app's three calls."""
    app.run(
        "UPDATE ai_system_prompts SET is_active = false WHERE is_active = true AND user_id = :uid",
        uid=app.user_id,
    )
    assert (
        app.run(
            "UPDATE ai_system_prompts SET is_active = true WHERE name = :n AND user_id = :uid",
            n=name,
            uid=app.user_id,
        )
        == 1
    )
    assert (
        app.run(
            "UPDATE ai_provider_configs SET system_prompt = :t "
            "WHERE user_id = :uid AND module_name = 'global' AND is_active = true",
            t=text,
            uid=app.user_id,
        )
        == 1
    )


def test_the_apps_prompt_activation_is_named_and_sent(
    app: App, fake: FakeProvider, tmp_path: Path
) -> None:
    cli = app.cli
    assert (
        cli("prompts", "create", "first", "--text", "Answer in English.", user=USER).exit_code == 0
    )
    assert (
        cli("prompts", "create", "second", "--text", "Réponds en français.", user=USER).exit_code
        == 0
    )
    assert cli("prompts", "activate", "first", user=USER).exit_code == 0
    assert cli("model", "activate", "openai", "gpt-4o-mini", user=USER).exit_code == 0
    _activate_prompt_from_the_app(app, "second", "Réponds en français.")
    active = cli("--json", "model", "show", user=USER).json()["active"]
    assert active["prompt_name"] == "second" and active["prompt_stale"] is False, active
    served = ServeProcess(app.database_url, tmp_path / "serve").start()
    try:
        token = cli("tokens", "create", user=USER).stdout.strip()
        with served.client(token) as client:
            answer = client.post(
                "/functions/v1/assist_flut",
                json={
                    "module_name": "global",
                    "messages": [{"role": "user", "content": "bonjour"}],
                },
            )
        assert answer.status_code == 200, answer.text
        sent = fake.last_request.json["messages"]
        assert sent[0] == {"role": "system", "content": "Réponds en français."}
        _activate_from_the_app(app, "openai", "gpt-4o")  # a running server sees the switch
        with served.client(token) as client:
            assert (
                client.post(
                    "/functions/v1/assist_flut",
                    json={
                        "module_name": "global",
                        "messages": [{"role": "user", "content": "encore"}],
                    },
                ).status_code
                == 200
            )
        assert fake.last_request.json["model"] == "gpt-4o"
    finally:
        served.stop()
