"""Helpers shared by the benchmarks: the machine, timing, medians, tables and output files."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
DEFAULT_OUT = BENCH_DIR / "out"
CDK8S_CLI = REPO / "node_modules" / ".bin" / "cdk8s"
NODE_DIR = BENCH_DIR / "node"
MANIFEST = REPO / "dist" / "valkey.k8s.yaml"
PYTHON = sys.executable  # the venv's python when run as `.venv/bin/python -m bench`

MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Options:
    """What every benchmark receives: short mode, and where its files go."""

    quick: bool
    out: Path
    # synth, full mode: also time the whole test suite (--no-suite leaves it out)
    suite: bool = True


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for anything that imports cdk8s (jsii's Node 20 banner silenced)."""
    env = dict(os.environ)
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env.update(extra)
    return env


def command_line(name: str, opts: Options) -> str:
    """The one command that reproduces a benchmark's figures."""
    return (
        f".venv/bin/python -m bench {name}"
        + (" --quick" if opts.quick else "")
        + (" --no-suite" if name == "synth" and not opts.suite else "")
    )


# --- the machine -------------------------------------------------------------------------------


def _meminfo_bytes(key: str) -> int:
    with open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name == key:
                return int(rest.split()[0]) * 1024
    return 0


def _cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _tool_version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


def git_commit() -> str:
    """The checkout's commit (short), with ``+dirty`` when the work tree differs from it."""
    head = run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=False).stdout.strip() or "unknown"
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, check=False).stdout.strip()
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """Cores, memory and load of this machine, the date and the commit, recorded with every figure."""
    return {
        "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git_commit(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "mem_total_gib": round(_meminfo_bytes("MemTotal") / GIB, 1),
        "mem_available_gib": round(_meminfo_bytes("MemAvailable") / GIB, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def machine_line(m: Mapping[str, Any]) -> str:
    when = f"{m['started_utc']}, commit {m['commit']}, " if "started_utc" in m else ""
    return (
        f"{when}{m['nproc']} cores ({m['cpu']}), {m['mem_total_gib']} GiB RAM "
        f"({m['mem_available_gib']} GiB available), load {m['loadavg_1m']} at start, "
        f"Linux {m['kernel']}, Python {m['python']}"
    )


# --- numbers -----------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """min-max of a series, for the tables (shows how noisy a shared machine was)."""
    if not values:
        return "-"
    return f"{min(values):.2f}-{max(values):.2f}"


def fmt_int(value: float) -> str:
    return f"{round(value):,}".replace(",", " ")


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}"


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through the points."""
    if len(xs) < 2:
        return (ys[0] / xs[0] if xs and xs[0] else 0.0), 0.0
    result = statistics.linear_regression(xs, ys)
    return float(result.slope), float(result.intercept)


# --- processes ---------------------------------------------------------------------------------


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, raise with the output when it fails."""
    result = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} exited with {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return result


def timed(
    argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 600
) -> float:
    """Wall-clock seconds of one whole process (start to exit), output discarded."""
    start = time.perf_counter()
    run(argv, cwd=cwd, env=env, timeout=timeout)
    return time.perf_counter() - start


def podrunner() -> ModuleType:
    """harness/podrunner.py: runs the rendered StatefulSet's valkey container locally."""
    from harness import podrunner as module  # noqa: PLC0415 - root-only machinery, loaded when a benchmark needs it

    return module


# --- results -----------------------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Result:
    """One benchmark's table, with the command and machine that produced it."""

    name: str
    title: str
    command: str
    machine: dict[str, Any]
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    extra_md: str = ""
    seconds: float = 0.0

    def markdown(self, level: int = 3) -> str:
        parts = [
            f"{'#' * level} {self.title}",
            "",
            f"`{self.command}` · {machine_line(self.machine)} · took {self.seconds:.0f} s",
            "",
            md_table(self.headers, self.rows),
        ]
        if self.extra_md:
            parts += ["", self.extra_md]
        if self.notes:
            parts += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(parts) + "\n"

    def write(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{self.name}.md").write_text(self.markdown(), encoding="utf-8")
        payload = {
            "name": self.name,
            "title": self.title,
            "command": self.command,
            "machine": self.machine,
            "seconds": round(self.seconds, 1),
            "headers": self.headers,
            "rows": self.rows,
            "notes": self.notes,
            "data": self.data,
        }
        (out / f"{self.name}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
