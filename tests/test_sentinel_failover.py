"""Sentinel failover drills on real processes: every pod of the topology (a Valkey container and
its Sentinel sidecar) in its own network namespace (tests/podnet.py), host names resolving as
pod DNS would, a BullMQ producer and worker and a plain writer in a client pod connecting
through the Sentinels (tests/node/sentinel_drill.mjs).

Each drill measures and asserts: the time to a new primary, the time until the producer, the
worker and the writer make progress again, jobs lost or run twice, acknowledged writes lost
(every acknowledged write is read back from the final primary), and, from an observer polling
every pod through its own loopback, that no two pods were writable primaries at the same time.
Figures are printed and written to <pytest tmp>/sentinel-results/<drill>.json.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _handmade_sentinel as topology_source
import pytest
import valkey
from _node import NodeProcess, node_binary
from podnet import NetPod, NetStatefulSet, PodNetwork, Sandbox
from podrunner import REPO, load_manifest, publish_results

SCRIPT = REPO / "tests" / "node" / "sentinel_drill.mjs"
SENTINEL_PORT = 26379
VALKEY_PORT = 6379
MASTER_NAME = topology_source.MASTER_NAME
D_S = topology_source.DOWN_AFTER_MS / 1000
POLL_S = 0.05

# What our docs recommend to BullMQ/ioredis users (measured below, docs/sentinel.md).
RECOMMENDED_CLIENT = {
    "failoverDetector": True,
    "commandTimeout": 2000,
    "retryStrategy": {"stepMs": 100, "maxMs": 1000},
}


# --- observation -----------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # time.time()
    pod: str
    state: str  # primary (writable), primary-refusing, replica, replica-syncing, loading, down, no-answer, absent
    detail: str = ""


@dataclass
class Observer:
    """Polls INFO replication on every pod through the pod's own loopback (partitions do not cut
    it off), every POLL_S, one thread per pod so that a frozen pod delays no other. Keeps the
    samples where a pod's state changed."""

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

    def _state(self, client: valkey.Valkey, min_write: int) -> tuple[str, str]:
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
        min_write = 0
        last = ""
        while not self._stop.is_set():
            if pod.sandbox is not sandbox:
                sandbox, client, min_write = pod.sandbox, None, -1
            state, detail = "absent", ""
            if sandbox is not None:
                if client is None:
                    client = sandbox.valkey_client(VALKEY_PORT, socket_timeout=0.3, socket_connect_timeout=0.3)
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

    def state_at(self, pod: str, t: float) -> str:
        with self._lock:
            states = [s.state for s in self.samples if s.pod == pod and s.t <= t]
        return states[-1] if states else "unknown"

    def writable_overlaps(self) -> list[tuple[str, str, float, float]]:
        """Intervals where two pods were both observed as writable primaries:
        (pod, pod, start, seconds). A pod's state lasts from its sample to its next one."""
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


_LOG_TIME = re.compile(r"^\d+:X (\d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2})\.(\d{3}) [#*.-] (\S+)")


def sentinel_events(pod: NetPod, names: tuple[str, ...]) -> list[tuple[float, str, str]]:
    """(epoch, pod, event) of the Sentinel log lines whose event is in names, all runs."""
    out = []
    runner = pod.container("sentinel")
    logs = "".join(p.read_text(errors="replace") for p in sorted((runner.workdir / "logs").glob("sentinel-*.log")))
    for line in logs.splitlines():
        match = _LOG_TIME.match(line)
        if match and match.group(3) in names:
            epoch = time.mktime(time.strptime(match.group(1), "%d %b %Y %H:%M:%S")) + int(match.group(2)) / 1000
            out.append((epoch, pod.name, match.group(3)))
    return out


# --- the topology ----------------------------------------------------------------------------


