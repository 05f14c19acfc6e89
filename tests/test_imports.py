"""`make imports` regenerates the committed CRD bindings (imports/) byte for byte, offline.

imports/ is `cdk8s import` output and never edited by hand; this keeps the Makefile's list of
CRDs, the CLI version in package-lock.json and the committed tree in step. The CRD files are
read from ``conftest.SHARED_CRDS`` (``VALKEY_CRDS_DIR``), never copied into the repository.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

import pytest

from harness.paths import REPO, SHARED_CRDS, require_binary

pytestmark = pytest.mark.real

IMPORTS = REPO / "imports"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_package_reads_imports_through_a_symlink() -> None:
    # So regenerating imports/ regenerates what the package (and its wheel) carries.
    link = REPO / "constructs" / "cdk8s_valkey" / "_imports"
    assert link.is_symlink(), f"{link} must stay a symlink to imports/, not a copy"
    assert link.resolve() == IMPORTS.resolve()


def test_make_imports_reproduces_the_committed_tree(tmp_path: Path) -> None:
    if not (SHARED_CRDS / "monitoring.coreos.com_servicemonitors.yaml").is_file():
        pytest.skip(
            f"the CRD files are not in {SHARED_CRDS}: set VALKEY_CRDS_DIR to a directory holding "
            "the prometheus-operator v0.93.0 CRDs (addresses in cdk8s.yaml) to run this test"
        )
    make = require_binary("make")
    out = tmp_path / "imports"
    result = subprocess.run(
        [make, "--no-print-directory", "imports", f"CRDS_DIR={SHARED_CRDS}", f"IMPORTS_DIR={out}"],
        cwd=REPO,
        env=dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    fresh, committed = _files(out), _files(IMPORTS)
    assert sorted(fresh) == sorted(committed), (
        "make imports and imports/ hold different files: add or remove the module's line in the "
        "Makefile's CRD_IMPORTS, then run `make imports`"
    )
    stale = [name for name in committed if not filecmp.cmp(out / name, IMPORTS / name, shallow=False)]
    assert not stale, f"imports/ differs from a fresh `make imports` in {stale}: run it and commit the result"
