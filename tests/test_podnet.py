"""The pod network itself (harness/podnet.py): pods in their own network namespaces replicate by
host name, a re-created pod gets a new IP and the names follow it, a partition cuts a pod off
and healing restores it, the containers of a pod share localhost, and nothing is left behind."""

from __future__ import annotations

import copy
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import valkey

from harness.paths import REPO
from harness.podnet import NETNS_ETC, STATE_DIR, NetStatefulSet, PodNetError, PodNetwork, Sandbox, sweep_leftovers
from harness.podrunner import load_manifest
from harness.wait import wait_for

pytestmark = pytest.mark.root

EXPORTER = {"oliver006/redis_exporter": ["prometheus-redis-exporter"]}


def with_claim_template(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The default rendering with a `data` claim per pod (a volumeClaimTemplate), so that two
    pods of it do not share one claim, and full syncs that start at once (Valkey waits 5 s by
    default for more replicas to join a diskless sync)."""
    objects = copy.deepcopy(objects)
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    pod_spec = sts["spec"]["template"]["spec"]
    valkey_container = next(c for c in pod_spec["containers"] if c["name"] == "valkey")
    valkey_container["args"] = ["--repl-diskless-sync-delay", "0"]
    pod_spec["volumes"] = [v for v in pod_spec["volumes"] if v["name"] != "data"]
    sts["spec"]["volumeClaimTemplates"] = [
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {}}}
    ]
    return objects


def links(tag: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if f" {tag}-" in line]


def namespaces(tag: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{tag}-")]


def can_connect(sandbox: Sandbox, ip: str, port: int, timeout: float = 0.5) -> bool:
    try:
        sandbox.connect(port, host=ip, timeout=timeout).close()
    except OSError:
        return False
    return True


@pytest.fixture
def two_pods(pod_network: PodNetwork, pod_bin_dir: Path, tmp_path: Path) -> Iterator[NetStatefulSet]:
    """The default valkey container as pods valkey-0 and valkey-1, pod 1 a replica of pod 0 by
    its pod DNS name."""
    with NetStatefulSet(
        with_claim_template(load_manifest()), network=pod_network, root=tmp_path, bin_dir=pod_bin_dir, replicas=2
    ) as sts:
        sts.start(wait=False)
        for pod in sts.pods:
            pod.wait_ready(timeout=15)
        sts.pods[1].client().replicaof(sts.pod_fqdn(0), 6379)
        yield sts


def replicated(replica: valkey.Valkey, key: str, value: bytes) -> Callable[[], bool]:
    return lambda: replica.get(key) == value


def test_replicas_follow_the_primary_by_name_across_a_new_ip(two_pods: NetStatefulSet) -> None:
    primary, replica = two_pods.pods
    assert primary.ip != replica.ip
    assert two_pods.service_name == "valkey-headless" and two_pods.namespace == "apps"
    for name in (
        "valkey-0.valkey-headless.apps.svc.cluster.local",
        "valkey-0.valkey-headless.apps.svc",
        "valkey-0.valkey-headless",
    ):
        assert replica.sandbox is not None and replica.sandbox.resolve(name) == [primary.ip], name
    # Services resolve to the pods they select; a pod's bare name only in its own pod.
    assert sorted(replica.sandbox.resolve("valkey.apps.svc.cluster.local")) == sorted([primary.ip, replica.ip])
    assert replica.sandbox.resolve("valkey-0") == []
    assert primary.sandbox is not None and primary.sandbox.resolve("valkey-0") == [primary.ip]

    writer, reader = primary.client(), replica.client()
    writer.set("before", "1")
    wait_for(replicated(reader, "before", b"1"), 10, "first sync by host name")

    old_ip = primary.ip
    primary.restart()
    primary.wait_ready(timeout=15)
    assert primary.ip != old_ip, "a re-created pod gets a new IP"
    assert replica.sandbox.resolve(two_pods.pod_fqdn(0)) == [primary.ip]
    assert primary.client().get("before") == b"1", "the claim survives the pod"
    primary.client().set("after", "2")
    wait_for(replicated(reader, "after", b"2"), 15, "replication again, through the new IP")
    info = reader.info("replication")
    assert info["master_host"] == two_pods.pod_fqdn(0) and info["master_link_status"] == "up"


def test_a_partition_cuts_the_pod_off_and_healing_restores_it(two_pods: NetStatefulSet) -> None:
    primary, replica = two_pods.pods
    assert primary.sandbox is not None and replica.sandbox is not None
    reader = replica.client()
    primary.client().set("k", "0")
    wait_for(replicated(reader, "k", b"0"), 10, "sync before the partition")

    primary.partition()
    assert not can_connect(replica.sandbox, primary.ip, 6379), "the bridge still carries the partitioned pod"
    # Observers go through the pod's own loopback: a partition does not cut them off.
    primary.client().set("k", "1")
    time.sleep(1.0)  # a negative check: the write must NOT arrive while partitioned
    assert reader.get("k") == b"0"

    primary.heal()
    assert can_connect(replica.sandbox, primary.ip, 6379, timeout=2)
    wait_for(replicated(reader, "k", b"1"), 15, "the write held back by the partition arrives after healing")


def test_containers_of_a_pod_share_localhost_and_get_the_pod_env(
    pod_network: PodNetwork, pod_bin_dir: Path, tmp_path: Path
) -> None:
    """The exporter sidecar scrapes Valkey at the rendered redis://localhost:6379; an init
    container sees the downward API env and $(VAR) references, and writes into an emptyDir."""
    objects = copy.deepcopy(load_manifest())
    sts_obj = next(o for o in objects if o["kind"] == "StatefulSet")
    pod_spec = sts_obj["spec"]["template"]["spec"]
    pod_spec["volumes"].append({"name": "scratch", "emptyDir": {}})
    pod_spec["initContainers"] = [
        {
            "name": "announce",
            "image": "valkey/valkey:8.1.11",
            "command": ["sh", "-c", 'printf "%s %s %s\\n" "$POD_NAME" "$POD_NAMESPACE" "$ANNOUNCE" > /scratch/who'],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "ANNOUNCE", "value": "$(POD_NAME).valkey-headless@$(POD_IP) $$(POD_IP)"},
            ],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        }
    ]
    with NetStatefulSet(
        objects, network=pod_network, root=tmp_path, bin_dir=pod_bin_dir, image_commands=EXPORTER
    ) as sts:
        pod = sts.pods[0]
        assert sorted(pod.containers) == ["exporter", "valkey"]
        pod.start()
        pod.wait_ready(timeout=15)
        who = (pod.volume_dirs["scratch"] / "who").read_text()
        assert who == f"valkey-0 apps valkey-0.valkey-headless@{pod.ip} $(POD_IP)\n"
        pod.client().set("probe", "x")
        assert pod.sandbox is not None

        def scrape() -> str:
            assert pod.sandbox is not None
            with pod.sandbox.entered():
                conn = http.client.HTTPConnection("127.0.0.1", 9121, timeout=2)
                conn.request("GET", "/metrics")
                body = conn.getresponse().read().decode()
                conn.close()
            return body if "\nvalkey_up 1" in body else ""

        body = wait_for(scrape, 10, "the exporter sidecar reaching valkey over the pod's localhost")
        assert 'valkey_db_keys{db="db0"} 1' in body
        # The exporter runs as the rendered user in the pod's namespace, not on the host's loopback.
        exporter = pod.container("exporter")
        status = Path(f"/proc/{exporter.pid}/status").read_text()
        assert "Uid:\t59000" in status
        assert Path(f"/proc/{exporter.pid}/ns/net").resolve() != Path("/proc/self/ns/net").resolve()


def test_cleanup_leaves_nothing_behind(pod_bin_dir: Path, tmp_path: Path) -> None:
    with PodNetwork() as network:
        tag = network.tag
        with NetStatefulSet(
            with_claim_template(load_manifest()), network=network, root=tmp_path, bin_dir=pod_bin_dir
        ) as sts:
            sts.start()
            pid = sts.pods[0].container("valkey").pid
            sts.pods[0].freeze()  # a stopped process must not block the cleanup
            assert len(namespaces(tag)) == 1 and len(links(tag)) == 2  # bridge + host-side veth
        assert pid is not None and not Path(f"/proc/{pid}").exists()
        network.add_sandbox("idle")  # a sandbox nobody removed: close() removes it
    assert namespaces(tag) == [] and links(tag) == []
    assert not list(NETNS_ETC.glob(f"{tag}-*")) and not (STATE_DIR / f"{tag}.json").exists()


def test_leftovers_of_a_dead_session_are_swept(tmp_path: Path) -> None:
    """A session killed before its finalizers ran leaves a bridge, namespaces and a state file;
    the next network created removes them."""
    script = (
        "import os; from harness.podnet import PodNetwork;"
        "n = PodNetwork().create(); n.add_sandbox('orphan'); print(n.tag, flush=True); os._exit(0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    )
    tag = result.stdout.strip()
    assert namespaces(tag) and links(tag), "the dead session left its network behind"
    state = json.loads((STATE_DIR / f"{tag}.json").read_text())
    assert state["netns"] == [f"{tag}-orphan"]
    assert tag in sweep_leftovers()
    assert namespaces(tag) == [] and links(tag) == [] and not (STATE_DIR / f"{tag}.json").exists()


def test_names_are_checked(pod_network: PodNetwork) -> None:
    pod_network.add_sandbox("a")
    with pytest.raises(PodNetError, match="sandbox 'a' already exists"):
        pod_network.add_sandbox("a")
    with pytest.raises(ValueError, match="at most 8 characters"):
        PodNetwork(tag="too-long-tag")
