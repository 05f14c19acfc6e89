"""The primary endpoint under faults, on real processes: the rendered Sentinel topology in pod
network namespaces (tests/podnet.py), the real haproxy with the RENDERED haproxy.cfg in a pod of
its own, and clients that know one host name and port, as apps without Sentinel support do.

Only what the cluster would provide is substituted: the client Service's name resolves to the
HAProxy pod (kube-proxy's job), and a DNS responder on the HAProxy pod's loopback (where its
resolv.conf points) answers what pod DNS would, from the same records as every pod's hosts file.

Each drill runs BullMQ (producer and worker) and a plain writer, both open loop (no waiting for
each reply) through the endpoint, injects a fault into the primary and measures: the time until
writes and jobs resume, acknowledged writes lost (every one read back from the final primary),
acknowledged jobs lost (every job's state read at the end, completed ones too), and, from the
observer of the Sentinel drills, when the new primary became writable. Figures are printed and
written to ``<pytest tmp>/endpoint-results/endpoint-<drill>.json``.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_sentinel_failover import (
    FREEZE,
    FREEZE_UNTIL_PROMOTION,
    KILL,
    PARTITION,
    Cluster,
    Fault,
    Topology,
    observing,
    resume_after,
)

from harness.node import NodeProcess, node_binary
from harness.paths import require_binary
from harness.podnet import NetPod, NetStatefulSet, PodNetwork, Sandbox
from harness.podrunner import REPO, publish_results
from harness.process import stop
from harness.synth import new_chart, objects
from harness.wait import wait_for

pytestmark = pytest.mark.root

SCRIPT = REPO / "tests" / "node" / "endpoint_drill.mjs"
RATE = 100  # writes and jobs per second, each


# --- pod DNS for HAProxy's resolvers ----------------------------------------------------------------


class PodDNS:
    """A DNS responder on 127.0.0.1:53 inside one sandbox: A records from the network's published
    names (what every pod's hosts file holds), NXDOMAIN for any other name, no AAAA."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.network = sandbox.network
        with sandbox.entered():
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 53))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _answer(self, query: bytes) -> bytes | None:
        if len(query) < 12:
            return None
        ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
        if qdcount != 1:
            return None
        labels, pos = [], 12
        while pos < len(query) and query[pos] != 0:
            length = query[pos]
            labels.append(query[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
            pos += 1 + length
        qtype, _qclass = struct.unpack("!HH", query[pos + 1 : pos + 5])
        question = query[12 : pos + 5]
        name = ".".join(labels).lower()
        ips = self.network.records().get(name)
        if ips is None:
            return struct.pack("!HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        answers = b""
        count = 0
        if qtype == 1:  # A; anything else: the name exists, no record of that type
            for ip in ips:
                answers += struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(ip)
                count += 1
        return struct.pack("!HHHHHH", ident, 0x8180, 1, count, 0, 0) + question + answers

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(1500)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self._answer(query)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


# --- the endpoint pod -------------------------------------------------------------------------------


@dataclass
class EndpointPod:
    """The rendered HAProxy container in its own sandbox: its config file from the rendered
    ConfigMap, its command from the Deployment, as the pod's user (uid 99)."""

    sandbox: Sandbox
    process: subprocess.Popen[bytes]
    log: Path
    dns: PodDNS

    @classmethod
    def start(cls, network: PodNetwork, rendered: list[dict[str, Any]], workdir: Path) -> EndpointPod:
        deployment = next(o for o in rendered if o["kind"] == "Deployment")
        name = deployment["metadata"]["name"]
        config = next(o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name)
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        mount = container["volumeMounts"][0]["mountPath"]
        conf_dir = workdir / mount.strip("/")
        conf_dir.mkdir(parents=True)
        for file, text in config["data"].items():
            (conf_dir / file).write_text(text, encoding="utf-8")
        for path in [workdir, *workdir.parents]:  # the pod user must reach its config
            if path == Path("/") or path == Path(tempfile.gettempdir()):
                break
            path.chmod(path.stat().st_mode | 0o005)
        for path in conf_dir.relative_to(workdir).parents:
            (workdir / path).chmod(0o755)
        conf_dir.chmod(0o755)
        argv = [str(a).replace(mount, str(conf_dir)) for a in container["command"]]
        argv[0] = require_binary(argv[0])
        uid = pod["securityContext"]["runAsUser"]
        sandbox = network.add_sandbox(f"{name}-0")
        dns = PodDNS(sandbox)
        log = workdir / "haproxy.log"
        with log.open("wb") as out:
            process = sandbox.popen(
                ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        endpoint = cls(sandbox, process, log, dns)
        wait_for(endpoint.healthy, 10, f"haproxy answering on {endpoint.sandbox.ip}:8404")
        return endpoint

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        with contextlib.closing(self.sandbox.connect(8404, timeout=1)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            return sock.recv(64).split(b" ")[1:2] == [b"200"]

    def close(self) -> None:
        stop(self.process, group=True)
        self.dns.close()


@dataclass
class Endpoint:
    cluster: Cluster
    pod: EndpointPod
    host: str  # the client Service's name, as apps configure it


def render_with_endpoint() -> tuple[Topology, list[dict[str, Any]]]:
    """``Valkey(chart, "valkey", sentinel=SentinelOptions())`` in namespace ``apps``: the
    default rendering, PrimaryEndpoint included."""
    from cdk8s_valkey import SentinelOptions, Valkey

    chart = new_chart()
    app = Valkey(chart, "valkey", sentinel=SentinelOptions())
    assert app.sentinel is not None and app.primary_endpoint is not None
    objs = objects(chart)
    topology = Topology(
        objects=objs,
        master_name=app.sentinel.master_name,
        sentinel_port=app.sentinel.sentinel_port,
        down_after_s=app.sentinel.down_after.to_seconds(),
        client_options={},
        producer_extras={},
    )
    return topology, objs


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory, pod_bin_dir: Path) -> Iterator[Endpoint]:
    require_binary("haproxy")
    require_binary("setpriv")
    topology, objs = render_with_endpoint()
    root = tmp_path_factory.mktemp("endpoint")
    workdir = Path(tempfile.mkdtemp(prefix="endpoint-haproxy-"))
    with PodNetwork() as network:
        sts = NetStatefulSet(objs, network=network, root=root, bin_dir=pod_bin_dir)
        pod: EndpointPod | None = None
        try:
            sts.start()
            client_pod = network.add_sandbox("client")
            cluster = Cluster(topology, sts, client_pod, tmp_path_factory.getbasetemp() / "endpoint-results")
            cluster.wait_healthy()
            pod = EndpointPod.start(network, objs, workdir)
            service = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "valkey")
            assert service["spec"]["selector"]["app.kubernetes.io/name"] == "valkey-endpoint", service
            # kube-proxy's part: the client Service's name leads to the pod it selects.
            names = ["valkey", "valkey.apps", "valkey.apps.svc", "valkey.apps.svc.cluster.local"]
            network.publish("client-service", {n: [pod.sandbox.ip] for n in names})
            yield Endpoint(cluster, pod, "valkey.apps.svc")
        finally:
            if pod is not None:
                pod.close()
                print(f"--- haproxy log ---\n{pod.log.read_text(errors='replace')[-20000:]}")
            sts.close()
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def healthy(endpoint: Endpoint) -> NetPod:
    """The primary of a healthy topology, once the endpoint routes to it."""
    primary = endpoint.cluster.wait_healthy()
    client = endpoint.cluster.client_pod.valkey_client(6379, host=endpoint.pod.sandbox.ip, socket_timeout=2)
    wait_for(lambda: client.set("endpoint:probe", "1"), 20, "a write through the endpoint")
    return primary


def lost_writes(primary: NetPod, prefix: str, acked: list[int]) -> list[int]:
    """The acknowledged writes (``SET <prefix><n> <n>``) the final primary does not have."""
    client = Cluster.valkey(primary)
    lost = []
    for start in range(0, len(acked), 500):
        batch = acked[start : start + 500]
        values = client.mget([f"{prefix}{n}" for n in batch])
        lost += [n for n, v in zip(batch, values, strict=True) if v != str(n)]
    return lost


# --- the drill --------------------------------------------------------------------------------------


class Clients:
    """endpoint_drill.mjs in the client pod: BullMQ and the writer, open loop, through the endpoint."""

    runs = 0

    def __init__(self, endpoint: Endpoint, name: str) -> None:
        Clients.runs += 1
        name = f"{name}-{Clients.runs}"
        env = {
            "HOST": endpoint.host,
            "PORT": "6379",
            "QUEUE": f"endpoint-{name}",
            "WRITE_PREFIX": f"endpoint:{name}:w:",
            "ADD_PER_SECOND": str(RATE),
            "WRITES_PER_SECOND": str(RATE),
            # A job whose completion the failover cut off stays active until BullMQ's stalled-job
            # check gives it back (lock 30 s, checked every 30 s): wait that long before calling
            # it unfinished. Only a stuck drill pays it.
            "QUIET_MS": "65000",
            "DEADLINE_MS": "150000",
        }
        self.prefix = env["WRITE_PREFIX"]
        argv = [*endpoint.cluster.client_pod.exec_prefix(), node_binary(), str(SCRIPT)]
        self.process = NodeProcess(argv, env)
        self.process.next_event(lambda e: e["ev"] == "ready", 20, "the clients to connect through the endpoint")
        self.process.next_event(lambda e: e["ev"] == "completed", 10, "a first job completed")

    def times(self, ev: str) -> list[float]:
        return [e["t"] / 1000 for e in list(self.process.events) if e["ev"] == ev]

    def progressed_since(self, t: float) -> bool:
        events = list(self.process.events)
        return all(any(e["ev"] == ev and e["t"] / 1000 > t for e in events) for ev in ("added", "completed", "written"))

    def acked_writes(self) -> dict[int, float]:
        return {e["n"]: e["t"] / 1000 for e in list(self.process.events) if e["ev"] == "written"}

    def finish(self) -> dict[str, Any]:
        self.process.send("stop")
        summary = self.process.next_event(lambda e: e["ev"] == "summary", 200, "the drill summary")
        self.process.close()
        return summary


def run_drill(endpoint: Endpoint, old: NetPod, fault: Fault) -> dict[str, Any]:
    cluster = endpoint.cluster
    with observing(cluster.sts) as observer:
        clients = Clients(endpoint, fault.name)
        try:
            time.sleep(1.0)  # a second of steady load first
            t_fault = time.time()
            fault.inject(old)
            t_restore = None
            if fault.restore is not None:
                if fault.restore_on_promotion:
                    wait_for(
                        lambda: observer.first(lambda s: s.pod != old.name and s.state.startswith("primary"), t_fault),
                        cluster.d + 10,
                        "a replica promoted",
                        period=0.01,
                    )
                else:
                    time.sleep(cluster.d + fault.extra_s)
                t_restore = time.time()
                fault.restore(old)
            wait_for(
                lambda: clients.progressed_since(t_fault + cluster.d),
                cluster.d + 25 - (time.time() - t_fault),
                "the producer, the worker and the writer making progress through the endpoint after the failover",
            )
            if t_restore is not None:
                wait_for(
                    lambda: observer.first(lambda s: s.pod == old.name and s.state == "replica", t_restore),
                    120,  # the Sentinels demote it about 10 s after the thaw; 60 s was once too short
                    f"{old.name} back as a replica",
                )
            time.sleep(1.0)
            summary = clients.finish()
        finally:
            clients.process.close()
        new = observer.first(lambda s: s.pod != old.name and s.state == "primary", t_fault)
        final = cluster.primary()
        acked = clients.acked_writes()
        lost = lost_writes(final, clients.prefix, sorted(acked))
        states: dict[str, str] = summary["not_completed"]
        figures = {
            "down_after_s": cluster.d,
            "new_primary_writable_s": None if new is None else round(new.t - t_fault, 3),
            "writes_resumed_s": resume_after(clients.times("written"), t_fault),
            "jobs_added_resumed_s": resume_after(clients.times("added"), t_fault),
            "jobs_completed_resumed_s": resume_after(clients.times("completed"), t_fault),
            "writes_acked": len(acked),
            "write_errors": summary["write_errors"],
            "acked_writes_lost": len(lost),
            "lost_writes_acked_at_s": [round(acked[n] - t_fault, 3) for n in lost[:10]],
            "jobs_acked": summary["added"],
            "jobs_lost": sorted(int(i) for i, state in states.items() if state in ("unknown", "missing")),
            "jobs_unfinished": {i: s for i, s in states.items() if s not in ("unknown", "missing")},
            "add_errors_retried": summary["add_errors"],
            "error_messages": dict(
                collections.Counter(
                    f"{e['ev']}: {e['msg'][:60]}"
                    for e in clients.process.events
                    if e["ev"] in ("write-error", "add-error", "worker-error")
                )
            ),
            "drain_end": summary["reason"],
            "two_writable_primaries": [
                (a, b, round(t - t_fault, 3), round(d, 3)) for a, b, t, d in observer.writable_overlaps()
            ],
            "old_primary": old.name,
            "final_primary": final.name,
            "fault_lasted_s": None if t_restore is None else round(t_restore - t_fault, 3),
            "timeline": observer.timeline(t_fault, t_fault - 0.5),
        }
    publish_results(f"endpoint-{fault.name}", figures, tmp_dir=cluster.results)
    return figures


def assert_no_loss(figures: dict[str, Any]) -> None:
    assert figures["new_primary_writable_s"] is not None, figures
    assert figures["final_primary"] != figures["old_primary"], figures
    # Nothing acknowledged through the endpoint was lost: no write went to the old primary
    # after the promotion (the resync to the new primary would have discarded it).
    assert figures["acked_writes_lost"] == 0, figures
    assert figures["jobs_lost"] == [] and figures["jobs_unfinished"] == {}, figures


def test_kill_the_primary(endpoint: Endpoint, healthy: NetPod) -> None:
    figures = run_drill(endpoint, healthy, KILL)
    assert_no_loss(figures)
    d = endpoint.cluster.d
    assert figures["writes_resumed_s"] is not None and figures["writes_resumed_s"] <= d + 3, figures
    assert figures["jobs_added_resumed_s"] is not None and figures["jobs_added_resumed_s"] <= d + 3, figures


def test_freeze_the_primary(endpoint: Endpoint, healthy: NetPod) -> None:
    assert_no_loss(run_drill(endpoint, healthy, FREEZE))


def test_partition_the_primary(endpoint: Endpoint, healthy: NetPod) -> None:
    assert_no_loss(run_drill(endpoint, healthy, PARTITION))


def test_freeze_ending_between_promotion_and_switch(endpoint: Endpoint, healthy: NetPod) -> None:
    """Sentinel's residual window (docs/sentinel.md): the old primary thaws right after a replica
    was promoted, before the Sentinels re-point it. Sentinel clients lose every acknowledged write
    of an open-loop producer from the fault to the switch here; through the endpoint the thawed
    node gets no client: its sessions were closed during the freeze, and it must pass three
    checks in a row, its own Sentinel naming it, by when that Sentinel knows of the promotion."""
    assert_no_loss(run_drill(endpoint, healthy, FREEZE_UNTIL_PROMOTION))
