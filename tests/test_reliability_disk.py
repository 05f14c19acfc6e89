"""A full data volume, with real processes: the rendered Valkey container (``podrunner``) keeps
``/data`` on a size-limited filesystem while a writer runs, next to the real redis_exporter and a
real Prometheus loaded with the rendered rules (as in ``test_alerts_e2e.py``: every ``for``
shortened to 2s, scrapes and evaluations every second).

The filesystem is ext4 on a loop device, a block volume as Longhorn gives one, made with
``mkfs.ext4 -m 0`` (no blocks reserved for root, so the figures are the pod user's). The rig
asserts it from ``/proc/mounts`` (the mount point's source is a ``/dev/loop*`` device and its type
``ext4``), and every test asserts it again. There is no fallback: a ``tmpfs`` fails differently
(its pages are memory, its ENOSPC comes from the size option) and would prove something else, so
where no loop device can be mounted (not root, no loop devices) the tests fail and say why.
The volume fills when a ballast file takes every
free block, and is freed when the ballast goes: growing the ext4 online (what Longhorn's
expansion does) is refused here (``resize2fs``: permission denied on the resize ioctl), and what
Valkey sees is the same, its write() failing and then succeeding.

What the first test shows, in order: writes are refused with ``MISCONF Errors writing to the AOF
file: No space left on device`` while reads still answer; the rendered probes keep the pod live
and Ready (Valkey answers PING with MISCONF too); ``ValkeyAofWriteFailing`` fires in Prometheus;
``ValkeyPodMetricsAbsent`` fires too, as it must on a cluster without kubelet and
kube-state-metrics series; once the ballast is gone writes resume in the same process; after a
graceful restart every acknowledged key holds its value and no refused key exists.

The second test pins why nothing may restart Valkey while the AOF write fails: writes that Valkey
acknowledged in the event loop whose AOF write failed sit only in its AOF buffer, and a graceful
shutdown drops them (measured with Valkey 8.1.8: all of them, exit code 0, no log line saying
so). Figures go to stdout (``-s``) and ``<basetemp>/reliability-results/full-disk*.json``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cdk8s
import pytest
import valkey
import yaml
from test_alerts_e2e import INTERVAL, _firing, _rules_with_short_for

from cdk8s_valkey import Alerts, ExporterOptions, ExporterSidecar, ValkeyStatefulSet
from harness.exporter import exporter_args_for_test, running_exporter
from harness.podrunner import PodRunner, filesystem_type, free_port, publish_results
from harness.prometheus import get_json as _get_json
from harness.prometheus import running_prometheus, scrape_job, service_monitor_labels, wait_for
from harness.synth import find, objects

pytestmark = pytest.mark.root

VOLUME_BYTES = 32 << 20
VALUE = b"v" * 100
BATCH = 10  # SETs per pipeline; one pipeline every 10 ms: about 1000 SET/s, 150 KB/s of AOF
MISCONF = "MISCONF Errors writing to the AOF file: No space left on device"
BUDGET_SECONDS = 180  # the writer's bound (a shared machine may be slow); never asserted


# -- the size-limited volume -------------------------------------------------------------


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/mounts."""

    source: str
    mount_point: str
    fstype: str


def mount_entry(mount_point: Path) -> MountEntry:
    """The last /proc/mounts line whose mount point is ``mount_point`` (the one on top)."""
    target = os.path.realpath(mount_point)
    entries = [
        MountEntry(source=parts[0], mount_point=parts[1].replace("\\040", " "), fstype=parts[2])
        for parts in (line.split() for line in Path("/proc/mounts").read_text(encoding="utf-8").splitlines())
    ]
    on_top = [entry for entry in entries if entry.mount_point == target]
    assert on_top, f"{target} is not a mount point (/proc/mounts)"
    return on_top[-1]


def assert_ext4_on_loop(mount_point: Path) -> MountEntry:
    """The volume under test really is ext4 on a loop device, as /proc/mounts says."""
    entry = mount_entry(mount_point)
    assert entry.fstype == "ext4", f"{mount_point} is {entry.fstype}, not ext4: {entry}"
    assert re.fullmatch(r"/dev/loop\d+", entry.source), f"{mount_point} is not on a loop device: {entry}"
    assert filesystem_type(mount_point) == "ext4"
    return entry


