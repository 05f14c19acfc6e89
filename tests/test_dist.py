"""dist/ is what GitOps applies: it must be exactly what a fresh `cdk8s synth` writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.paths import REPO, require_binary

pytestmark = pytest.mark.real


def test_dist_matches_a_fresh_cdk8s_synth(tmp_path: Path) -> None:
    npx = require_binary("npx")
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    result = subprocess.run(
        [npx, "--no-install", "cdk8s", "synth", "--no-check-upgrade", "--output", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    fresh = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in (REPO / "dist").iterdir())
    assert fresh == committed == ["valkey-staging.k8s.yaml", "valkey.k8s.yaml"]
    for name in fresh:
        assert (tmp_path / name).read_text() == (REPO / "dist" / name).read_text(), (
            f"dist/{name} is stale: run the README's synth command and review the diff"
        )
