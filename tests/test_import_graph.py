"""The import graph of ``aipilot/``, read from the source: no cycle, and no arrow against the
layering ``cli | server | api → services → db | providers | vault → errors | config``.

Every import counts — module level, inside functions, and under ``TYPE_CHECKING`` — because
a lazy import still ties two modules together. Within ``services`` the domain subpackages
may use one another, and ``services.runtime`` (the ``Context`` every service receives) uses
nothing else in ``services``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aipilot"
# the layer of each top-level part of the package; higher layers import lower ones only
LAYERS = {
    "cli": 3,
    "server": 3,
    "api": 3,
    "__main__": 3,
    "services": 2,
    "db": 1,
    "providers": 1,
    "vault": 1,
    "errors": 0,
    "config": 0,
    "redaction": 0,
    "debuglog": 0,
}


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def _known(name: str) -> str | None:
    """The module a dotted import name lands in (a name imported from a module → that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> Iterator[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
        else:
            continue
        for target in targets:
            found = _known(target) if target.startswith("aipilot") else None
            if found is not None and found != module:
                yield found


GRAPH = {module: sorted(set(imports_of(module))) for module in MODULES}


def layer(module: str) -> int:
    parts = module.split(".")
    return 3 if len(parts) == 1 else LAYERS[parts[1]]


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {m.split(".")[1] for m in MODULES if "." in m}
    assert parts <= set(LAYERS), parts - set(LAYERS)


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    # proof that the reader is not blind: known function-level and TYPE_CHECKING imports
    assert "aipilot.services.assist.assist" in GRAPH["aipilot.cli.assist"]  # inside ask()
    assert "aipilot.providers.types" in GRAPH["aipilot.services.assist.assist"]  # TYPE_CHECKING


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_anywhere() -> None:
    assert _cycles() == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_arrow_against_the_layering(module: str) -> None:
    wrong = []
    for target in GRAPH[module]:
        same_part = target.split(".")[:2] == module.split(".")[:2]
        if layer(target) > layer(module):
            wrong.append(target)
        elif layer(target) == layer(module) and not same_part and layer(module) in (1, 2):
            wrong.append(target)  # db, providers and vault stand side by side
    assert wrong == [], f"{module} imports {wrong}"


def test_the_context_depends_on_nothing_in_services() -> None:
    inside = [m for m in GRAPH["aipilot.services.runtime"] if m.startswith("aipilot.services")]
    assert inside == []


def test_services_are_grouped_by_domain_each_saying_what_it_owns() -> None:
    services = PACKAGE / "services"
    loose = sorted(p.stem for p in services.glob("*.py") if p.stem != "__init__")
    # shared by every domain (documents: the seed's JSON documents, CLI and HTTP alike)
    assert loose == ["documents", "locks", "runtime", "setup", "validate"]
    for package in sorted(p for p in services.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc and len(doc) > 40, package.name
