"""SentinelAlerts: the rendered PrometheusRule checked and unit-tested with the real promtool
(tests/promtool/sentinel/*.yaml, both ways for every alert, other Valkeys' series present), the
contract each alert keeps (severity, annotations, a runbook section, scoped selectors), the
options, and one test per validation rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cdk8s
import pytest
import yaml
from test_alerts import load_unit_test, promtool, run_promtool, runbook_anchors  # noqa: F401

from cdk8s_valkey import (
    AlertOptions,
    Alerts,
    ExporterOptions,
    ExporterSidecar,
    Sentinel,
    SentinelOptions,
    Valkey,
    ValkeyStatefulSet,
)
from cdk8s_valkey.alerts import ALERT_NAMES as VALKEY_ALERT_NAMES
from cdk8s_valkey.alerts import DEFAULT_RUNBOOK_BASE_URL
from cdk8s_valkey.sentinel_alerts import ALERT_NAMES, SentinelAlertOptions, SentinelAlerts
from harness.paths import REPO
from harness.synth import find, new_chart, objects

pytestmark = pytest.mark.real

PROMTOOL_TESTS = REPO / "tests" / "promtool" / "sentinel"
SEVERITIES = {"critical", "warning", "info"}


def build(
    sentinel_options: SentinelOptions | None = None,
    options: SentinelAlertOptions | None = None,
    *,
    alert_options: AlertOptions | None = None,
) -> tuple[cdk8s.Chart, SentinelAlerts]:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    # One queue, for the queue alert of several pods (pods.yaml).
    exporter = ExporterSidecar(chart, "metrics", valkey=valkey, options=ExporterOptions(bullmq_queues=["emails"]))
    sentinel = Sentinel(chart, "sentinel", valkey=valkey, exporter=exporter, options=sentinel_options)
    alerts = Alerts(chart, "alerts", valkey=valkey, exporter=exporter, options=alert_options)
    return chart, SentinelAlerts(chart, "sentinel-alerts", sentinel=sentinel, alerts=alerts, options=options)


def prometheus_rule(chart: cdk8s.Chart) -> dict[str, Any]:
    return find(objects(chart), "PrometheusRule", "valkey-sentinel")


def rules(chart: cdk8s.Chart) -> list[dict[str, Any]]:
    return [rule for group in prometheus_rule(chart)["spec"]["groups"] for rule in group["rules"]]


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """Both rule groups of the chart the unit tests are written against (the Alerts' too, so that
    a name clash between the two groups would show)."""
    chart, _ = build()
    groups = [g for o in objects(chart) if o["kind"] == "PrometheusRule" for g in o["spec"]["groups"]]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


# -- promtool ----------------------------------------------------------------------------------------


def test_promtool_check_rules_succeeds(promtool: str, rules_file: Path) -> None:  # noqa: F811
    result = run_promtool(promtool, "check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit_test", sorted(PROMTOOL_TESTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_promtool_unit_tests_pass(promtool: str, rules_file: Path, tmp_path: Path, unit_test: Path) -> None:  # noqa: F811
    data = load_unit_test(unit_test)
    data["rule_files"] = [str(rules_file)]
    generated = tmp_path / unit_test.name
    generated.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_promtool(promtool, "test", "rules", str(generated))
    assert result.returncode == 0, f"{unit_test.name}:\n{result.stdout}{result.stderr}"


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    other_valkey = False
    for path in PROMTOOL_TESTS.glob("*.yaml"):
        for case in load_unit_test(path)["tests"]:
            series = " ".join(s["series"] for s in case["input_series"])
            other_valkey |= 'namespace="other"' in series
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if not expected:
                    silent.add(check["alertname"])
                for alert in expected:
                    assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}, case["name"]
                    assert "severity" in alert["exp_labels"], case["name"]
                    firing.add(check["alertname"])
    # Besides these alerts, cases of the Alerts' per-pod alerts in this topology (pods.yaml).
    assert firing - set(ALERT_NAMES) <= set(VALKEY_ALERT_NAMES)
    assert firing & set(ALERT_NAMES) == set(ALERT_NAMES), sorted(set(ALERT_NAMES) - firing)
    assert silent & set(ALERT_NAMES) == set(ALERT_NAMES), sorted(set(ALERT_NAMES) - silent)
    assert other_valkey


# -- the contract of every alert -------------------------------------------------------------------


def test_alert_names_and_rule() -> None:
    chart, alerts = build()
    assert alerts.alert_names == ALERT_NAMES == SentinelAlerts.ALERT_NAMES
    rule = prometheus_rule(chart)
    assert rule["metadata"]["labels"]["app.kubernetes.io/component"] == "alerts"
    assert [g["name"] for g in rule["spec"]["groups"]] == ["valkey-sentinel.rules"]


def test_every_alert_has_severity_annotations_and_a_runbook_section() -> None:
    chart, alerts = build()
    anchors = runbook_anchors()
    for rule in rules(chart):
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
        assert rule["annotations"]["runbook_url"] == f"{DEFAULT_RUNBOOK_BASE_URL}#{name.lower()}"
        assert alerts.runbook_url(name) == rule["annotations"]["runbook_url"]
        assert name.lower() in anchors, f"docs/runbooks.md has no section {name}"


def test_every_selector_is_scoped_to_this_valkey() -> None:
    chart, _ = build()
    valkey_scope = 'namespace="apps",service="valkey-metrics"'
    sentinel_scope = 'namespace="apps",service="valkey-sentinel-metrics"'
    for rule in rules(chart):
        selectors = re.findall(r"\b(valkey_[a-z_]+)\{([^}]*)\}", rule["expr"])
        assert selectors, rule["alert"]
        for metric, matchers in selectors:
            if metric.startswith("valkey_sentinel_"):
                assert matchers.startswith(f'{sentinel_scope},master_name="valkey"'), f"{rule['alert']}: {matchers}"
            else:
                assert matchers.startswith((valkey_scope, sentinel_scope)), f"{rule['alert']}: {matchers}"
        assert not re.findall(r"\bvalkey_[a-z_]+\b(?![a-z_{])", rule["expr"]), rule["alert"]


def test_the_alerts_per_pod_alerts_cover_every_pod() -> None:
    chart, _ = build()
    alerts = {
        r["alert"]: r for o in objects(chart) if o["kind"] == "PrometheusRule" for r in o["spec"]["groups"][0]["rules"]
    }
    full = alerts["ValkeyVolumeAlmostFull"]
    assert 'persistentvolumeclaim=~"data-valkey-0|data-valkey-1|data-valkey-2"' in full["expr"]
    assert full["annotations"]["description"].startswith("Claim {{ $labels.persistentvolumeclaim }} of Valkey")
    memory = alerts["ValkeyContainerMemoryCritical"]
    assert 'pod=~"valkey-0|valkey-1|valkey-2",container="valkey"' in memory["expr"]
    assert "pod {{ $labels.pod }} uses" in memory["annotations"]["description"]
    # A pod that is gone has no valkey_up to be 0: each pod's absence fires on its own.
    absent = alerts["ValkeyMetricsAbsent"]
    assert absent["expr"].split("\nor\n") == [
        f'absent(valkey_up{{namespace="apps",service="valkey-metrics",pod="valkey-{n}"}})' for n in range(3)
    ]
    assert "for pod {{ $labels.pod }} for 5m" in absent["annotations"]["description"]


# -- options ---------------------------------------------------------------------------------------


def test_labels_and_runbook_url_come_from_the_alerts() -> None:
    base = "https://github.com/acme/platform/blob/main/docs/valkey-runbooks.md"
    chart, _ = build(alert_options=AlertOptions(rule_labels={"release": "kps"}, runbook_base_url=base))
    assert prometheus_rule(chart)["metadata"]["labels"]["release"] == "kps"
    for rule in rules(chart):
        assert rule["annotations"]["runbook_url"] == f"{base}#{rule['alert'].lower()}"


def test_thresholds_follow_the_sentinel() -> None:
    chart, _ = build(
        SentinelOptions(
            replicas=4,
            min_replicas_to_write=2,
            down_after=cdk8s.Duration.seconds(30),
            min_replicas_max_lag=cdk8s.Duration.seconds(20),
        )
    )
    by_name = {r["alert"]: r for r in rules(chart)}
    assert by_name["ValkeySentinelQuorumLost"]["expr"].startswith(
        'max by (namespace, service) (valkey_sentinel_master_ok_sentinels{namespace="apps",'
        'service="valkey-sentinel-metrics",master_name="valkey"}) < 3\n'
    )
    assert "<= 20) >= 2" in by_name["ValkeyWritesRefusedNoReplicas"]["expr"]
    assert by_name["ValkeyReplicationLagging"]["expr"].endswith("> 20")


def test_no_writes_refused_alert_without_min_replicas_to_write() -> None:
    chart, alerts = build(SentinelOptions(min_replicas_to_write=0))
    assert "ValkeyWritesRefusedNoReplicas" not in alerts.alert_names
    assert "ValkeyWritesRefusedNoReplicas" not in {r["alert"] for r in rules(chart)}


def test_disabled_and_severities() -> None:
    chart, alerts = build(
        options=SentinelAlertOptions(disabled=["ValkeyFailover"], severities={"ValkeySentinelDown": "critical"})
    )
    assert "ValkeyFailover" not in alerts.alert_names
    assert {r["alert"]: r["labels"]["severity"] for r in rules(chart)}["ValkeySentinelDown"] == "critical"
    with pytest.raises(ValueError) as error:
        alerts.runbook_url("ValkeyFailover")
    assert str(error.value).startswith("alert: 'ValkeyFailover' is not rendered; use one of ['ValkeyNoPrimary'")


def test_composite_renders_them() -> None:
    chart = new_chart()
    valkey = Valkey(chart, "valkey", sentinel=SentinelOptions())
    assert valkey.sentinel_alerts is not None
    assert find(objects(chart), "PrometheusRule", "valkey-sentinel")
    assert Valkey(new_chart(), "single").sentinel_alerts is None


# -- validation: one test per rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"disabled": "ValkeyFailover"},
            "disabled: 'ValkeyFailover' is a single string; pass a list of alert names such as ['ValkeyFailover']",
        ),
        (
            {"disabled": ["ValkeyFailovers"]},
            "disabled: 'ValkeyFailovers' is not an alert of SentinelAlerts; did you mean 'ValkeyFailover'? use one "
            f"of {list(ALERT_NAMES)}",
        ),
        (
            {"severities": {"ValkeyFailover": "page"}},
            "severities['ValkeyFailover']: 'page' is not a severity; use one of ['critical', 'warning', 'info']",
        ),
    ],
)
def test_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        SentinelAlertOptions(**options)
    assert str(error.value) == message


def test_alerts_of_another_valkey_are_refused() -> None:
    chart = new_chart()
    one = ValkeyStatefulSet(chart, "one")
    two = ValkeyStatefulSet(chart, "two")
    exporter_one = ExporterSidecar(chart, "m1", valkey=one)
    exporter_two = ExporterSidecar(chart, "m2", valkey=two)
    sentinel = Sentinel(chart, "sentinel", valkey=one, exporter=exporter_one)
    other = Alerts(chart, "alerts", valkey=two, exporter=exporter_two)
    with pytest.raises(ValueError) as error:
        SentinelAlerts(chart, "sa", sentinel=sentinel, alerts=other)
    assert str(error.value) == (
        "alerts: they are about Valkey 'two', not 'one'; pass the Alerts created with valkey=<the Sentinel's Valkey>"
    )


def test_sentinel_without_exporter_is_refused() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    # One queue, for the queue alert of several pods (pods.yaml).
    exporter = ExporterSidecar(chart, "metrics", valkey=valkey, options=ExporterOptions(bullmq_queues=["emails"]))
    sentinel = Sentinel(chart, "sentinel", valkey=valkey)
    alerts = Alerts(chart, "alerts", valkey=valkey, exporter=exporter)
    with pytest.raises(ValueError) as error:
        SentinelAlerts(chart, "sa", sentinel=sentinel, alerts=alerts)
    assert str(error.value) == (
        "sentinel: the Sentinels of 'valkey' are not exported; create the Sentinel with "
        "exporter=<the Valkey's ExporterSidecar>"
    )
