"""Every benchmark runs once in its short mode, so that none of them rots.

Benchmarks never fail on a number: only a crash (a changed manifest the runner cannot start, a
missing tool, a renamed API) fails here. Output goes to a temporary directory, never to
bench/out/ or bench/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import REPO

pytestmark = pytest.mark.root

BENCHMARKS = ["synth", "throughput", "bullmq", "restart", "memory", "endpoint"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_in_quick_mode(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", name, "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    table = (tmp_path / f"{name}.md").read_text()
    assert "| " in table and "--quick" in table  # a table, with the command that produced it
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["machine"]["nproc"] >= 1


def test_benchmark_list_matches_the_package() -> None:
    import bench

    assert list(bench.BENCHMARKS) == BENCHMARKS
