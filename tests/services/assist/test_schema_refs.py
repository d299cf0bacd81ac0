"""A JSON Schema handed to aipilot is never resolved over the network.

`aipilot ask --schema`, `assist_flut` and `/v1/chat/completions` `response_format` refuse a
schema that refers to anything outside itself (remote or relative `$ref`, `$dynamicRef`,
an embedded `$id`, a non-standard `$schema`), or that cannot be evaluated (a pointer to
nothing, a loop), with a usage error (exit 2, HTTP 400) before any provider call, quota
reservation or usage row. A silent listener on 127.0.0.1 stands in for an internal URL:
it receives nothing, and nothing waits on it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aipilot.errors import ExitCode
from tests import holes_support
from tests.conftest import CliFn, Run, run_process
from tests.fakeprovider import FakeProvider
from tests.holes_support import (
    ASSIST,
    COMPLETIONS,
    Server,
    SilentListener,
    requests_counted,
    store_key,
    token_for,
    usage_rows,
)
from tests.providers_catalog import activate_directly

fake, server = holes_support.fake, holes_support.server  # fixtures

STRING = {"type": "string"}
LOCAL = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"city": {"$ref": "#/$defs/name"}},
    "$defs": {"name": STRING},
    "required": ["city"],
}


def hostile(base: str) -> dict[str, dict[str, Any]]:
    """Schemas that would make a validator fetch ``base`` (or read a file), or loop."""
    return {
        "http ref": {"type": "object", "properties": {"a": {"$ref": f"{base}/a.json"}}},
        "https ref": {"$ref": base.replace("http:", "https:") + "/b.json"},
        "file ref": {"$ref": "file:///etc/passwd"},
        "relative ref": {"$ref": "other.json#/x"},
        "ref under a root $id": {"$id": f"{base}/", "$ref": "c.json"},
        "non-string ref": {"properties": {"a": {"$ref": {"url": base}}}},
        "dynamic ref": {"$dynamicRef": f"{base}/d.json#meta"},
        "recursive ref": {"$recursiveRef": f"{base}/e.json"},
        "embedded $id": {"properties": {"a": {"$id": f"{base}/f.json", "$ref": "#/x"}}},
        "draft-4 embedded id": {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "properties": {"a": {"id": f"{base}/g.json", "type": "string"}},
        },
        "non-standard $schema": {"$schema": f"{base}/meta", "type": "object"},
        "nested $schema": {"properties": {"a": {"$schema": f"{base}/meta"}}},
        "pointer to nothing": {"properties": {"a": {"$ref": "#/$defs/missing"}}},
        "unknown anchor": {"properties": {"a": {"$ref": "#nowhere"}}},
        "loop": {"$ref": "#"},
        "loop through allOf": {
            "$defs": {"x": {"allOf": [{"$ref": "#/$defs/x"}]}},
            "$ref": "#/$defs/x",
        },
        "dynamic loop": {"$dynamicAnchor": "meta", "$dynamicRef": "#meta"},
        "invalid schema": {"type": 12},
        "too deep": nest(100),
    }


def nest(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = STRING
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.fixture
def ready(cli: CliFn, fake: FakeProvider, database_url: str) -> str:
    """alice has a key, gpt-4o-mini active, and a daily quota (to see any reservation)."""
    secret = store_key(cli)
    activate_directly(database_url, "openai", "gpt-4o-mini")
    assert cli("limits", "set", "--daily-requests", "1000").exit_code == 0
    return secret


def chats(fake: FakeProvider) -> int:
    return sum("chat/completions" in r.path for r in fake.requests)


def assert_nothing_happened(
    fake: FakeProvider, database_url: str, listener: SilentListener
) -> None:
    assert listener.received == []
    assert chats(fake) == 0
    assert usage_rows(database_url) == 0
    assert requests_counted(database_url) == 0


def within(seconds: float, call: Callable[[], Run]) -> Run:
    """``call()`` in a thread: a fetch from the silent listener would never return."""
    done: list[Run] = []
    thread = threading.Thread(target=lambda: done.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert done, "the command hung"
    return done[0]


def test_ask_schema_refuses_every_reference_outside_the_schema(
    ready: str, cli: CliFn, fake: FakeProvider, database_url: str, tmp_path: Path
) -> None:
    with SilentListener() as listener:
        schemas = hostile(listener.url)
        path = tmp_path / "schema.json"
        argv = ["ask", "city?", "--schema", str(path)]
        for name, schema in schemas.items():
            path.write_text(json.dumps(schema))
            run = within(20, lambda: cli(*argv))
            assert run.exit_code == ExitCode.USAGE, (name, run.stderr)
            assert "\nError: the JSON schema" in "\n" + run.stderr, (name, run.stderr)
            assert "Traceback" not in run.stderr and run.stdout == ""
        # and as a real process, its exit code and output as a script sees them
        path.write_text(json.dumps(schemas["http ref"]))
        run = run_process(argv, database_url=database_url, timeout=30)
        assert run.exit_code == ExitCode.USAGE and run.stdout == "", run.stderr
        lines = [line for line in run.stderr.splitlines() if not line.startswith("Warning:")]
        assert len(lines) == 2 and lines[0].startswith("Error: the JSON schema")  # and a Hint
        assert_nothing_happened(fake, database_url, listener)


def test_a_self_contained_schema_still_works(
    ready: str, cli: CliFn, fake: FakeProvider, database_url: str, tmp_path: Path
) -> None:
    with SilentListener() as listener:
        for schema in (LOCAL, {**LOCAL, "$id": f"{listener.url}/root.json"}):
            path = tmp_path / "schema.json"
            path.write_text(json.dumps(schema))
            run = cli("ask", "city?", "--schema", str(path), "--json")
            assert run.exit_code == 0, run.stderr
            assert run.json()["data"] == {"city": "pong"}
            sent = fake.last_request.json["response_format"]["json_schema"]["schema"]
            assert sent["$defs"] == {"name": STRING}
        assert listener.received == []
    assert usage_rows(database_url) == 2


def test_the_python_api_refuses_remote_references_too(
    ready: str, database_url: str, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aipilot
    from aipilot.errors import UsageError
    from tests.conftest import MASTER_KEY

    monkeypatch.setenv("AIPILOT_MASTER_KEY", MASTER_KEY)
    outcome: list[object] = []
    question = [{"role": "user", "content": "x"}]
    with SilentListener() as listener, aipilot.Assistant(user="alice", db=database_url) as ai:

        def call() -> None:  # in a thread: a fetch from the listener would never return
            try:
                ai.ask(question, schema={"$ref": listener.url})
            except UsageError as err:
                outcome.append(err)

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        thread.join(20)
        assert not thread.is_alive(), "the call hung on the silent listener"
        assert len(outcome) == 1 and "JSON schema" in str(outcome[0])
        assert ai.ask(question, schema=LOCAL).data == {"city": "pong"}
        assert listener.received == []
    assert chats(fake) == 1


def completion(schema: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    return {
        "model": "active",
        "stream": stream,
        "messages": [{"role": "user", "content": "city?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }


def assist_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "city?"}],
        "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
    }


BODIES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    COMPLETIONS: completion,
    COMPLETIONS + " (stream)": lambda schema: completion(schema, stream=True),
    ASSIST: assist_body,
}


def test_serve_refuses_remote_references_with_a_400(
    server: Server, cli: CliFn, ready: str, fake: FakeProvider, database_url: str
) -> None:
    server.canaries.append(ready)
    token = token_for(cli)
    with SilentListener() as listener, server.client(token) as http:
        http.timeout = 10  # a fetch from the silent listener would time out here
        for name, schema in hostile(listener.url).items():
            for route, body in BODIES.items():
                answer = http.post(route.split(" ")[0], json=body(schema))
                assert answer.status_code == 400, (name, route, answer.text)
                doc = answer.json()
                error = doc["error"] if route.startswith("/v1") else doc
                text = error["message"] if route.startswith("/v1") else error["error"]
                assert isinstance(text, str) and text, (name, route)
        ok = http.post(COMPLETIONS, json=completion(LOCAL))
        assert ok.status_code == 200, ok.text
        assert json.loads(ok.json()["choices"][0]["message"]["content"]) == {"city": "pong"}
        assert listener.received == []
    assert chats(fake) == 1 and usage_rows(database_url) == 1
    assert requests_counted(database_url) == 1
