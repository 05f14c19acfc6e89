"""review/statefulset.py: ValidateStatefulSetUpdate (kubernetes pkg/apis/apps/validation/
validation.go) ported, accepted and refused, and what each change does to the data."""

from __future__ import annotations

from typing import Any

import pytest

from cdk8s_valkey.review import Verdict, review
from harness.review import findings_for, only, rendering, review_edit, template_design, verdicts
from harness.synth import find

ORPHAN = (
    "`kubectl -n apps delete statefulset valkey --cascade=orphan`, then sync: the new StatefulSet adopts the "
    "running pod `valkey-0` and replaces it once; the claims and their data stay"
)
FROZEN = (
    "is frozen: a StatefulSet update may change only replicas, ordinals, template, updateStrategy, "
    "persistentVolumeClaimRetentionPolicy, minReadySeconds and revisionHistoryLimit (ValidateStatefulSetUpdate)"
)


def _spec(**fields: Any) -> Any:
    return lambda sts: sts["spec"].update(fields)


# ValidateStatefulSetUpdate: fields outside the mutable list are refused.
@pytest.mark.parametrize(
    ("field", "value"),
    [("serviceName", "valkey-pods"), ("podManagementPolicy", "Parallel")],
)
def test_frozen_spec_field_is_rejected_with_the_orphan_procedure(field: str, value: str) -> None:
    report = review_edit("StatefulSet", None, _spec(**{field: value}))
    finding = only(report, "StatefulSet", Verdict.REJECTED)
    assert finding.reason.startswith(f"`spec.{field}` ")
    assert finding.reason.endswith(FROZEN)
    assert finding.procedure == ORPHAN


def test_selector_change_is_rejected_and_the_old_pod_must_go_too() -> None:
    report = review_edit("StatefulSet", None, lambda s: s["spec"]["selector"]["matchLabels"].update(tier="cache"))
    finding = only(report, "StatefulSet", Verdict.REJECTED)
    assert finding.reason.startswith("`spec.selector` ")
    assert finding.procedure is not None
    assert "`kubectl -n apps delete pod valkey-0`" in finding.procedure


# ValidateStatefulSetUpdate: replicas, ordinals, template, updateStrategy,
# persistentVolumeClaimRetentionPolicy, minReadySeconds (and revisionHistoryLimit) are accepted.
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        ("minReadySeconds", 10),
        ("revisionHistoryLimit", 3),
        ("ordinals", {"start": 0}),
    ],
)
def test_mutable_spec_fields_are_accepted(field: str, value: Any) -> None:
    report = review_edit("StatefulSet", None, _spec(**{field: value}))
    assert verdicts(report, "StatefulSet") == {Verdict.SAFE}


def test_replicas_zero_stops_valkey_and_more_than_one_splits_the_data() -> None:
    assert only(review_edit("StatefulSet", None, _spec(replicas=0)), "StatefulSet", Verdict.RESTARTS).reason == (
        "replicas 1 -> 0: Valkey stops until replicas is 1 again"
    )
    two = review_edit("StatefulSet", None, _spec(replicas=2))
    assert only(two, "StatefulSet", Verdict.DATA_AT_RISK).reason.startswith("replicas 1 -> 2: every extra pod")


def test_template_change_restarts() -> None:
    report = review_edit("StatefulSet", None, lambda s: s["spec"]["template"]["spec"].update(priorityClassName="x"))
    assert [f.reason for f in findings_for(report, "StatefulSet")] == ["pod `priorityClassName` (unset) -> `x`"]
    assert report.verdict is Verdict.RESTARTS