def wait_until(check: Callable[[], Any], timeout: float, what: str, period: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, valkey.exceptions.ValkeyError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(period)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


@dataclass
class Cluster:
    sts: NetStatefulSet
    client_pod: Sandbox
    results: Path

    def fqdn(self, pod: NetPod) -> str:
        return self.sts.pod_fqdn(pod)

    def valkey(self, pod: NetPod) -> valkey.Valkey:
        return pod.client("valkey", socket_timeout=2, decode_responses=True)

    def sentinel(self, pod: NetPod) -> valkey.Valkey:
        return pod.client("sentinel", socket_timeout=2, decode_responses=True)

    def health(self) -> str:
        """'' when healthy: every pod up, one primary, the others replicas of it with the link
        up, and every Sentinel agreeing on it and knowing every replica and Sentinel."""
        n = len(self.sts.pods)
        primaries = []
        for pod in self.sts.pods:
            if not pod.exists:
                return f"{pod.name} does not exist"
            info = self.valkey(pod).info("replication")
            if info["role"] == "master":
                primaries.append(pod)
        if len(primaries) != 1:
            return f"primaries: {[p.name for p in primaries]}"
        primary = self.fqdn(primaries[0])
        for pod in self.sts.pods:
            if pod is primaries[0]:
                continue
            info = self.valkey(pod).info("replication")
            if info.get("master_host") != primary or info.get("master_link_status") != "up":
                return f"{pod.name}: master {info.get('master_host')} link {info.get('master_link_status')}"
        for pod in self.sts.pods:
            sentinel = self.sentinel(pod)
            addr = sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)
            if addr is None or addr[0] != primary:
                return f"sentinel {pod.name} says the primary is {addr}"
            master = sentinel.sentinel_master(MASTER_NAME)
            if master["num-other-sentinels"] != n - 1 or master["num-slaves"] != n - 1:
                return (
                    f"sentinel {pod.name}: {master['num-other-sentinels']} sentinels, {master['num-slaves']} replicas"
                )
            replicas = sentinel.sentinel_slaves(MASTER_NAME)
            if any(r["is_sdown"] or r["is_disconnected"] for r in replicas):
                return f"sentinel {pod.name}: replicas {[(r['name'], r['flags']) for r in replicas]}"
        return ""

    def wait_healthy(self, timeout: float = 40) -> NetPod:
        for pod in self.sts.pods:
            if not pod.exists:
                pod.start()
            for name, runner in pod.containers.items():
                if not runner.running:  # what the kubelet does: the container again, same pod and IP
                    pod.restart_container(name)
        for pod in self.sts.pods:
            pod.wait_ready(timeout=timeout)
        problems: list[str] = []

        def healthy() -> bool:
            problems.append(self.health())
            return problems[-1] == ""

        try:
            wait_until(healthy, timeout, "a healthy topology", period=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last problem: {problems[-1:]}") from None
        return self.primary()

    def primary(self) -> NetPod:
        primaries = [p for p in self.sts.pods if p.running() and self.valkey(p).info("replication")["role"] == "master"]
        assert len(primaries) == 1, [p.name for p in primaries]
        return primaries[0]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pod_bin_dir: Path) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("sentinel")
    with PodNetwork() as network:
        sts = NetStatefulSet(topology_source.objects(), network=network, root=root / "pods", bin_dir=pod_bin_dir)
        try:
            sts.start()
            client_pod = network.add_sandbox("client")
            cluster = Cluster(sts, client_pod, tmp_path_factory.getbasetemp() / "sentinel-results")
            cluster.wait_healthy()
            yield cluster
        finally:
            sts.close()


@pytest.fixture
def healthy(cluster: Cluster) -> NetPod:
    """The primary of a healthy topology (pods a previous drill left dead are started again)."""
    return cluster.wait_healthy()


# --- the client pod --------------------------------------------------------------------------


