"""checkov, a standard Kubernetes security scanner, on what we ship: every finding is fixed or
listed with a reason in security/checkov-exceptions.yaml, and that list holds nothing stale.

Two outputs are scanned, offline, one checkov run each (its graph checks join objects across
the files of a run: the hardened output's NetworkPolicy would cover the default output's pod):
- ``default``: ``main.build()``, i.e. dist/valkey.k8s.yaml (ADR 0005's posture);
- ``hardened``: harness/hardened.py, the same Valkey with ``auth_secret`` and ``network_policy``.

A finding is identified by check id, output and object (``Kind/name``, found from the line range
checkov reports), so an exception for the StatefulSet does not hide the same check failing on
another object. The counts (passed, failed, excepted) are printed and written to
``<tmp>/checkov-counts.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cdk8s
import pytest
import yaml

import main
from harness.hardened import build_hardened
from harness.paths import REPO

pytestmark = pytest.mark.real

EXCEPTIONS_FILE = REPO / "security" / "checkov-exceptions.yaml"
OUTPUTS = ("default", "hardened")
# Offline: no Prisma Cloud mapping download, no PyPI update check, no API key.
CHECKOV_ENV = {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE", "LOG_LEVEL": "WARNING"}


@dataclass(frozen=True)
class Finding:
    check: str
    title: str
    output: str
    resource: str  # Kind/name of the object in the synthesized file

    def __str__(self) -> str:
        return f"{self.check} ({self.title}) on {self.resource} in the {self.output} output"


@dataclass
class Scan:
    version: str
    passed: dict[str, int]
    failed: dict[str, list[Finding]]


def _synth(output: str, outdir: Path) -> Path:
    app = cdk8s.App(outdir=str(outdir))
    if output == "default":
        main.build(app, main.PRODUCTION)
    else:
        build_hardened(app)
    app.synth()
    (path,) = outdir.glob("*.k8s.yaml")
    return path


def _objects_by_line(path: Path) -> list[tuple[int, int, str]]:
    """(first line, last line, Kind/name) of each YAML document, lines counted from 1."""
    spans: list[tuple[int, int, str]] = []
    start = 1
    lines = path.read_text().splitlines()
    for number, line in enumerate([*lines, "---"], start=1):
        if line == "---":
            doc = yaml.safe_load("\n".join(lines[start - 1 : number - 1]))
            if doc:
                spans.append((start, number - 1, f"{doc['kind']}/{doc['metadata']['name']}"))
            start = number + 1
    return spans


def _resource_at(spans: list[tuple[int, int, str]], line: int) -> str:
    hits = [name for first, last, name in spans if first <= line <= last]
    assert len(hits) == 1, f"line {line} is in {hits}"
    return hits[0]


def checkov_binary() -> str:
    """$CHECKOV, else the one `make test` installs in .venv-checkov/ (checkov pins
    packaging<24, which pytest 9 cannot share a venv with)."""
    candidates = [os.environ.get("CHECKOV"), str(REPO / ".venv-checkov" / "bin" / "checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("checkov is not installed: run make test, which installs requirements-scan.txt, or set CHECKOV")


def run_checkov(output: str, path: Path) -> tuple[str, int, list[Finding]]:
    """(checkov version, passed count, failed findings) of one file."""
    result = subprocess.run(
        [checkov_binary(), "--file", str(path), "--framework", "kubernetes", "--output", "json", "--skip-download"],
        env={**os.environ, **CHECKOV_ENV},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), f"checkov failed ({result.returncode}):\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert [r["check_type"] for r in reports] == ["kubernetes"], result.stdout[:2000]
    (report,) = reports
    summary = report["summary"]
    assert (summary["parsing_errors"], summary["skipped"]) == (0, 0), summary
    spans = _objects_by_line(path)
    failed = [
        Finding(check["check_id"], check["check_name"], output, _resource_at(spans, check["file_line_range"][0]))
        for check in report["results"]["failed_checks"]
    ]
    assert len(failed) == summary["failed"]
    return str(summary["checkov_version"]), int(summary["passed"]), failed


def load_exceptions() -> dict[str, Any]:
    return dict(yaml.safe_load(EXCEPTIONS_FILE.read_text()))


def excepted(entries: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(check, output, Kind/name) for every exception entry."""
    return {
        (entry["check"], output, resource)
        for entry in entries
        for output in entry["outputs"]
        for resource in entry["resources"]
    }


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    root = tmp_path_factory.mktemp("checkov")
    files = {output: _synth(output, root / output) for output in OUTPUTS}
    assert files["default"].read_text() == (REPO / "dist" / "valkey.k8s.yaml").read_text(), (
        "main.build() is not dist/: run the synth first (test_dist.py says the same)"
    )
    runs = {output: run_checkov(output, path) for output, path in files.items()}
    (version,) = {run[0] for run in runs.values()}
    result = Scan(
        version,
        passed={output: run[1] for output, run in runs.items()},
        failed={output: run[2] for output, run in runs.items()},
    )
    exceptions = excepted(load_exceptions()["exceptions"])
    counts = {
        output: {
            "passed": result.passed[output],
            "failed": len(result.failed[output]),
            "excepted": len([f for f in result.failed[output] if (f.check, output, f.resource) in exceptions]),
        }
        for output in OUTPUTS
    }
    print(f"\ncheckov {result.version}: {json.dumps(counts)}")
    (root / "checkov-counts.json").write_text(json.dumps({"checkov": result.version, **counts}, indent=2) + "\n")
    yield result


