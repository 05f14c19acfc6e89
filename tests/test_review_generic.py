"""review/generic.py and the matching of objects: kinds without rules, metadata, apiVersion."""

from __future__ import annotations

import copy
from typing import Any

from cdk8s_valkey.review import ObjectKey, Report, Verdict, review
from harness.review import findings_for, rendering


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
    assert [v.exit_code for v in Verdict] == [0, 1, 2, 2, 2]


def _relabel(objs: list[dict[str, Any]], namespace: str | None = None) -> list[dict[str, Any]]:
    out = copy.deepcopy(objs)
    for obj in out:
        if namespace is None or obj["metadata"].get("namespace") == namespace:
            obj["metadata"].setdefault("labels", {})["team"] = "platform"
    return out


def test_label_only_changes_fold_into_one_line() -> None:
    old = rendering()
    report = review(old, _relabel(old))
    text = report.markdown()
    assert report.verdict is Verdict.SAFE and len(report.objects) == len(old)
    assert text.splitlines()[-1] == f"- {len(old)} objects changed in labels: `team` (unset) -> `platform`"
    assert len(text.splitlines()) == 9


def _in_namespace(objs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    out = copy.deepcopy(objs)
    for obj in out:
        if obj["metadata"].get("namespace") == "apps":
            obj["metadata"]["namespace"] = namespace
    return out


def test_one_change_to_two_environments_warns_that_staging_is_skipped() -> None:
    production = rendering()
    staging = _in_namespace(production, "apps-staging")
    new_production = _relabel(production, "apps")
    both = review(production + staging, new_production + _relabel(staging, "apps-staging"))
    (warning,) = both.warnings
    assert warning.startswith(
        "staging skipped: this one change reaches 2 environments at once (namespaces `apps`, `apps-staging`)"
    )
    assert f"> **Warning**: {warning}" in both.markdown()
    # Staging alone, the promotion the docs ask for: no warning.
    assert review(production + staging, production + _relabel(staging, "apps-staging")).warnings == ()
