"""Input checks shared by the services: refuse before anything is stored."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from aipilot.errors import UsageError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]*")
MAX_NAME = 64
DEFAULT_MODULE = "global"
MAX_MODULE = 64
_MODULE = re.compile(r"[a-z][a-z0-9_-]*")
PROTOCOLS = ("openai", "anthropic", "gemini")
AUTH_METHODS = ("bearer", "api_key_header", "none")
MAX_LABEL = 120
MAX_MODEL_KEY = 128
MAX_URL = 2000
MAX_PRICE = Decimal("1000000")
MAX_CONTEXT = 100_000_000
_MODEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+\-]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PATH = re.compile(r"/[\x21-\x7e]*")
_SECRET_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key"}


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unicode_text(kind: str, value: str) -> str:
    """Text that can be encoded: no lone surrogate (Python's stand-in for bytes that were not
    UTF-8, e.g. in a command-line argument), which no request body or database can carry."""
    if _LONE_SURROGATE.search(value):
        raise UsageError(
            f"the {kind} is not valid Unicode text (it holds bytes that are not UTF-8)",
            hint="give UTF-8 text",
        )
    return value


def identifier(kind: str, value: str, *, max_len: int = MAX_NAME) -> str:
    """A user name, provider key or module name: ASCII letters, digits and ``._@+-``."""
    value = value.strip()
    if not value:
        raise UsageError(f"the {kind} is empty", hint=f"give a {kind}")
    if len(value) > max_len:
        raise UsageError(
            f"the {kind} is {len(value)} characters long; the limit is {max_len}",
            hint=f"use a shorter {kind}",
        )
    if not _NAME.fullmatch(value):
        raise UsageError(
            f"the {kind} {value!r} has characters outside letters, digits and ._@+-",
            hint=f"use a plain ASCII {kind} such as 'alice' or 'openai'",
        )
    return value


def module_name(value: str) -> str:
    """A module name: lowercase identifier such as ``global`` (the seed's only module)."""
    value = value.strip()
    if not value or len(value) > MAX_MODULE or not _MODULE.fullmatch(value):
        raise UsageError(
            f"invalid module name {value[:80]!r}",
            hint=f"use a lowercase identifier (letters, digits, _ or -, at most {MAX_MODULE} "
            f"characters), e.g. '{DEFAULT_MODULE}'",
        )
    return value


def label(kind: str, value: str) -> str:
    """A display label: printable text (no control characters), not blank, bounded."""
    value = value.strip()
    if not value:
        raise UsageError(f"the {kind} is empty", hint=f"give a {kind}")
    if len(value) > MAX_LABEL:
        raise UsageError(
            f"the {kind} is {len(value)} characters long; the limit is {MAX_LABEL}",
            hint=f"use a shorter {kind}",
        )
    if not value.isprintable():
        raise UsageError(f"the {kind} has control characters", hint="use plain text")
    return value


def model_key(value: str) -> str:
    """A model id as providers spell it: ASCII letters, digits and ``._:/@+-``."""
    value = value.strip()
    if not value:
        raise UsageError("the model key is empty", hint="give the provider's model id")
    if len(value) > MAX_MODEL_KEY:
        raise UsageError(
            f"the model key is {len(value)} characters long; the limit is {MAX_MODEL_KEY}",
            hint="give the provider's model id",
        )
    if not _MODEL_KEY.fullmatch(value):
        raise UsageError(
            f"the model key {value!r} has characters outside letters, digits and ._:/@+-",
            hint="give the provider's model id, e.g. 'gpt-4o-mini'",
        )
    return value


def provider_key(value: str) -> str:
    return identifier("provider key", value).lower()


def base_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value) if len(value) <= MAX_URL and value.isascii() else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise UsageError(
            f"{value[:80]!r} is not an http(s) URL with a host",
            hint="e.g. https://api.openai.com/v1",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(
            "the base URL must not carry credentials, a query or a fragment",
            hint="keys travel in headers: store them with `aipilot keys set`",
        )
    return value.rstrip("/")


def choice(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    value = value.strip().lower()
    if value == "query_param":
        raise UsageError(
            "the query_param auth method is refused: it puts keys in URLs, which get logged",
            hint="use bearer or api_key_header (Gemini accepts the x-goog-api-key header)",
        )
    if value not in allowed:
        raise UsageError(f"unknown {kind} {value!r}", hint="use one of: " + ", ".join(allowed))
    return value


def header_name(name: str) -> str:
    name = name.strip()
    if not _HEADER_NAME.fullmatch(name) or len(name) > MAX_LABEL:
        raise UsageError(
            f"{name[:80]!r} is not a valid HTTP header name", hint="e.g. anthropic-version"
        )
    return name


def apply_headers(current: dict[str, str], items: tuple[str, ...], *, update: bool) -> None:
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--header {item[:80]!r} is not K=V", hint="e.g. --header X-Env=prod")
        name, value = header_name(name), value.strip()
        if name.lower() in _SECRET_HEADERS:
            raise UsageError(
                f"the {name} header carries keys and cannot be stored in the catalog",
                hint="store keys with `aipilot keys set PROVIDER`",
            )
        for old in [k for k in current if k.lower() == name.lower()]:
            del current[old]
        if not value and update:
            continue  # "K=" removes K on update
        if not value or not value.isascii() or not value.isprintable():
            raise UsageError(
                f"the value of header {name} must be printable ASCII and not empty",
                hint="e.g. --header anthropic-version=2023-06-01",
            )
        current[name] = value


def test_endpoint(value: str) -> str:
    value = value.strip()
    if not _PATH.fullmatch(value) or len(value) > MAX_URL:
        raise UsageError(f"the test endpoint {value[:80]!r} is not a path", hint="e.g. /models")
    return value


def price(kind: str, value: str | Decimal) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount >= MAX_PRICE:
        raise UsageError(
            f"the {kind} price {str(value)[:40]!r} is not a non-negative amount",
            hint="give USD per million tokens, e.g. 2.50",
        )
    if amount.as_tuple().exponent < -6:  # type: ignore[operator]
        raise UsageError(f"the {kind} price has more than 6 decimals", hint="e.g. 0.15")
    return amount


def context_window(value: int) -> int:
    if not 0 < value <= MAX_CONTEXT:
        raise UsageError(
            f"the context window {value} is out of range", hint="give tokens, e.g. 128000"
        )
    return value


# ---------------------------------------------------------------- JSON Schemas (never fetched)
MAX_SCHEMA_DEPTH = 64
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})  # values, not schemas
_NAMED_SCHEMAS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
)
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("not", "if", "then", "else")
_SCHEMA_HINT = (
    "give a self-contained schema: `$ref` only to '#…' inside it (e.g. '#/$defs/name'), "
    "no embedded `$id`, a standard `$schema` or none; aipilot never fetches a schema"
)


