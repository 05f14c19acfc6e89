"""The docs hold inside this repository: every relative link lands on a file (and heading) here.

Covers docs/*.md and bench/README.md; README.md has its own tests (tests/test_readme.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.paths import REPO

DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
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
