"""Sentinel failover drills on real processes, against the rendered Sentinel topology.

Every pod of the rendered StatefulSet (its ``valkey`` and ``sentinel`` containers, as the
manifest says) runs in its own network namespace (harness/podnet.py), host names resolve as pod
DNS would, and a client pod loads it as applications do, through the Sentinels with the options
our docs recommend (tests/node/sentinel_drill.mjs): for plain SETs and for BullMQ adds each, an
open-loop producer (100/s whatever the replies) and an awaiting one (100/s, one at a time), and a
BullMQ Worker.

Each fault drill measures and asserts: the time to a new writable primary, the time until the
producers and the worker make progress again, jobs run twice, acknowledged writes and jobs lost
(every acknowledged write is read back, and every acknowledged job's record and completed state
checked, on the final primary), and, from an observer that polls every pod through the pod's
own loopback (like ``kubectl exec``, so a partition does not cut it off), that no two pods were
writable primaries at the same time.
Figures are printed and written to ``<pytest tmp>/sentinel-results/sentinel-<drill>.json``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cdk8s
import pytest
import valkey

from harness.node import NodeProcess, node_binary
from harness.podnet import NetPod, NetStatefulSet, PodNetwork, Sandbox
from harness.podrunner import BENCH_OUT, REPO, publish_results
from harness.secrets import new_password, resolve_secret_refs
from harness.synth import new_chart, objects
from harness.wait import wait_for

pytestmark = pytest.mark.root

SCRIPT = REPO / "tests" / "node" / "sentinel_drill.mjs"
POLL_S = 0.05
# Two pods seen writable at once for at most two polls is within what the observer can tell
# apart (each pod is polled on its own thread every POLL_S): every overlap is reported in the
# figures, only longer ones fail a drill.
OVERLAP_RESOLUTION_S = 2 * POLL_S


@dataclass
class _Password:
    value: str | None = None


# The password of the running cluster (auth_secret), for the test's own clients (observer,
# health checks, hammer); None without AUTH. Set while a cluster is booted.
CLIENT_PASSWORD = _Password()

# ioredis options our docs recommend on top of the Sentinel's wiring point `ioredis_options`
# (sentinels, name, failoverDetector), which cannot carry functions. In sentinel_drill.mjs the
# retryStrategy becomes times => min(100 * times, 1000) and reconnectOnError reconnects and
# resends on READONLY. Why each one: docs/sentinel.md and /work/notes/netns.md.
CLIENT_EXTRAS: dict[str, Any] = {
    "disconnectTimeout": 100,
    "connectTimeout": 1000,
    "sentinelCommandTimeout": 1000,
    "retryStrategy": {"stepMs": 100, "maxMs": 1000},
    "reconnectOnError": ["READONLY"],
}


# --- the rendered topology ------------------------------------------------------------------------


@dataclass(frozen=True)
class Topology:
    """The rendered objects and what clients and drills need from them."""

    objects: list[dict[str, Any]]
    master_name: str
    sentinel_port: int
    down_after_s: float
    client_options: dict[str, Any]
    producer_extras: dict[str, Any]  # what Sentinel.producer_ioredis_options adds for producers
    password: str | None = None  # with auth_secret: the Secret's value, which the objects then hold


def render_topology(*, password: str | None = None, **options: Any) -> Topology:
    """ValkeyStatefulSet + ExporterSidecar + Sentinel with ``SentinelOptions(**options)``, in
    namespace ``apps``, as `cdk8s synth` writes them. With ``password``: with ``auth_secret``, and
    the kubelet's part done (every ``secretKeyRef`` holds ``password``)."""
    from cdk8s_valkey.exporter_sidecar import ExporterSidecar
    from cdk8s_valkey.sentinel import Sentinel, SentinelOptions
    from cdk8s_valkey.valkey_statefulset import SecretKeyRef, ValkeyStatefulSet

    chart = new_chart()
    secret = SecretKeyRef(name="valkey-auth", key="password") if password is not None else None
    valkey_sts = ValkeyStatefulSet(chart, "valkey", auth_secret=secret)
    exporter = ExporterSidecar(chart, "metrics", valkey=valkey_sts)
    sentinel = Sentinel(chart, "sentinel", valkey=valkey_sts, exporter=exporter, options=SentinelOptions(**options))
    objs = objects(chart)
    if secret is not None:
        objs = resolve_secret_refs(objs, {(secret.name, secret.key): password or ""})
        assert sentinel.ioredis_secret_options == {"password": secret, "sentinelPassword": secret}
    template = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == sentinel.config_map_name)
    match = re.search(rf"^sentinel down-after-milliseconds {re.escape(sentinel.master_name)} (\d+)$",
                      template["data"]["sentinel.conf"], flags=re.MULTILINE)  # fmt: skip
    assert match, template["data"]["sentinel.conf"]
    return Topology(
        objects=objs,
        master_name=sentinel.master_name,
        sentinel_port=sentinel.sentinel_port,
        down_after_s=int(match.group(1)) / 1000,
        client_options={**sentinel.ioredis_options, **CLIENT_EXTRAS},
        producer_extras={
            k: v for k, v in sentinel.producer_ioredis_options.items() if sentinel.ioredis_options.get(k) != v
        },
        password=password,
    )


# --- observation ----------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # time.time()
    pod: str
    state: str  # primary (writable), primary-refusing, replica, replica-syncing, loading, down, no-answer, absent
    detail: str = ""


