"""The docs hold inside this repository: every relative link lands on a file (and heading) here,
and docs/architecture.md names every module of the package, so its map cannot drift.

Covers README.md, docs/*.md and bench/README.md. README.md's size and objects table:
tests/test_readme.py; every shell block of the docs: tests/test_runbooks.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.paths import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
PACKAGE = REPO / "constructs" / "cdk8s_valkey"
# [text](target) outside fenced code blocks; images too. Targets with a scheme are not ours to check.
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
_EXPLICIT_ANCHOR = re.compile(r'<a id="([^"]+)"')


def _slug(heading: str) -> str:
    """The anchor GitHub derives from a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {_slug(h) for h in _HEADING.findall(text)} | set(_EXPLICIT_ANCHOR.findall(text))


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [t for t in _LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_land_inside_the_repository(doc: Path) -> None:
    for target in _links(doc):
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        assert dest.is_relative_to(REPO), f"{doc.name}: {target} leads outside the repository"
        assert dest.exists(), f"{doc.name}: {target} does not exist"
        if anchor:
            assert anchor in _anchors(dest), f"{doc.name}: {target} has no heading or <a id> #{anchor}"


def test_no_doc_points_at_the_adr_outside_the_repository() -> None:
    for doc in DOCS:
        assert "shared/adr" not in doc.read_text(encoding="utf-8"), f"{doc}: link docs/adr-0005.md instead"


def _modules() -> list[str]:
    """Every module and script of the package, as architecture.md names them: `review/pvc.py`,
    `scripts/probe.sh`, `valkey.py` (generated bindings under _imports/ excepted)."""
    found = []
    for path in sorted(PACKAGE.rglob("*")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("_imports", "__pycache__") or "__pycache__" in rel.parts or path.is_dir():
            continue
        if (path.suffix in (".py", ".sh") and path.name != "__init__.py") or rel.parts[0] == "data":
            found.append(str(rel))
    return found


def test_architecture_names_every_module() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = _modules()
    assert len(modules) > 20, modules
    missing = [m for m in modules if f"`{m}`" not in text and f"`{Path(m).name}`" not in text]
    assert not missing, f"docs/architecture.md does not name {missing}: add them to the module map"
    # and names none that is gone
    named = set(re.findall(r"`((?:[\w-]+/)*[\w-]+\.(?:py|sh))`", text))
    known = set(modules) | {Path(m).name for m in modules} | {"main.py", "__main__.py", "__init__.py"}
    stale = sorted(n for n in named if n not in known and not (REPO / n).exists())
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"
