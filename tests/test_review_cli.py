"""The review as the team runs it: `make review` (the documented command), CI's `.ci/review`, and
`python -m cdk8s_valkey` without Node's end-of-life banner.

Each test copies the app into a git repository whose `main` holds a golden case's old side and
whose branch `feature` holds its new side as dist/, then runs the real command there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.review import CASES, app_copy, commit, git, run

# make, the cdk8s CLI, git and Python subprocesses.
pytestmark = pytest.mark.real

CASE = CASES / "restarts-queue-added"


def _pull_request(tmp_path: Path) -> Path:
    """main: the case's old dist/; feature: its new dist/ in one commit, then a second commit that
    changes no manifest (so HEAD~1 alone would show nothing)."""
    app = app_copy(tmp_path, git_repo=True, dist=CASE / "old")
    git(app, "checkout", "-q", "-b", "feature")
    shutil.rmtree(app / "dist")
    shutil.copytree(CASE / "new", app / "dist", copy_function=shutil.copy)
    commit(app, "queue reports")
    (app / "NOTES").write_text("notes\n")
    commit(app, "notes")
    return app


def _expected(app: Path, base: str) -> str:
    merge_base = subprocess.run(
        ["git", "merge-base", base, "HEAD"], cwd=app, capture_output=True, text=True, check=True
    ).stdout.strip()
    heading, rest = (CASE / "expected.md").read_text().split("\n", 1)
    return f"{heading}\n\nCompared with `dist/` at `{merge_base[:12]}`, the merge base of `{base}` and `HEAD`.\n{rest}"


def test_make_review_compares_the_branch_with_its_merge_base(tmp_path: Path) -> None:
    app = _pull_request(tmp_path)
    result = run(app, "make", "--no-print-directory", "review")
    # A verdict is not a failure of make: "restarts" exits 0, with the report on stdout.
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == _expected(app, "main")
    # BASE= overrides the default (origin/main, else main); a base that does not exist fails.
    git(app, "branch", "release", "main")
    assert run(app, "make", "--no-print-directory", "review", "BASE=release").stdout == _expected(app, "release")
    missing = run(app, "make", "--no-print-directory", "review", "BASE=nope")
    assert missing.returncode != 0
    assert "review: no previous revision: 'nope' names no commit in this clone" in missing.stderr


def test_ci_review_prints_the_pull_requests_verdict_and_never_fails_on_it(tmp_path: Path) -> None:
    app = _pull_request(tmp_path)
    result = run(app, ".ci/review")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == _expected(app, "main") + (
        "dist/ review against the merge base of main and HEAD: restarts (exit 1)\n"
    )


def test_ci_review_in_a_shallow_clone_or_without_main_says_so_and_passes(tmp_path: Path) -> None:
    app = _pull_request(tmp_path)
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature", f"file://{app}", str(shallow))
    for shared in (".venv", "node_modules"):
        (shallow / shared).symlink_to(app / shared)
    # `clone --depth 1 --branch feature` fetches that branch only: no main at all.
    no_main = run(shallow, ".ci/review")
    assert (no_main.returncode, no_main.stdout) == (
        0,
        "dist/ review: no main branch in this clone: fetch it (git fetch origin main), or set REVIEW_BASE\n",
    )
    git(shallow, "fetch", "-q", "--depth", "1", "origin", "main:main")
    cut = run(shallow, ".ci/review")
    assert (cut.returncode, cut.stdout) == (
        0,
        "dist/ review: no merge base of 'main' and HEAD (this clone is shallow: `git fetch --unshallow`); "
        "nothing compared (a CI checkout needs the history back to main: fetch-depth 0)\n",
    )


def test_the_review_prints_no_node_banner_outside_make(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"}
    result = subprocess.run(
        [sys.executable, "-m", "cdk8s_valkey", "review", str(CASE / "old"), str(CASE / "new")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == (CASE / "expected.md").read_text()
