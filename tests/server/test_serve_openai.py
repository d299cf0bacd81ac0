"""The official `openai` package, unchanged, against `aipilot serve`'s /v1."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests import serve_routes as _serve
from tests.conftest import CliFn
from tests.fakeprovider import FakeProvider
from tests.providers_catalog import activate_directly, sql
from tests.serve_routes import Server, chat_count, store_key, token_for

fake = _serve.fake  # fixtures shared through the support module
server = _serve.server


@pytest.fixture
def client(server: Server, cli: CliFn, database_url: str) -> Iterator[openai.OpenAI]:
    server.canaries.append(store_key(cli, "alice"))
    activate_directly(database_url, "openai", "gpt-4o-mini")
    with openai.OpenAI(
        base_url=server.url + "/v1", api_key=token_for(cli, "alice"), max_retries=0
    ) as api:
        yield api


def test_non_streamed_completion(
    client: openai.OpenAI, fake: FakeProvider, database_url: str
) -> None:
    fake.set_reply("gpt-4o-mini", "Paris.")
    for model in ("active", "gpt-4o-mini"):
        completion = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Capital of France?"},
            ],
            max_tokens=20,
            temperature=0.2,
        )
        assert completion.object == "chat.completion"
        assert completion.model == "gpt-4o-mini"
        assert completion.choices[0].message.content == "Paris."
        assert completion.choices[0].message.role == "assistant"
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 5)
        assert completion.usage.total_tokens == 17
    sent = fake.last_request.json
    assert sent["model"] == "gpt-4o-mini" and sent["messages"][0]["content"] == "Be terse."
    assert chat_count(database_url, "alice") == 2


def test_streamed_completion(client: openai.OpenAI, fake: FakeProvider, database_url: str) -> None:
    fake.set_reply("gpt-4o-mini", "One two three four five.")
    stream = client.chat.completions.create(
        model="active",
        messages=[{"role": "user", "content": "Count."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One two three four five."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    plain = client.chat.completions.create(
        model="active", messages=[{"role": "user", "content": "Again."}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in plain if c.choices) == text
    rows = sql(database_url, "SELECT outcome FROM ai_usage_logs WHERE kind = 'chat'")
    assert [r[0] for r in rows] == ["ok", "ok"]


def test_models_and_errors(client: openai.OpenAI, server: Server, fake: FakeProvider) -> None:
    # only what a chat completion accepts: the alias and the active model (issue 17)
    listed = list(client.models.list())
    assert [m.id for m in listed] == ["active", "gpt-4o-mini"]
    assert {m.owned_by for m in listed} == {"openai"}
    for model in listed:  # every listed id is served
        answer = client.chat.completions.create(
            model=model.id, messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content
    # a model of the catalog that is not active is not listed, and not served
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="claude-sonnet-4-0", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="active",
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    fake.fail("500", times=5)
    with pytest.raises(openai.APIStatusError) as provider:
        client.chat.completions.create(model="active", messages=[{"role": "user", "content": "hi"}])
    assert provider.value.status_code == 502
    fake.clear()
    fake.fail("stream_break")
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="active", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    with (
        openai.OpenAI(base_url=server.url + "/v1", api_key="aip_wrong", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.models.list()


def test_a_model_switch_reaches_the_running_server(
    client: openai.OpenAI, cli: CliFn, fake: FakeProvider
) -> None:
    """The server keeps prepared calls; a switch made by the CLI is seen on the next call."""
    hello = [{"role": "user", "content": "hi"}]
    first = client.chat.completions.create(model="active", messages=hello)
    assert first.model == "gpt-4o-mini"
    assert cli("model", "activate", "openai", "gpt-4o").exit_code == 0
    second = client.chat.completions.create(model="active", messages=hello)
    assert second.model == "gpt-4o" and fake.last_request.json["model"] == "gpt-4o"
    with pytest.raises(openai.BadRequestError) as stale:  # the old name is no longer served
        client.chat.completions.create(model="gpt-4o-mini", messages=hello)
    assert stale.value.code == "model_not_found"
