"""ADR 0005: BullMQ replays in-flight jobs after Valkey crashes; no job silently disappears.

Real BullMQ and ioredis (npm, ``node_modules`` at the repo root) run ``tests/node/bullmq_replay.mjs``:
a producer adds jobs, one worker with short lock/stall settings processes them. While the worker
has jobs in flight, the rendered Valkey container is SIGKILLed, left down longer than the lock
duration (so the in-flight jobs' locks expire) and restarted on the same data directory. Every job
whose add was acknowledged before the loss window must end completed (directly, or stalled and
replayed) or failed with a visible reason; jobs acknowledged within the window may be lost and are
counted separately.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.node import NodeProcess
from harness.podrunner import REPO, PodRunner, load_manifest, publish_results

pytestmark = pytest.mark.root

SCRIPT = REPO / "tests" / "node" / "bullmq_replay.mjs"
LOSS_WINDOW_MS = 2000  # AOF everysec: up to ~1 s, 2 s when an fsync is slow (Valkey docs)
LOCK_MS = 2000
DOWN_SECONDS = 2.5  # longer than the lock: the jobs in flight lose their locks
TEST_BUDGET = 60.0


@pytest.fixture
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "reliability-results"


@pytest.fixture
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed: the BullMQ test needs Node.js and `npm ci` at the repo root")
    for module in ("bullmq", "ioredis"):
        if not (REPO / "node_modules" / module / "package.json").exists():
            pytest.fail(f"node_modules/{module} is missing: run `npm ci` at the repo root")
    return path


def node_scenario(node: str, port: int) -> NodeProcess:
    """The node script as a child process; its JSON lines collected by harness/node.py."""
    env = {
        "VALKEY_PORT": str(port),
        "JOBS": "300",
        "ADD_PER_SECOND": "150",
        "JOB_MS": "100",
        "CONCURRENCY": "10",
        "LOCK_MS": str(LOCK_MS),
        "STALLED_INTERVAL_MS": "1000",
        "MAX_STALLED": "2",
        "QUIET_MS": "8000",
        "DEADLINE_MS": str(int((TEST_BUDGET - 10) * 1000)),
    }
    return NodeProcess([node, str(SCRIPT)], env)


@pytest.fixture
def pod(tmp_path: Path, valkey_bin_dir: Path) -> Iterator[PodRunner]:
    with PodRunner(load_manifest(), workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as runner:
        runner.start()
        runner.wait_ready(timeout=15)
        yield runner


def test_bullmq_jobs_survive_a_valkey_crash(pod: PodRunner, node: str, results_dir: Path) -> None:
    budget = time.monotonic() + TEST_BUDGET
    scenario = node_scenario(node, pod.port)
    try:
        scenario.wait_for(lambda e: e["ev"] == "ready", budget - time.monotonic(), "the node script to start")
        added = 0

        def busy(event: dict[str, Any]) -> bool:
            nonlocal added
            added += event["ev"] == "added"
            return added >= 100 and event["ev"] == "active" and event["inflight"] >= 3

        kill_event = scenario.wait_for(busy, budget - time.monotonic(), "100 jobs added and 3 in flight")
        t_kill_ms = time.time() * 1000
        pod.signal(signal.SIGKILL)
        assert pod.wait_exit(timeout=10) == -signal.SIGKILL
        time.sleep(DOWN_SECONDS)
        pod.start()
        pod.wait_ready(timeout=30)
        scenario.send("restarted")
        summary = scenario.wait_for(lambda e: e["ev"] == "summary", budget - time.monotonic(), "the job summary")
        scenario.proc.wait(timeout=max(1.0, budget - time.monotonic()))
    finally:
        scenario.close()

    jobs = summary["jobs"]
    states = Counter(job["state"] for job in jobs)
    acked = [j for j in jobs if j["added_at"] is not None]
    in_window = [j for j in acked if t_kill_ms - LOSS_WINDOW_MS <= j["added_at"] <= t_kill_ms]
    window_ids = {j["i"] for j in in_window}
    completed = [j for j in acked if j["state"] == "completed"]
    replayed = [j for j in completed if j["starts"] > 1 or (j["stalled_counter"] or 0) > 0]
    failed = [j for j in acked if j["state"] == "failed"]
    lost = [j for j in acked if j["state"] in ("missing", "unknown")]
    unfinished = [j for j in acked if j["state"] not in ("completed", "failed", "missing", "unknown")]
    stalled_events = sum(1 for e in scenario.events if e["ev"] == "stalled")
    in_flight_at_kill = kill_event["inflight"]

    figures = {
        "jobs_added": len(acked),
        "jobs_completed": len(completed),
        "jobs_completed_after_replay": len(replayed),
        "jobs_processed_more_than_once": sum(1 for j in jobs if j["starts"] > 1),
        "jobs_failed": len(failed),
        "failed_reasons": sorted({j["failed_reason"] for j in failed}),
        "jobs_lost": len(lost),
        "jobs_lost_within_window": sum(1 for j in lost if j["i"] in window_ids),
        "jobs_acked_within_window": len(in_window),
        "jobs_unfinished": len(unfinished),
        "in_flight_when_kill_was_triggered": in_flight_at_kill,
        "stalled_events": stalled_events,
        "valkey_down_seconds": DOWN_SECONDS,
        "add_errors_retried": summary["add_errors"],
        "worker_errors": summary["worker_errors"],
        "worker_error_kinds": sorted(
            {e["msg"].split(" for job")[0][:80] for e in scenario.events if e["ev"] == "worker-error"}
        ),
        "end_reason": summary["reason"],
        "final_states": dict(states),
    }
    publish_results("bullmq-replay", figures, tmp_dir=results_dir)

    assert len(acked) == len(jobs), "the producer could not add every job (it retries across the outage)"
    assert in_flight_at_kill >= 3
    silently_gone = [j["i"] for j in lost if j["i"] not in window_ids]
    assert not silently_gone, f"jobs added before the loss window disappeared: {silently_gone}"
    assert not unfinished, f"jobs neither completed nor failed: {[(j['i'], j['state']) for j in unfinished]}"
    assert all(j["failed_reason"] for j in failed), "a failed job carries no reason"
    # The jobs that were in flight lost their locks while Valkey was down: BullMQ must replay them.
    assert replayed, "no job was replayed: the stalled-job path was not exercised"
