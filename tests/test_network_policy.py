"""Opt-in NetworkPolicies: ``ValkeyStatefulSet(network_policy=True, allowed_clients=...)`` and
the metrics policy an ``ExporterSidecar(metrics_namespace=...)`` adds to it.

The exact rules are asserted and snapshotted, the objects validate against the Kubernetes 1.28
schemas, and a small evaluator of NetworkPolicy semantics (policies select pods; a selected pod
accepts only what some rule of some selecting policy allows) shows "everything else denied"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cdk8s
import kubernetes_validate
import pytest
from cdk8s_plus_28 import k8s

from cdk8s_valkey import ExporterOptions, ExporterSidecar, SecretKeyRef, Sentinel, ValkeyStatefulSet
from harness.synth import find, new_chart, objects

POD_LABELS = {"app.kubernetes.io/name": "valkey", "app.kubernetes.io/instance": "valkey"}
VALKEY_LABELS = {
    **POD_LABELS,
    "app.kubernetes.io/version": "8.1.11",
    "app.kubernetes.io/component": "database",
    "app.kubernetes.io/managed-by": "cdk8s",
}


def build(*, network_policy: bool = True, exporter: bool = True, **props: Any) -> list[dict[str, Any]]:
    chart = new_chart()
    metrics_namespace = props.pop("metrics_namespace", None)
    valkey = ValkeyStatefulSet(chart, "valkey", network_policy=network_policy, **props)
    if exporter:
        extra = {} if metrics_namespace is None else {"metrics_namespace": metrics_namespace}
        ExporterSidecar(chart, "exporter", valkey=valkey, options=ExporterOptions(**extra))
    return objects(chart)


def policies(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == "NetworkPolicy"]


# -- the exact rules ---------------------------------------------------------------------

VALKEY_POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "valkey", "namespace": "apps", "labels": VALKEY_LABELS},
    "spec": {
        "podSelector": {"matchLabels": POD_LABELS},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 6379, "protocol": "TCP"}]}],
        "egress": [],
    },
}
METRICS_POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {
        "name": "valkey-metrics",
        "namespace": "apps",
        "labels": {**VALKEY_LABELS, "app.kubernetes.io/component": "metrics"},
    },
    "spec": {
        "podSelector": {"matchLabels": POD_LABELS},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                "ports": [{"port": 9121, "protocol": "TCP"}],
            }
        ],
    },
}


def test_valkey_and_metrics_policies_exact_rules() -> None:
    """Both rendered: Valkey's port from the namespace's pods, metrics from `monitoring`, no egress."""
    objs = build()
    assert policies(objs) == [VALKEY_POLICY, METRICS_POLICY]
    valkey_policy, metrics_policy = policies(objs)
    assert valkey_policy["spec"]["egress"] == [], "Egress in policyTypes with no rule: nothing leaves the pod"
    assert "egress" not in metrics_policy["spec"] and metrics_policy["spec"]["policyTypes"] == ["Ingress"]
    # The policies select exactly the pods the Services send traffic to.
    for service in (find(objs, "Service", "valkey"), find(objs, "Service", "valkey-metrics")):
        assert service["spec"]["selector"] == valkey_policy["spec"]["podSelector"]["matchLabels"]


def test_valkey_and_metrics_policies_snapshot(yaml_snapshot: Any) -> None:
    assert cdk8s.Yaml.stringify(*policies(build())) == yaml_snapshot


def test_policies_validate_strictly() -> None:
    for policy in policies(build(allowed_clients=[_peer_with_both()])):
        kubernetes_validate.validate(policy, "1.28", strict=True)
    for policy in policies(build()):
        kubernetes_validate.validate(policy, "1.28", strict=True)


def _peer_with_both() -> k8s.NetworkPolicyPeer:
    return k8s.NetworkPolicyPeer(
        namespace_selector=k8s.LabelSelector(match_labels={"kubernetes.io/metadata.name": "workers"}),
        pod_selector=k8s.LabelSelector(match_labels={"app": "bullmq-worker"}),
    )


def test_allowed_clients_replace_the_namespace_default() -> None:
    api = k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels={"app": "api"}))
    valkey_policy, _ = policies(build(allowed_clients=[api, _peer_with_both()]))
    assert valkey_policy["spec"]["ingress"] == [
        {
            "from": [
                {"podSelector": {"matchLabels": {"app": "api"}}},
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "workers"}},
                    "podSelector": {"matchLabels": {"app": "bullmq-worker"}},
                },
            ],
            "ports": [{"port": 6379, "protocol": "TCP"}],
        }
    ]


def test_metrics_namespace() -> None:
    _, metrics_policy = policies(build(metrics_namespace="observability"))
    assert metrics_policy["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
    ]


def test_valkey_alone_gets_only_its_own_policy() -> None:
    assert policies(build(exporter=False)) == [VALKEY_POLICY]


def test_no_policy_by_default() -> None:
    """ADR 0005's default: no NetworkPolicy, from either construct."""
    assert policies(build(network_policy=False)) == []


