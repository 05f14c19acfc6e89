"""The library as other teams get it: the built wheel, installed into a fresh virtual
environment outside the repository, used by the README's example app from a directory
that has its own `imports/` (its own `cdk8s import` of the same CRD)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

import cdk8s_valkey
from harness.crd_schema import validate_crd_object
from harness.paths import REPO, SHARED_CRDS
from harness.synth import load_all

pytestmark = pytest.mark.real

ENV = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", PIP_DISABLE_PIP_VERSION_CHECK="1")
CDK8S = REPO / "node_modules" / ".bin" / "cdk8s"

# The consumer's own binding of a CRD the library binds too, used beside the library.
OWN_IMPORTS_USE = """
from imports.com.coreos import monitoring as own_monitoring

own_monitoring.ServiceMonitor(
    chart,
    "own-monitor",
    metadata={"name": "own-app"},
    spec=own_monitoring.ServiceMonitorSpec(
        selector=own_monitoring.ServiceMonitorSpecSelector(match_labels={"app": "own"}),
        endpoints=[own_monitoring.ServiceMonitorSpecEndpoints(port="http")],
    ),
)
"""


def readme_example(lang: str = "python") -> str:
    """The README's consumer example, verbatim: the first ```<lang> block after
    '## Use it in your own app' (``python``: its main.py, ``yaml``: its cdk8s.yaml)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Use it in your own app", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    assert match, f"README.md: no {lang} example under '## Use it in your own app'"
    return match.group(1)


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)], cwd=out)
    (built,) = out.glob("cdk8s_valkey-*.whl")
    return built


def test_wheel_is_self_contained(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "cdk8s_valkey/py.typed" in names
    assert "cdk8s_valkey/scripts/entrypoint.sh" in names
    assert "cdk8s_valkey/data/valkey-8.1-directives.json" in names
    assert any(n.endswith("longhorn_iolonghorn@0.0.0.jsii.tgz") for n in names)
    # Nothing at the top level but our package: no `imports`, no `constructs`, no `tests`.
    assert {n.split("/", 1)[0] for n in names} == {"cdk8s_valkey", f"cdk8s_valkey-{cdk8s_valkey.__version__}.dist-info"}


def test_consumer_app_from_a_fresh_environment(wheel: Path, tmp_path: Path) -> None:
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"CRDs not found at {SHARED_CRDS}; set VALKEY_CRDS_DIR to the prometheus-operator CRDs")
    # The consumer's app directory with its own .venv, as the README's cdk8s.yaml expects.
    app = tmp_path / "consumer"
    app.mkdir()
    venv = app / ".venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    started = time.monotonic()
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path)
    install_seconds = time.monotonic() - started

    cdk8s_yaml = readme_example("yaml")
    assert "app: .venv/bin/python main.py" in cdk8s_yaml, cdk8s_yaml
    (app / "cdk8s.yaml").write_text(cdk8s_yaml)
    crd = SHARED_CRDS / "monitoring.coreos.com_servicemonitors.yaml"
    _run([str(CDK8S), "import", "--no-check-upgrade", "--language", "python", "--output", "imports", str(crd)], cwd=app)
    assert (app / "imports" / "com" / "coreos" / "monitoring" / "__init__.py").exists()

    example = readme_example()
    assert "app.synth()" in example
    (app / "main.py").write_text(example.replace("app.synth()", OWN_IMPORTS_USE + "\napp.synth()"))
    _run([str(CDK8S), "synth", "--no-check-upgrade"], cwd=app)

    outputs = {path.name: load_all(path.read_text()) for path in (app / "dist").glob("*.k8s.yaml")}
    assert sorted(outputs) == ["queues-production.k8s.yaml", "queues-staging.k8s.yaml"]
    staging, production = outputs["queues-staging.k8s.yaml"], outputs["queues-production.k8s.yaml"]
    assert sorted({o["kind"] for o in staging}) == [
        "ConfigMap",
        "PersistentVolumeClaim",
        "PrometheusRule",
        "Service",
        "ServiceMonitor",
        "StatefulSet",
    ]
    # Production: two Valkeys, the second with auth, NetworkPolicy and placement.
    assert sorted(o["metadata"]["name"] for o in production if o["kind"] == "StatefulSet") == ["queues", "sessions"]
    queues = next(o for o in production if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "queues")
    pod = queues["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "data-critical" and pod["tolerations"][0]["key"] == "dedicated"
    assert {"NetworkPolicy", "PersistentVolumeClaim", "RecurringJob"} <= {o["kind"] for o in production}
    assert any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == "queues-dashboard" for o in production)
    for objs in outputs.values():
        rules = {
            o["metadata"]["name"]: {r["alert"] for g in o["spec"]["groups"] for r in g["rules"]}
            for o in objs
            if o["kind"] == "PrometheusRule"
        }
        # Switched off for sessions only; the production queues Valkey keeps it.
        assert "ValkeyDown" in rules["sessions"] and "ValkeyAdrRevisitThroughput" not in rules["sessions"]
        assert "ValkeyAdrRevisitThroughput" in rules.get("queues", {"ValkeyAdrRevisitThroughput"})
        for obj in objs:
            if obj["apiVersion"].startswith(("monitoring.coreos.com/", "longhorn.io/")):
                validate_crd_object(obj)
            else:
                kubernetes_validate.validate(obj, "1.28", strict=True)
    assert any(o["kind"] == "ServiceMonitor" and o["metadata"]["name"] == "own-app" for o in production)
    _report(wheel_bytes=wheel.stat().st_size, install_seconds=round(install_seconds, 1))


def _report(**figures: Any) -> None:
    # Shown with `pytest -rA`; also kept for the benchmarks' summary.
    print(json.dumps(figures))
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "package.json").write_text(json.dumps(figures, indent=2) + "\n")