def _schema_error(message: str) -> UsageError:
    return UsageError(f"the JSON schema {message}", hint=_SCHEMA_HINT)


def json_schema(schema: Mapping[str, Any]) -> None:
    """Refuse a JSON Schema that refers to anything outside itself or cannot be evaluated.

    Checked before any provider call: every ``$ref``/``$dynamicRef``/``$recursiveRef`` is a
    local '#…' pointer that resolves inside the document; ``$id`` only at the root (where it
    is a name, never fetched) or as a '#anchor'; ``$schema`` one of the standard dialects
    (and only at the root); no reference loop that does not descend into the data; at most
    :data:`MAX_SCHEMA_DEPTH` levels; valid against its dialect's metaschema.
    """
    from jsonschema.exceptions import SchemaError

    doc = dict(schema)
    dialect = _dialect(doc)
    legacy_id = dialect.__name__ in ("Draft3Validator", "Draft4Validator")
    refs: list[tuple[str, str]] = []
    anchors: dict[str, Any] = {}
    _walk_schema(doc, 0, refs=refs, anchors=anchors, legacy_id=legacy_id)
    targets = {ref: _target(doc, ref, anchors) for _keyword, ref in refs}
    _refuse_loops(doc, targets)
    try:
        dialect.check_schema(doc)
    except SchemaError as exc:
        raise _schema_error(f"is not valid: {exc.message[:200]}") from None


def _dialect(doc: Mapping[str, Any]) -> Any:
    from jsonschema.validators import validator_for

    declared = doc.get("$schema")
    if declared is None:
        return validator_for(doc)
    found = validator_for(doc, default=None) if isinstance(declared, str) else None
    if found is None:
        raise _schema_error(
            f"declares the non-standard $schema {str(declared)[:80]!r}",
            # the metaschema would have to be fetched
        )
    return found


def _walk_schema(
    node: Any,
    depth: int,
    *,
    refs: list[tuple[str, str]],
    anchors: dict[str, Any],
    legacy_id: bool,
    named: bool = False,
) -> None:
    """Check every keyword of ``node`` (``named``: a map of names to schemas, not a schema)."""
    if depth > MAX_SCHEMA_DEPTH:
        raise _schema_error(f"is nested more than {MAX_SCHEMA_DEPTH} levels deep")
    if isinstance(node, str) and _LONE_SURROGATE.search(node):
        raise _schema_error("holds text that is not valid Unicode (bytes that are not UTF-8)")
    if isinstance(node, list):
        for item in node:
            _walk_schema(item, depth + 1, refs=refs, anchors=anchors, legacy_id=legacy_id)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        _walk_schema(key, depth, refs=refs, anchors=anchors, legacy_id=legacy_id, named=True)
        if not named:
            if key in _DATA_KEYWORDS:
                continue
            _check_keyword(node, key, value, depth, refs=refs, anchors=anchors, legacy_id=legacy_id)
        _walk_schema(
            value,
            depth + 1,
            refs=refs,
            anchors=anchors,
            legacy_id=legacy_id,
            named=not named and key in _NAMED_SCHEMAS and isinstance(value, dict),
        )


