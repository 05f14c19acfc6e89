"""Topology: the values every option renders for, and one test per validation rule."""

from __future__ import annotations

import pytest

from cdk8s_valkey import Topology


def test_single() -> None:
    topology = Topology.single("cache")
    assert (topology.kind, topology.replicas, topology.client_endpoint) == ("single", 1, "service")
    assert topology.pod_names == ("cache-0",)
    assert topology.claim_names == ("data-cache-0",)
    assert topology.writable_pod_names == ("cache-0",)
    assert not topology.replicated and not topology.publish_not_ready_addresses


def test_sentinel() -> None:
    topology = Topology.sentinel("cache", 3)
    assert (topology.kind, topology.replicas, topology.client_endpoint) == ("sentinel", 3, "sentinel")
    assert topology.pod_names == ("cache-0", "cache-1", "cache-2")
    assert topology.claim_names == ("data-cache-0", "data-cache-1", "data-cache-2")
    # Any replica may be promoted: every pod may take writes at some time.
    assert topology.writable_pod_names == topology.pod_names
    assert topology.replicated and topology.publish_not_ready_addresses


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {"kind": "cluster", "name": "c", "replicas": 1, "client_endpoint": "service"},
            "kind: 'cluster' is not a topology; use one of ['single', 'sentinel']",
        ),
        (
            {"kind": "single", "name": "c", "replicas": 1, "client_endpoint": "haproxy"},
            "client_endpoint: 'haproxy' is not allowed; use one of ['service', 'sentinel']",
        ),
        (
            {"kind": "single", "name": "c", "replicas": 0, "client_endpoint": "service"},
            "replicas: 0 is not allowed; use a whole number, at least 1",
        ),
        (
            {"kind": "single", "name": "c", "replicas": True, "client_endpoint": "service"},
            "replicas: True is not allowed; use a whole number, at least 1",
        ),
        (
            {"kind": "single", "name": "c", "replicas": 3, "client_endpoint": "service"},
            "replicas: 3 does not fit kind 'single'; a single topology has 1 pod, a replicated one at least 2",
        ),
    ],
)
def test_rules(props: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as error:
        Topology(**props)  # type: ignore[arg-type]
    assert str(error.value) == message