class Drill:
    """The BullMQ producer and worker and the plain writer, in the client pod."""

    runs = 0

    def __init__(self, cluster: Cluster, name: str, client_options: dict[str, Any]) -> None:
        Drill.runs += 1
        name = f"{name}-{Drill.runs}"  # a fresh queue and key prefix per run: job ids restart at 0
        sentinels = [{"host": cluster.fqdn(p), "port": SENTINEL_PORT} for p in cluster.sts.pods]
        env = {
            "SENTINELS": json.dumps(sentinels),
            "MASTER_NAME": MASTER_NAME,
            "CLIENT_OPTIONS": json.dumps(client_options),
            "QUEUE": f"drill-{name}",
            "WRITE_PREFIX": f"drill:{name}:w:",
            "ADD_PER_SECOND": "100",
            "WRITES_PER_SECOND": "100",
            "JOB_MS": "20",
            "CONCURRENCY": "10",
            "QUIET_MS": "8000",
            "DEADLINE_MS": "90000",
        }
        self.prefix = env["WRITE_PREFIX"]
        self.process = NodeProcess(cluster.client_pod.exec_prefix() + [node_binary(), str(SCRIPT)], env)
        self.process.wait_for(lambda e: e["ev"] == "ready", 20, "the drill clients to connect through the Sentinels")
        self.process.wait_for(lambda e: e["ev"] == "completed", 10, "a first job completed")

    def times(self, ev: str) -> list[float]:
        return [e["t"] / 1000 for e in list(self.process.events) if e["ev"] == ev]

    def progressed_since(self, t: float) -> bool:
        events = list(self.process.events)
        return all(any(e["ev"] == ev and e["t"] / 1000 > t for e in events) for ev in ("added", "completed", "written"))

    def finish(self) -> dict[str, Any]:
        self.process.send("stop")
        summary = self.process.wait_for(lambda e: e["ev"] == "summary", 60, "the drill summary")
        self.process.close()
        return summary

    def acked_writes(self) -> list[int]:
        return [e["n"] for e in list(self.process.events) if e["ev"] == "written"]


def resume_after(times: list[float], t_fault: float) -> tuple[float | None, float]:
    """(seconds from the fault to the end of the longest pause that follows it, that pause)."""
    around = sorted(t for t in times if t >= t_fault - 1)
    best_gap, resume = 0.0, None
    for before, after in zip(around, around[1:], strict=False):
        if after > t_fault and after - before > best_gap:
            best_gap, resume = after - before, after
    return (None if resume is None else round(resume - t_fault, 3)), round(best_gap, 3)


def lost_writes(cluster: Cluster, primary: NetPod, prefix: str, acked: list[int]) -> list[int]:
    client = cluster.valkey(primary)
    lost = []
    for start in range(0, len(acked), 500):
        batch = acked[start : start + 500]
        values = client.mget([f"{prefix}{n}" for n in batch])
        lost += [n for n, v in zip(batch, values, strict=True) if v != str(n)]
    return lost


def report(cluster: Cluster, name: str, figures: dict[str, Any]) -> None:
    publish_results(f"sentinel-{name}", figures, tmp_dir=cluster.results)


def failover_figures(
    cluster: Cluster, observer: Observer, drill: Drill, old: NetPod, t_fault: float, summary: dict[str, Any]
) -> dict[str, Any]:
    new = observer.first(lambda s: s.pod != old.name and s.state == "primary", t_fault)
    events = sorted(
        e
        for p in cluster.sts.pods
        for e in sentinel_events(p, ("+sdown", "+odown", "+elected-leader", "+promoted-slave", "+switch-master"))
        if e[0] >= t_fault - 1 and (e[2] != "+sdown" or e[1] != old.name)
    )
    firsts: dict[str, float] = {}
    for t, _pod, ev in events:
        firsts.setdefault(ev, round(t - t_fault, 3))
    final = cluster.primary()
    states: dict[str, str] = summary["not_completed"]  # acked adds without a completed event: state at the end
    acked = drill.acked_writes()
    acked_at = {e["n"]: e["t"] / 1000 for e in drill.process.events if e["ev"] == "written"}
    lost = lost_writes(cluster, final, drill.prefix, acked)
    overlaps = observer.writable_overlaps()
    return {
        "down_after_s": D_S,
        "sentinel_first_events_s": firsts,
        "new_primary_writable_s": None if new is None else round(new.t - t_fault, 3),
        "new_primary": None if new is None else new.pod,
        "writer_resumed_s": resume_after(drill.times("written"), t_fault),
        "producer_resumed_s": resume_after(drill.times("added"), t_fault),
        "worker_resumed_s": resume_after(drill.times("completed"), t_fault),
        "writes_acked": len(acked),
        "writes_failed": summary["write_errors"],
        "acked_writes_lost": len(lost),
        "lost_writes_acked_at_s": [round(acked_at[n] - t_fault, 3) for n in lost[:10]],
        "jobs_added": summary["added"],
        "jobs_lost": sorted(int(i) for i, state in states.items() if state in ("unknown", "missing")),
        "jobs_unfinished": {
            i: state for i, state in states.items() if state not in ("unknown", "missing", "completed")
        },
        "jobs_completed_unseen": sum(1 for state in states.values() if state == "completed"),
        "jobs_run_twice": summary["run_twice"],
        "worker_errors": sorted(
            {e["msg"][:100] for e in drill.process.events if e["ev"] in ("worker-error", "failed")}
        ),
        "add_errors_retried": summary["add_errors"],
        "end_reason": summary["reason"],
        "two_writable_primaries": [(a, b, round(t - t_fault, 3), round(d, 3)) for a, b, t, d in overlaps],
        "final_primary": final.name,
        "timeline": observer.timeline(t_fault, t_fault - 0.5),
    }


