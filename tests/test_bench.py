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
        timeout=900,  # bounded; the machine is shared and synth --quick runs ~20 syntheses
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


def test_tables_from_out_assembles_full_runs_only(tmp_path: Path) -> None:
    """`python -m bench --tables-from-out` puts the latest full-mode table of every benchmark
    between the README's markers, and refuses a --quick table."""
    from bench import BENCHMARKS
    from bench.__main__ import BEGIN, END, tables_from_out

    readme = tmp_path / "README.md"
    readme.write_text(f"# Bench\n\nhand-written\n\n{BEGIN}\nold tables\n{END}\n\ntail\n", encoding="utf-8")
    names = list(BENCHMARKS)
    for name in names:
        (tmp_path / f"{name}.md").write_text(
            f"### {name}\n\n`.venv/bin/python -m bench {name}` · run\n", encoding="utf-8"
        )
    tables_from_out(tmp_path, readme)
    text = readme.read_text(encoding="utf-8")
    assert "old tables" not in text and text.startswith("# Bench\n\nhand-written") and text.endswith("tail\n")
    assert [line for line in text.splitlines() if line.startswith("### ")] == [f"### {n}" for n in names]
    (tmp_path / "memory.md").write_text("### memory\n\n`.venv/bin/python -m bench memory --quick` · run\n")
    with pytest.raises(SystemExit, match="--quick"):
        tables_from_out(tmp_path, readme)