@dataclass
class Observer:
    """Polls INFO replication on every pod through the pod's own loopback every POLL_S, one
    thread per pod so that a frozen pod delays no other; keeps the samples where a pod's state
    changed. A primary is writable when it has at least ``min-replicas-to-write`` good replicas
    (``min_slaves_good_slaves``, the count Valkey itself checks before a write)."""

    sts: NetStatefulSet
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Observer:
        for pod in self.sts.pods:
            thread = threading.Thread(target=self._watch, args=(pod,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    @staticmethod
    def _state(client: valkey.Valkey, min_write: int) -> tuple[str, str]:
        info = client.info("replication")
        if info["role"] == "master":
            good = int(info.get("min_slaves_good_slaves", info.get("connected_slaves", 0)))
            writable = min_write == 0 or good >= min_write
            return ("primary" if writable else "primary-refusing"), f"good_replicas={good}"
        link = info.get("master_link_status")
        return ("replica" if link == "up" else "replica-syncing"), f"of {info.get('master_host')} link {link}"

    def _watch(self, pod: NetPod) -> None:
        sandbox: Sandbox | None = None
        client: valkey.Valkey | None = None
        min_write = -1
        last = ""
        while not self._stop.is_set():
            if pod.sandbox is not sandbox:
                sandbox, client, min_write = pod.sandbox, None, -1
            state, detail = "absent", ""
            if sandbox is not None:
                if client is None:
                    client = sandbox.valkey_client(
                        6379, socket_timeout=0.3, socket_connect_timeout=0.3, password=CLIENT_PASSWORD.value
                    )
                try:
                    if min_write < 0:
                        min_write = int(client.config_get("min-replicas-to-write")["min-replicas-to-write"])
                    state, detail = self._state(client, min_write)
                except valkey.exceptions.BusyLoadingError:
                    state = "loading"
                except valkey.exceptions.TimeoutError:
                    state = "no-answer"
                except (valkey.exceptions.ConnectionError, OSError) as exc:
                    state, detail = "down", type(exc).__name__
            key = f"{state} {detail}"
            if key != last:
                with self._lock:
                    self.samples.append(Sample(time.time(), pod.name, state, detail))
                last = key
            self._stop.wait(POLL_S)

    def first(self, predicate: Callable[[Sample], bool], after: float) -> Sample | None:
        with self._lock:
            return next((s for s in self.samples if s.t >= after and predicate(s)), None)

    def writable_overlaps(self) -> list[tuple[str, str, float, float]]:
        """(pod, pod, start, seconds) wherever two pods were both seen as writable primaries;
        a pod's state lasts from its sample to its next one."""
        with self._lock:
            samples = list(self.samples)
        end = time.time()
        intervals: dict[str, list[tuple[float, float]]] = {}
        for pod in {s.pod for s in samples}:
            own = [s for s in samples if s.pod == pod]
            for here, after in zip(own, [*own[1:], None], strict=True):
                if here.state == "primary":
                    intervals.setdefault(pod, []).append((here.t, after.t if after else end))
        overlaps = []
        pods = sorted(intervals)
        for i, a in enumerate(pods):
            for b in pods[i + 1 :]:
                for a0, a1 in intervals[a]:
                    for b0, b1 in intervals[b]:
                        lo, hi = max(a0, b0), min(a1, b1)
                        if hi > lo:
                            overlaps.append((a, b, lo, hi - lo))
        return overlaps

    def timeline(self, t0: float, since: float) -> list[str]:
        """The state changes from ``since`` on, in seconds relative to ``t0``."""
        with self._lock:
            return [f"{s.t - t0:+7.2f}s {s.pod} {s.state} {s.detail}".rstrip() for s in self.samples if s.t >= since]


@contextlib.contextmanager
def observing(sts: NetStatefulSet) -> Iterator[Observer]:
    observer = Observer(sts).start()
    try:
        yield observer
    finally:
        observer.stop()


_LOG_LINE = re.compile(r"^\d+:X (\d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2})\.(\d{3}) [#*.-] (\S+)")
SENTINEL_EVENTS = ("+sdown", "+odown", "+elected-leader", "+promoted-slave", "+switch-master", "+convert-to-slave")


def sentinel_events(pod: NetPod, names: tuple[str, ...] = SENTINEL_EVENTS) -> list[tuple[float, str, str]]:
    """(epoch, pod, event) of every run's Sentinel log lines whose event is in ``names``."""
    runner = pod.container("sentinel")
    out = []
    for log in sorted((runner.workdir / "logs").glob("sentinel-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            match = _LOG_LINE.match(line)
            if match and match.group(3) in names:
                epoch = time.mktime(time.strptime(match.group(1), "%d %b %Y %H:%M:%S")) + int(match.group(2)) / 1000
                out.append((epoch, pod.name, match.group(3)))
    return out


# --- the cluster ----------------------------------------------------------------------------------


@dataclass
class Cluster:
    topology: Topology
    sts: NetStatefulSet
    client_pod: Sandbox
    results: Path

    @property
    def d(self) -> float:
        """D, the rendered down-after-milliseconds, in seconds."""
        return self.topology.down_after_s

    def fqdn(self, pod: NetPod) -> str:
        """The host name the rendering announces (``<pod>.<headless>.<namespace>.svc``)."""
        return f"{pod.name}.{self.sts.service_name}.{self.sts.namespace}.svc"

    @staticmethod
    def valkey(pod: NetPod) -> valkey.Valkey:
        return pod.client("valkey", socket_timeout=2, decode_responses=True, password=CLIENT_PASSWORD.value)

    @staticmethod
    def sentinel(pod: NetPod) -> valkey.Valkey:
        return pod.client("sentinel", socket_timeout=2, decode_responses=True, password=CLIENT_PASSWORD.value)

    def health(self) -> str:
        """'' when healthy: every pod up, one primary, the others its replicas with the link up,
        and every Sentinel naming it and seeing every replica and every other Sentinel."""
        n = len(self.sts.pods)
        if not all(p.running() for p in self.sts.pods):
            return f"not running: {[p.name for p in self.sts.pods if not p.running()]}"
        roles = {p.name: self.valkey(p).info("replication") for p in self.sts.pods}
        primaries = [p for p in self.sts.pods if roles[p.name]["role"] == "master"]
        if len(primaries) != 1:
            return f"primaries: {[p.name for p in primaries]}"
        primary = self.fqdn(primaries[0])
        for pod in self.sts.pods:
            info = roles[pod.name]
            if pod is not primaries[0] and (info.get("master_host"), info.get("master_link_status")) != (primary, "up"):
                return f"{pod.name}: replica of {info.get('master_host')}, link {info.get('master_link_status')}"
        name = self.topology.master_name
        for pod in self.sts.pods:
            sentinel = self.sentinel(pod)
            addr = sentinel.sentinel_get_master_addr_by_name(name)
            if addr is None or addr[0] != primary:
                return f"sentinel {pod.name} names {addr}"
            master = sentinel.sentinel_master(name)
            if (master["num-other-sentinels"], master["num-slaves"]) != (n - 1, n - 1):
                return (
                    f"sentinel {pod.name}: {master['num-other-sentinels']} Sentinels, {master['num-slaves']} replicas"
                )
            replicas = sentinel.sentinel_slaves(name)
            if any(r["is_sdown"] or r["is_disconnected"] for r in replicas):
                return f"sentinel {pod.name}: replicas {[(r['name'], r['flags']) for r in replicas]}"
        return ""

    def wait_healthy(self, timeout: float = 60) -> NetPod:
        """Bring back what a drill left down (a missing pod is created, a dead container started
        again in its pod, as the kubelet would), then wait for health; the primary."""
        for pod in self.sts.pods:
            if not pod.exists:
                pod.start()
            for name, runner in pod.containers.items():
                if not runner.running:
                    pod.restart_container(name)
        problems = [""]

        def healthy() -> bool:
            problems.append(self.health())
            return problems[-1] == ""

        try:
            wait_for(healthy, timeout, "a healthy topology", period=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last problem: {problems[-1]}") from None
        return self.primary()

    def primary(self) -> NetPod:
        primaries = [p for p in self.sts.pods if p.running() and self.valkey(p).info("replication")["role"] == "master"]
        assert len(primaries) == 1, [p.name for p in primaries]
        return primaries[0]


@pytest.fixture(scope="module")
def topology() -> Topology:
    return render_topology()


@contextlib.contextmanager
def booted(topology: Topology, tmp_path_factory: pytest.TempPathFactory, bin_dir: Path) -> Iterator[Cluster]:
    """The rendered pods and a client pod on a network of their own, healthy; removed afterwards."""
    root = tmp_path_factory.mktemp("sentinel")
    # Module-scoped clusters can outlive a test that boots another: restore, never clear.
    previous = CLIENT_PASSWORD.value
    CLIENT_PASSWORD.value = topology.password
    with PodNetwork() as network:
        sts = NetStatefulSet(topology.objects, network=network, root=root, bin_dir=bin_dir)
        try:
            sts.start()
            client_pod = network.add_sandbox("client")
            cluster = Cluster(topology, sts, client_pod, tmp_path_factory.getbasetemp() / "sentinel-results")
            cluster.wait_healthy()
            yield cluster
        finally:
            sts.close()
            CLIENT_PASSWORD.value = previous


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest, topology: Topology, tmp_path_factory: pytest.TempPathFactory, pod_bin_dir: Path
) -> Iterator[Cluster]:
    """The rendered topology running; ``indirect`` parameter "auth": rendered with auth_secret (a
    password that needs quoting everywhere), every client of the drill authenticating."""
    if getattr(request, "param", None) == "auth":
        topology = render_topology(password=new_password()[0])
    with booted(topology, tmp_path_factory, pod_bin_dir) as cluster:
        yield cluster


@pytest.fixture
def healthy(cluster: Cluster) -> NetPod:
    """The primary of a healthy topology (what a previous drill left down is started again)."""
    return cluster.wait_healthy()


# --- the client pod -------------------------------------------------------------------------------

RATE = 100  # commands per second of each producer
SET_CLIENTS = ("set-await", "set-open-0")
ADD_CLIENTS = ("add-await", "add-open-0")


class Drill:
    """The producers (an awaiting and an open-loop one, each for plain SETs and for BullMQ adds)
    and the BullMQ worker, in the client pod; ``producer_options`` are extra ioredis options of
    the producers' connections (a ``commandTimeout``), never of the worker's."""

    runs = 0

    def __init__(
        self,
        cluster: Cluster,
        name: str,
        producer_options: dict[str, Any] | None = None,
        password: str | None = None,
        producer_wait: dict[str, int] | None = None,
    ) -> None:
        Drill.runs += 1
        name = f"{name}-{Drill.runs}"  # a fresh queue and key prefix per run: job ids restart at 0
        options = dict(cluster.topology.client_options)
        env = {
            "SENTINELS": json.dumps(options.pop("sentinels")),
            "MASTER_NAME": options.pop("name"),
            "CLIENT_OPTIONS": json.dumps(options),
            "PRODUCER_OPTIONS": json.dumps(producer_options or {}),
            "PRODUCER_WAIT": json.dumps(producer_wait),
            "QUEUE": f"drill-{name}",
            "WRITE_PREFIX": f"drill:{name}:w:",
            "ADD_PER_SECOND": str(RATE),
            "WRITES_PER_SECOND": str(RATE),
            "OPEN_PER_SECOND": str(RATE),
            "OPEN_ADDERS": "1",
            "OPEN_WRITERS": "1",
            "JOB_MS": "20",
            "CONCURRENCY": "10",
            "QUIET_MS": "8000",
            "DEADLINE_MS": "120000",
        }
        if password is not None:
            env["VALKEY_PASSWORD"] = password
        self.queue, self.prefix = env["QUEUE"], env["WRITE_PREFIX"]
        self.process = NodeProcess([*cluster.client_pod.exec_prefix(), node_binary(), str(SCRIPT)], env)
        ready = self.process.next_event(
            lambda e: e["ev"] == "ready", 20, "the drill clients to connect through the Sentinels"
        )
        assert tuple(ready["clients"]) == (*ADD_CLIENTS[:1], *SET_CLIENTS[:1], *ADD_CLIENTS[1:], *SET_CLIENTS[1:])
        self.process.next_event(lambda e: e["ev"] == "completed", 10, "a first job completed")

    def acks(self, client: str) -> dict[int, float]:
        """n -> when ``client`` got the acknowledgement of its n-th command."""
        return {e["n"]: e["t"] / 1000 for e in list(self.process.events) if e["ev"] == "ack" and e["c"] == client}

    def unacked(self, client: str) -> dict[int, str]:
        """n -> the error of ``client``'s n-th command, for those never acknowledged."""
        events = list(self.process.events)
        acked = {e["n"] for e in events if e["ev"] == "ack" and e["c"] == client}
        return {e["n"]: e["msg"] for e in events if e["ev"] == "nack" and e["c"] == client and e["n"] not in acked}

    def completion_times(self) -> list[float]:
        return [e["t"] / 1000 for e in list(self.process.events) if e["ev"] == "completed"]

    def idle_since(self, t: float) -> list[str]:
        """The producers without an acknowledgement, and "worker" without a completion, after ``t``."""
        events = list(self.process.events)
        acked = {e["c"] for e in events if e["ev"] == "ack" and e["t"] / 1000 > t}
        idle = [c for c in (*ADD_CLIENTS, *SET_CLIENTS) if c not in acked]
        if not any(e["ev"] == "completed" and e["t"] / 1000 > t for e in events):
            idle.append("worker")
        return idle

    def last_errors(self) -> list[str]:
        return [f"{e.get('c', '')} {e['msg'][:80]}" for e in list(self.process.events) if "msg" in e][-5:]

    def finish(self) -> dict[str, Any]:
        self.process.send("stop")
        summary = self.process.next_event(lambda e: e["ev"] == "summary", 150, "the drill summary")
        self.process.close()
        return summary

    def client_errors(self) -> list[str]:
        return sorted({e["msg"][:90] for e in list(self.process.events) if e["ev"] in ("worker-error", "failed")})


def resume_after(times: list[float], t_fault: float) -> float | None:
    """Seconds from the fault to the end of the longest pause in ``times`` that ends after it."""
    around = sorted(t for t in times if t >= t_fault - 1)
    best_gap, resume = 0.0, None
    for before, after in itertools.pairwise(around):
        if after > t_fault and after - before > best_gap:
            best_gap, resume = after - before, after
    return None if resume is None else round(resume - t_fault, 3)


def longest_gap(times: list[float]) -> float | None:
    """The longest pause between consecutive ``times``, in seconds."""
    ordered = sorted(times)
    return round(max((b - a for a, b in itertools.pairwise(ordered)), default=0.0), 3) if ordered else None


def present_writes(primary: NetPod, prefix: str, client: str, ns: list[int]) -> set[int]:
    """Which of ``client``'s writes ``ns`` the final primary has, with their value."""
    db = Cluster.valkey(primary)
    present: set[int] = set()
    for start in range(0, len(ns), 500):
        batch = ns[start : start + 500]
        values = db.mget([f"{prefix}{client}:{n}" for n in batch])
        present |= {n for n, v in zip(batch, values, strict=True) if v == str(n)}
    return present


def job_records(primary: NetPod, queue: str, client: str, ns: list[int]) -> dict[int, str]:
    """n -> "completed"; "present" (the job's hash, in BullMQ's wait or active list: it runs, or
    runs again after BullMQ's stalled-job check when a failover cut its completion off);
    "orphaned" (a hash in no list: BullMQ would never run it); or "missing" (no hash: BullMQ
    knows nothing of the job), for ``client``'s jobs ``ns`` on the final primary."""
    db = Cluster.valkey(primary)
    out: dict[int, str] = {}
    for start in range(0, len(ns), 500):
        batch = ns[start : start + 500]
        pipe = db.pipeline(transaction=False)
        for n in batch:
            job = f"{client}-{n}"
            pipe.exists(f"bull:{queue}:{job}")
            pipe.zscore(f"bull:{queue}:completed", job)
            pipe.lpos(f"bull:{queue}:active", job)
            pipe.lpos(f"bull:{queue}:wait", job)
        replies = pipe.execute()
        for k, n in enumerate(batch):
            exists, score, active, waiting = replies[4 * k : 4 * k + 4]
            if not exists:
                out[n] = "missing"
            elif score is not None:
                out[n] = "completed"
            else:
                out[n] = "present" if active is not None or waiting is not None else "orphaned"
    return out


def client_figures(
    drill: Drill, final: NetPod, client: str, t_fault: float, lost_at: list[float], kept_at: list[float]
) -> dict[str, Any]:
    """One producer's figures: what it was told, what the final primary has. ``lost_at`` and
    ``kept_at`` collect the acknowledgement times (from 1 s before the fault on, relative to it) of
    writes lost and kept."""
    acks, unacked = drill.acks(client), drill.unacked(client)
    if client.startswith("add"):
        records = job_records(final, drill.queue, client, sorted({*acks, *unacked}))
        lost = sorted(n for n in acks if records[n] == "missing")
        unfinished = sorted(n for n in acks if records[n] == "present")
        orphaned = sorted(n for n in acks if records[n] == "orphaned")
        applied = sum(1 for n in unacked if records[n] != "missing")
    else:
        present = present_writes(final, drill.prefix, client, sorted({*acks, *unacked}))
        lost = sorted(n for n in acks if n not in present)
        unfinished, orphaned = [], []
        applied = sum(1 for n in unacked if n in present)
        kept_at += [acks[n] - t_fault for n in acks if n in present and acks[n] > t_fault - 1]
    lost_at += [acks[n] - t_fault for n in lost]
    return {
        "acked": len(acks),
        "lost": len(lost),
        "lost_acked_at_s": [round(acks[n] - t_fault, 3) for n in lost[:3]]
        + ([round(acks[lost[-1]] - t_fault, 3)] if len(lost) > 3 else []),
        "unfinished": {n: "not completed" for n in unfinished[:10]},
        "orphaned": len(orphaned),
        "unacked": len(unacked),
        "unacked_applied": applied,
        "unacked_errors": sorted({m[:60] for m in unacked.values()})[:5],
        "resumed_s": resume_after(sorted(acks.values()), t_fault),
    }


def drill_figures(
    cluster: Cluster, observer: Observer, drill: Drill, old: NetPod, t_fault: float, summary: dict[str, Any]
) -> dict[str, Any]:
    new = observer.first(lambda s: s.pod != old.name and s.state == "primary", t_fault)
    firsts: dict[str, float] = {}
    events = sorted(e for p in cluster.sts.pods for e in sentinel_events(p) if e[0] >= t_fault)
    for t, _pod, ev in events:
        firsts.setdefault(ev, round(t - t_fault, 3))
    final = cluster.primary()
    lost_at: list[float] = []
    kept_at: list[float] = []
    clients = {c: client_figures(drill, final, c, t_fault, lost_at, kept_at) for c in (*SET_CLIENTS, *ADD_CLIENTS)}
    return {
        "down_after_s": cluster.d,
        "sentinel_first_events_s": firsts,
        "new_primary_writable_s": None if new is None else round(new.t - t_fault, 3),
        "clients": clients,
        "acked_writes_lost": sum(clients[c]["lost"] for c in SET_CLIENTS),
        "jobs_lost": sum(clients[c]["lost"] for c in ADD_CLIENTS),
        "jobs_unfinished": sum(len(clients[c]["unfinished"]) for c in ADD_CLIENTS),
        "jobs_orphaned": sum(clients[c]["orphaned"] for c in ADD_CLIENTS),
        "jobs_run_twice": summary["run_twice"],
        "lost_acked_between_s": [round(min(lost_at), 3), round(max(lost_at), 3)] if lost_at else [],
        # The price of an option: the longest time without a write that was acknowledged and kept.
        "no_kept_writes_s": longest_gap(kept_at),
        "writer_resumed_s": clients["set-await"]["resumed_s"],
        "producer_resumed_s": clients["add-await"]["resumed_s"],
        "worker_resumed_s": resume_after(drill.completion_times(), t_fault),
        "client_errors": drill.client_errors(),
        "drain_end": summary["reason"],
        "two_writable_primaries": [
            (a, b, round(t - t_fault, 3), round(d, 3)) for a, b, t, d in observer.writable_overlaps()
        ],
        "old_primary": old.name,
        "final_primary": final.name,
        "timeline": observer.timeline(t_fault, t_fault - 0.5),
    }


# --- fault drills under BullMQ --------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What a drill does to the primary pod: ``inject`` at t=0 and, if ``restore``, restore after
    D + ``extra_s`` (the fault outlasts the failover, about D + 1.5 s), after which the old
    primary must rejoin as a replica."""

    name: str
    inject: Callable[[NetPod], None]
    restore: Callable[[NetPod], None] | None = None
    extra_s: float = 4.0
    restore_on_promotion: bool = False  # restore as soon as another pod is a primary instead


KILL = Fault("kill", lambda pod: pod.kill())  # SIGKILL every container of the pod
FREEZE = Fault("freeze", lambda pod: pod.freeze(["valkey"]), lambda pod: pod.thaw())  # SIGSTOP Valkey only
# Thawed the moment another pod is primary: before Sentinel announces the switch.
FREEZE_UNTIL_PROMOTION = Fault(
    "freeze-until-promotion", lambda pod: pod.freeze(["valkey"]), lambda pod: pod.thaw(), restore_on_promotion=True
)
PARTITION = Fault("partition", lambda pod: pod.partition(), lambda pod: pod.heal())  # the pod's veth down


def run_drill(
    cluster: Cluster,
    old: NetPod,
    fault: Fault,
    producer_options: dict[str, Any] | None = None,
    producer_wait: dict[str, int] | None = None,
    publish_as: str | None = None,
) -> dict[str, Any]:
    with observing(cluster.sts) as observer:
        drill = Drill(
            cluster, fault.name, producer_options, password=cluster.topology.password, producer_wait=producer_wait
        )
        try:
            time.sleep(1.0)  # a second of steady load before the fault
            t_fault = time.time()
            fault.inject(old)
            # Strict mode (min_replicas_to_write = replicas) takes writes again only once the old
            # primary is a replica in sync, about D + 11 s.
            progress_by = time.monotonic() + cluster.d + 30
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
            idle: list[str] = []
            try:
                wait_for(
                    lambda: not idle.append(drill.idle_since(t_fault + cluster.d)) and not idle[-1],
                    progress_by - time.monotonic(),
                    "every producer and the worker making progress after the failover",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; idle: {idle[-1:]}, last errors: {drill.last_errors()}") from None
            rejoined = None
            if t_restore is not None:
                try:
                    rejoined = wait_for(
                        lambda: observer.first(lambda s: s.pod == old.name and s.state == "replica", t_restore),
                        30,
                        f"{old.name} back as a replica",
                    )
                except AssertionError as exc:
                    events = sorted(e for p in cluster.sts.pods for e in sentinel_events(p) if e[0] >= t_fault)
                    raise AssertionError(
                        f"{exc}; timeline {observer.timeline(t_fault, t_fault)}; "
                        f"sentinel events {[(round(t - t_fault, 2), pod, ev) for t, pod, ev in events]}"
                    ) from None
            time.sleep(1.0)
            summary = drill.finish()
        finally:
            drill.process.close()
        figures = drill_figures(cluster, observer, drill, old, t_fault, summary)
    if t_restore is not None and rejoined is not None:
        figures["fault_lasted_s"] = round(t_restore - t_fault, 3)
        figures["old_primary_replica_again_s_after_restore"] = round(rejoined.t - t_restore, 3)
    auth = "-auth" if cluster.topology.password is not None else ""
    publish_results(publish_as or f"sentinel-{fault.name}{auth}", figures, tmp_dir=cluster.results)
    return figures


class AcknowledgedWritesLost(AssertionError):  # noqa: N818 (it names the failure)
    """The one failure the residual-window drill expects: writes or BullMQ jobs a producer was
    told were stored, missing from the final primary. Anything else wrong with a drill is a
    plain AssertionError, so that a broken rig never passes for the expected loss."""


def assert_sane(figures: dict[str, Any]) -> None:
    """What every fault drill needs before its losses mean anything: a failover happened, every
    producer was acknowledged, and never two writable primaries (beyond what polling resolves)."""
    assert figures["new_primary_writable_s"] is not None, figures
    assert figures["final_primary"] != figures["old_primary"], figures
    assert all(c["acked"] > 0 for c in figures["clients"].values()), figures
    assert [o for o in figures["two_writable_primaries"] if o[3] > OVERLAP_RESOLUTION_S] == [], figures


def raise_if_lost(figures: dict[str, Any]) -> None:
    lost = {c: f["lost"] for c, f in figures["clients"].items() if f["lost"]}
    if lost:
        raise AcknowledgedWritesLost(
            f"acknowledged writes lost: {lost} (acknowledged {figures['lost_acked_between_s']} s after the fault)"
        )


def assert_no_loss(figures: dict[str, Any]) -> None:
    assert_sane(figures)
    raise_if_lost(figures)
    # A SIGKILL can cut off a completion the old primary acknowledged in its last milliseconds
    # (replication is asynchronous): that job is still queued (active) and BullMQ runs it again
    # after its stalled-job check, at least once as BullMQ promises. What may not happen is a job
    # no list holds, which would never run, or a job run twice within the drill.
    assert figures["jobs_orphaned"] == 0, figures
    assert figures["jobs_unfinished"] <= 2, figures
    assert figures["jobs_run_twice"] == [], figures


def assert_window_loss_only(figures: dict[str, Any]) -> None:
    """The residual-window drill: the rig did what it must (thawed after a promotion and before
    the first +switch-master; the failover completed), and whatever was lost was acknowledged
    inside the window, from the thaw to 2 s after the first +switch-master; then
    AcknowledgedWritesLost if anything acknowledged was lost. A job run twice or left active
    (its completion was acknowledged by the old primary and discarded; BullMQ's stalled check
    runs it again after 30 s) is reported, but is not a lost write."""
    assert_sane(figures)
    switch = figures["sentinel_first_events_s"].get("+switch-master")
    assert switch is not None and figures.get("fault_lasted_s") is not None, figures
    assert figures["fault_lasted_s"] < switch, f"thawed after the switch, not in the window: {figures}"
    if figures["lost_acked_between_s"]:
        first, last = figures["lost_acked_between_s"]
        assert figures["fault_lasted_s"] - 0.05 <= first and last <= switch + 2, f"lost outside the window: {figures}"
    # No producer lost more than it sent from the fault to 2 s after the switch.
    assert all(c["lost"] <= RATE * (switch + 2) for c in figures["clients"].values()), figures
    raise_if_lost(figures)


def test_kill_the_primary_under_bullmq(cluster: Cluster, healthy: NetPod) -> None:
    figures = run_drill(cluster, healthy, KILL)
    assert_no_loss(figures)
    d = cluster.d
    for client in figures["clients"].values():
        assert client["resumed_s"] is not None and client["resumed_s"] <= d + 3, figures
    assert figures["worker_resumed_s"] is not None and figures["worker_resumed_s"] <= d + 3, figures


# --- restart of the old primary -------------------------------------------------------------------


class Hammer:
    """Tries a SET on one pod through its own loopback every 20 ms while it runs (a client that
    still knows the old primary); counts what the pod accepted and how it refused."""

    def __init__(self, pod: NetPod, prefix: str) -> None:
        self.pod, self.prefix = pod, prefix
        self.accepted: list[float] = []
        self.refused: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sandbox: Sandbox | None = None
        client: valkey.Valkey | None = None
        i = 0
        while not self._stop.wait(0.02):
            if self.pod.sandbox is not sandbox:
                sandbox = self.pod.sandbox
                client = (
                    None
                    if sandbox is None
                    else sandbox.valkey_client(6379, socket_timeout=0.5, password=CLIENT_PASSWORD.value)
                )
            if client is None:
                continue
            i += 1
            try:
                client.set(f"{self.prefix}{i}", i)
                self.accepted.append(time.time())
            except valkey.exceptions.ResponseError as exc:
                # valkey-py turns READONLY into ReadOnlyError (prefix dropped); NOREPLICAS stays a prefix.
                kind = type(exc).__name__ if type(exc) is not valkey.exceptions.ResponseError else str(exc).split()[0]
                self.refused[kind] = self.refused.get(kind, 0) + 1
            except (valkey.exceptions.ConnectionError, valkey.exceptions.TimeoutError, OSError):
                self.refused["unreachable"] = self.refused.get("unreachable", 0) + 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def role_lines(pod: NetPod) -> list[str]:
    """What valkey-role.sh decided, from the valkey container's log of its current run."""
    return [line for line in pod.logs("valkey").splitlines() if line.startswith("valkey-role:")]


def test_restart_the_old_primary_after_a_failover(cluster: Cluster) -> None:
    """The old primary comes back in a new pod (a new IP) after a failover: it must start as a
    replica of the new primary and never accept a write as a primary meanwhile. Takes over the
    pod the kill drill left down; run alone, it kills the primary itself first."""
    down = [p for p in cluster.sts.pods if p.exists and not p.running()]
    if down:
        old = down[0]
    else:
        old = cluster.wait_healthy()
        old.kill()
    wait_for(lambda: any(p is not old and p.running() and Cluster.valkey(p).info("replication")["role"] == "master"
                    for p in cluster.sts.pods), cluster.d + 20, "a failover away from the old primary")  # fmt: skip
    with observing(cluster.sts) as observer:
        old.stop()
        old_ip = None if old.sandbox is None else old.sandbox.ip
        hammer = Hammer(old, "drill:restart:")
        t_start = time.time()
        old.start()
        try:
            replica = wait_for(
                lambda: observer.first(lambda s: s.pod == old.name and s.state == "replica", t_start),
                30,
                f"{old.name} a replica with its link up",
            )
        finally:
            hammer.stop()
        states = sorted({s.state for s in observer.samples if s.pod == old.name and s.t >= t_start})
        timeline = observer.timeline(t_start, t_start)
    figures = {
        "down_after_s": cluster.d,
        "new_ip": old.ip != old_ip,
        "role_decision": role_lines(old),
        "replica_with_link_up_s": round(replica.t - t_start, 3),
        "states_seen": states,
        "writes_accepted_by_old_primary": len(hammer.accepted),
        "writes_refused": hammer.refused,
        "timeline": timeline,
    }
    publish_results("sentinel-restart-old-primary", figures, tmp_dir=cluster.results)
    assert figures["writes_accepted_by_old_primary"] == 0, figures
    assert not [s for s in states if s.startswith("primary")], figures
    assert any("replica of" in line for line in figures["role_decision"]), figures


def test_freeze_the_primary_under_bullmq(cluster: Cluster, healthy: NetPod) -> None:
    assert_no_loss(run_drill(cluster, healthy, FREEZE))


@pytest.mark.xfail(
    strict=True,
    raises=AcknowledgedWritesLost,
    reason=(
        "Sentinel's residual window (docs/sentinel.md): a primary frozen until a replica is promoted "
        "and thawed before the clients hear +switch-master acknowledges every command queued during "
        "the freeze and those sent until the switch, and the resync to the new primary discards them"
    ),
)
def test_freeze_ending_between_promotion_and_switch_loses_no_write(cluster: Cluster, healthy: NetPod) -> None:
    assert_window_loss_only(run_drill(cluster, healthy, FREEZE_UNTIL_PROMOTION))


# --- the residual window, per option ----------------------------------------------------------


@dataclass(frozen=True)
class WindowOption:
    """A way to narrow the residual window: ``SentinelOptions`` for the rendering; for the
    producers' connections, ``Sentinel.producer_ioredis_options`` instead of ``ioredis_options``
    (``rendered_producers``) and a WAIT after each command (``wait``)."""

    sentinel: dict[str, Any] = field(default_factory=dict)
    rendered_producers: bool = False
    wait: dict[str, int] | None = None


WINDOW_OPTIONS: dict[str, WindowOption] = {
    "default": WindowOption(),
    "producer_ioredis_options (commandTimeout 500 ms)": WindowOption(rendered_producers=True),
    "producers: WAIT 1 100 after each command": WindowOption(wait={"replicas": 1, "timeoutMs": 100}),
    "min_replicas_to_write 2 (strict)": WindowOption(sentinel={"min_replicas_to_write": 2}),
    "strict and producer_ioredis_options": WindowOption(sentinel={"min_replicas_to_write": 2}, rendered_producers=True),
    "min_replicas_max_lag 1 s": WindowOption(sentinel={"min_replicas_max_lag": cdk8s.Duration.seconds(1)}),
}


# The options the suite runs by default (a regular expression over WINDOW_OPTIONS' names).
SUITE_OPTIONS = r"^(producer_ioredis_options|min_replicas_to_write 2 \(strict\))"


def window_row(figures: dict[str, Any]) -> dict[str, Any]:
    """One run's line of the table: what each producer lost, per second of freeze for the
    open-loop ones, and the option's price (seconds from the fault to the first kept write)."""
    freeze = figures["fault_lasted_s"]
    clients = figures["clients"]
    return {
        "freeze_s": freeze,
        "open_writes_lost": clients["set-open-0"]["lost"],
        "open_jobs_lost": clients["add-open-0"]["lost"],
        "open_writes_lost_per_s": round(clients["set-open-0"]["lost"] / freeze, 1),
        "open_jobs_lost_per_s": round(clients["add-open-0"]["lost"] / freeze, 1),
        "awaiting_writes_lost": clients["set-await"]["lost"],
        "awaiting_jobs_lost": clients["add-await"]["lost"],
        "completions_lost": len(figures["jobs_run_twice"]) + figures["jobs_unfinished"],
        "no_kept_writes_s": figures["no_kept_writes_s"],
        "unacked_applied": sum(c["unacked_applied"] for c in clients.values()),
        "unacked": sum(c["unacked"] for c in clients.values()),
    }


def window_table(rows: dict[str, list[dict[str, Any]]]) -> str:
    def span(runs: list[dict[str, Any]], key: str) -> str:
        values = [r[key] for r in runs if r[key] is not None]
        if not values:
            return "-"
        lo, hi = min(values), max(values)
        return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"

    head = (
        "| option | runs | freeze (s) | open-loop writes lost (per s of freeze) | open-loop jobs lost (per s) "
        "| awaiting writes / jobs lost | job completions lost | longest time without a kept write (s) "
        "| not acknowledged (of them applied) |"
    )
    lines = [head, "|" + "---|" * 9]
    for name, runs in rows.items():
        lines.append(
            f"| {name} | {len(runs)} | {span(runs, 'freeze_s')} "
            f"| {span(runs, 'open_writes_lost')} ({span(runs, 'open_writes_lost_per_s')}) "
            f"| {span(runs, 'open_jobs_lost')} ({span(runs, 'open_jobs_lost_per_s')}) "
            f"| {span(runs, 'awaiting_writes_lost')} / {span(runs, 'awaiting_jobs_lost')} "
            f"| {span(runs, 'completions_lost')} | {span(runs, 'no_kept_writes_s')} "
            f"| {span(runs, 'unacked')} ({span(runs, 'unacked_applied')}) |"
        )
    return "\n".join(lines)


def test_residual_window_per_option(tmp_path_factory: pytest.TempPathFactory, pod_bin_dir: Path) -> None:
    """The freeze-until-promotion drill for the default and each narrowing option, in
    SENTINEL_WINDOW_RUNS rounds (1 unless set; the options interleaved within a round, one
    topology booted per set of SentinelOptions). Writes the table (docs/sentinel.md, residual
    window) to bench/out/sentinel-window.md and the figures to bench/out/sentinel-window.json."""
    runs = int(os.environ.get("SENTINEL_WINDOW_RUNS", "1"))
    # The suite measures the two options the docs recommend (2 topologies, 2 drills); the whole
    # table of docs/sentinel.md is SENTINEL_WINDOW_OPTIONS=. (3 topologies, 6 drills, ~3.5 min).
    chosen = [n for n in WINDOW_OPTIONS if re.search(os.environ.get("SENTINEL_WINDOW_OPTIONS", SUITE_OPTIONS), n)]
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    by_rendering: dict[str, list[str]] = {}
    for name in chosen:
        option = WINDOW_OPTIONS[name]
        by_rendering.setdefault(repr(sorted(option.sentinel.items())), []).append(name)
    for names in by_rendering.values():
        with booted(render_topology(**WINDOW_OPTIONS[names[0]].sentinel), tmp_path_factory, pod_bin_dir) as cluster:
            for run in range(runs):
                for name in names:
                    option = WINDOW_OPTIONS[name]
                    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
                    figures = run_drill(
                        cluster,
                        cluster.wait_healthy(),
                        FREEZE_UNTIL_PROMOTION,
                        cluster.topology.producer_extras if option.rendered_producers else None,
                        option.wait,
                        publish_as=f"sentinel-window-{slug}-{run}",
                    )
                    with contextlib.suppress(AcknowledgedWritesLost):  # the loss is the measure here
                        assert_window_loss_only(figures)
                    rows[name].append(window_row(figures))
    table = window_table(rows)
    date = time.strftime("%Y-%m-%d", time.gmtime())
    selection = os.environ.get("SENTINEL_WINDOW_OPTIONS", SUITE_OPTIONS)
    command = (
        f"SENTINEL_WINDOW_RUNS={runs} SENTINEL_WINDOW_OPTIONS='{selection}' "
        "pytest tests/test_sentinel_failover.py -k residual_window_per_option"
    )
    publish_results("sentinel-window", {"date": date, "command": command, "rows": rows}, bench=True)
    print(f"\n{table}\n({date}, {command})")
    with contextlib.suppress(OSError):
        (BENCH_OUT / "sentinel-window.md").write_text(f"{table}\n\n{date}, `{command}`\n", encoding="utf-8")

    default = rows.get("default", [])
    strict = rows.get("min_replicas_to_write 2 (strict)", [])
    timeout = rows.get("producer_ioredis_options (commandTimeout 500 ms)", [])
    timeout_s = render_topology().producer_extras["commandTimeout"] / 1000
    # The window is real with the defaults: an open-loop producer loses what it sent during the
    # freeze, about its whole rate for every second of it.
    assert all(r["open_writes_lost_per_s"] >= RATE / 2 and r["open_jobs_lost_per_s"] >= RATE / 2 for r in default), rows
    # Strict mode stops what is sent after the thaw (an awaiting producer loses at most the one
    # write in flight), not what a frozen primary had queued: it counts its replicas once a
    # second. Its price: no write until the old primary is a replica in sync again.
    assert all(r["awaiting_writes_lost"] <= 2 and r["awaiting_jobs_lost"] <= 2 for r in strict), rows
    if default and strict:
        assert min(r["no_kept_writes_s"] for r in strict) > max(r["no_kept_writes_s"] for r in default) + 3, rows
    # A producer timeout bounds the open-loop loss by what the timeout and the second before the
    # switch let through, whatever the freeze lasted.
    bound = RATE * (timeout_s + 2)
    assert all(r["open_writes_lost"] <= bound and r["open_jobs_lost"] <= bound for r in timeout), rows


def test_partition_the_primary_under_bullmq(cluster: Cluster, healthy: NetPod) -> None:
    assert_no_loss(run_drill(cluster, healthy, PARTITION))


# --- stop everything ------------------------------------------------------------------------------


def test_stop_every_pod_then_start_them_in_another_order(cluster: Cluster, healthy: NetPod) -> None:
    """Every pod deleted (highest ordinal first), then started again with the primary last and
    the replicas first: one primary, the data present, no stale primary."""
    primary = healthy
    writer = Cluster.valkey(primary)
    keys = {f"drill:stop-all:{i}": str(i) for i in range(500)}
    writer.mset(keys)
    assert writer.wait(len(cluster.sts.pods) - 1, 5000) == len(cluster.sts.pods) - 1
    cluster.sts.stop()
    order = [p for p in cluster.sts.pods if p is not primary] + [primary]
    with observing(cluster.sts) as observer:
        t_start = time.time()
        for pod in order:
            pod.start()
            # Each pod's Valkey up (its role decided) before the next one starts.
            wait_for(lambda pod=pod: Cluster.valkey(pod).ping(), 40, f"{pod.name} answering")
        first_primary = wait_for(
            lambda: observer.first(lambda s: s.state == "primary", t_start), 40, "a writable primary"
        )
        new_primary = cluster.wait_healthy()
        t_healthy = time.time()
        primaries_seen = sorted({s.pod for s in observer.samples if s.state.startswith("primary")})
        overlaps = observer.writable_overlaps()
        timeline = observer.timeline(t_start, t_start)
    values = Cluster.valkey(new_primary).mget(list(keys))
    figures = {
        "start_order": [p.name for p in order],
        "old_primary": primary.name,
        "new_primary": new_primary.name,
        "role_decisions": {p.name: role_lines(p) for p in cluster.sts.pods},
        "first_writable_primary_s": round(first_primary.t - t_start, 3),
        "healthy_s": round(t_healthy - t_start, 3),
        "pods_seen_as_primary": primaries_seen,
        "keys_missing": sum(1 for v, expected in zip(values, keys.values(), strict=True) if v != expected),
        "two_writable_primaries": overlaps,
        "timeline": timeline,
    }
    publish_results("sentinel-stop-all", figures, tmp_dir=cluster.results)
    assert figures["keys_missing"] == 0, figures
    assert primaries_seen == [new_primary.name] and overlaps == [], figures


# --- the same drills with auth_secret --------------------------------------------------------------


@pytest.mark.parametrize("cluster", ["auth"], indirect=True)
def test_kill_the_primary_under_bullmq_with_auth(cluster: Cluster, healthy: NetPod) -> None:
    """As test_kill_the_primary_under_bullmq, everything authenticating: replicas (masterauth),
    Sentinels (auth-pass, sentinel-pass), the scripts, and the clients (ioredis password and
    sentinelPassword, Sentinel.ioredis_secret_options). Same goals. Then no trace of the password
    in any container's log or on any claim (the Sentinel's own file with it is in memory)."""
    figures = run_drill(cluster, healthy, KILL)
    assert_no_loss(figures)
    d = cluster.d
    for client in figures["clients"].values():
        assert client["resumed_s"] is not None and client["resumed_s"] <= d + 3, figures
    assert figures["worker_resumed_s"] is not None and figures["worker_resumed_s"] <= d + 3, figures
    password = cluster.topology.password
    assert password is not None
    patterns = [password.encode(), password.replace("\\", "\\\\").replace('"', '\\"').encode()]
    for pod in cluster.sts.pods:
        for name in ("valkey", "sentinel"):
            assert not [p for p in patterns if p in pod.logs(name).encode()], f"password in {pod.name}/{name} log"
    claim_files = [p for p in cluster.sts.claims_dir.rglob("*") if p.is_file()]
    assert any(p.name == "sentinel.conf" for p in claim_files)
    for path in claim_files:
        assert not [p for p in patterns if p in path.read_bytes()], f"password in {path}"


@pytest.mark.parametrize("cluster", ["auth"], indirect=True)
def test_freeze_the_primary_under_bullmq_with_auth(cluster: Cluster, healthy: NetPod) -> None:
    assert_no_loss(run_drill(cluster, healthy, FREEZE))


@pytest.mark.parametrize("cluster", ["auth"], indirect=True)
def test_partition_the_primary_under_bullmq_with_auth(cluster: Cluster, healthy: NetPod) -> None:
    assert_no_loss(run_drill(cluster, healthy, PARTITION))


# --- migration ------------------------------------------------------------------------------------


def render_single_replica() -> list[dict[str, Any]]:
    """The default rendering of the same Valkey without Sentinel (what an install runs today)."""
    from cdk8s_valkey.exporter_sidecar import ExporterSidecar
    from cdk8s_valkey.valkey_statefulset import ValkeyStatefulSet

    chart = new_chart()
    valkey_sts = ValkeyStatefulSet(chart, "valkey")
    ExporterSidecar(chart, "metrics", valkey=valkey_sts)
    return objects(chart)


def test_migrate_a_single_replica_install_keeping_its_data(
    topology: Topology, pod_network: PodNetwork, pod_bin_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """docs/operations.md "Migrating to replicas and Sentinel" on real processes: the single
    replica holds data; step 3 (`kubectl delete statefulset valkey --cascade=orphan`) leaves its
    pod running; step 4, the sync: valkey-1 and valkey-2 start at once (Parallel) as replicas of
    the running valkey-0 and copy its data, then the rolling update replaces valkey-0 on its
    claim data-valkey-0. Then step 4's checks: the same keys on every node, the Sentinels'
    quorum usable."""
    claims = tmp_path / "claims"
    keys = {f"drill:migrate:{i}": str(i) for i in range(1000)}
    # No AUTH here, whatever cluster of this module (the auth one) is still up.
    previous, CLIENT_PASSWORD.value = CLIENT_PASSWORD.value, None
    request.addfinalizer(lambda: setattr(CLIENT_PASSWORD, "value", previous))
    with NetStatefulSet(
        render_single_replica(), network=pod_network, root=tmp_path / "old", bin_dir=pod_bin_dir, claims_dir=claims
    ) as old_set:
        old_set.start()
        old_pod = old_set.pods[0]
        Cluster.valkey(old_pod).mset(keys)
        with NetStatefulSet(
            topology.objects, network=pod_network, root=tmp_path / "new", bin_dir=pod_bin_dir, claims_dir=claims
        ) as new_set:
            t_apply = time.time()
            for pod in new_set.pods[1:]:
                pod.start()
            old_fqdn = f"{old_pod.name}.{new_set.service_name}.{new_set.namespace}.svc"

            def synced() -> bool:
                for pod in new_set.pods[1:]:
                    info = Cluster.valkey(pod).info("replication")
                    if (info.get("master_host"), info.get("master_link_status")) != (old_fqdn, "up"):
                        return False
                return True

            wait_for(synced, 40, "valkey-1 and valkey-2 replicas of the running single replica")
            t_synced = time.time()
            old_pod.stop()  # the rolling update deletes the old valkey-0 ...
            t_replace = time.time()
            new_set.pods[0].start()  # ... and creates it from the new template, on the same claim
            cluster = Cluster(topology, new_set, pod_network.add_sandbox("migrate-client"), tmp_path)
            primary = cluster.wait_healthy()
            t_healthy = time.time()
            ckquorum = Cluster.sentinel(primary).execute_command("SENTINEL", "CKQUORUM", topology.master_name)
            missing = {
                pod.name: sum(
                    1 for v, e in zip(Cluster.valkey(pod).mget(list(keys)), keys.values(), strict=True) if v != e
                )
                for pod in new_set.pods
            }
            figures = {
                "keys_written_before": len(keys),
                "keys_missing_per_pod": missing,
                "replicas_synced_from_the_old_pod_s": round(t_synced - t_apply, 3),
                "healthy_after_replacing_valkey_0_s": round(t_healthy - t_replace, 3),
                "primary_after": primary.name,
                "dbsize_per_pod": {p.name: Cluster.valkey(p).dbsize() for p in new_set.pods},
                "sentinel_ckquorum": ckquorum,
                "role_decisions": {p.name: role_lines(p) for p in new_set.pods},
            }
    publish_results("sentinel-migration", figures, tmp_dir=tmp_path)
    assert all(n == 0 for n in missing.values()), figures
    assert set(figures["dbsize_per_pod"].values()) == {len(keys)}, figures
    assert str(ckquorum).startswith("OK 3 usable Sentinels"), figures


def test_producer_options_are_the_client_options_plus_a_command_timeout() -> None:
    """What the residual-window table measures as ``producer_ioredis_options``: the same wiring,
    one option more (the drill passes the difference to its producers only)."""
    assert render_topology().producer_extras == {"commandTimeout": 500}
