"""Every selection in the rendered manifests survives Argo CD's tracking label.

Argo CD before 3.0 tracks the objects of an Application by the label ``app.kubernetes.io/instance``
(its default ``application.resourceTrackingMethod: label``) and, on every object it applies, sets
that label to the Application's name, overwriting ours. It sets it on the top-level object's
``metadata.labels`` only: pod templates keep their labels, so the pods that controllers create
from them keep ours (argo-cd ``util/kube/kube.go``, ``SetAppInstanceLabel``: templates are
labelled only for the legacy key ``applications.argoproj.io/app-name``, which adds a label of its
own and overwrites none of ours).

So a selector that matches *object* labels by ``app.kubernetes.io/instance`` breaks (a
ServiceMonitor selecting its Service did, until ``valkey.cdk8s.io/instance``), and a selector that
matches *pod* labels does not. This test applies Argo's rewrite to the manifests and checks that
every selector selects exactly what it selected before, and something: Services and
PodDisruptionBudgets -> pods, StatefulSets -> their pods, NetworkPolicy pod selectors -> pods,
ServiceMonitors -> Services, Longhorn RecurringJob groups -> claims. The alert expressions scope
by Prometheus' ``namespace`` and ``service`` target labels (the Service's name), not by labels.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from cdk8s_valkey import ExporterOptions, SentinelOptions, Valkey
from cdk8s_valkey.exporter_sidecar import INSTANCE_LABEL
from harness.paths import REPO
from harness.podrunner import load_manifest
from harness.synth import new_chart, objects

TRACKING_LABEL = "app.kubernetes.io/instance"  # Argo CD < 3.0: application.instanceLabelKey default
APPLICATION = "platform-valkey-prod"  # an Application named unlike the Valkey, as teams name them
Ref = tuple[str, str, str]  # (kind, namespace, name) of what a selector selects


def argocd_label_tracking(objs: list[dict[str, Any]], application: str) -> list[dict[str, Any]]:
    """What Argo CD < 3.0 applies: the tracking label set on every top-level object, nothing else."""
    applied = copy.deepcopy(objs)
    for obj in applied:
        obj["metadata"].setdefault("labels", {})[TRACKING_LABEL] = application
    return applied


def _ns(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"].get("namespace", "default"))


def _ref(obj: Mapping[str, Any], suffix: str = "") -> Ref:
    return (obj["kind"] + suffix, _ns(obj), obj["metadata"]["name"])


def _pod_templates(objs: list[dict[str, Any]]) -> Iterator[tuple[Ref, str, Mapping[str, str]]]:
    """(ref, namespace, pod labels) of every workload's pod template: what its pods will carry."""
    for obj in objs:
        if obj["kind"] in ("StatefulSet", "Deployment", "DaemonSet", "Job"):
            yield _ref(obj, "/pods"), _ns(obj), obj["spec"]["template"]["metadata"].get("labels", {})


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _pods(objs: list[dict[str, Any]], namespace: str, selector: Mapping[str, Any]) -> frozenset[Ref]:
    assert set(selector) <= {"matchLabels"}, f"matchExpressions not handled here: {selector}"
    match = selector.get("matchLabels", {})
    return frozenset(ref for ref, ns, labels in _pod_templates(objs) if ns == namespace and _matches(match, labels))


def selections(objs: list[dict[str, Any]]) -> dict[str, frozenset[Ref]]:
    """Every selector of the manifests -> what it selects among the manifests' objects."""
    out: dict[str, frozenset[Ref]] = {}
    for obj in objs:
        kind, ns, name = obj["kind"], _ns(obj), obj["metadata"]["name"]
        spec = obj.get("spec", {})
        if kind == "Service" and spec.get("selector"):
            out[f"Service {ns}/{name} -> pods"] = _pods(objs, ns, {"matchLabels": spec["selector"]})
        elif kind in ("StatefulSet", "PodDisruptionBudget"):
            out[f"{kind} {ns}/{name} -> pods"] = _pods(objs, ns, spec["selector"])
        elif kind == "NetworkPolicy":
            out[f"NetworkPolicy {ns}/{name} podSelector -> pods"] = _pods(objs, ns, spec["podSelector"])
            for direction in ("ingress", "egress"):
                for i, rule in enumerate(spec.get(direction, [])):
                    for j, peer in enumerate(rule.get("from" if direction == "ingress" else "to", [])):
                        if "podSelector" in peer and "namespaceSelector" not in peer:
                            key = f"NetworkPolicy {ns}/{name} {direction}[{i}] peer[{j}] -> pods"
                            out[key] = _pods(objs, ns, peer["podSelector"])
        elif kind == "ServiceMonitor":
            namespaces = spec.get("namespaceSelector", {}).get("matchNames", [ns])
            match = spec["selector"]["matchLabels"]
            out[f"ServiceMonitor {ns}/{name} -> Services"] = frozenset(
                _ref(svc)
                for svc in objs
                if svc["kind"] == "Service"
                and _ns(svc) in namespaces
                and _matches(match, svc["metadata"].get("labels", {}))
            )
        elif kind == "RecurringJob":
            for group in spec.get("groups", []):
                label = f"recurring-job-group.longhorn.io/{group}"
                out[f"RecurringJob {ns}/{name} group {group} -> claims"] = frozenset(
                    _ref(pvc)
                    for pvc in objs
                    if pvc["kind"] == "PersistentVolumeClaim"
                    and pvc["metadata"].get("labels", {}).get(label) == "enabled"
                )
    return out


