"""Odd JSON and odd tokens get a 4xx with a JSON error from every route of
`aipilot serve`, never a 500, and never a reserved quota without its usage row.

Bodies: nesting 100,000 deep (and 5,000 deep inside a field), lone surrogates in values and
keys, `NaN` / `Infinity`, 1e400, integers of 1,000 and 5,000 digits, invalid UTF-8, NUL
characters, wrong shapes, each in every field each route reads. Tokens: HS256 JWTs (with
the right secret) whose `exp` is absurd. alice has a daily quota: afterwards it has counted
exactly as many requests as there are usage rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from tests import holes_support
from tests.conftest import CliFn
from tests.fakeprovider import FakeProvider
from tests.holes_support import (
    ASSIST,
    COMPLETIONS,
    CONFIG_TEST,
    JWT_SECRET,
    KEYS,
    Server,
    requests_counted,
    store_key,
    token_for,
    usage_rows,
    user_id,
)
from tests.providers_catalog import activate_directly

fake, server = holes_support.fake, holes_support.server  # fixtures

PLACEHOLDER = "\u2603HOSTILE\u2603"
# raw JSON texts a lenient parser accepts (or chokes on) and aipilot must refuse with a 400
REFUSED = {
    "lone surrogate": '"\\ud800"',
    "lone low surrogate": '"x\\udfffy"',
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "-1e400": "-1e400",
    "1,000-digit int": "1" + "0" * 999,
    "5,000-digit int": "1" + "0" * 4999,
    "5,000 deep": "[" * 5000 + "]" * 5000,
    "surrogate key": '{"\\udc00": 1}',
    "deep object": '{"a": ' * 3000 + "1" + "}" * 3000,
}
# odd but well-formed values: any answer below 500 will do
ODD = {
    "NUL": '"a\\u0000b"',
    "control": '"\\u0007\\u001b[31m"',
    "empty object": "{}",
    "list": "[1, 2]",
    "number": "12",
    "negative": "-1",
    "true": "true",
    "null": "null",
    "long string": json.dumps("x" * 200_000),
}
USER = {"role": "user", "content": "hi"}
BASES: dict[str, dict[str, Any]] = {
    KEYS + " set-key": {"action": "set-key", "provider": "openai", "apiKey": "sk-x", "test": False},
    KEYS + " get-status": {"action": "get-status", "provider": "openai"},
    KEYS + " test-key": {"action": "test-key", "provider": "openai"},
    KEYS + " delete-key": {"action": "delete-key", "provider": "mistral"},
    KEYS + " get-key": {"action": "get-key", "provider": "openai"},
    ASSIST: {"module_name": "global", "messages": [USER], "response_format": "json"},
    CONFIG_TEST: {"module": "global"},
    COMPLETIONS: {"model": "active", "messages": [USER], "max_tokens": 5, "temperature": 0.5},
    COMPLETIONS + " stream": {
        "model": "active",
        "messages": [USER],
        "stream": True,
        "stream_options": {"include_usage": True},
    },
}


def placements(base: dict[str, Any]) -> list[dict[str, Any]]:
    """The base body with the placeholder in each field, in a message, and as a new field."""
    out = []
    for name in base:
        out.append({**base, name: PLACEHOLDER})
    if "messages" in base:
        out.append({**base, "messages": [{"role": "user", "content": PLACEHOLDER}]})
        out.append({**base, "messages": [{"role": PLACEHOLDER, "content": "hi"}]})
        out.append({**base, "messages": [PLACEHOLDER]})
        fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": PLACEHOLDER}}
        out.append({**base, "response_format": fmt})
    out.append({**base, "extra": PLACEHOLDER})
    return out


def raw_bodies() -> list[tuple[str, bytes]]:
    """Whole bodies that are not acceptable JSON objects (each must be a 400)."""
    deep = "[" * 100_000 + "]" * 100_000
    return [
        ("100,000 nested arrays", deep.encode()),
        ("100,000 nested objects", ('{"a":' * 100_000 + "1" + "}" * 100_000).encode()),
        ("NaN body", b"NaN"),
        ("invalid UTF-8", b'{"action": "\xff\xfe"}'),
        ("truncated", b'{"action": "get-status"'),
        ("a list", b"[]"),
        ("a string", b'"get-status"'),
        ("UTF-8 BOM and garbage", b"\xef\xbb\xbf{]"),
    ]


def error_text(route: str, answer: httpx.Response) -> str:
    doc = answer.json()
    if route.startswith("/v1"):
        return str(doc["error"]["message"])
    assert doc["success"] is False
    return str(doc["error"])


def post(http: httpx.Client, route: str, content: bytes, **headers: str) -> httpx.Response:
    path = route.split(" ")[0]
    return http.post(path, content=content, headers={"content-type": "application/json", **headers})


@pytest.fixture
def alice(cli: CliFn, fake: FakeProvider, database_url: str) -> str:
    secret = store_key(cli)
    activate_directly(database_url, "openai", "gpt-4o-mini")
    assert cli("limits", "set", "--daily-requests", "100000").exit_code == 0
    return secret


def test_every_route_answers_hostile_json_with_a_4xx(
    server: Server, cli: CliFn, alice: str, fake: FakeProvider, database_url: str
) -> None:
    server.canaries.append(alice)
    refused: list[str] = []
    with server.client(token_for(cli)) as http:
        for route in BASES:
            for label, content in raw_bodies():
                answer = post(http, route, content)
                assert answer.status_code == 400, (route, label, answer.text)
                assert error_text(route, answer)
            for body in placements(BASES[route]):
                template = json.dumps(body)
                for label, value in {**REFUSED, **ODD}.items():
                    content = template.replace(json.dumps(PLACEHOLDER), value).encode()
                    answer = post(http, route, content)
                    where = (route, label, template[:120], answer.text[:300])
                    assert answer.status_code < 500, where
                    assert answer.headers["content-type"].startswith(
                        ("application/json", "text/event-stream")
                    ), where
                    if answer.status_code >= 400:
                        assert error_text(route, answer), where
                    if label in REFUSED:
                        assert answer.status_code == 400, where
                        refused.append(label)
        assert http.get("/v1/models").status_code == 200  # still serving
    assert len(refused) > 200
    assert requests_counted(database_url) == usage_rows(database_url)
    assert usage_rows(database_url) > 0  # the odd-but-valid calls did reach the provider


@pytest.mark.parametrize("exp", [10**30, 1e30, 10**400, 2**63, -(10**30), "9999999999999"])
def test_an_absurd_exp_in_a_signed_jwt_is_a_401(
    server: Server, cli: CliFn, database_url: str, exp: object
) -> None:
    claims = {"sub": user_id(database_url, "alice"), "role": "authenticated"}
    claims["aud"] = "authenticated"
    good = jwt.encode(
        {**claims, "exp": datetime.now(UTC) + timedelta(minutes=5)}, JWT_SECRET, "HS256"
    )
    bad = jwt.encode({**claims, "exp": exp}, JWT_SECRET, algorithm="HS256")
    with server.client() as http:
        for route in (KEYS, ASSIST, CONFIG_TEST, COMPLETIONS):
            answer = http.post(route, json={}, headers={"Authorization": f"Bearer {bad}"})
            assert answer.status_code == 401, (route, answer.text)
            assert error_text(route, answer)
        ok = http.post(
            KEYS, json={"action": "get-status"}, headers={"Authorization": f"Bearer {good}"}
        )
        assert ok.status_code == 200, ok.text
