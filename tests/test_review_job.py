"""review/job.py: ValidateJobSpecUpdate (kubernetes pkg/apis/batch/validation/validation.go)
ported: selector, template, completions, completionMode, ... are immutable; hooks are recreated."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cdk8s_valkey.review import Verdict, review
from harness.review import findings_for, only

JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "valkey-smoke", "namespace": "apps"},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "smoke", "image": "valkey/valkey:8.1.11"}]}
        },
    },
}


def _job(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    job = copy.deepcopy(JOB)
    job["spec"].update(spec)
    if annotations:
        job["metadata"]["annotations"] = annotations
    return job


def _new_image(job: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(job)
    out["spec"]["template"]["spec"]["containers"][0]["image"] = "valkey/valkey:8.1.12"
    return out


def test_template_change_is_rejected_with_delete_and_sync() -> None:
    finding = only(review([_job()], [_new_image(_job())]), "Job", Verdict.REJECTED)
    assert finding.reason == "`spec.template` changed: immutable once the Job exists (ValidateJobSpecUpdate)"
    assert finding.procedure == "`kubectl -n apps delete job valkey-smoke`, then sync: the Job runs again"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("selector", {"matchLabels": {"a": "b"}}),
        ("completions", 2),
        ("completionMode", "Indexed"),
        ("podFailurePolicy", {"rules": []}),
    ],
)
def test_immutable_spec_fields(field: str, value: Any) -> None:
    assert {f.verdict for f in findings_for(review([_job()], [_job(**{field: value})]), "Job")} == {Verdict.REJECTED}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("parallelism", 2),
        ("activeDeadlineSeconds", 60),
        ("backoffLimit", 3),
        ("ttlSecondsAfterFinished", 60),
        ("suspend", True),
    ],
)
def test_mutable_spec_fields(field: str, value: Any) -> None:
    assert {f.verdict for f in findings_for(review([_job()], [_job(**{field: value})]), "Job")} == {Verdict.SAFE}


def test_indexed_completions_may_change() -> None:
    old, new = _job(completionMode="Indexed", completions=1), _job(completionMode="Indexed", completions=2)
    assert {f.verdict for f in findings_for(review([old], [new]), "Job")} == {Verdict.SAFE}


def test_hook_job_is_recreated_at_each_sync() -> None:
    hook = _job({"argocd.argoproj.io/hook": "PostSync", "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"})
    finding = only(review([hook], [_new_image(hook)]), "Job", Verdict.SAFE)
    assert finding.reason == (
        "`spec.template` changed on a hook Job: it is created anew at each sync, never updated (Flux applies it as "
        "a plain Job and needs `kustomize.toolkit.fluxcd.io/force: enabled` to recreate it)"
    )


def test_flux_force_recreates_the_job() -> None:
    forced = _job({"kustomize.toolkit.fluxcd.io/force": "enabled"})
    assert only(review([forced], [_new_image(forced)]), "Job", Verdict.SAFE).reason == (
        "`spec.template` changed: Flux recreates the Job (`kustomize.toolkit.fluxcd.io/force: enabled`)"
    )


def test_added_hook_job() -> None:
    hook = _job({"argocd.argoproj.io/hook": "PostSync"})
    assert only(review([], [hook]), "Job", Verdict.SAFE).reason == "new Job: runs as an Argo CD PostSync hook"
