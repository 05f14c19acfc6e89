"""Benchmark 3, bullmq: jobs per second end to end with real BullMQ (npm, over ioredis) against the
rendered Valkey (harness/podrunner.py), converted to Valkey commands per second with INFO deltas and
compared with ADR 0005's revisit trigger of 10k ops/s.

`bench/node/bullmq_throughput.mjs` runs one producer (concurrent `queue.add`) and one worker
(no-op processor) in one Node process; see its header. Commands per job come from
`total_commands_processed` (what `valkey_commands_processed_total`, and so the revisit alert,
counts: commands run inside BullMQ's Lua scripts included) and from INFO commandstats.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ._common import NODE_DIR, REPO, Options, Result, command_line, fmt_int, machine, median, run
from ._valkey import rendered_pod, workdir

REVISIT_OPS_PER_SECOND = 10_000  # ADR 0005: "job throughput >10k ops/sec"
SCRIPT = NODE_DIR / "bullmq_throughput.mjs"
CONCURRENCY = 20
PRODUCERS = 20


def _run_node(port: int, jobs: int) -> dict[str, Any]:
    options = {"port": port, "jobs": jobs, "concurrency": CONCURRENCY, "producers": PRODUCERS, "timeoutMs": 300_000}
    result = run(["node", str(SCRIPT), json.dumps(options)], cwd=REPO, timeout=400)
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if data["completed"] != jobs:
        raise RuntimeError(f"only {data['completed']} of {jobs} jobs completed: {data}")
    return data


def bench(opts: Options) -> Result:
    started = time.perf_counter()
    mach = machine()
    jobs = 1_000 if opts.quick else 20_000
    runs = 1 if opts.quick else 5
    samples: list[dict[str, Any]] = []
    with workdir("bench-bullmq-") as tmp, rendered_pod(Path(tmp) / "pod") as pod:
        _run_node(pod.port, min(jobs, 1_000))  # warm-up: JIT, script cache, connections
        for _ in range(runs):
            samples.append(_run_node(pod.port, jobs))

    jobs_per_s = [s["jobs"] / s["seconds"] for s in samples]
    cmds_per_job = [s["totalCommands"] / s["jobs"] for s in samples]
    ops_per_s = [s["totalCommands"] / s["seconds"] for s in samples]
    busy = [s["serverCpuSeconds"] / s["seconds"] for s in samples]
    scripts_per_job = [
        sum(n for c, n in s["calls"].items() if c in ("evalsha", "eval", "fcall")) / s["jobs"] for s in samples
    ]
    m_jobs, m_cmds, m_ops, m_busy = median(jobs_per_s), median(cmds_per_job), median(ops_per_s), median(busy)
    trigger_jobs = REVISIT_OPS_PER_SECOND / m_cmds
    capacity_ops = m_ops / m_busy if m_busy > 0 else float("nan")
    rows = [
        [
            "jobs/s end to end (add → completed)",
            fmt_int(m_jobs),
            f"{fmt_int(min(jobs_per_s))}-{fmt_int(max(jobs_per_s))}",
        ],
        [
            "Valkey commands per job (total_commands_processed)",
            f"{m_cmds:.1f}",
            f"{min(cmds_per_job):.1f}-{max(cmds_per_job):.1f}",
        ],
        ["  of which Lua script calls (EVALSHA) per job", f"{median(scripts_per_job):.1f}", "-"],
        ["Valkey ops/s while running", fmt_int(m_ops), f"{fmt_int(min(ops_per_s))}-{fmt_int(max(ops_per_s))}"],
        [
            "Valkey CPU (used_cpu_user+sys) / wall time",
            f"{100 * m_busy:.0f} %",
            f"{100 * min(busy):.0f}-{100 * max(busy):.0f} %",
        ],
        [f"ADR revisit trigger {fmt_int(REVISIT_OPS_PER_SECOND)} ops/s in jobs/s", fmt_int(trigger_jobs), "-"],
        ["measured ops/s ÷ trigger", f"{m_ops / REVISIT_OPS_PER_SECOND:.1f}x", "-"],
        ["ops/s at 100 % Valkey CPU (linear extrapolation, rough)", fmt_int(capacity_ops), "-"],
    ]
    top = sorted(samples[-1]["calls"].items(), key=lambda kv: -kv[1])[:8]
    notes = [
        f"BullMQ {_package_version('bullmq')} / ioredis {_package_version('ioredis')}, "
        f"{runs} run(s) of {fmt_int(jobs)} jobs after a warm-up; {PRODUCERS} concurrent producers, "
        f"worker concurrency {CONCURRENCY}, no-op processor, removeOnComplete {{count: 1000}}; producer and "
        "worker share one Node process on the same 2 cores as Valkey, "
        + (
            f"and Valkey is near saturation ({100 * m_busy:.0f} % CPU)."
            if m_busy >= 0.7
            else f"which is the bottleneck, not Valkey ({100 * m_busy:.0f} % CPU)."
        ),
        "Most frequent commands per job: "
        + ", ".join(f"{cmd} {n / samples[-1]['jobs']:.1f}" for cmd, n in top)
        + " (INFO commandstats; commands inside Lua scripts included).",
    ]
    data = {"runs": samples, "jobs_per_s": jobs_per_s, "commands_per_job": cmds_per_job, "ops_per_s": ops_per_s}
    return Result(
        name="bullmq",
        title="3. BullMQ: jobs/s end to end vs the ADR's 10k ops/s revisit trigger",
        command=command_line("bullmq", opts),
        machine=mach,
        headers=["measure", "median", "runs min-max"],
        rows=rows,
        notes=notes,
        data=data,
        seconds=time.perf_counter() - started,
    )


def _package_version(name: str) -> str:
    path = REPO / "node_modules" / name / "package.json"
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return "?"