# -- the exceptions file itself -------------------------------------------------------------


def test_exceptions_file_is_well_formed() -> None:
    data = load_exceptions()
    assert set(data) == {"checkov_version", "exceptions"}
    seen: set[tuple[str, str, str]] = set()
    for entry in data["exceptions"]:
        assert set(entry) == {"check", "title", "resources", "outputs", "reason"}, entry
        assert entry["check"].startswith(("CKV_K8S_", "CKV2_K8S_")), entry["check"]
        # `composition`: objects only tests/test_composition.py's matrix renders (it checks those).
        assert entry["outputs"] and set(entry["outputs"]) <= {*OUTPUTS, "composition"}, entry
        assert entry["resources"] and all("/" in r for r in entry["resources"]), entry
        assert len(entry["reason"].split()) >= 25, f"{entry['check']}: the reason must explain, not name, the choice"
        keys = excepted([entry])
        assert not keys & seen, f"{entry['check']} is listed twice for {sorted(keys & seen)}"
        seen |= keys
    checks = [entry["check"] for entry in data["exceptions"]]
    assert checks == sorted(checks), "keep the entries sorted by check id"


def test_exceptions_cite_the_adr_where_it_chose() -> None:
    """The findings that follow from ADR 0005's own decisions say so."""
    reasons = {entry["check"]: entry["reason"] for entry in load_exceptions()["exceptions"]}
    for check in ("CKV2_K8S_6", "CKV_K8S_15", "CKV_K8S_43"):
        assert "ADR 0005" in reasons[check], check


# -- the scan --------------------------------------------------------------------------------


def test_checkov_version_is_the_reviewed_one(scan: Scan) -> None:
    """A new checkov brings new checks: review the exceptions file, then bump its version."""
    assert scan.version == load_exceptions()["checkov_version"]


@pytest.mark.parametrize("output", OUTPUTS)
def test_every_finding_is_excepted(scan: Scan, output: str) -> None:
    exceptions = excepted(load_exceptions()["exceptions"])
    new = [str(f) for f in scan.failed[output] if (f.check, output, f.resource) not in exceptions]
    assert new == [], "fix these, or add them with a reason to security/checkov-exceptions.yaml:\n" + "\n".join(new)


@pytest.mark.parametrize("output", OUTPUTS)
def test_no_stale_exception(scan: Scan, output: str) -> None:
    found = {(f.check, output, f.resource) for f in scan.failed[output]}
    stale = sorted(key for key in excepted(load_exceptions()["exceptions"]) if key[1] == output and key not in found)
    assert stale == [], f"no longer failing, remove from security/checkov-exceptions.yaml: {stale}"


def test_hardening_closes_the_network_policy_finding(scan: Scan) -> None:
    """network_policy=True is what ADR 0005's later path asks for, and the scanner sees it."""
    assert "CKV2_K8S_6" in {f.check for f in scan.failed["default"]}
    assert "CKV2_K8S_6" not in {f.check for f in scan.failed["hardened"]}
    assert scan.passed["hardened"] > 0 and scan.passed["default"] > 0
