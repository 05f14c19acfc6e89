"""Probes across a long AOF load, and the entrypoint in bad environments.

(4) A dataset that takes seconds to load (generated fast with ``DEBUG POPULATE`` on a helper
server, then rewritten into the AOF's RDB base) is loaded by the rendered container: while it
loads, the readiness probe fails (``LOADING``) and the liveness probe passes; both pass after; the
startup probe's budget (failureThreshold x periodSeconds) covers the measured load time, also
extrapolated to a dataset as large as ``maxmemory``.

(5) Bad environments give a clear log line and a predictable exit code, never a silent default:
an unreadable cgroup file, a limit too small for Valkey, a ``/data`` the pod user cannot write.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.podrunner import (
    MemoryCgroup,
    MemoryCgroupUnavailableError,
    PodRunner,
    PodRunnerError,
    free_port,
    load_manifest,
    publish_results,
)

pytestmark = pytest.mark.root

KEYS = 2_000_000
VALUE_SIZE = 100


@pytest.fixture
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "reliability-results"


def generate_aof(data_dir: Path, bin_dir: Path, *, keys: int, value_size: int) -> None:
    """Fill ``data_dir`` with an AOF (RDB base) of ``keys`` keys, as the pod's config lays it out."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        str(bin_dir / "valkey-server"),
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
        "--appendonly", "yes", "--appenddirname", "appendonlydir", "--aof-use-rdb-preamble", "yes",
        "--save", "", "--enable-debug-command", "local",
    ]  # fmt: skip
    cli = [str(bin_dir / "valkey-cli"), "-p", str(port)]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT) as server:
        try:
            deadline = time.monotonic() + 10
            while subprocess.run([*cli, "ping"], check=False, capture_output=True, text=True).stdout.strip() != "PONG":
                assert time.monotonic() < deadline, "helper server did not start"
                time.sleep(0.05)
            run = [*cli, "debug", "populate", str(keys), "key", str(value_size)]
            subprocess.run(run, check=True, capture_output=True, timeout=60)
            subprocess.run([*cli, "bgrewriteaof"], check=True, capture_output=True, timeout=10)
            deadline = time.monotonic() + 60
            while (
                "aof_rewrite_in_progress:0"
                not in subprocess.run(
                    [*cli, "info", "persistence"], check=False, capture_output=True, text=True, timeout=10
                ).stdout
            ):
                assert time.monotonic() < deadline, "helper rewrite did not finish"
                time.sleep(0.1)
            subprocess.run([*cli, "shutdown"], check=False, capture_output=True, timeout=30)
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=10)


def aof_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "appendonlydir").iterdir())