# The claim template design: every part of volumeClaimTemplates is frozen.
def _template(sts: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = sts["spec"]["volumeClaimTemplates"][0]
    return template


def test_claim_template_growth_is_rejected_and_says_the_claim_keeps_its_size() -> None:
    report = review_edit(
        "StatefulSet",
        None,
        lambda s: _template(s)["spec"]["resources"]["requests"].update(storage="20Gi"),
        template_design(),
    )
    (finding,) = findings_for(report, "StatefulSet")
    assert finding.verdict is Verdict.REJECTED
    assert finding.reason.endswith("after the procedure the existing claim `data-valkey-0` keeps `10Gi`")
    assert finding.procedure == (
        f"{ORPHAN}; then grow the existing claim with `kubectl -n apps patch pvc data-valkey-0 -p "
        """'{"spec":{"resources":{"requests":{"storage":"20Gi"}}}}'` (the StorageClass needs """
        "`allowVolumeExpansion: true`; claims never shrink)"
    )


def test_claim_template_class_change_is_rejected_and_puts_data_at_risk() -> None:
    report = review_edit(
        "StatefulSet", None, lambda s: _template(s)["spec"].update(storageClassName="fast"), template_design()
    )
    assert verdicts(report, "StatefulSet") == {Verdict.REJECTED, Verdict.DATA_AT_RISK}


def test_claim_template_labels_are_rejected_and_the_claim_is_labelled_instead() -> None:
    report = review_edit(
        "StatefulSet",
        None,
        lambda s: _template(s)["metadata"]["labels"].update({"recurring-job.longhorn.io/source": "enabled"}),
        template_design(),
    )
    finding = only(report, "StatefulSet", Verdict.REJECTED)
    assert finding.procedure == (
        "revert it and label the existing claim: "
        "`kubectl -n apps label pvc data-valkey-0 recurring-job.longhorn.io/source=enabled`"
    )


def test_claim_template_shrink_is_rejected_without_a_patch_to_run() -> None:
    report = review_edit(
        "StatefulSet",
        None,
        lambda s: _template(s)["spec"]["resources"]["requests"].update(storage="5Gi"),
        template_design(),
    )
    finding = only(report, "StatefulSet", Verdict.REJECTED)
    assert finding.reason.endswith(
        "Claims never shrink: after the procedure the existing claim `data-valkey-0` keeps `10Gi` anyway"
    )
    assert finding.procedure == "revert to 10Gi or more"


def test_ordinals_start_renames_the_template_claim_so_data_is_at_risk() -> None:
    report = review_edit("StatefulSet", None, _spec(ordinals={"start": 1}), template_design())
    finding = only(report, "StatefulSet", Verdict.DATA_AT_RISK)
    assert finding.reason == (
        "the pod no longer uses claim `data-valkey-0`; it uses claim `data-valkey-1` instead (empty unless it "
        "exists already): the data there is no longer served"
    )


def test_claim_name_change_of_the_pod_volume_puts_data_at_risk() -> None:
    def rename(sts: dict[str, Any]) -> None:
        sts["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = "data-other-0"

    report = review_edit("StatefulSet", None, rename)
    assert Verdict.DATA_AT_RISK in verdicts(report, "StatefulSet")


# persistentVolumeClaimRetentionPolicy is mutable, but Delete deletes template claims.
def test_retention_loosened_puts_template_claims_at_risk_and_is_moot_without_templates() -> None:
    loosen = lambda s: s["spec"]["persistentVolumeClaimRetentionPolicy"].update(whenScaled="Delete")  # noqa: E731
    with_templates = review_edit("StatefulSet", None, loosen, template_design())
    assert only(with_templates, "StatefulSet", Verdict.DATA_AT_RISK).procedure == "keep `whenScaled: Retain`"
    without = review_edit("StatefulSet", None, loosen)
    assert only(without, "StatefulSet", Verdict.SAFE).reason.endswith(
        "no effect, the StatefulSet has no claim templates"
    )


def test_removed_statefulset_stops_valkey_and_its_claim_is_no_longer_served() -> None:
    old = rendering()
    new = [o for o in old if o["kind"] != "StatefulSet"]
    report = review(old, new)
    assert verdicts(report, "StatefulSet") == {Verdict.RESTARTS, Verdict.DATA_AT_RISK}
    assert only(report, "StatefulSet", Verdict.DATA_AT_RISK).reason == (
        "no StatefulSet of the new rendering uses claim `data-valkey-0`: its data is no longer served"
    )


def test_removed_statefulset_whose_claims_are_deleted_with_it() -> None:
    old = template_design()
    find(old, "StatefulSet")["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] = "Delete"
    report = review(old, [o for o in old if o["kind"] != "StatefulSet"])
    reasons = [f.reason for f in findings_for(report, "StatefulSet")]
    assert "persistentVolumeClaimRetentionPolicy.whenDeleted Delete: its claims are deleted with it" in reasons


def test_added_statefulset_is_safe() -> None:
    new = rendering()
    report = review([o for o in new if o["kind"] != "StatefulSet"], new)
    assert only(report, "StatefulSet", Verdict.SAFE).reason == "new StatefulSet: Valkey starts on claim `data-valkey-0`"
