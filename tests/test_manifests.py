"""Every object in dist/ validates: Kubernetes kinds against the 1.28 schemas in strict
mode (unknown fields fail), prometheus-operator kinds against the CRDs' schemas. So does every
branch of the bodies the constructs build as plain JSON, which no typed binding checks at synth."""

from __future__ import annotations

import functools
from typing import Any

import kubernetes_validate
import pytest
from cdk8s_plus_28 import k8s

from cdk8s_valkey import (
    AlertOptions,
    DashboardOptions,
    ExporterOptions,
    PodOptions,
    SecretKeyRef,
    Valkey,
    ValkeyStatefulSet,
)
from harness.crd_schema import validate_crd_object
from harness.paths import REPO
from harness.synth import load_all, new_chart, objects

DIST = [obj for path in sorted((REPO / "dist").glob("*.k8s.yaml")) for obj in load_all(path.read_text())]
CRD_GROUPS = ("monitoring.coreos.com/", "longhorn.io/")


def _id(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"


@pytest.mark.parametrize("obj", [o for o in DIST if not o["apiVersion"].startswith(CRD_GROUPS)], ids=_id)
def test_kubernetes_object_validates_strictly(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.28", strict=True)


def test_strict_validation_catches_a_misspelt_field() -> None:
    sts = next(o for o in DIST if o["kind"] == "StatefulSet")
    broken = {**sts, "spec": {**sts["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError, match="'replica' was unexpected"):
        kubernetes_validate.validate(broken, "1.28", strict=True)


def test_nothing_is_hash_suffixed() -> None:
    for obj in DIST:
        name = obj["metadata"]["name"]
        assert not any(len(part) >= 8 and any(c.isdigit() for c in part) for part in name.split("-")), name


# -- the plain-JSON bodies (bench/README.md, synth: what each saving costs in typing) -------


@functools.cache
def every_plain_branch() -> tuple[dict[str, Any], ...]:
    """The StatefulSet, ServiceMonitor and PrometheusRule through every branch of their plain
    builders: AUTH (secret env in both containers), every PodOptions field, a typed sidecar and
    volume, the dashboard links on the alerts; and a Valkey in a chart without a namespace."""
    chart = new_chart()
    valkey = Valkey(
        chart,
        "full",
        auth_secret=SecretKeyRef(name="valkey-auth", key="password"),
        network_policy=True,
        pod=PodOptions(
            node_selector={"node-role.example.com/data": "true"},
            tolerations=[k8s.Toleration(key="dedicated", operator="Equal", value="data", effect="NoSchedule")],
            affinity=k8s.Affinity(
                pod_anti_affinity=k8s.PodAntiAffinity(
                    preferred_during_scheduling_ignored_during_execution=[
                        k8s.WeightedPodAffinityTerm(
                            weight=10,
                            pod_affinity_term=k8s.PodAffinityTerm(
                                topology_key="kubernetes.io/hostname",
                                label_selector=k8s.LabelSelector(match_labels={"app.kubernetes.io/name": "valkey"}),
                            ),
                        )
                    ]
                )
            ),
            priority_class_name="data-critical",
            labels={"team": "platform"},
            annotations={"sidecar.istio.io/inject": "false"},
            image_pull_secrets=["registry-mirror"],
        ),
        exporter=ExporterOptions(bullmq_queues=["emails"], service_monitor_labels={"release": "x"}),
        alerts=AlertOptions(rule_labels={"release": "x"}, grafana_url="https://grafana.example.com"),
        dashboard=DashboardOptions(),
    )
    valkey.server.add_container(
        k8s.Container(
            name="helper",
            image="busybox:1.36.1",
            resources=k8s.ResourceRequirements(limits={"memory": k8s.Quantity.from_string("32Mi")}),
            volume_mounts=[k8s.VolumeMount(name="scratch", mount_path="/scratch")],
        )
    )
    valkey.server.add_volume(k8s.Volume(name="scratch", empty_dir=k8s.EmptyDirVolumeSource()))
    bare = new_chart(namespace=None, chart_id="bare")
    ValkeyStatefulSet(bare, "alone")
    plain = {"StatefulSet", "ServiceMonitor", "PrometheusRule"}
    return tuple(o for o in objects(chart) + objects(bare) if o["kind"] in plain)


def test_every_plain_branch_is_rendered() -> None:
    kinds = sorted(o["kind"] for o in every_plain_branch())
    assert kinds == ["PrometheusRule", "ServiceMonitor", "StatefulSet", "StatefulSet"]


def test_every_plain_statefulset_validates_strictly() -> None:
    for obj in every_plain_branch():
        if obj["kind"] == "StatefulSet":
            kubernetes_validate.validate(obj, "1.28", strict=True)


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_every_plain_branch_matches_its_crd(kind: str) -> None:
    for obj in every_plain_branch():
        if obj["kind"] == kind:
            validate_crd_object(obj)


def test_a_misspelt_plain_field_fails_the_crd_check() -> None:
    """What the CRD binding refused at synth (no ``scrapeTimout`` parameter), the schema refuses here."""
    monitor = next(o for o in every_plain_branch() if o["kind"] == "ServiceMonitor")
    endpoint = {**monitor["spec"]["endpoints"][0], "scrapeTimout": "10s"}
    broken = {**monitor, "spec": {**monitor["spec"], "endpoints": [endpoint]}}
    with pytest.raises(AssertionError, match="'scrapeTimout' was unexpected"):
        validate_crd_object(broken)
