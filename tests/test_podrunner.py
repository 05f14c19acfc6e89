"""The local pod runner itself: it runs what the manifest says (command, env, probes, user,
volumes, grace period), keeps /data across restarts, and cleans up processes and cgroups."""

from __future__ import annotations

import copy
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from harness.podrunner import (
    MemoryCgroup,
    MemoryCgroupUnavailableError,
    PodRunner,
    PodRunnerError,
    load_manifest,
    parse_quantity,
)

pytestmark = pytest.mark.root


def statefulset(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "StatefulSet")


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def test_runs_the_rendered_command_env_and_probes(tmp_path: Path, valkey_bin_dir: Path) -> None:
    objects = copy.deepcopy(load_manifest())
    container = statefulset(objects)["spec"]["template"]["spec"]["containers"][0]
    for var in container["env"]:
        if var["name"] == "VALKEY_MAXMEMORY_FALLBACK_BYTES":
            var["value"] = "123456789"
    container["livenessProbe"]["exec"]["command"] = ["sh", "-c", "echo custom liveness; exit 3"]

    with PodRunner(objects, workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as pod:
        assert pod.argv[:2] == ["sh", str(tmp_path / "pod" / "scripts" / "entrypoint.sh")]
        assert pod.env["VALKEY_CONFIG_FILE"] == str(tmp_path / "pod" / "etc" / "valkey" / "valkey.conf")
        assert pod.env["VALKEY_DATA_DIR"] == str(pod.data_dir) == str(tmp_path / "pod" / "data")
        assert pod.grace_seconds == statefulset(objects)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]

        before = pod.probe("readiness")
        assert before.returncode == 1 and "Could not connect" in before.stdout, before
        pod.start()
        pod.wait_ready(timeout=15)
        client = pod.client()
        assert client.config_get("maxmemory")["maxmemory"] == "123456789"
        assert "entrypoint: maxmemory 123456789 bytes (fallback VALKEY_MAXMEMORY_FALLBACK_BYTES;" in pod.logs()
        assert client.config_get("dir")["dir"] == str(pod.data_dir)
        assert client.config_get("appendonly")["appendonly"] == "yes"

        # The entrypoint exec'd valkey-server in place, as the pod's user, without new privileges.
        status = proc_status(pod.pid or 0)
        assert status["Name"] == "valkey-server"
        assert status["Uid"].split() == ["999"] * 4 and status["Gid"].split() == ["999"] * 4
        assert status["Groups"].split() == ["999"]  # fsGroup
        assert status["NoNewPrivs"] == "1"

        custom = pod.probe("liveness")
        assert (custom.returncode, custom.stdout) == (3, "custom liveness\n")
        assert pod.probe("startup").returncode == 0
        assert pod.probe("readiness").returncode == 0
        assert pod.stop() == 0


def test_data_survives_restart(tmp_path: Path, valkey_bin_dir: Path) -> None:
    with PodRunner(load_manifest(), workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as pod:
        pod.start()
        pod.wait_ready(timeout=15)
        first_pid = pod.pid
        pod.client().set("survivor", "yes")
        pod.restart()
        pod.wait_ready(timeout=15)
        assert pod.pid != first_pid
        assert pod.client().get("survivor") == b"yes"
        assert "ready to exit, bye bye" in pod.logs(previous=True)
        assert "DB loaded from append only file" in pod.logs()
        # fsGroup: the volume root is group-owned by 999 with setgid, the AOF owned by the pod user.
        st = pod.data_dir.stat()
        assert st.st_gid == 999 and st.st_mode & 0o2070 == 0o2070
        aof_dir = pod.data_dir / "appendonlydir"
        assert {p.stat().st_uid for p in aof_dir.iterdir()} == {999}
        # ConfigMap volumes are read-only for the pod user.
        assert not (pod.workdir / "scripts").stat().st_mode & 0o222


def test_probe_timeout_and_grace_period_cap(tmp_path: Path, valkey_bin_dir: Path) -> None:
    with PodRunner(load_manifest(), workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as pod:
        pod.start()
        pod.wait_ready(timeout=15)
        pod.signal(signal.SIGSTOP)  # a hung server: probes must fail within timeoutSeconds
        started = time.monotonic()
        hung = pod.probe("readiness")
        spec = pod.probes["readiness"]
        assert spec is not None
        assert hung.returncode != 0, hung
        assert time.monotonic() - started < spec["timeoutSeconds"] + 1.5
        # SIGTERM stays pending on a stopped process: stop() escalates after the (capped) grace period.
        assert pod.stop(timeout=1) == -signal.SIGKILL
        assert not pod.running


def test_memory_cgroup_holds_the_container_and_is_removed(tmp_path: Path, valkey_bin_dir: Path) -> None:
    try:
        group = MemoryCgroup(128 << 20)
    except MemoryCgroupUnavailableError as exc:
        pytest.fail(str(exc))
    with (
        group,
        PodRunner(load_manifest(), workdir=tmp_path / "pod", bin_dir=valkey_bin_dir, memory_cgroup=group) as pod,
    ):
        assert group.path.is_dir()
        assert int(group.limit_file.read_text()) == 128 << 20
        pod.start()
        pod.wait_ready(timeout=15)
        assert pod.pid in group.pids()
        percent = int(pod.env["VALKEY_MAXMEMORY_PERCENT"])  # the rendered maxmemory_ratio
        assert f"({percent}% of {128 << 20}, cgroup v{group.version} {group.limit_file}" in pod.logs()
        assert pod.client().config_get("maxmemory")["maxmemory"] == str((128 << 20) * percent // 100)
        assert group.oom_kill_count == 0 and group.max_usage_in_bytes > 0 and group.anon_bytes > 0
        # Removing the group kills what is left inside it.
        group.remove()
        assert pod.wait_exit(timeout=10) == -signal.SIGKILL
    assert not group.path.exists()


def test_manifest_errors_are_explicit(tmp_path: Path, valkey_bin_dir: Path) -> None:
    objects = load_manifest()
    with pytest.raises(PodRunnerError, match="no container 'nope'"):
        PodRunner(objects, workdir=tmp_path, bin_dir=valkey_bin_dir, container="nope")
    with pytest.raises(PodRunnerError, match="StatefulSet missing"):
        PodRunner(objects, workdir=tmp_path, bin_dir=valkey_bin_dir, statefulset="missing")
    assert parse_quantity("1Gi") == 1 << 30 and parse_quantity("512M") == 512 * 10**6
