"""The NetworkPolicy that opens one more port of the Valkey pod to some peers.

Policies add up (Kubernetes takes the union of every policy selecting a pod), so each construct
that needs a way in renders a policy of its own beside the Valkey's, instead of editing it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cdk8s_plus_28 import k8s
from constructs import Construct


def allow_ingress(
    scope: Construct,
    id: str,
    *,
    name: str,
    labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
    peers: Sequence[k8s.NetworkPolicyPeer],
    port: int | Sequence[int],
) -> k8s.KubeNetworkPolicy:
    """``NetworkPolicy <name>``: the pods with ``pod_labels`` accept TCP ``port`` (one, or
    several) from ``peers``.

    Ingress only: egress stays as the other policies of those pods set it."""
    return k8s.KubeNetworkPolicy(
        scope,
        id,
        metadata=k8s.ObjectMeta(name=name, labels=dict(labels)),
        spec=k8s.NetworkPolicySpec(
            pod_selector=k8s.LabelSelector(match_labels=dict(pod_labels)),
            policy_types=["Ingress"],
            ingress=[
                k8s.NetworkPolicyIngressRule(
                    from_=list(peers),
                    ports=[
                        k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(p), protocol="TCP")
                        for p in ([port] if isinstance(port, int) else port)
                    ],
                )
            ],
        ),
    )