def sentinel_app() -> list[dict[str, Any]]:
    """The opt-in with selectors of its own: Sentinel, with its exporter and NetworkPolicies (the
    smoke check, refused with Sentinel for now, is in dist/)."""
    chart = new_chart()
    Valkey(
        chart,
        "cache",
        network_policy=True,
        exporter=ExporterOptions(bullmq_queues=("emails",)),
        sentinel=SentinelOptions(),
    )
    return objects(chart)


MANIFESTS = {
    "dist-production": lambda: load_manifest(REPO / "dist" / "valkey.k8s.yaml"),
    "dist-staging": lambda: load_manifest(REPO / "dist" / "valkey-staging.k8s.yaml"),
    "sentinel-app": sentinel_app,
}


@pytest.mark.parametrize("manifest", MANIFESTS.values(), ids=MANIFESTS.keys())
def test_every_selection_survives_argocd_label_tracking(manifest: Any) -> None:
    objs = manifest()
    before = selections(objs)
    after = selections(argocd_label_tracking(objs, APPLICATION))
    assert before, "no selector found"
    empty = sorted(key for key, selected in before.items() if not selected)
    assert not empty, f"selectors that select nothing even before Argo CD: {empty}"
    changed = {key: (sorted(before[key]), sorted(after[key])) for key in before if before[key] != after[key]}
    assert not changed, f"selections that Argo CD's tracking label breaks: {changed}"
    monitors = {key: selected for key, selected in before.items() if key.startswith("ServiceMonitor")}
    assert monitors, "no ServiceMonitor in this manifest"
    for key, selected in monitors.items():
        assert len(selected) == 1 and next(iter(selected))[2].endswith("-metrics"), (key, selected)


@pytest.mark.parametrize("manifest", MANIFESTS.values(), ids=MANIFESTS.keys())
def test_service_monitors_select_by_the_label_this_library_owns(manifest: Any) -> None:
    for obj in manifest():
        if obj["kind"] == "ServiceMonitor":
            match = obj["spec"]["selector"]["matchLabels"]
            assert TRACKING_LABEL not in match, obj["metadata"]["name"]
            assert match[INSTANCE_LABEL] == obj["metadata"]["name"].removesuffix("-sentinel"), match


def test_the_check_catches_a_selection_by_the_tracking_label() -> None:
    """The old ServiceMonitor selector (by app.kubernetes.io/instance) loses its Service under Argo."""
    objs = load_manifest(REPO / "dist" / "valkey.k8s.yaml")
    for obj in objs:
        if obj["kind"] == "ServiceMonitor":
            match = obj["spec"]["selector"]["matchLabels"]
            match[TRACKING_LABEL] = match.pop(INSTANCE_LABEL)
    before, after = selections(objs), selections(argocd_label_tracking(objs, APPLICATION))
    assert before["ServiceMonitor apps/valkey -> Services"] == {("Service", "apps", "valkey-metrics")}
    assert after["ServiceMonitor apps/valkey -> Services"] == frozenset()


def test_alerts_scope_by_target_labels_not_object_labels() -> None:
    """The PrometheusRules select series by namespace and service (Prometheus' target labels from
    the Service's name), never by a Kubernetes label that Argo CD could rewrite."""
    for obj in load_manifest(REPO / "dist" / "valkey.k8s.yaml"):
        if obj["kind"] == "PrometheusRule":
            for group in obj["spec"]["groups"]:
                for rule in group["rules"]:
                    assert not re.search(r"label_app_kubernetes_io|\binstance=", rule["expr"]), rule
                    assert 'namespace="apps"' in rule["expr"], rule
