"""review/guard.py: synth stops when a data claim would shrink or change class; nothing else.
The guard under the real CLI (make synth, npx cdk8s synth): tests/test_synth_cli.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from cdk8s_valkey.review import ClaimGuardError, guard_claims
from harness.review import CASES, edited, rendering


@pytest.fixture
def old_dist(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    shutil.copytree(CASES / "no-change" / "new", dist)
    return dist


def _claim(edit: Any) -> list[dict[str, Any]]:
    return edited(rendering(), "PersistentVolumeClaim", None, edit)


def test_shrink_is_refused_with_the_fix(old_dist: Path) -> None:
    new = _claim(lambda c: c["spec"]["resources"]["requests"].update(storage="7Gi"))
    with pytest.raises(ClaimGuardError) as raised:
        guard_claims(old_dist, new)
    assert str(raised.value) == (
        "storage_size: the claim apps/data-valkey-0 would shrink from 10Gi to 7Gi (the previous dist/ has 10Gi); "
        "keep storage_size at 10Gi or more; claims can only grow"
    )


def test_a_shrink_that_follows_memory_names_the_size_to_set(old_dist: Path) -> None:
    # 5Gi is what storage_size left out gives for the app's 1Gi memory_limit (3 x, at least 5Gi).
    new = _claim(lambda c: c["spec"]["resources"]["requests"].update(storage="5Gi"))
    with pytest.raises(ClaimGuardError) as raised:
        guard_claims(old_dist, new)
    assert str(raised.value).endswith(
        "would shrink from 10Gi to 5Gi (the previous dist/ has 10Gi); storage_size follows memory_limit when it "
        "is left out (3 x 1Gi, at least 5Gi): set storage_size explicitly to 10Gi; claims can only grow"
    )


def test_class_change_is_refused_with_the_fix(old_dist: Path) -> None:
    new = _claim(lambda c: c["spec"].update(storageClassName="fast"))
    with pytest.raises(ValueError) as raised:
        guard_claims(old_dist, new)
    assert str(raised.value) == (
        "storage_class: the claim apps/data-valkey-0 has storage class 'longhorn' in the previous dist/ and would "
        "get 'fast'; a claim's class is fixed when it is created: keep storage_class='longhorn', or restore the "
        "data into a new claim of the new class"
    )


def test_the_claim_template_of_the_previous_design_counts(tmp_path: Path) -> None:
    # An install on library 0.1.0 (claim template, 10Gi) moving to the claim object with the
    # default storage_size of 5Gi must not shrink its claim.
    dist = tmp_path / "dist"
    shutil.copytree(CASES / "rejected-migration-to-claim-object" / "old", dist)
    new = _claim(lambda c: c["spec"]["resources"]["requests"].update(storage="5Gi"))
    with pytest.raises(ValueError, match=r"^storage_size: the claim apps/data-valkey-0 would shrink from 10Gi to 5Gi"):
        guard_claims(dist, new)


def test_growth_other_changes_and_a_first_synth_pass(old_dist: Path, tmp_path: Path) -> None:
    grown = _claim(lambda c: c["spec"]["resources"]["requests"].update(storage="20Gi"))
    guard_claims(old_dist, grown)
    other = edited(rendering(), "StatefulSet", None, lambda s: s["spec"].update(serviceName="x"))
    guard_claims(old_dist, other)
    guard_claims(tmp_path / "never-synthesized", grown)


def test_an_unreadable_previous_dist_does_not_block_synth(tmp_path: Path) -> None:
    (tmp_path / "broken.k8s.yaml").write_text("kind: [\n")
    guard_claims(tmp_path, rendering())