@contextlib.contextmanager
def observing(cluster: Cluster) -> Iterator[Observer]:
    observer = Observer(cluster.sts).start()
    try:
        yield observer
    finally:
        observer.stop()


# --- drills ------------------------------------------------------------------------------------


@dataclass
class Fault:
    """What a drill does to the primary: ``inject`` at t=0; ``restore`` (if any) after
    ``hold_s``, after which the old primary must rejoin as a replica."""

    name: str
    inject: Callable[[NetPod], None]
    hold_s: float = 0.0
    restore: Callable[[NetPod], None] | None = None


KILL = Fault("kill", lambda pod: pod.kill())
# Longer than D plus the failover itself (about 1.5 s): the fault outlasts the promotion.
FREEZE = Fault("freeze", lambda pod: pod.freeze(), D_S + 4, lambda pod: pod.thaw())
PARTITION = Fault("partition", lambda pod: pod.partition(), D_S + 4, lambda pod: pod.heal())


def run_drill(
    cluster: Cluster, old: NetPod, fault: Fault, client_options: dict[str, Any], tag: str = ""
) -> dict[str, Any]:
    name = fault.name + tag
    with observing(cluster) as observer:
        drill = Drill(cluster, name, client_options)
        try:
            time.sleep(1.0)  # a second of steady load before the fault
            t_fault = time.time()
            fault.inject(old)
            progress_by = time.monotonic() + D_S + 20
            if fault.restore is not None:
                time.sleep(fault.hold_s)
                t_restore = time.time()
                fault.restore(old)
            wait_until(lambda: drill.progressed_since(t_fault + D_S), progress_by - time.monotonic(), "progress")
            rejoined = None
            if fault.restore is not None:
                rejoined = wait_until(
                    lambda: observer.first(lambda s: s.pod == old.name and s.state == "replica", t_restore),
                    30,
                    f"{old.name} back as a replica",
                )
            time.sleep(1.0)
            summary = drill.finish()
        finally:
            drill.process.close()
        figures = failover_figures(cluster, observer, drill, old, t_fault, summary)
    figures["client_options"] = client_options
    if fault.restore is not None:
        figures["fault_held_s"] = fault.hold_s
        figures["old_primary_replica_again_s_after_restore"] = round(rejoined.t - t_restore, 3)
    report(cluster, name, figures)
    return figures


def assert_goals(figures: dict[str, Any]) -> None:
    assert figures["new_primary_writable_s"] is not None, figures
    assert figures["acked_writes_lost"] == 0, figures
    assert figures["jobs_lost"] == [] and figures["jobs_unfinished"] == {}, figures
    assert figures["jobs_run_twice"] == [], figures
    assert figures["two_writable_primaries"] == [], figures


def test_kill_the_primary_under_bullmq(cluster: Cluster, healthy: NetPod) -> None:
    figures = run_drill(cluster, healthy, KILL, RECOMMENDED_CLIENT)
    assert_goals(figures)
    writer_s, _ = figures["writer_resumed_s"]
    assert writer_s is not None and writer_s <= D_S + 2, figures
    for key in ("producer_resumed_s", "worker_resumed_s"):
        resumed, _ = figures[key]
        assert resumed is not None and resumed <= D_S + 3, (key, figures)


def test_freeze_the_primary_under_bullmq(cluster: Cluster, healthy: NetPod) -> None:
    assert_goals(run_drill(cluster, healthy, FREEZE, RECOMMENDED_CLIENT))


def test_partition_the_primary_under_bullmq(cluster: Cluster, healthy: NetPod) -> None:
    assert_goals(run_drill(cluster, healthy, PARTITION, RECOMMENDED_CLIENT))
