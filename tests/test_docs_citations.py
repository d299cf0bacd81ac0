"""What the code cites, the repository holds (docs/README.md).

Every ``docs/<file>.md`` named in ``aipilot/``, ``tests/``, ``alembic/``, ``bench/`` or the
README exists; every section it cites (``docs/providers.md §4.6``, ``§2, §5–§9``) is a
numbered heading of that file, and every quoted heading (``docs/benchmarks.md, "prepared
statements"``) is the start of one of its headings. No file there cites the founding
specification's own files, which live outside the repository. No database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SCANNED = ("aipilot", "tests", "alembic", "bench")
SUFFIXES = frozenset({".py", ".md", ".ini", ".toml", ".txt"})

_SECTION = r"§\d+(?:\.\d+)*"
# a file, then any run of section references: "§3", "§2, §5–§9", "§11.2 and §11.3"; a
# citation may continue on the next line of a comment
CITATION = re.compile(
    r"docs/(?P<file>[a-z0-9_-]+\.md)"
    rf"(?P<refs>(?:[\s,#]*(?:and\s+)?{_SECTION}(?:\s*[–-]\s*{_SECTION})?)*)"
)
QUOTED = re.compile(r'docs/(?P<file>[a-z0-9_-]+\.md),?\s+"(?P<title>[^"\n]+)"')
RANGE = re.compile(rf"(?P<start>{_SECTION})\s*[–-]\s*(?P<end>{_SECTION})")
NUMBERED_HEADING = re.compile(r"^#+\s+(?P<number>\d+(?:\.\d+)*)\.?\s")
# the founding specification's files, which are not in the repository
FOREIGN = re.compile(r"\b(?:SECURITY|PROVIDERS|DESIGN|CONVENTIONS|SUPABASE)\.md\b|\bshared/")


@dataclass(frozen=True)
class Citation:
    source: str  # path:line
    file: str
    sections: tuple[str, ...]


def scanned_files() -> Iterator[Path]:
    yield REPO / "README.md"
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                yield path


def _where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(REPO)}:{text.count(chr(10), 0, offset) + 1}"


def _sections(refs: str) -> tuple[str, ...]:
    """Every section a run of references names; an integer range names each one between."""
    found: list[str] = []
    for match in RANGE.finditer(refs):
        start, end = match["start"][1:], match["end"][1:]
        if start.isdigit() and end.isdigit() and int(start) < int(end):
            found += [str(n) for n in range(int(start), int(end) + 1)]
    found += [ref[1:] for ref in re.findall(_SECTION, refs)]
    return tuple(dict.fromkeys(found))


def citations() -> list[Citation]:
    found = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in CITATION.finditer(text):
            where = _where(path, text, match.start())
            found.append(Citation(where, match["file"], _sections(match["refs"])))
    return found


def headings(doc: Path) -> list[str]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if re.match(r"^#+\s", line)]


def numbered(doc: Path) -> list[str]:
    return [m["number"] for h in headings(doc) if (m := NUMBERED_HEADING.match(h))]


def test_the_scan_finds_the_citations() -> None:
    """A guard against the patterns rotting: the code does cite these documents by section."""
    cited = citations()
    by_file = {c.file for c in cited if c.sections}
    assert {"providers.md", "security.md", "design.md"} <= by_file, by_file
    assert sum(len(c.sections) for c in cited) >= 20


def test_every_cited_document_exists() -> None:
    missing = [f"{c.source}: docs/{c.file}" for c in citations() if not (DOCS / c.file).is_file()]
    assert missing == [], "\n".join(missing)


def test_every_cited_section_is_a_heading_of_its_document() -> None:
    known = {doc.name: set(numbered(doc)) for doc in DOCS.glob("*.md")}
    wrong = [
        f"{c.source}: docs/{c.file} §{section}"
        for c in citations()
        for section in c.sections
        if section not in known.get(c.file, set())
    ]
    assert wrong == [], "no such section:\n" + "\n".join(wrong)


def test_every_quoted_heading_exists() -> None:
    wrong = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in QUOTED.finditer(text):
            doc = DOCS / match["file"]
            titles = (
                [re.sub(r"^#+\s+", "", h).lower() for h in headings(doc)] if doc.is_file() else []
            )
            title = match["title"].lower()
            if not any(
                t.startswith(title) or t.split(" ", 1)[-1].startswith(title) for t in titles
            ):
                wrong.append(f"{_where(path, text, match.start())}: {match[0]}")
    assert wrong == [], "no such heading:\n" + "\n".join(wrong)


def test_nothing_cites_a_file_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    found = []
    for path in scanned_files():
        if path.resolve() == this:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{_where(path, text, m.start())}: {m[0]}" for m in FOREIGN.finditer(text)]
    assert found == [], "cite docs/ instead:\n" + "\n".join(found)


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")))
def test_section_numbers_are_unique(doc: str) -> None:
    numbers = numbered(DOCS / doc)
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    assert duplicates == [], f"docs/{doc} numbers two sections {duplicates}"


def test_the_patterns_read_the_citation_forms_in_use() -> None:
    """The forms found in the code: one section, a list with a range, a line break."""
    text = "data (docs/providers.md\n§2, §5–§9): and docs/security.md §3), see docs/design.md §9.2."
    got = [(m["file"], set(_sections(m["refs"]))) for m in CITATION.finditer(text)]
    assert got == [
        ("providers.md", {"2", "5", "6", "7", "8", "9"}),
        ("security.md", {"3"}),
        ("design.md", {"9.2"}),
    ]
    assert FOREIGN.search("see PROVIDERS.md §4") and FOREIGN.search("(`shared/seeds/`)")
    assert not FOREIGN.search("see docs/providers.md §4 and docs/security.md")
