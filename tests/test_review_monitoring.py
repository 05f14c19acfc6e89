"""review/monitoring.py: ServiceMonitor and PrometheusRule change without restarting Valkey."""

from __future__ import annotations

from typing import Any

from cdk8s_valkey.review import Verdict
from harness.review import findings_for, review_edit


def test_alert_changes_are_named() -> None:
    def edit(rule: dict[str, Any]) -> None:
        rules = rule["spec"]["groups"][0]["rules"]
        rules[0]["for"] = "10m"
        rules.pop()
        rules.append({"alert": "ValkeyNew", "expr": "vector(1)"})

    report = review_edit("PrometheusRule", None, edit)
    assert [(f.verdict, f.reason) for f in findings_for(report, "PrometheusRule")] == [
        (Verdict.SAFE, "alert `ValkeyDown` changed (for)"),
        (Verdict.SAFE, "alert `ValkeyAdrRevisitThroughput` removed"),
        (Verdict.SAFE, "alert `ValkeyNew` added"),
    ]


def test_service_monitor_change() -> None:
    report = review_edit("ServiceMonitor", None, lambda m: m["spec"]["endpoints"][0].update(interval="60s"))
    assert [f.reason for f in findings_for(report, "ServiceMonitor")] == [
        "`spec.endpoints[0].interval` `30s` -> `60s`: Prometheus picks it up, no restart"
    ]
