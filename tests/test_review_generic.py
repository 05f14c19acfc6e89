"""review/generic.py and the matching of objects: kinds without rules, metadata, apiVersion."""

from __future__ import annotations

from typing import Any

from cdk8s_valkey.review import ObjectKey, Report, Verdict, review
from harness.review import findings_for


def _obj(kind: str = "RecurringJob", api: str = "longhorn.io/v1beta2", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": "valkey-snap", "namespace": "longhorn-system"},
        "spec": spec,
    }


def test_unknown_kind_changes_in_place() -> None:
    report = review([_obj(cron="0 * * * *")], [_obj(cron="30 * * * *")])
    assert [(f.verdict, f.reason) for f in findings_for(report, "RecurringJob")] == [
        (Verdict.SAFE, "`spec.cron` `0 * * * *` -> `30 * * * *`: changed in place")
    ]


def test_objects_match_by_group_kind_namespace_name_not_version() -> None:
    report = review([_obj(api="longhorn.io/v1beta1", cron="x")], [_obj(cron="x")])
    assert [o.change for o in report.objects] == ["changed"]
    assert findings_for(report, "RecurringJob")[0].reason.startswith("apiVersion `longhorn.io/v1beta1` -> ")
    moved = review([_obj()], [{**_obj(), "metadata": {"name": "valkey-snap", "namespace": "other"}}])
    assert sorted(o.change for o in moved.objects) == ["added", "removed"]


def test_empty_report() -> None:
    report = Report()
    assert (report.verdict, report.exit_code) == (Verdict.SAFE, 0)
    assert report.markdown() == "## dist/ review: safe\n\nNo object changed.\n"


def test_key_reads_well() -> None:
    assert str(ObjectKey.of(_obj())) == "RecurringJob `longhorn-system/valkey-snap`"
    assert str(ObjectKey(kind="Namespace", namespace="", name="apps")) == "Namespace `apps`"


def test_verdict_exit_codes() -> None:
    assert [v.exit_code for v in Verdict] == [0, 1, 2, 2]