def test_probes_during_a_long_aof_load(tmp_path: Path, valkey_bin_dir: Path, results_dir: Path) -> None:
    with PodRunner(load_manifest(), workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as pod:
        generate_aof(pod.data_dir, valkey_bin_dir, keys=KEYS, value_size=VALUE_SIZE)
        size = aof_bytes(pod.data_dir)

        started = time.monotonic()
        pod.start()
        samples: list[dict[str, Any]] = []
        while True:
            assert time.monotonic() - started < 60, "not ready within 60 s"
            assert pod.running, pod.logs()[-2000:]
            ready = pod.probe("readiness")
            alive = pod.probe("liveness")
            samples.append(
                {
                    "t": time.monotonic() - started,
                    "ready": ready.returncode,
                    "ready_out": ready.stdout.strip(),
                    "alive": alive.returncode,
                    "alive_out": alive.stdout.strip(),
                }
            )
            if ready.returncode == 0:
                break
            time.sleep(0.05)
        ready_seconds = time.monotonic() - started

        loading = [s for s in samples if "LOADING" in s["ready_out"]]
        assert len(loading) >= 3, f"loading was not observed long enough: {samples[:5]}"
        assert all(s["ready"] == 1 for s in loading)
        bad_liveness = [s for s in loading if s["alive"] != 0]
        assert not bad_liveness, f"liveness failed while loading: {bad_liveness[:3]}"
        for kind in ("startup", "readiness", "liveness"):
            result = pod.probe(kind)
            assert result.returncode == 0, (kind, result.stdout)

        client = pod.client()
        assert client.dbsize() == KEYS
        logs = pod.logs()
        match = re.search(r"DB loaded from append only file: ([\d.]+) seconds", logs)
        assert match, logs[-2000:]
        load_seconds = float(match.group(1))
        used = int(client.info("memory")["used_memory"])
        maxmemory = int(client.config_get("maxmemory")["maxmemory"])
        startup = pod.probes["startup"]
        assert startup is not None
        budget = int(startup.get("failureThreshold", 3)) * int(startup.get("periodSeconds", 10))
        # The same load rate for a dataset filling maxmemory (the largest AOF base noeviction allows).
        full_load_estimate = load_seconds * maxmemory / used

        figures = {
            "keys": KEYS,
            "aof_bytes": size,
            "used_memory_after_load": used,
            "load_seconds_from_log": load_seconds,
            "start_to_ready_seconds": round(ready_seconds, 3),
            "probe_samples": len(samples),
            "samples_ready_failed_loading_alive_passed": len(loading),
            "startup_budget_seconds": budget,
            "maxmemory_bytes": maxmemory,
            "estimated_load_seconds_at_maxmemory": round(full_load_estimate, 1),
            "liveness_first_checked_after_startup": True,
        }
        publish_results("probes-aof-load", figures, tmp_dir=results_dir)
        assert budget > ready_seconds
        assert budget > full_load_estimate * 3, "the startup budget leaves no margin for a slower volume"
        assert pod.stop() == 0


# --- (5) bad environments ------------------------------------------------------------------


def _manifest_with(change: str) -> list[dict[str, Any]]:
    objects = copy.deepcopy(load_manifest())
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    pod_spec = sts["spec"]["template"]["spec"]
    if change == "readonly-data":
        for mount in pod_spec["containers"][0]["volumeMounts"]:
            if mount["mountPath"] == "/data":
                mount["readOnly"] = True
    elif change == "no-fsgroup":
        del pod_spec["securityContext"]["fsGroup"]
        pod_spec["securityContext"].pop("fsGroupChangePolicy", None)
    return objects


@pytest.fixture
def cgroup_factory() -> Iterator[Any]:
    created: list[MemoryCgroup] = []

    def make(limit: int) -> MemoryCgroup:
        try:
            group = MemoryCgroup(limit)
            group.create()
        except MemoryCgroupUnavailableError as exc:
            pytest.fail(f"bad-environment tests need a memory cgroup: {exc}")
        created.append(group)
        return group

    yield make
    for group in created:
        group.remove()


def _expect_exit(pod: PodRunner, code: int) -> str:
    pod.start()
    with pytest.raises(PodRunnerError, match=f"exited with {code}"):
        pod.wait_ready(timeout=15)
    assert pod.wait_exit(timeout=10) == code
    return pod.logs()


def test_unreadable_cgroup_file_uses_logged_fallback(tmp_path: Path, valkey_bin_dir: Path, cgroup_factory: Any) -> None:
    objects = load_manifest()
    limit = PodRunner(objects, workdir=tmp_path / "unused", bin_dir=valkey_bin_dir).memory_limit_bytes
    assert limit is not None
    group = cgroup_factory(limit)  # the limit the manifest asks for
    os.chmod(group.limit_file, 0)
    with PodRunner(objects, workdir=tmp_path / "pod", bin_dir=valkey_bin_dir, memory_cgroup=group) as pod:
        pod.start()
        pod.wait_ready(timeout=15)
        fallback = int(pod.env["VALKEY_MAXMEMORY_FALLBACK_BYTES"])
        line = next(line for line in pod.logs().splitlines() if line.startswith("entrypoint:"))
        assert line == (
            f"entrypoint: maxmemory {fallback} bytes (fallback VALKEY_MAXMEMORY_FALLBACK_BYTES; "
            f"cgroup v2 {pod.env['VALKEY_CGROUP_V2_FILE']}: missing; cgroup v1 {group.limit_file}: unreadable)"
        ), line
        assert int(pod.client().config_get("maxmemory")["maxmemory"]) == fallback
        # The fallback is what the cgroup would have given: the construct renders it from the limit.
        percent = int(pod.env["VALKEY_MAXMEMORY_PERCENT"])
        assert fallback == limit * percent // 100
        assert pod.stop() == 0


def test_unlimited_cgroup_uses_logged_fallback(tmp_path: Path, valkey_bin_dir: Path) -> None:
    unlimited = tmp_path / "memory.limit_in_bytes"
    unlimited.write_text("9223372036854771712\n")
    with PodRunner(
        load_manifest(),
        workdir=tmp_path / "pod",
        bin_dir=valkey_bin_dir,
        extra_env={"VALKEY_CGROUP_V1_FILE": str(unlimited)},
    ) as pod:
        pod.start()
        pod.wait_ready(timeout=15)
        assert f"cgroup v1 {unlimited}: no limit (9223372036854771712))" in pod.logs()
        assert pod.stop() == 0


def test_limit_too_small_refuses_to_start(tmp_path: Path, valkey_bin_dir: Path, cgroup_factory: Any) -> None:
    group = cgroup_factory(16 << 20)
    with PodRunner(load_manifest(), workdir=tmp_path / "pod", bin_dir=valkey_bin_dir, memory_cgroup=group) as pod:
        logs = _expect_exit(pod, 1)
        minimum = pod.env["VALKEY_MIN_MAXMEMORY_BYTES"]
        percent = int(pod.env["VALKEY_MAXMEMORY_PERCENT"])
        limit = 16 << 20
        expected = (
            f"entrypoint: maxmemory {limit * percent // 100} bytes ({percent}% of {limit}, "
            f"cgroup v{group.version} {group.limit_file}"
        )
        assert expected in logs, logs
        assert (
            f"is below the minimum {minimum} (VALKEY_MIN_MAXMEMORY_BYTES): raise the container's memory limit" in logs
        )
        assert "Valkey is starting" not in logs, "valkey-server must not start"
        assert group.oom_kill_count == 0


@pytest.mark.parametrize("change", ["readonly-data", "no-fsgroup"])
def test_data_dir_not_writable_refuses_to_start(tmp_path: Path, valkey_bin_dir: Path, change: str) -> None:
    with PodRunner(_manifest_with(change), workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as pod:
        logs = _expect_exit(pod, 1)
        assert (
            f"entrypoint: data dir {pod.data_dir} is not a writable directory for uid {pod.uid}: check the volume "
            "mounted there and the pod's securityContext.fsGroup (the valkey image runs as uid 999)"
        ) in logs, logs
        assert not (pod.data_dir / "appendonlydir").exists()


def test_sigterm_during_load_exits_promptly(tmp_path: Path, valkey_bin_dir: Path, results_dir: Path) -> None:
    """A pod deleted while it loads (rollout, node drain) must not hang until SIGKILL."""
    with PodRunner(load_manifest(), workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as pod:
        generate_aof(pod.data_dir, valkey_bin_dir, keys=KEYS // 2, value_size=VALUE_SIZE)
        pod.start()
        deadline = time.monotonic() + 30
        while "LOADING" not in pod.probe("readiness").stdout:
            assert time.monotonic() < deadline and pod.running, pod.logs()[-2000:]
            time.sleep(0.02)
        started = time.monotonic()
        pod.signal(signal.SIGTERM)
        code = pod.wait_exit(timeout=pod.grace_seconds)
        seconds = time.monotonic() - started
        publish_results(
            "probes-sigterm-while-loading", {"exit_code": code, "seconds": round(seconds, 3)}, tmp_dir=results_dir
        )
        assert code == 0, pod.logs()[-2000:]
        assert seconds < pod.grace_seconds
        assert "Received SIGTERM" in pod.logs() or "Received shutdown signal" in pod.logs(), pod.logs()[-2000:]