@contextlib.contextmanager
def size_limited_mount(mount_point: Path, scratch: Path) -> Iterator[MountEntry]:
    """Mount a VOLUME_BYTES ext4 filesystem on a loop device at mount_point; yields its
    /proc/mounts entry. Fails (never skips, never falls back to tmpfs) when that cannot be done.
    Unmounts on exit, also after a failure (lazily if still busy)."""
    mount_point.mkdir(parents=True, exist_ok=True)
    image = scratch / "data.ext4"
    made = _run("truncate", "-s", str(VOLUME_BYTES), str(image))
    if made.returncode == 0:
        made = _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
    if made.returncode != 0:
        pytest.fail(f"cannot make the ext4 image {image}: {made.stderr.strip()}")
    mounted = _run("mount", "-o", "loop", str(image), str(mount_point))
    if mounted.returncode != 0:
        image.unlink(missing_ok=True)
        pytest.fail(
            f"cannot mount an ext4 image on a loop device at {mount_point} (needs root and loop devices): "
            f"{mounted.stderr.strip()}"
        )
    try:
        yield assert_ext4_on_loop(mount_point)
    finally:
        if _run("umount", str(mount_point)).returncode != 0:
            _run("umount", "-l", str(mount_point))
        image.unlink(missing_ok=True)


