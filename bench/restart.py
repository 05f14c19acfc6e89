"""Benchmark 4, restart: seconds from starting the rendered container to its first passing
readiness probe (the rendered `probe.sh ready`, run through harness/podrunner.py), as the dataset
grows, with the rendered `aof-use-rdb-preamble yes` and with `no`.

For each size and mode: start the rendered container with the mode appended to its args
(`--aof-use-rdb-preamble yes|no`), fill it with 256-byte incompressible string values from a Lua
script (AOF switched off meanwhile) until `used_memory` reaches the size, switch the AOF back on
(`CONFIG SET appendonly yes` rewrites the whole dataset into the AOF's base file: an RDB body with
the preamble, SET commands without), stop it with SIGTERM, evict the AOF files from the page cache
(`posix_fadvise DONTNEED`, so the load reads the disk as after a node restart), then start the
rendered container again and poll its readiness probe every 20 ms. `maxmemory` is raised to
2 GiB through the entrypoint's fallback variable so that the 1 GiB dataset fits; it does not
change how fast a file loads.
"""

from __future__ import annotations

import base64
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from ._common import (
    BENCH_DIR,
    GIB,
    MIB,
    Options,
    Result,
    command_line,
    linear_fit,
    machine,
    machine_line,
    median,
)
from ._valkey import cli, info, rendered_container, rendered_pod, wait_rewrite_done, workdir

VALUE_BYTES = 256
# Session-token-like values: 256-byte slices of a random base64 blob. DEBUG POPULATE is not used
# because its values are zero-padded and the RDB base compresses them about 13 times (LZF), which
# would make the preamble restarts unrealistically cheap.
FILL_LUA = """
local prefix, first, count, size, blob = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local span = #blob - size
for i = first, first + count - 1 do
  local offset = (i * 7919) % span + 1
  redis.call('SET', prefix .. i, string.sub(blob, offset, offset + size - 1))
end
return count
"""
MODES = ("yes", "no")  # aof-use-rdb-preamble: rendered, then off
FULL_SIZES_MIB = (64, 256, 512, 1024)
QUICK_SIZES_MIB = (2, 4, 8, 16)
MAXMEMORY_FOR_BENCH = 2 * GIB
PLOT = BENCH_DIR / "restart_time.png"

# Startup-budget rule (see README): safety factor over this machine's worst case, and a floor.
SAFETY = 3.0
FLOOR_SECONDS = 60
MAXMEMORY_SHARE = 0.8
AOF_REWRITE_MIN_BYTES = 64 * MIB  # auto-aof-rewrite-min-size 64mb (rendered)


def _used_memory(port: int) -> int:
    return int(info(port, "memory")["used_memory"])