def _check_keyword(
    node: dict[str, Any],
    key: str,
    value: Any,
    depth: int,
    *,
    refs: list[tuple[str, str]],
    anchors: dict[str, Any],
    legacy_id: bool,
) -> None:
    if key in _REF_KEYWORDS:
        if not isinstance(value, str) or not value.startswith("#"):
            raise _schema_error(
                f"refers to {str(value)[:80]!r} with {key}: only '#…' pointers inside the "
                "schema are allowed"
            )
        refs.append((key, value))
    elif key in ("$anchor", "$dynamicAnchor") and isinstance(value, str):
        anchors[value] = node
    elif (key == "$id" or (key == "id" and legacy_id)) and isinstance(value, str):
        if value.startswith("#"):
            anchors[value[1:]] = node  # drafts 4-7: a plain-name fragment is an anchor
        elif depth > 0:
            raise _schema_error(
                f"embeds {key} {value[:80]!r}, which would change where its references point"
            )
    elif key == "$schema" and depth > 0:
        raise _schema_error("declares $schema below its root")


def _target(doc: dict[str, Any], ref: str, anchors: Mapping[str, Any]) -> Any:
    """The node a local '#…' reference points at (the root, a JSON pointer, an anchor)."""
    from urllib.parse import unquote

    fragment = unquote(ref[1:])
    if not fragment.startswith("/"):
        if fragment == "":
            return doc
        if fragment in anchors:
            return anchors[fragment]
        raise _schema_error(f"refers to the anchor {ref[:80]!r}, which it does not define")
    node: Any = doc
    for raw in fragment[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _schema_error(f"refers to {ref[:80]!r}, which points at nothing in it")
    return node


def _in_place(node: Any, targets: Mapping[str, Any]) -> list[Any]:
    """The schemas applied to the same data as ``node`` (a loop among them never ends)."""
    if not isinstance(node, dict):
        return []
    found: list[Any] = []
    for key in _IN_PLACE_LISTS:
        if isinstance(node.get(key), list):
            found += node[key]
    found += [node[key] for key in _IN_PLACE_ONE if key in node]
    for key in ("dependentSchemas", "dependencies"):
        if isinstance(node.get(key), dict):
            found += [v for v in node[key].values() if isinstance(v, dict)]
    found += [targets[node[key]] for key in _REF_KEYWORDS if node.get(key) in targets]
    return found


def _refuse_loops(doc: dict[str, Any], targets: Mapping[str, Any]) -> None:
    """Depth-first, without recursion: a schema that reaches itself in place loops forever."""
    starts = [doc, *targets.values()]
    done: set[int] = set()
    for start in starts:
        if id(start) in done:
            continue
        path: list[int] = [id(start)]
        stack: list[tuple[Any, list[Any]]] = [(start, _in_place(start, targets))]
        while stack:
            if len(stack) > MAX_SCHEMA_DEPTH:
                raise _schema_error(f"chains more than {MAX_SCHEMA_DEPTH} references in place")
            _node, pending = stack[-1]
            if not pending:
                stack.pop()
                done.add(path.pop())
                continue
            child = pending.pop()
            if id(child) in path:
                raise _schema_error(
                    "refers to itself without descending into the data (it would never finish)"
                )
            if id(child) not in done:
                path.append(id(child))
                stack.append((child, _in_place(child, targets)))


def schema_mismatch(data: Any, schema: Mapping[str, Any]) -> str | None:
    """Why ``data`` does not match ``schema`` (one line), or None. Nothing is fetched: a
    reference outside the schema (refused earlier by :func:`json_schema`) fails here too."""
    import referencing
    import referencing.exceptions
    from jsonschema.exceptions import SchemaError, ValidationError, best_match
    from jsonschema.validators import validator_for

    def retrieve(uri: str) -> referencing.Resource[Any]:
        raise referencing.exceptions.NoSuchResource(uri)

    doc = dict(schema)
    try:
        registry = referencing.Registry(retrieve=retrieve)  # type: ignore[call-arg]
        validator = validator_for(doc)(doc, registry=registry)
        error: ValidationError | None = best_match(validator.iter_errors(data))
    except (SchemaError, referencing.exceptions.Unresolvable, RecursionError):
        return "(the schema cannot be evaluated)"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message[:200]}"


def money(value: str | Decimal | None, *, below: int = 100_000_000) -> Decimal | None:
    """A USD amount with at most 4 decimals (the columns' scale), or None."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount >= below:
        raise UsageError(
            f"--monthly-cost {str(value)[:40]!r} is not an amount in USD", hint="e.g. 25 or 0.5"
        )
    if amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise UsageError("--monthly-cost has more than 4 decimals", hint="e.g. 0.0005")
    return amount