def test_wiring_attributes() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey", name="sessions", network_policy=True)
    exporter = ExporterSidecar(
        chart, "exporter", valkey=valkey, options=ExporterOptions(metrics_namespace="observability")
    )
    assert (valkey.network_policy, valkey.network_policy_name) == (True, "sessions")
    assert (exporter.metrics_namespace, exporter.network_policy_name) == ("observability", "sessions-metrics")
    assert [p["metadata"]["name"] for p in policies(objects(chart))] == ["sessions", "sessions-metrics"]
    plain = ValkeyStatefulSet(new_chart(), "valkey")
    assert (plain.network_policy, plain.network_policy_name) == (False, None)


# -- what the policies mean: everything else is denied --------------------------------------


@dataclass(frozen=True)
class Peer:
    namespace: str
    labels: tuple[tuple[str, str], ...] = ()


NAMESPACE_LABELS = {
    ns: {"kubernetes.io/metadata.name": ns} for ns in ("apps", "monitoring", "workers", "default", "kube-system")
}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "the evaluator knows matchLabels only"
    return selector.get("matchLabels", {}).items() <= labels.items()


def _peer_matches(peer: dict[str, Any], source: Peer, policy_namespace: str) -> bool:
    assert "ipBlock" not in peer
    labels = dict(source.labels)
    if "namespaceSelector" in peer:
        in_namespace = _selects(peer["namespaceSelector"], NAMESPACE_LABELS[source.namespace])
    else:
        in_namespace = source.namespace == policy_namespace  # a bare podSelector: the policy's namespace
    return in_namespace and ("podSelector" not in peer or _selects(peer["podSelector"], labels))


def ingress_allowed(pols: list[dict[str, Any]], source: Peer, port: int, pod_labels: dict[str, str]) -> bool:
    """Kubernetes semantics: a pod selected by an Ingress policy accepts a connection only if a
    rule of one of those policies matches both the source and the port (policies add up)."""
    selecting = [
        p for p in pols if "Ingress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], pod_labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports_ok = "ports" not in rule or any(p["port"] == port for p in rule["ports"])
            peers = rule.get("from")
            peer_ok = not peers or any(_peer_matches(peer, source, policy["metadata"]["namespace"]) for peer in peers)
            if ports_ok and peer_ok:
                return True
    return False


def egress_allowed(pols: list[dict[str, Any]], pod_labels: dict[str, str]) -> bool:
    """Any egress at all (to anywhere) from the pod."""
    selecting = [
        p for p in pols if "Egress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], pod_labels)
    ]
    return not selecting or any(p["spec"].get("egress") for p in selecting)


SAME_NAMESPACE = Peer("apps", (("app", "api"),))
OTHER_NAMESPACE = Peer("workers", (("app", "bullmq-worker"),))
PROMETHEUS = Peer("monitoring", (("app.kubernetes.io/name", "prometheus"),))


@pytest.mark.parametrize(
    ("source", "port", "allowed"),
    [
        pytest.param(SAME_NAMESPACE, 6379, True, id="same-namespace-valkey"),
        pytest.param(SAME_NAMESPACE, 9121, False, id="same-namespace-metrics"),
        pytest.param(OTHER_NAMESPACE, 6379, False, id="other-namespace-valkey"),
        pytest.param(PROMETHEUS, 9121, True, id="monitoring-metrics"),
        pytest.param(PROMETHEUS, 6379, False, id="monitoring-valkey"),
        pytest.param(Peer("default"), 9121, False, id="default-namespace-metrics"),
        pytest.param(SAME_NAMESPACE, 22, False, id="same-namespace-other-port"),
    ],
)
def test_everything_else_is_denied(source: Peer, port: int, allowed: bool) -> None:
    assert ingress_allowed(policies(build()), source, port, POD_LABELS) is allowed


def test_no_egress_and_other_pods_untouched() -> None:
    pols = policies(build())
    assert not egress_allowed(pols, POD_LABELS)
    # Another workload of the namespace is not selected: the policies change nothing for it.
    assert ingress_allowed(pols, OTHER_NAMESPACE, 8080, {"app": "api"})
    assert egress_allowed(pols, {"app": "api"})


def test_allowed_clients_narrow_the_valkey_port() -> None:
    api = k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels={"app": "api"}))
    pols = policies(build(allowed_clients=[api, _peer_with_both()]))
    assert ingress_allowed(pols, SAME_NAMESPACE, 6379, POD_LABELS)
    assert ingress_allowed(pols, OTHER_NAMESPACE, 6379, POD_LABELS)
    assert not ingress_allowed(pols, Peer("apps", (("app", "cron"),)), 6379, POD_LABELS)
    assert not ingress_allowed(pols, Peer("workers", (("app", "other"),)), 6379, POD_LABELS)
    assert ingress_allowed(pols, PROMETHEUS, 9121, POD_LABELS)


