"""A test that cannot run fails: tests/conftest.py turns every skip into a failure.

Each case runs the real pytest in a subprocess with this project's conftest (``-p conftest``) on a
tiny test file, and checks the exit code and the reason in the report. The last cases run the
project's own schema tests with the CRD and Grafana schema directories pointed at a path that does
not exist, as on a checkout without ``../shared``: they fail, and the report names the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SKIP_IS_FAILURE

from harness.paths import REPO

TESTS = REPO / "tests"
pytestmark = pytest.mark.real  # runs pytest itself in a subprocess


def run_pytest(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real pytest of this venv, with this project's conftest loaded as a plugin."""
    environment = {**os.environ, **(env or {})}
    # tests/ for `-p conftest`, the repository root for the harness package it imports
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(TESTS), str(REPO), environment.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q", "-rA", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


TINY = {
    "skip-call": 'import pytest\n\ndef test_x():\n    pytest.skip("no widget at /opt/widget")\n',
    "skip-mark": 'import pytest\n\n@pytest.mark.skip(reason="no widget at /opt/widget")\ndef test_x():\n    pass\n',
    "skipif-mark": (
        'import pytest\n\n@pytest.mark.skipif(True, reason="no widget at /opt/widget")\ndef test_x():\n    pass\n'
    ),
    "skip-in-fixture": (
        "import pytest\n\n@pytest.fixture\ndef widget():\n"
        '    pytest.skip("no widget at /opt/widget")\n\ndef test_x(widget):\n    pass\n'
    ),
    "skip-module": 'import pytest\n\npytest.skip("no widget at /opt/widget", allow_module_level=True)\n\n'
    "def test_x():\n    pass\n",
    "importorskip": 'import pytest\n\npytest.importorskip("no_widget_module_at_all")\n\ndef test_x():\n    pass\n',
}


@pytest.mark.parametrize("source", TINY.values(), ids=TINY.keys())
def test_a_skip_fails_the_run_and_keeps_its_reason(source: str, tmp_path: Path) -> None:
    (tmp_path / "test_tiny.py").write_text(source, encoding="utf-8")
    result = run_pytest("test_tiny.py", cwd=tmp_path)
    output = result.stdout + result.stderr
    # a failed test (1), or for a module-level skip a collection error (2, "Interrupted")
    assert result.returncode in (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.INTERRUPTED), output
    assert SKIP_IS_FAILURE in output, output
    assert "no widget at /opt/widget" in output or "no_widget_module_at_all" in output, output
    assert " skipped" not in output.splitlines()[-1], output


def test_passing_and_xfail_tests_still_pass(tmp_path: Path) -> None:
    """The hook turns skips only: a pass and a strict xfail that fails as expected stay green."""
    (tmp_path / "test_tiny.py").write_text(
        "import pytest\n\ndef test_ok():\n    assert True\n\n"
        '@pytest.mark.xfail(strict=True, reason="known")\ndef test_known():\n    assert False\n',
        encoding="utf-8",
    )
    result = run_pytest("test_tiny.py", cwd=tmp_path)
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "1 passed, 1 xfailed" in result.stdout.splitlines()[-1]


def test_schema_tests_fail_naming_the_missing_directory(tmp_path: Path) -> None:
    """Without ../shared (the directories pointed elsewhere, as the tests allow), the CRD and Grafana
    schema tests are failures that name the missing path, not skips."""
    missing = tmp_path / "no-shared"
    result = run_pytest(
        "tests/test_crd_schemas.py::test_misspelt_field_fails",
        "tests/test_dashboard.py::test_json_validates_against_the_grafana_schemas",
        cwd=REPO,
        env={
            "VALKEY_CRDS_DIR": str(missing / "crds"),
            "VALKEY_GRAFANA_SCHEMAS_DIR": str(missing / "schemas" / "grafana-11.6"),
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "2 failed" in output.splitlines()[-1], output
    assert f"{SKIP_IS_FAILURE}: Skipped: the CRD files" in output or str(missing / "crds") in output, output
    for path in (missing / "crds", missing / "schemas" / "grafana-11.6"):
        assert str(path) in output, f"{path} not named:\n{output}"
