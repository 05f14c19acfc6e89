"""ValkeyChart, and composing several Valkeys: no name, selector, ServiceMonitor or alert
scope may overlap between two of them."""

from __future__ import annotations

import re
from typing import Any

import cdk8s
import pytest
from _synth import container, find, new_chart, objects, to_yaml

from cdk8s_valkey import Alerts, ExporterSidecar, ValkeyChart, ValkeyStatefulSet


def test_defaults_snapshot(yaml_snapshot: Any) -> None:
    chart = ValkeyChart(cdk8s.Testing.app(), "valkey", namespace="apps", bullmq_queues=["emails"])
    objs = objects(chart)
    assert [o["kind"] for o in objs] == [
        "ConfigMap",
        "ConfigMap",
        "Service",
        "Service",
        "StatefulSet",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    ]
    assert to_yaml(chart) == yaml_snapshot


def test_chart_equals_composing_the_three_constructs_by_hand() -> None:
    by_chart = ValkeyChart(cdk8s.Testing.app(), "valkey", namespace="apps", bullmq_queues=["emails"])
    by_hand = new_chart(chart_id="valkey")
    valkey = ValkeyStatefulSet(by_hand, "valkey")
    exporter = ExporterSidecar(by_hand, "exporter", valkey=valkey, bullmq_queues=["emails"])
    Alerts(by_hand, "alerts", valkey=valkey, exporter=exporter)
    assert objects(by_chart) == objects(by_hand)


def test_props_reach_the_construct_that_owns_them() -> None:
    chart = ValkeyChart(
        cdk8s.Testing.app(),
        "valkey",
        namespace="apps",
        name="sessions",
        memory_limit=cdk8s.Size.gibibytes(2),
        storage_size=cdk8s.Size.gibibytes(8),
        exporter_memory_limit=cdk8s.Size.mebibytes(32),
        bullmq_queues=["emails"],
        service_monitor_labels={"release": "prom"},
        rule_labels={"release": "prom"},
        queue_depth_threshold=5,
    )
    objs = objects(chart)
    assert chart.valkey.name == "sessions"
    assert container(objs)["resources"]["limits"]["memory"] == "2Gi"
    assert container(objs, "exporter")["resources"]["limits"]["memory"] == "32Mi"
    assert find(objs, "ServiceMonitor")["metadata"]["labels"]["release"] == "prom"
    rule = find(objs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prom"
    assert "> 5" in str(rule["spec"])


def test_bad_prop_names_the_prop() -> None:
    with pytest.raises(ValueError, match=r"^memory_limit: 32Mi is too small to run Valkey"):
        ValkeyChart(cdk8s.Testing.app(), "valkey", memory_limit=cdk8s.Size.mebibytes(32))


# -- two Valkeys -----------------------------------------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _assert_disjoint(objs: list[dict[str, Any]]) -> None:
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs]
    assert len(keys) == len(set(keys)), f"duplicate objects: {sorted(keys)}"

    pods = {
        (s["metadata"].get("namespace"), s["metadata"]["name"]): s["spec"]["template"]["metadata"]["labels"]
        for s in objs
        if s["kind"] == "StatefulSet"
    }
    for sts in (o for o in objs if o["kind"] == "StatefulSet"):
        ns = sts["metadata"].get("namespace")
        selected = [
            key
            for key, labels in pods.items()
            if key[0] == ns and _selects(sts["spec"]["selector"]["matchLabels"], labels)
        ]
        assert selected == [(sts["metadata"].get("namespace"), sts["metadata"]["name"])]
    for svc in (o for o in objs if o["kind"] == "Service"):
        ns = svc["metadata"].get("namespace")
        selected = [key for key, labels in pods.items() if key[0] == ns and _selects(svc["spec"]["selector"], labels)]
        assert len(selected) == 1, f"Service {svc['metadata']['name']} selects {selected}"
    services = [o for o in objs if o["kind"] == "Service"]
    for monitor in (o for o in objs if o["kind"] == "ServiceMonitor"):
        namespaces = monitor["spec"].get("namespaceSelector", {}).get("matchNames")
        selected = [
            s["metadata"]["name"]
            for s in services
            if (namespaces is None or s["metadata"].get("namespace") in namespaces)
            and _selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert selected == [f"{monitor['metadata']['name']}-metrics"]
    for rule in (o for o in objs if o["kind"] == "PrometheusRule"):
        ns = rule["metadata"].get("namespace")
        own_service = f"{rule['metadata']['name']}-metrics"
        for group in rule["spec"]["groups"]:
            for alert in group["rules"]:
                selectors = re.findall(r"valkey_[a-z_]+\{([^}]*)\}", alert["expr"])
                # kubelet, cAdvisor and kube-state-metrics series: this Valkey's claim or pod
                pod_selectors = re.findall(r"\b(?:kubelet|container|kube)_[a-z_]+\{([^}]*)\}", alert["expr"])
                assert selectors or pod_selectors, f"{alert['alert']}: no scoped selector in {alert['expr']}"
                for selector in selectors:
                    assert f'service="{own_service}"' in selector, f"{alert['alert']}: {selector}"
                    if ns:
                        assert f'namespace="{ns}"' in selector, f"{alert['alert']}: {selector}"
                name = rule["metadata"]["name"]
                for selector in pod_selectors:
                    assert f'persistentvolumeclaim="data-{name}-0"' in selector or f'pod="{name}-0"' in selector
                    if ns:
                        assert f'namespace="{ns}"' in selector, f"{alert['alert']}: {selector}"


def test_two_valkeys_in_one_chart_do_not_overlap() -> None:
    chart = new_chart()
    for name, queues in (("sessions", []), ("queues", ["emails", "reports"])):
        valkey = ValkeyStatefulSet(chart, name)
        exporter = ExporterSidecar(chart, f"{name}-metrics", valkey=valkey, bullmq_queues=queues)
        Alerts(chart, f"{name}-alerts", valkey=valkey, exporter=exporter)
    objs = objects(chart)
    assert len([o for o in objs if o["kind"] == "StatefulSet"]) == 2
    _assert_disjoint(objs)


def test_two_charts_of_one_app_do_not_overlap() -> None:
    app = cdk8s.Testing.app()
    one = ValkeyChart(app, "valkey-apps", namespace="apps", name="valkey", bullmq_queues=["emails"])
    two = ValkeyChart(app, "valkey-jobs", namespace="jobs", name="valkey", bullmq_queues=["emails"])
    _assert_disjoint(objects(one) + objects(two))


def test_the_overlap_check_can_fail() -> None:
    """Two same-named Valkeys in one namespace must be caught by the check above."""
    app = cdk8s.Testing.app()
    one = ValkeyChart(app, "a", namespace="apps", name="valkey")
    two = ValkeyChart(app, "b", namespace="apps", name="valkey")
    with pytest.raises(AssertionError, match="duplicate objects"):
        _assert_disjoint(objects(one) + objects(two))
