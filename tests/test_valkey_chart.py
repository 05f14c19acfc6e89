"""ValkeyChart, and composing several Valkeys: no name, selector, ServiceMonitor or alert
scope may overlap between two of them, and a second object of one kind and name is refused."""

from __future__ import annotations

import re
import warnings
from typing import Any

import cdk8s
import pytest

from cdk8s_valkey import (
    AlertOptions,
    Alerts,
    ExporterOptions,
    ExporterSidecar,
    Valkey,
    ValkeyChart,
    ValkeyStatefulSet,
)
from harness.synth import container, find, new_chart, objects, to_yaml


def test_defaults_snapshot(yaml_snapshot: Any) -> None:
    chart = ValkeyChart(
        cdk8s.Testing.app(), "valkey", namespace="apps", exporter=ExporterOptions(bullmq_queues=["emails"])
    )
    objs = objects(chart)
    assert [o["kind"] for o in objs] == [
        "ConfigMap",
        "ConfigMap",
        "Service",
        "Service",
        "PersistentVolumeClaim",
        "StatefulSet",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    ]
    assert to_yaml(chart) == yaml_snapshot


def test_chart_equals_composing_the_three_constructs_by_hand() -> None:
    by_chart = ValkeyChart(
        cdk8s.Testing.app(), "valkey", namespace="apps", exporter=ExporterOptions(bullmq_queues=["emails"])
    )
    by_hand = new_chart(chart_id="valkey")
    valkey = ValkeyStatefulSet(by_hand, "valkey")
    exporter = ExporterSidecar(by_hand, "exporter", valkey=valkey, options=ExporterOptions(bullmq_queues=["emails"]))
    Alerts(by_hand, "alerts", valkey=valkey, exporter=exporter)
    assert objects(by_chart) == objects(by_hand)


def test_0_1_flat_props_still_work_with_a_deprecation_warning() -> None:
    """The 0.1 flat keywords reach the construct that owns them, for one more minor release."""
    with pytest.warns(DeprecationWarning) as caught:
        chart = ValkeyChart(
            cdk8s.Testing.app(),
            "valkey",
            namespace="apps",
            name="sessions",
            memory_limit=cdk8s.Size.gibibytes(2),
            storage_size=cdk8s.Size.gibibytes(8),
            exporter_memory_limit=cdk8s.Size.mebibytes(32),  # type: ignore[call-arg]
            bullmq_queues=["emails"],
            service_monitor_labels={"release": "prom"},
            rule_labels={"release": "prom"},
            queue_depth_threshold=5,
        )
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "ValkeyChart: ['bullmq_queues', 'exporter_memory_limit', 'service_monitor_labels'] as keywords are "
        "deprecated and stop working in 0.3.0; pass exporter=ExporterOptions(...)",
        "ValkeyChart: ['queue_depth_threshold', 'rule_labels'] as keywords are deprecated and stop working in "
        "0.3.0; pass alerts=AlertOptions(...)",
    ]
    objs = objects(chart)
    assert chart.valkey.name == "sessions"
    assert container(objs)["resources"]["limits"]["memory"] == "2Gi"
    assert container(objs, "exporter")["resources"]["limits"]["memory"] == "32Mi"
    assert find(objs, "ServiceMonitor")["metadata"]["labels"]["release"] == "prom"
    rule = find(objs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prom"
    assert "> 5" in str(rule["spec"])


def test_flat_exporter_and_alert_keywords_warn_and_typos_raise() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    with pytest.warns(DeprecationWarning, match=r"pass options=ExporterOptions\(bullmq_queues=\.\.\.\)"):
        exporter = ExporterSidecar(chart, "exporter", valkey=valkey, bullmq_queues=["emails"])
    assert exporter.bullmq_queues == ("emails",)
    with pytest.raises(TypeError) as excinfo:
        Alerts(chart, "alerts", valkey=valkey, exporter=exporter, client_treshold=5)
    assert str(excinfo.value).startswith(
        "Alerts: unexpected keyword argument(s) ['client_treshold']; the props are the fields of AlertOptions: "
    )


def test_the_options_way_warns_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ValkeyChart(
            cdk8s.Testing.app(),
            "valkey",
            namespace="apps",
            exporter=ExporterOptions(bullmq_queues=["emails"]),
            alerts=AlertOptions(queue_depth_threshold=5),
        )


def test_bad_prop_names_the_prop() -> None:
    with pytest.raises(ValueError, match=r"^memory_limit: 32Mi is too small to run Valkey"):
        ValkeyChart(cdk8s.Testing.app(), "valkey", namespace="apps", memory_limit=cdk8s.Size.mebibytes(32))


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
    Valkey(chart, "sessions")
    Valkey(chart, "queues", exporter=ExporterOptions(bullmq_queues=["emails", "reports"]))
    objs = objects(chart)
    assert len([o for o in objs if o["kind"] == "StatefulSet"]) == 2
    _assert_disjoint(objs)


def test_two_charts_of_one_app_do_not_overlap() -> None:
    app = cdk8s.Testing.app()
    queues = ExporterOptions(bullmq_queues=["emails"])
    one = ValkeyChart(app, "valkey-apps", namespace="apps", name="valkey", exporter=queues)
    two = ValkeyChart(app, "valkey-jobs", namespace="jobs", name="valkey", exporter=queues)
    _assert_disjoint(objects(one) + objects(two))


def test_the_overlap_check_can_fail() -> None:
    """Objects rendered twice must be caught by the check above (built by hand here, since
    the library itself refuses them, as the next tests show)."""
    one = objects(ValkeyChart(cdk8s.Testing.app(), "a", namespace="apps", name="valkey"))
    with pytest.raises(AssertionError, match="duplicate objects"):
        _assert_disjoint(one + one)


def test_same_name_in_one_namespace_is_refused_at_synth() -> None:
    app = cdk8s.Testing.app()
    ValkeyChart(app, "a", namespace="apps", name="valkey")
    with pytest.raises(ValueError) as excinfo:
        ValkeyChart(app, "b", namespace="apps", name="valkey")
    assert str(excinfo.value) == (
        "ConfigMap 'valkey-config' in namespace 'apps' would be rendered twice, by a/a/a and by "
        "b/b/b; the second would overwrite the first when applied. Give one of them another name "
        "(the name prop, or the construct id it defaults to)"
    )


def test_a_valkey_named_like_another_ones_metrics_service_is_refused() -> None:
    """sessions' exporter renders Service sessions-metrics; a Valkey sessions-metrics would too."""
    chart = new_chart()
    Valkey(chart, "sessions")
    with pytest.raises(ValueError) as excinfo:
        Valkey(chart, "sessions-metrics")
    assert str(excinfo.value) == (
        "Service 'sessions-metrics' in namespace 'apps' would be rendered twice, by test/sessions/Metrics and by "
        "test/sessions-metrics/sessions-metrics; the second would overwrite the first when applied. Give one of "
        "them another name (the name prop, or the construct id it defaults to)"
    )
