"""The shell blocks of the docs as data, and a way to run them as written.

A block is a fenced ```sh or ```bash code block of README.md or docs/*.md (indented ones in lists
too). A block preceded by ``<!-- shell:setup -->`` sets variables and functions for the blocks after
it: for the whole file when it comes before the first ``## `` heading, otherwise for the rest of
its ``## `` section. A block preceded by ``<!-- drill:<name> -->`` is run by a drill under that name.

``run_block`` runs a block's text with ``sh`` and the ``kubectl`` of ``harness/kubectl_shim.py`` on the
PATH: ``kubectl exec`` into the pods the test declares runs locally, the rest is refused (exit 97).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.paths import REPO

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELLS = ("sh", "bash")
SHIM = Path(__file__).resolve().parent / "kubectl_shim.py"

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_MARKER = re.compile(r"<!--\s*(shell:setup|drill:[\w-]+)\s*-->")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    section: str  # the ## heading it is under ("" before the first)
    markers: list[str] = field(default_factory=list)
    setup: list[Block] = field(default_factory=list)  # the setup blocks in scope, in order

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def is_setup(self) -> bool:
        return "shell:setup" in self.markers

    def with_setup(self) -> str:
        """The text as it runs in the reader's shell: the setup blocks in scope, then the block."""
        return "".join(s.text for s in self.setup) + self.text


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with its markers and the setup blocks in scope."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    found: list[Block] = []
    section = ""
    pending: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = _FENCE.match(line)
        if fence:
            indent, lang = fence.group(1), fence.group(2)
            body: list[str] = []
            j = i + 1
            while j < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[j]):
                body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
                j += 1
            found.append(Block(path, i + 1, lang, "".join(body), section, pending))
            pending = []
            i = j + 1
            continue
        marker = _MARKER.search(line)
        if marker:
            pending = [*pending, marker.group(1)]
        elif line.strip():
            pending = []
        i += 1
    shell = [b for b in found if b.lang in SHELLS]
    for block in shell:
        block.setup = [s for s in shell if s.is_setup and s.line < block.line and (s.section in ("", block.section))]
    return found


def shell_blocks(paths: Sequence[Path] = DOC_FILES) -> list[Block]:
    return [b for path in paths for b in blocks(path) if b.lang in SHELLS]


def drill_block(name: str, path: Path = REPO / "docs" / "operations.md") -> Block:
    (block,) = [b for b in blocks(path) if f"drill:{name}" in b.markers]
    assert block.lang in SHELLS, f"{block.id}: the drill:{name} block is not a ```sh block"
    return block


@dataclass
class ShimPod:
    """A pod the ``kubectl`` shim execs into: its namespace/name, containers, data dir and PATH
    (``paths``: a PATH of its own for some containers, e.g. a Sentinel's valkey-cli)."""

    namespace: str
    name: str
    containers: list[str]
    data: Path
    path: str
    paths: dict[str, str] = field(default_factory=dict)


@dataclass
class BlockRun:
    returncode: int
    stdout: str
    stderr: str
    calls: list[dict[str, object]]

    @property
    def ran(self) -> list[dict[str, object]]:
        return [c for c in self.calls if c["ran"]]

    @property
    def refused(self) -> list[dict[str, object]]:
        return [c for c in self.calls if not c["ran"]]


def run_block(
    text: str,
    pods: Sequence[ShimPod],
    workdir: Path,
    *,
    wrap: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> BlockRun:
    """Run ``text`` with ``sh`` in ``workdir``, ``kubectl`` being the shim."""
    shim_bin = workdir / "shim-bin"
    shim_bin.mkdir(parents=True, exist_ok=True)
    kubectl = shim_bin / "kubectl"
    kubectl.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SHIM}" "$@"\n')
    kubectl.chmod(0o755)
    log = workdir / "kubectl-calls.jsonl"
    log.write_text("")
    shim_env = {
        "PATH": f"{shim_bin}{os.pathsep}/usr/bin:/bin",
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "KUBECTL_SHIM_LOG": str(log),
        "KUBECTL_SHIM_WRAP": json.dumps(list(wrap)),
        "KUBECTL_SHIM_PODS": json.dumps(
            {
                f"{p.namespace}/{p.name}": {
                    "containers": p.containers,
                    "data": str(p.data),
                    "path": p.path,
                    "paths": p.paths,
                }
                for p in pods
            }
        ),
        **(env or {}),
    }
    result = subprocess.run(
        ["sh", "-c", text],
        cwd=workdir,
        env=shim_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines() if line]
    return BlockRun(result.returncode, result.stdout, result.stderr, calls)