def _populate(port: int, target: int) -> int:
    """Fill with FILL_LUA batches until used_memory reaches `target`; returns the key count.
    The AOF is switched off while filling and on again after (which writes the base file)."""
    cli(port, "config", "set", "appendonly", "no")
    sha = cli(port, "script", "load", FILL_LUA).strip()
    blob = base64.b64encode(os.urandom(48 * 1024)).decode()
    keys = 0
    batch = max(100, min(20_000, target // 2 // (VALUE_BYTES + 100)))
    while True:
        cli(port, "evalsha", sha, "0", "k:", str(keys), str(batch), str(VALUE_BYTES), blob, timeout=900)
        keys += batch
        used = _used_memory(port)
        if used >= target * 0.99:
            break
        batch = max(100, min(20_000, int((target - used) / max(used / keys, 1.0)) + 1))
    cli(port, "config", "set", "appendonly", "yes")  # starts the rewrite that writes the base file
    return keys


def _evict_from_page_cache(directory: Path) -> int:
    """fsync and drop the page cache of every file below `directory` (our files only)."""
    total = 0
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                total += os.fstat(fd).st_size
            finally:
                os.close(fd)
    return total


def _load_seconds(log: str) -> float | None:
    match = re.findall(r"DB loaded from append only file: ([0-9.]+) seconds", log)
    return float(match[-1]) if match else None


def _timed_restart(pod: Any, timeout: float) -> float:
    """Start the container and poll the rendered readiness probe until it passes."""
    start = time.perf_counter()
    pod.start()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if not pod.running:
            raise RuntimeError(f"valkey exited with {pod.returncode} while loading:\n{pod.logs()[-2000:]}")
        if pod.probe("readiness").returncode == 0:
            return time.perf_counter() - start
        time.sleep(0.02)
    raise RuntimeError(f"not ready within {timeout}s:\n{pod.logs()[-2000:]}")


def _measure(tmp: Path, size: int, mode: str, repeats: int) -> dict[str, Any]:
    args = ("--aof-use-rdb-preamble", mode)
    env = {"VALKEY_MAXMEMORY_FALLBACK_BYTES": str(MAXMEMORY_FOR_BENCH)}
    directory = tmp / f"{mode}-{size >> 20}"
    with rendered_pod(directory, extra_args=args, extra_env=env) as pod:
        keys = _populate(pod.port, size)
        used = _used_memory(pod.port)
        wait_rewrite_done(pod.port, timeout=900)
        pod.stop(timeout=120)
        aof_dir = pod.data_dir / "appendonlydir"
        files = {p.name: p.stat().st_size for p in sorted(aof_dir.iterdir())}
        ready: list[float] = []
        loads: list[float] = []
        for _ in range(repeats):
            _evict_from_page_cache(aof_dir)
            ready.append(_timed_restart(pod, timeout=1800))
            load = _load_seconds(pod.logs())
            if load is not None:
                loads.append(load)
            loaded = int(cli(pod.port, "dbsize").strip())
            if loaded != keys:
                raise RuntimeError(f"restart loaded {loaded} keys, expected {keys}:\n{pod.logs()[-2000:]}")
            pod.stop(timeout=120)
    base = sum(n for name, n in files.items() if ".base." in name)
    return {
        "mode": mode,
        "target_bytes": size,
        "used_memory": used,
        "keys": keys,
        "files": files,
        "base_bytes": base,
        "ready_seconds": ready,
        "load_seconds": loads,
    }


def _plot(points: list[dict[str, Any]], fits: dict[str, tuple[float, float]], path: Path, subtitle: str) -> None:
    import matplotlib  # noqa: PLC0415 - dev dependency, only this benchmark draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    styles = {
        "yes": ("tab:blue", "o", "aof-use-rdb-preamble yes (rendered)"),
        "no": ("tab:red", "s", "aof-use-rdb-preamble no"),
    }
    for mode in MODES:
        color, marker, label = styles[mode]
        pts = sorted((p for p in points if p["mode"] == mode), key=lambda p: p["used_memory"])
        xs = [p["used_memory"] / MIB for p in pts]
        ys = [median(p["ready_seconds"]) for p in pts]
        slope, intercept = fits[mode]
        ax.plot(xs, ys, marker=marker, color=color, linestyle="none", label=f"{label}: {slope:.1f} s/GiB")
        ax.plot([0, max(xs)], [intercept, intercept + slope * max(xs) / 1024], color=color, linewidth=1, alpha=0.6)
    ax.set_xlabel("dataset (Valkey used_memory), MiB")
    ax.set_ylabel("start → readiness probe passes, s")
    ax.set_title("Valkey restart time of the rendered container, cold page cache")
    ax.grid(True, alpha=0.3)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    fig.text(0.01, 0.01, subtitle, fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def bench(opts: Options) -> Result:
    started = time.perf_counter()
    mach = machine()
    sizes = [s * MIB for s in (QUICK_SIZES_MIB if opts.quick else FULL_SIZES_MIB)]
    repeats = 1 if opts.quick else 3
    points: list[dict[str, Any]] = []
    with workdir("bench-restart-") as tmp:
        for size in sizes:
            for mode in MODES:
                points.append(_measure(Path(tmp), size, mode, repeats))

    fits: dict[str, tuple[float, float]] = {}
    for mode in MODES:
        pts = [p for p in points if p["mode"] == mode]
        fits[mode] = linear_fit([p["used_memory"] / GIB for p in pts], [median(p["ready_seconds"]) for p in pts])

    # The budget: the worst restart of the rendered config is the RDB base of a dataset at
    # maxmemory plus replaying an incremental AOF that grew to the base's size (rewrite at +100 %),
    # or to auto-aof-rewrite-min-size for small bases. Command replay costs what the no-preamble
    # runs cost per byte of AOF.
    yes = [p for p in points if p["mode"] == "yes"]
    no = [p for p in points if p["mode"] == "no"]
    replay_s_per_byte = linear_fit([p["base_bytes"] for p in no], [median(p["ready_seconds"]) for p in no])[0]
    rdb_bytes_per_used = median([p["base_bytes"] / p["used_memory"] for p in yes])
    per_gib_limit = MAXMEMORY_SHARE * (fits["yes"][0] + replay_s_per_byte * rdb_bytes_per_used * GIB)
    small_replay = replay_s_per_byte * AOF_REWRITE_MIN_BYTES
    rendered_limit = _rendered_limit_gib()
    # the rule, rounded up to 5 s per GiB: max(FLOOR, rule_per_gib x memory_limit in GiB)
    rule_per_gib = math.ceil(SAFETY * per_gib_limit / 5) * 5
    budget_rendered = max(FLOOR_SECONDS, math.ceil(rule_per_gib * rendered_limit))

    rows = []
    for size in sizes:
        pair = {p["mode"]: p for p in points if p["target_bytes"] == size}
        y, n = pair["yes"], pair["no"]
        rows.append(
            [
                f"{size >> 20} MiB",
                f"{y['used_memory'] / MIB:.0f} MiB, {y['keys'] / 1e6:.2f} M keys",
                f"{median(y['ready_seconds']):.2f}",
                f"{median(y['load_seconds']):.2f}" if y["load_seconds"] else "-",
                f"{y['base_bytes'] / MIB:.0f}",
                f"{median(n['ready_seconds']):.2f}",
                f"{median(n['load_seconds']):.2f}" if n["load_seconds"] else "-",
                f"{n['base_bytes'] / MIB:.0f}",
                f"{median(n['ready_seconds']) / max(median(y['ready_seconds']), 1e-9):.1f}x",
            ]
        )
    plot_path = PLOT if not opts.quick and opts.out.resolve() == (BENCH_DIR / "out").resolve() else opts.out / PLOT.name
    _plot(points, fits, plot_path, f"{command_line('restart', opts)} · {machine_line(mach)}")
    notes = [
        f"Median of {repeats} restart(s) per point; ready = process start to first passing `probe.sh ready` "
        "(polled every 20 ms; the kubelet polls every periodSeconds, so add up to one period); load = Valkey's "
        "own 'DB loaded from append only file' time.",
        f"Fit, seconds per GiB of used_memory: preamble yes {fits['yes'][0]:.2f} s/GiB (+{fits['yes'][1]:.2f} s), "
        f"preamble no {fits['no'][0]:.2f} s/GiB (+{fits['no'][1]:.2f} s); command replay "
        f"{replay_s_per_byte * GIB:.2f} s per GiB of AOF; RDB base = {rdb_bytes_per_used:.2f} x used_memory.",
        f"Worst rendered restart per GiB of memory_limit: {MAXMEMORY_SHARE} x ({fits['yes'][0]:.2f} + "
        f"{replay_s_per_byte * GIB:.2f} x {rdb_bytes_per_used:.2f}) = {per_gib_limit:.2f} s/GiB "
        f"(RDB base at maxmemory + an incremental AOF as large as the base, the +100 % rewrite threshold).",
        f"Startup budget rule: {SAFETY:g} x worst case = {SAFETY * per_gib_limit:.1f} s/GiB, rounded up: "
        f"max({FLOOR_SECONDS} s, {rule_per_gib} s x memory_limit in GiB); for the rendered {rendered_limit:g} GiB: "
        f"{budget_rendered} s; the fixed 5 min default covers up to {300 / rule_per_gib:.0f} GiB. Small datasets: "
        f"replaying an incremental AOF at auto-aof-rewrite-min-size (64 MiB) takes {small_replay:.1f} s, "
        "far below the floor.",
    ]
    data = {
        "points": points,
        "fits_s_per_gib_used": {m: {"slope": s, "intercept": i} for m, (s, i) in fits.items()},
        "replay_s_per_gib_aof": replay_s_per_byte * GIB,
        "rdb_bytes_per_used_byte": rdb_bytes_per_used,
        "worst_s_per_gib_limit": per_gib_limit,
        "safety": SAFETY,
        "floor_seconds": FLOOR_SECONDS,
        "rule_s_per_gib_limit": rule_per_gib,
        "min_size_incr_replay_s": small_replay,
        "budget_for_rendered_limit_s": budget_rendered,
        "plot": str(plot_path),
    }
    return Result(
        name="restart",
        title="4. Restart: start → readiness as the dataset grows",
        command=command_line("restart", opts),
        machine=mach,
        headers=[
            "size",
            "dataset",
            "preamble yes: ready s",
            "load s",
            "AOF base MiB",
            "preamble no: ready s",
            "load s",
            "AOF base MiB",
            "no / yes",
        ],
        rows=rows,
        notes=notes,
        data=data,
        extra_md=f"![restart time vs dataset]({plot_path.name if plot_path == PLOT else plot_path})",
        seconds=time.perf_counter() - started,
    )


def _rendered_limit_gib() -> float:
    from ._common import podrunner  # noqa: PLC0415

    limit = rendered_container().get("resources", {}).get("limits", {}).get("memory", "1Gi")
    return float(podrunner().parse_quantity(limit)) / GIB