def test_without_policies_everyone_gets_in() -> None:
    """The ADR 0005 default, stated as what it means: any pod, any namespace, any port."""
    for source in (SAME_NAMESPACE, OTHER_NAMESPACE, PROMETHEUS):
        assert ingress_allowed(policies(build(network_policy=False)), source, 6379, POD_LABELS)


# -- validation: one exact message per rule --------------------------------------------------


@pytest.mark.parametrize(
    ("props", "message"),
    [
        pytest.param(
            {"network_policy": False, "allowed_clients": [k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector())]},
            "allowed_clients: only applies with network_policy=True; set network_policy=True to render the "
            "NetworkPolicy, or leave allowed_clients out",
            id="clients-without-policy",
        ),
        pytest.param(
            {"network_policy": True, "allowed_clients": []},
            "allowed_clients: [] is empty, which Kubernetes reads as 'from anywhere'; list the peers, or leave "
            "allowed_clients out for every pod of the Valkey's namespace",
            id="clients-empty",
        ),
        pytest.param(
            {"network_policy": True, "allowed_clients": [k8s.NetworkPolicyPeer()]},
            "allowed_clients: item 0 selects nothing; set its pod_selector, namespace_selector or ip_block",
            id="peer-selects-nothing",
        ),
        pytest.param(
            {"network_policy": True, "allowed_clients": ["api"]},
            "allowed_clients: item 0 ('api') is not a k8s.NetworkPolicyPeer",
            id="peer-wrong-type",
        ),
    ],
)
def test_bad_props_raise_before_any_child(props: dict[str, Any], message: str) -> None:
    chart = new_chart()
    with pytest.raises(ValueError) as raised:
        ValkeyStatefulSet(chart, "valkey", **props)
    assert str(raised.value) == message
    (construct,) = chart.node.children
    assert construct.node.children == []


@pytest.mark.parametrize("namespace", ["Monitoring", "monitoring_ns", "-monitoring", "m" * 64, ""])
def test_bad_metrics_namespace_raises(namespace: str) -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey", network_policy=True)
    with pytest.raises(ValueError) as raised:
        ExporterSidecar(chart, "exporter", valkey=valkey, options=ExporterOptions(metrics_namespace=namespace))
    assert str(raised.value) == (
        f"metrics_namespace: {namespace!r} is not a valid namespace name; use at most 63 lower-case letters, "
        "digits and '-', starting and ending with a letter or digit"
    )
    assert chart.node.try_find_child("exporter") is None


# -- under Sentinel: every pod, every flow the topology needs ---------------------------------------


def egress_allowed_to(pols: list[dict[str, Any]], pod_labels: dict[str, str], dest: Peer, port: int) -> bool:
    """Kubernetes semantics for egress: a pod selected by an Egress policy may connect only where a
    rule of one of those policies matches the destination and the port."""
    selecting = [
        p for p in pols if "Egress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], pod_labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("egress", []):
            ports_ok = "ports" not in rule or any(p["port"] == port for p in rule["ports"])
            peers = rule.get("to")
            peer_ok = not peers or any(_peer_matches(peer, dest, policy["metadata"]["namespace"]) for peer in peers)
            if ports_ok and peer_ok:
                return True
    return False


@pytest.mark.parametrize("auth", [False, True], ids=["no-auth", "auth"])
def test_sentinel_policies_cover_every_pod_and_flow(auth: bool) -> None:
    """Every pod of the Sentinel topology (the same template, so the same labels) accepts and
    opens exactly what replication, the Sentinels, the clients and Prometheus need."""
    chart = new_chart()
    secret = SecretKeyRef(name="valkey-auth", key="password") if auth else None
    valkey = ValkeyStatefulSet(chart, "valkey", network_policy=True, auth_secret=secret)
    exporter = ExporterSidecar(chart, "exporter", valkey=valkey)
    Sentinel(chart, "sentinel", valkey=valkey, exporter=exporter)
    objs = objects(chart)
    pols = policies(objs)
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    assert sts["spec"]["replicas"] == len(valkey.topology.pod_names) == 3
    labels = dict(sts["spec"]["template"]["metadata"]["labels"])
    peer_pod = Peer("apps", tuple(labels.items()))
    for port in (6379, 26379):  # replication and the Sentinels, both ways between the pods
        assert ingress_allowed(pols, peer_pod, port, labels), port
        assert egress_allowed_to(pols, labels, peer_pod, port), port
        assert ingress_allowed(pols, SAME_NAMESPACE, port, labels), port  # clients: Valkey and Sentinels
        assert not ingress_allowed(pols, OTHER_NAMESPACE, port, labels), port
    assert egress_allowed_to(pols, labels, Peer("kube-system", (("k8s-app", "kube-dns"),)), 53)  # pod host names
    for port in (9121, 9355):  # both exporters, to Prometheus only
        assert ingress_allowed(pols, PROMETHEUS, port, labels), port
        assert not ingress_allowed(pols, SAME_NAMESPACE, port, labels), port
    assert not egress_allowed_to(pols, labels, SAME_NAMESPACE, 6379)  # nothing else out
    assert not egress_allowed_to(pols, labels, Peer("default"), 443)
