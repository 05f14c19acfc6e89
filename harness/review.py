"""Helpers for the review tool's tests: renderings from the golden cases, edited per test."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cdk8s_valkey.review import Finding, Report, Verdict, load_path, review
from harness.paths import REPO
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
