"""Helpers for the review tool's tests: renderings from the golden cases, edited per test."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cdk8s_valkey.review import Finding, Report, Verdict, load_path, review
from harness.paths import REPO, require_binary
from harness.synth import find

CASES = REPO / "tests" / "review_cases"
Objects = list[dict[str, Any]]


def rendering(case: str = "no-change", side: str = "new") -> Objects:
    """A golden case's rendering: ``no-change`` holds the whole app in the claim design,
    ``rejected-migration-to-claim-object/old`` the claim-template design."""
    return load_path(CASES / case / side)


def edited(objs: Objects, kind: str, name: str | None, edit: Callable[[dict[str, Any]], object]) -> Objects:
    """A deep copy of ``objs`` with ``edit`` applied to one object."""
    out = copy.deepcopy(objs)
    edit(find(out, kind, name))
    return out


def pod_container(sts: dict[str, Any], name: str = "valkey") -> dict[str, Any]:
    """A container of a StatefulSet's pod template, itself (not a copy) so tests can edit it."""
    (hit,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    container: dict[str, Any] = hit
    return container


def findings_for(report: Report, kind: str, name: str | None = None) -> list[Finding]:
    (hit,) = [o for o in report.objects if o.key.kind == kind and (name is None or o.key.name == name)]
    return list(hit.findings)


def verdicts(report: Report, kind: str, name: str | None = None) -> set[Verdict]:
    return {f.verdict for f in findings_for(report, kind, name)}


def only(report: Report, kind: str, verdict: Verdict, name: str | None = None) -> Finding:
    """The one finding of an object with that verdict."""
    (hit,) = [f for f in findings_for(report, kind, name) if f.verdict == verdict]
    return hit


def review_edit(
    kind: str, name: str | None, edit: Callable[[dict[str, Any]], object], old: Objects | None = None
) -> Report:
    """The review of one object edited in a rendering (default: the app in the claim design)."""
    old = rendering() if old is None else old
    return review(old, edited(old, kind, name, edit))


def template_design() -> Objects:
    """The app's Valkey objects as library 0.1.0 rendered them: the claim in volumeClaimTemplates."""
    return rendering("rejected-migration-to-claim-object", "old")


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -m cdk8s_valkey review ...`` from this checkout, as CI runs it."""
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "constructs"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "cdk8s_valkey", "review", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- a copy of the team's app, for what the user runs (make synth, make review, .ci/review) ---

APP_FILES = (
    "main.py",
    "cdk8s.yaml",
    "Makefile",
    ".ci/review",
    "requirements.txt",
    "requirements-dev.txt",
    "requirements-scan.txt",
    "pyproject.toml",
    "package.json",
    "package-lock.json",
)


def git_env() -> dict[str, str]:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t")
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    # As from a shell in the checkout: nothing of the test run's own environment.
    for name in ("CDK8S_OUTDIR", "CDK8S_VALKEY_DIST", "REVIEW_BASE", "BASE"):
        env.pop(name, None)
    return env


def run(app: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` in ``app``, its first word found on PATH."""
    return subprocess.run(
        [require_binary(argv[0]) if "/" not in argv[0] else argv[0], *argv[1:]],
        cwd=app,
        env=git_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def git(app: Path, *args: str) -> None:
    subprocess.run([require_binary("git"), *args], cwd=app, env=git_env(), check=True, capture_output=True)


def commit(app: Path, message: str) -> None:
    git(app, "add", "-A")
    git(app, "commit", "-q", "-m", message)


def app_copy(tmp_path: Path, *, git_repo: bool, dist: Path = REPO / "dist") -> Path:
    """A copy of the team's app (main.py, cdk8s.yaml, the Makefile, .ci/review, ``dist``) with this
    checkout's .venv and node_modules; as a git repository whose ``main`` holds it (a clone)."""
    app = tmp_path / "app"
    app.mkdir()
    for name in APP_FILES:
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, app / name)
        if name.startswith(("requirements", "pyproject", "package")):
            # Older than .venv/.deps and node_modules: make takes the shared dependencies as installed.
            os.utime(app / name, (0, 0))
    # Fresh mtimes for dist/: git compares stat data, and a later copy of the same size must count.
    shutil.copytree(dist, app / "dist", copy_function=shutil.copy)
    for shared in (".venv", "node_modules"):
        (app / shared).symlink_to(REPO / shared)
    (app / ".gitignore").write_text(".venv\nnode_modules\n")
    if git_repo:
        git(app, "init", "-q")
        commit(app, "the app")
        git(app, "branch", "-M", "main")
    return app


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path``, by relative name, byte for byte."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