def fill_with_ballast(directory: Path) -> Path:
    """Take every free block of directory's filesystem with a file (as root); its path."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096, b"\0" * 512):
            try:
                while os.write(fd, chunk) == len(chunk):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return ballast


# -- the writer ------------------------------------------------------------------------


class Writer(threading.Thread):
    """SET w:<seq> in pipelines of BATCH every 10 ms on its own connection; records the time of
    every acknowledged and every refused write."""

    def __init__(self, client: valkey.Valkey) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.acked: dict[int, float] = {}  # seq -> monotonic time of the reply
        self.refused: dict[int, float] = {}
        self.refusals: set[str] = set()
        self.errors: list[str] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        seq = 0
        deadline = time.monotonic() + BUDGET_SECONDS
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            pipe = self.client.pipeline(transaction=False)
            for key in range(seq, seq + BATCH):
                pipe.set(f"w:{key}", VALUE)
            try:
                replies = pipe.execute(raise_on_error=False)
            except valkey.exceptions.ValkeyError as exc:
                self.errors.append(repr(exc))
                return
            now = time.monotonic()
            for key, reply in zip(range(seq, seq + BATCH), replies, strict=True):
                if reply is True:
                    self.acked[key] = now
                elif isinstance(reply, valkey.exceptions.ResponseError) and str(reply).startswith("MISCONF"):
                    self.refused[key] = now
                    self.refusals.add(str(reply))
                else:
                    self.errors.append(repr(reply))
            seq += BATCH
            self.stop_event.wait(0.01)

    def first_refused_after(self, moment: float) -> float | None:
        return min((t for t in self.refused.values() if t >= moment), default=None)

    def first_acked_after(self, moment: float) -> float | None:
        return min((t for t in self.acked.values() if t >= moment), default=None)


def unreadable(client: valkey.Valkey, keys: list[int], *, expect_present: bool) -> list[int]:
    """Keys of ``w:<seq>`` that do not hold VALUE (expect_present) or that exist (not)."""
    wrong: list[int] = []
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        for key, value in zip(chunk, client.mget([f"w:{k}" for k in chunk]), strict=True):
            if (value == VALUE) != expect_present:
                wrong.append(key)
    return wrong


# -- fixtures ----------------------------------------------------------------------------


@dataclass
class Rig:
    pod: PodRunner
    alerts: Alerts
    objects: list[dict[str, Any]]
    mount: MountEntry


@pytest.fixture
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "reliability-results"


@pytest.fixture
def rig(tmp_path: Path, valkey_bin_dir: Path) -> Iterator[Rig]:
    """The brief's chart (namespace apps, Valkey valkey) with its pod's /data on a size-limited
    filesystem; the pod is closed before the filesystem is unmounted."""
    chart = cdk8s.Chart(cdk8s.App(), "t", namespace="apps")
    valkey_sts = ValkeyStatefulSet(chart, "valkey")
    exporter = ExporterSidecar(
        chart, "metrics", valkey=valkey_sts, options=ExporterOptions(bullmq_queues=["emails", "reports"])
    )
    alerts = Alerts(chart, "alerts", valkey=valkey_sts, exporter=exporter)
    objs = objects(chart)
    pod = PodRunner(objs, workdir=tmp_path / "pod", bin_dir=valkey_bin_dir)
    with size_limited_mount(pod.data_dir, tmp_path) as mount, pod:
        pod.start()
        pod.wait_ready(timeout=15)
        yield Rig(pod=pod, alerts=alerts, objects=objs, mount=mount)


# -- tests -------------------------------------------------------------------------------


def test_full_volume_refuses_writes_keeps_reads_alerts_and_resumes(rig: Rig, tmp_path: Path, results_dir: Path) -> None:
    started = time.monotonic()
    pod, alerts = rig.pod, rig.alerts
    objs = rig.objects
    assert assert_ext4_on_loop(pod.data_dir) == rig.mount
    labels = service_monitor_labels(objs, alerts.exporter)
    rules_path = tmp_path / "valkey.rules.yaml"
    rules_path.write_text(yaml.safe_dump(_rules_with_short_for(find(objs, "PrometheusRule")), sort_keys=False))
    exporter_port = free_port()
    args = exporter_args_for_test(alerts.exporter.args, pod.port, exporter_port)
    config = {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(rules_path)],
        "scrape_configs": [scrape_job("ours", exporter_port, labels)],
    }
    ours = {"namespace": "apps", "service": alerts.exporter.metrics_service_name}
    client = pod.client()
    pid = pod.pid

    with running_exporter(args, log=tmp_path / "exporter.log"), running_prometheus(config, tmp_path) as url:
        up = "valkey_up%7Bnamespace%3D%22apps%22%7D%3D%3D1"
        wait_for("valkey_up scraped", lambda: _get_json(f"{url}/api/v1/query?query={up}")["data"]["result"], 15)
        assert not _firing(url, "ValkeyAofWriteFailing")

        writer = Writer(pod.client())
        writer.start()
        wait_for("500 writes acknowledged", lambda: len(writer.acked) >= 500, timeout=10)

        # The volume fills.
        ballast = fill_with_ballast(pod.data_dir)
        t_full = time.monotonic()
        t_refused = wait_for("first refused write", lambda: writer.first_refused_after(t_full), timeout=10)
        acked_while_failing = sorted(k for k, t in writer.acked.items() if t_full <= t < t_refused)
        persistence = client.info("persistence")
        assert persistence["aof_last_write_status"] == "err"
        buffered_bytes = int(persistence["aof_buffer_length"])

        # Writes refused with the AOF error, reads still served, the pod still live and Ready.
        with pytest.raises(valkey.exceptions.ResponseError, match=f"^{MISCONF}$"):
            client.set("probe:write", "x")
        acked_so_far = sorted(writer.acked)
        assert unreadable(client, acked_so_far, expect_present=True) == []
        for kind in ("readiness", "liveness"):
            result = pod.probe(kind)
            assert result.returncode == 0, (kind, result.stdout, result.stderr)

        (firing,) = wait_for(
            "ValkeyAofWriteFailing firing", lambda: _firing(url, "ValkeyAofWriteFailing", **ours), timeout=30
        )
        t_alert = time.monotonic()
        refused_before_alert = len(writer.refused)
        assert firing["labels"]["severity"] == "critical"
        assert firing["labels"]["pod"] == "valkey-0"
        assert firing["annotations"]["runbook_url"] == alerts.runbook_url("ValkeyAofWriteFailing")
        # No kubelet or kube-state-metrics here: the volume and container alerts are blind, and say so.
        absent = wait_for(
            "ValkeyPodMetricsAbsent firing for all three families",
            lambda: len(found := _firing(url, "ValkeyPodMetricsAbsent", namespace="apps")) == 3 and found,
            timeout=15,
        )
        assert {a["labels"]["metric"] for a in absent} == {
            "kubelet_volume_stats_capacity_bytes",
            "container_memory_working_set_bytes",
            "kube_pod_container_resource_limits",
        }
        reads_while_full = len(acked_so_far)

        # Space is freed: writes resume in the same process, and the alert resolves.
        ballast.unlink()
        t_freed = time.monotonic()
        t_resumed = wait_for("a write acknowledged after freeing", lambda: writer.first_acked_after(t_freed), 10)
        wait_for("ValkeyAofWriteFailing resolved", lambda: not _firing(url, "ValkeyAofWriteFailing"), timeout=30)
        t_resolved = time.monotonic()
        wait_for("200 more writes", lambda: len(writer.acked) >= len(acked_so_far) + 200, timeout=10)
        writer.stop_event.set()
        writer.join(timeout=10)
        assert not writer.is_alive()

    assert writer.errors == []
    assert writer.refusals == {MISCONF}
    assert pod.running and pod.pid == pid == int(client.info("server")["process_id"])
    assert client.info("persistence")["aof_last_write_status"] == "ok"
    logs = pod.logs()
    # flushAppendOnlyFile logs the ENOSPC itself when nothing fit, or a short write when the
    # last blocks took part of the buffer: which one depends on where the filesystem ran out.
    assert re.search(
        r"Error writing to the AOF file: No space left on device|Short write while writing to the AOF file", logs
    ), logs[-2000:]
    assert "AOF write error looks solved" in logs

    # Restart (SIGTERM, as the kubelet does): every acknowledged write is there, no refused one.
    assert pod.stop(timeout=30) == 0
    pod.start()
    pod.wait_ready(timeout=30)
    restarted = pod.client()
    acked, refused = sorted(writer.acked), sorted(writer.refused)
    lost = unreadable(restarted, acked, expect_present=True)
    applied_refused = unreadable(restarted, refused, expect_present=False)
    assert lost == [] and applied_refused == []
    assert restarted.dbsize() == len(acked)

    figures = {
        "filesystem": rig.mount.fstype,
        "device": rig.mount.source,
        "volume_bytes": VOLUME_BYTES,
        "writes_acknowledged": len(acked),
        "writes_refused": len(refused),
        "refusal_message": MISCONF,
        "first_refused_write_after_full_seconds": round(t_refused - t_full, 3),
        "writes_acknowledged_after_full_before_first_refusal": len(acked_while_failing),
        "aof_buffer_length_while_full": buffered_bytes,
        "acknowledged_keys_read_back_while_full": reads_while_full,
        "writes_refused_before_alert_fired": refused_before_alert,
        "alert_firing_after_full_seconds": round(t_alert - t_full, 3),
        "alert_for_in_test": "2s (rendered: 1m)",
        "scrape_and_evaluation_interval": INTERVAL,
        "write_resumed_after_freeing_seconds": round(t_resumed - t_freed, 3),
        "alert_resolved_after_freeing_seconds": round(t_resolved - t_freed, 3),
        "same_pid_throughout": True,
        "lost_after_restart": len(lost),
        "refused_but_present_after_restart": len(applied_refused),
    }
    figures["test_seconds"] = round(time.monotonic() - started, 1)  # recorded, not asserted: the machine is shared
    publish_results("full-disk", figures, tmp_dir=results_dir)


def test_shutdown_while_the_aof_write_fails_drops_acknowledged_writes(rig: Rig, results_dir: Path) -> None:
    """Valkey 8.1 acknowledges the commands of the event loop whose AOF write failed (it keeps
    them in its AOF buffer to retry), and a SIGTERM then exits 0 without them. This is why the
    probes pass on MISCONF and the runbook says: free space first, never restart while full."""
    pod = rig.pod
    assert assert_ext4_on_loop(pod.data_dir) == rig.mount
    client = pod.client()
    before = [f"before:{i}" for i in range(100)]
    client.mset(dict.fromkeys(before, "v"))
    ballast = fill_with_ballast(pod.data_dir)

    # One pipeline of 50 SETs of 200 bytes (10 KB: more than the tail of the AOF's last block).
    pipe = client.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"buffered:{i}", b"b" * 200)
    replies = pipe.execute(raise_on_error=False)
    acked = [f"buffered:{i}" for i, reply in enumerate(replies) if reply is True]
    assert acked, replies[:3]
    with pytest.raises(valkey.exceptions.ResponseError, match=f"^{MISCONF}$"):
        client.set("after", "x")
    buffered = int(client.info("persistence")["aof_buffer_length"])
    assert buffered > 0

    assert pod.stop(timeout=30) == 0  # SIGTERM: a clean exit
    ballast.unlink()  # restart on a volume with room: only the shutdown can have lost them
    pod.start()
    pod.wait_ready(timeout=15)
    restarted = pod.client()
    assert restarted.exists(*before) == len(before)
    survived = restarted.exists(*acked)
    figures = {
        "filesystem": rig.mount.fstype,
        "device": rig.mount.source,
        "acknowledged_while_aof_write_failing": len(acked),
        "aof_buffer_length": buffered,
        "shutdown_exit_code": 0,
        "acknowledged_lost_by_shutdown": len(acked) - survived,
    }
    publish_results("full-disk-shutdown", figures, tmp_dir=results_dir)
    # Observed with Valkey 8.1.8: every one of them is gone. If a release flushes or refuses to
    # exit instead, this fails: then revisit the probes and the runbook.
    assert survived == 0


def test_the_rig_check_refuses_a_tmpfs(tmp_path: Path) -> None:
    """The check the tests rely on tells a tmpfs (the old fallback) from ext4 on a loop device."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={VOLUME_BYTES}", "tmpfs", str(mount_point))
    assert mounted.returncode == 0, mounted.stderr
    try:
        with pytest.raises(AssertionError, match="is tmpfs, not ext4"):
            assert_ext4_on_loop(mount_point)
    finally:
        if _run("umount", str(mount_point)).returncode != 0:
            _run("umount", "-l", str(mount_point))
