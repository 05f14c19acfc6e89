"""review/pvc.py: ValidatePersistentVolumeClaimUpdate (kubernetes pkg/apis/core/validation/
validation.go) ported, accepted and refused, and the data claim's protections."""

from __future__ import annotations

from typing import Any

import pytest

from cdk8s_valkey.review import Verdict, review
from harness.review import findings_for, only, rendering, review_edit, template_design, verdicts
from harness.synth import find

CLAIM = "PersistentVolumeClaim"


def _spec(**fields: Any) -> Any:
    return lambda claim: claim["spec"].update(fields)


def _storage(size: str) -> Any:
    return lambda claim: claim["spec"]["resources"]["requests"].update(storage=size)


# "spec is immutable after creation except resources.requests and volumeAttributesClassName"
def test_storage_growth_is_accepted() -> None:
    report = review_edit(CLAIM, None, _storage("20Gi"))
    assert only(report, CLAIM, Verdict.SAFE).reason.startswith("claim storage 10Gi -> 20Gi: the volume grows in place")


def test_same_size_in_other_units_is_not_a_shrink() -> None:
    assert verdicts(review_edit(CLAIM, None, _storage("10240Mi")), CLAIM) == {Verdict.SAFE}


# "field can not be less than previous value"
def test_storage_shrink_is_rejected_and_puts_data_at_risk() -> None:
    report = review_edit(CLAIM, None, _storage("5Gi"))
    assert only(report, CLAIM, Verdict.REJECTED).reason == (
        "claim storage 10Gi -> 5Gi: `spec.resources.requests.storage` can not be less than its previous value "
        "(ValidatePersistentVolumeClaimUpdate)"
    )
    assert (
        only(report, CLAIM, Verdict.DATA_AT_RISK).procedure == "keep storage_size at 10Gi or more; claims can only grow"
    )


def test_storage_class_change_is_rejected_and_puts_data_at_risk() -> None:
    report = review_edit(CLAIM, None, _spec(storageClassName="fast"))
    assert verdicts(report, CLAIM) == {Verdict.REJECTED, Verdict.DATA_AT_RISK}
    assert only(report, CLAIM, Verdict.DATA_AT_RISK).procedure == (
        "keep storage_class='longhorn', or restore the data into a new claim of class 'fast'"
    )


# validateStorageClassUpgradeFromNil: unset -> a class is allowed.
def test_storage_class_from_unset_is_accepted() -> None:
    old = rendering()
    del find(old, CLAIM)["spec"]["storageClassName"]
    report = review_edit(CLAIM, None, _spec(storageClassName="longhorn"), old)
    assert verdicts(report, CLAIM) == {Verdict.SAFE}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("accessModes", ["ReadWriteMany"]),
        ("volumeMode", "Block"),
        ("selector", {"matchLabels": {"a": "b"}}),
        ("dataSource", {"kind": "VolumeSnapshot", "name": "s", "apiGroup": "snapshot.storage.k8s.io"}),
        ("resources", {"requests": {"storage": "10Gi"}, "limits": {"storage": "20Gi"}}),
    ],
)
def test_other_spec_fields_are_rejected(field: str, value: Any) -> None:
    finding = only(review_edit(CLAIM, None, _spec(**{field: value})), CLAIM, Verdict.REJECTED)
    assert finding.reason.endswith(
        "is frozen: a claim's spec is immutable after creation except resources.requests "
        "(ValidatePersistentVolumeClaimUpdate)"
    )
    assert finding.procedure is not None and finding.procedure.startswith("a claim's spec cannot change in place")


# "volumeName changes are allowed once"
def test_volume_name_may_be_set_once() -> None:
    assert verdicts(review_edit(CLAIM, None, _spec(volumeName="pv-1")), CLAIM) == {Verdict.SAFE}
    old = rendering()
    find(old, CLAIM)["spec"]["volumeName"] = "pv-1"
    assert verdicts(review_edit(CLAIM, None, _spec(volumeName="pv-2"), old), CLAIM) == {Verdict.REJECTED}


def test_volume_attributes_class_may_change() -> None:
    assert verdicts(review_edit(CLAIM, None, _spec(volumeAttributesClassName="gold")), CLAIM) == {Verdict.SAFE}


# ValidateImmutableAnnotation(volume.beta.kubernetes.io/storage-class)
def test_beta_storage_class_annotation_is_immutable() -> None:
    edit = lambda c: c["metadata"]["annotations"].update({"volume.beta.kubernetes.io/storage-class": "x"})  # noqa: E731
    assert Verdict.REJECTED in verdicts(review_edit(CLAIM, None, edit), CLAIM)


def test_labels_change_in_place() -> None:
    edit = lambda c: c["metadata"]["labels"].update({"recurring-job.longhorn.io/source": "enabled"})  # noqa: E731
    assert verdicts(review_edit(CLAIM, None, edit), CLAIM) == {Verdict.SAFE}


def test_prune_protection_removed_puts_data_at_risk() -> None:
    edit = lambda c: c["metadata"]["annotations"].pop("kustomize.toolkit.fluxcd.io/prune")  # noqa: E731
    finding = only(review_edit(CLAIM, None, edit), CLAIM, Verdict.DATA_AT_RISK)
    assert finding.reason.startswith("prune protection removed: `kustomize.toolkit.fluxcd.io/prune: disabled` (Flux)")


def _without_claim(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] != CLAIM]


def test_removed_protected_claim_still_mounted_is_safe() -> None:
    old = rendering()
    assert verdicts(review(old, _without_claim(old)), CLAIM) == {Verdict.SAFE}


def test_removed_unprotected_claim_is_deleted_by_pruning() -> None:
    old = rendering()
    del find(old, CLAIM)["metadata"]["annotations"]
    finding = only(review(old, _without_claim(old)), CLAIM, Verdict.DATA_AT_RISK)
    assert finding.reason.startswith("claim no longer rendered and not protected from pruning")


def test_new_claim_adopting_the_template_claim_is_checked_against_the_template() -> None:
    old, new = template_design(), rendering("rejected-migration-to-claim-object", "new")
    adopted = review(old, new)
    assert [f.reason for f in findings_for(adopted, CLAIM)] == [
        "adopts the existing claim that the claim template `data` of StatefulSet `valkey` created: same volume, "
        "same data"
    ]
    find(new, CLAIM)["spec"]["resources"]["requests"]["storage"] = "5Gi"
    assert verdicts(review(old, new), CLAIM) == {Verdict.SAFE, Verdict.REJECTED, Verdict.DATA_AT_RISK}


def test_brand_new_claim_is_safe() -> None:
    new = rendering()
    report = review(_without_claim(new), new)
    assert (
        only(report, CLAIM, Verdict.SAFE).reason == "new claim: an empty volume is provisioned when a pod first uses it"
    )
