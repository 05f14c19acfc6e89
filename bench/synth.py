"""Benchmark 1, synth: whole-process `cdk8s synth` of this project against the floor of a minimal
cdk8s app, plus `python main.py` alone, a phase profile of both, the cost of each further Valkey
in an app, and (full mode) the test suite.

The floor is the least any cdk8s-plus app pays: a temporary app that imports cdk8s,
cdk8s_plus_28 and constructs and synthesizes one ConfigMap, run by the same venv python through
the same CLI (`cdk8s synth --no-check-upgrade` into a temporary outdir). Runs are interleaved
(project, floor, floor, project, ...) so that load from other work on the machine hits both alike;
the figures are medians and the ratio is project / floor.

The cost of Valkeys as ratios to the floor (issue 16), in CPU time of the whole process tree (the
CLI, Python and the jsii Node runtime; other work on the machine moves it far less than wall time):
temporary apps of 1 and of 5 `Valkey(...)` (each with exporter queues and alerts), the 5 in one
chart or each in a chart of its own, with and without Sentinel, beside the floor and the floor
with 5 charts (what cdk8s itself charges for a further chart). All of them run once per round, in
a rotating order, and each ratio is the median over the rounds of that round's ratio:
- one Valkey / floor (goal <= 1.3);
- each further Valkey in the same chart: (t5 - t1) / 4 / floor (goal <= 4 %);
- each further Valkey in a chart of its own: ((t5 - t1) / 4 - (floor5 - floor) / 4) / floor
  (goal <= 4 %, net of the chart).
The phase profile of the apps of 1 and 5 Valkeys counts the jsii round trips each Valkey makes.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import (
    CDK8S_CLI,
    PYTHON,
    REPO,
    Options,
    Result,
    bench_env,
    command_line,
    machine,
    md_table,
    median,
    run,
    spread,
    timed,
)

TARGET_RATIO = 1.3
# Issue 16: in CPU time of the process tree, a one-Valkey app costs at most 1.3 floors, and each
# further Valkey (same chart, or its own chart net of the chart) at most 4 % of the floor.
TARGET_ONE_VALKEY_RATIO = 1.3
TARGET_FURTHER_VALKEY_SHARE = 0.04
VALKEY_COUNTS = (1, 5)
PHASES_SCRIPT = Path(__file__).resolve().parent / "_synth_phases.py"

FLOOR_APP = '''\
"""The floor: the least a cdk8s-plus app pays to synthesize one object."""

import cdk8s
import cdk8s_plus_28  # noqa: F401
import constructs  # noqa: F401
from cdk8s_plus_28 import k8s

app = cdk8s.App()
chart = cdk8s.Chart(app, "floor")
k8s.KubeConfigMap(chart, "config", data={"key": "value"})
app.synth()
'''


FLOOR_CHARTS_APP = '''\
"""The floor with {count} charts: what cdk8s itself charges for a further chart."""

import cdk8s
import cdk8s_plus_28  # noqa: F401
import constructs  # noqa: F401
from cdk8s_plus_28 import k8s

app = cdk8s.App()
for index in range({count}):
    chart = cdk8s.Chart(app, f"floor-{{index}}")
    k8s.KubeConfigMap(chart, "config", data={{"key": "value"}})
app.synth()
'''


VALKEYS_APP = '''\
"""{count} Valkey(s), each as production sets one up (exporter queues, alerts), in one chart or
each in a chart of its own ({own_charts}), with Sentinel ({sentinel})."""

import cdk8s

from cdk8s_valkey import AlertOptions, ExporterOptions, SentinelOptions, Valkey

COUNT = {count}
OWN_CHARTS = {own_charts}
SENTINEL = {sentinel}
LABELS = {{"release": "kube-prometheus-stack"}}


def build(app: cdk8s.App, count: int) -> None:
    chart = cdk8s.Chart(app, "valkeys", namespace="apps")
    for index in range(count):
        if OWN_CHARTS and index:
            chart = cdk8s.Chart(app, f"valkeys-{{index}}", namespace="apps")
        Valkey(
            chart,
            f"cache-{{index}}",
            memory_limit=cdk8s.Size.gibibytes(1),
            exporter=ExporterOptions(bullmq_queues=("emails", "webhooks"), service_monitor_labels=LABELS),
            alerts=AlertOptions(rule_labels=LABELS),
            sentinel=SentinelOptions() if SENTINEL else None,
        )


if __name__ == "__main__":
    app = cdk8s.App()
    build(app, COUNT)
    app.synth()
'''


def _write_app(directory: Path, source: str) -> Path:
    directory.mkdir()
    (directory / "main.py").write_text(source, encoding="utf-8")
    (directory / "cdk8s.yaml").write_text(f"language: python\napp: {PYTHON} main.py\n", encoding="utf-8")
    return directory


def _write_floor_app(directory: Path) -> None:
    _write_app(directory, FLOOR_APP)


def _python_env(tmp: Path, *, bytecode: bool, **extra: str) -> dict[str, str]:
    """Python's default (bytecode cached, here in a private prefix so the checkout gets no
    __pycache__ and both apps start from the same empty cache) or no bytecode at all, as
    PYTHONDONTWRITEBYTECODE=1 (set on this machine) makes it: then our modules and the generated
    CRD bindings are compiled on every run, while site-packages keeps pip's .pyc files."""
    env = bench_env(**extra)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    else:
        env.pop("PYTHONPYCACHEPREFIX", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _alternate(
    apps: dict[str, tuple[list[str], Path]],
    runs: int,
    *,
    tmp: Path,
    bytecode: bool = True,
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Whole-process wall times of two commands (name -> argv, cwd), alternated ABBA so that load
    from other work on the machine hits both alike; each run writes into a fresh outdir. With
    ``cpu``, also the CPU seconds of each run's whole process tree (CLI, Python, Node)."""
    times: dict[str, list[float]] = {name: [] for name in apps}
    names = list(apps)
    for i in range(runs):
        for which in names if i % 2 == 0 else names[::-1]:
            argv, cwd = apps[which]
            outdir = Path(tempfile.mkdtemp(prefix=f"{which}-", dir=tmp))
            argv = [a.replace("{outdir}", str(outdir)) for a in argv]
            env = _python_env(tmp, bytecode=bytecode, CDK8S_OUTDIR=str(outdir))
            cpu_before = _children_cpu()
            times[which].append(timed(argv, cwd=cwd, env=env))
            if cpu is not None:
                cpu.setdefault(which, []).append(_children_cpu() - cpu_before)
            produced = list(outdir.glob("*.k8s.yaml"))
            if not produced:
                raise RuntimeError(f"{which}: no manifest written to {outdir}")
            shutil.rmtree(outdir)
    return times


def _interleaved(
    project: list[str], floor: list[str], runs: int, *, floor_dir: Path, tmp: Path, bytecode: bool = True
) -> dict[str, list[float]]:
    """This project (in the checkout) against the floor app."""
    return _alternate({"project": (project, REPO), "floor": (floor, floor_dir)}, runs, tmp=tmp, bytecode=bytecode)


def _phases(kind: str, runs: int, tmp: Path, app_dir: Path | None = None) -> tuple[list[dict[str, Any]], float, float]:
    """Median phase times of `kind` over `runs` fresh interpreters: (phases, inner s, wall s)."""
    samples: list[dict[str, Any]] = []
    walls: list[float] = []
    for _ in range(runs):
        outdir = Path(tempfile.mkdtemp(prefix=f"phases-{kind}-", dir=tmp))
        start = time.perf_counter()
        argv = [PYTHON, str(PHASES_SCRIPT), kind, str(outdir), *([str(app_dir)] if app_dir else [])]
        result = run(argv, cwd=REPO, env=_python_env(tmp, bytecode=True))
        walls.append(time.perf_counter() - start)
        samples.append(json.loads(result.stdout.strip().splitlines()[-1]))
        shutil.rmtree(outdir)
    phases = []
    for i, first in enumerate(samples[0]["phases"]):
        phases.append(
            {
                "phase": first["phase"],
                "seconds": median([s["phases"][i]["seconds"] for s in samples]),
                "jsii_calls": first["jsii_calls"],
                "jsii_seconds": median([s["phases"][i]["jsii_seconds"] for s in samples]),
                "runtime_start_seconds": median([s["phases"][i]["runtime_start_seconds"] for s in samples]),
            }
        )
    return phases, median([s["inner_seconds"] for s in samples]), median(walls)


def _phase(phases: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    return next(p for p in phases if p["phase"].startswith(prefix))


def _valkeys_app(tmp: Path, count: int, *, own_charts: bool = False, sentinel: bool = False) -> Path:
    name = f"valkeys-{count}{'-charts' if own_charts else ''}{'-sentinel' if sentinel else ''}"
    return _write_app(tmp / name, VALKEYS_APP.format(count=count, own_charts=own_charts, sentinel=sentinel))


# The apps of the ratio matrix: name -> (directory name, source)
def _ratio_apps(tmp: Path) -> dict[str, Path]:
    few, many = VALKEY_COUNTS
    apps = {
        "floor": tmp / "floor-app",  # written by bench()
        f"floor x{many} charts": _write_app(tmp / "floor-charts", FLOOR_CHARTS_APP.format(count=many)),
    }
    for sentinel in (False, True):
        tag = " sentinel" if sentinel else ""
        apps[f"{few}{tag}"] = _valkeys_app(tmp, few, sentinel=sentinel)
        apps[f"{many}{tag}"] = _valkeys_app(tmp, many, sentinel=sentinel)
        apps[f"{many}{tag} own charts"] = _valkeys_app(tmp, many, own_charts=True, sentinel=sentinel)
    return apps


def _ratios(cli: list[str], rounds: int, tmp: Path, *, warm_up: bool = True) -> dict[str, Any]:
    """CPU seconds of the whole process tree of `cdk8s synth` for every app of the matrix, one run of
    each per round in a rotating order after an untimed round (``warm_up``), and the ratios per round."""
    few, many = VALKEY_COUNTS
    steps = many - few
    apps = _ratio_apps(tmp)
    names = list(apps)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    first = 0 if warm_up else 1
    for round_ in range(first, rounds + 1):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            outdir = Path(tempfile.mkdtemp(prefix="ratio-", dir=tmp))
            argv = [a.replace("{outdir}", str(outdir)) for a in cli]
            env = _python_env(tmp, bytecode=True, CDK8S_OUTDIR=str(outdir))
            before = _children_cpu()
            seconds = timed(argv, cwd=apps[name], env=env)
            if round_:  # round 0 warms page cache and bytecode, untimed
                cpu[name].append(_children_cpu() - before)
                wall[name].append(seconds)
            if not list(outdir.glob("*.k8s.yaml")):
                raise RuntimeError(f"{name}: no manifest written to {outdir}")
            shutil.rmtree(outdir)

    def per_round(fn: Any) -> list[float]:
        return [fn({name: cpu[name][i] for name in names}) for i in range(rounds)]

    chart_cost = per_round(lambda c: (c[f"floor x{many} charts"] - c["floor"]) / steps)
    ratios: dict[str, list[float]] = {
        "chart / floor": per_round(lambda c: (c[f"floor x{many} charts"] - c["floor"]) / steps / c["floor"])
    }
    for tag in ("", " sentinel"):
        ratios[f"one Valkey{tag} / floor"] = per_round(lambda c, t=tag: c[f"{few}{t}"] / c["floor"])
        ratios[f"further Valkey{tag}, same chart / floor"] = per_round(
            lambda c, t=tag: (c[f"{many}{t}"] - c[f"{few}{t}"]) / steps / c["floor"]
        )
        ratios[f"further Valkey{tag}, own chart / floor"] = per_round(
            lambda c, t=tag: (
                (
                    (c[f"{many}{t} own charts"] - c[f"{few}{t}"]) / steps
                    - (c[f"floor x{many} charts"] - c["floor"]) / steps
                )
                / c["floor"]
            )
        )
    return {
        "rounds": rounds,
        "apps": names,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "chart_cost_cpu_seconds": chart_cost,
        "ratios": ratios,
        "medians": {key: median(values) for key, values in ratios.items()},
    }


def _ratios_md(result: dict[str, Any]) -> str:
    few, many = VALKEY_COUNTS
    cpu, wall = result["cpu_seconds"], result["wall_seconds"]
    app_rows = [
        [name, f"{median(cpu[name]):.2f}", spread(cpu[name]), f"{median(wall[name]):.2f}"] for name in result["apps"]
    ]
    goals = {
        "chart / floor": None,
        "one Valkey / floor": TARGET_ONE_VALKEY_RATIO,
        "one Valkey sentinel / floor": TARGET_ONE_VALKEY_RATIO,
    }
    ratio_rows = []
    for key, values in result["ratios"].items():
        goal = goals.get(key, TARGET_FURTHER_VALKEY_SHARE)
        value = median(values)
        share = key.startswith("further") or key.startswith("chart")
        shown = f"{100 * value:.1f} %" if share else f"{value:.2f}"
        runs = f"{100 * min(values):.1f}-{100 * max(values):.1f} %" if share else f"{min(values):.2f}-{max(values):.2f}"
        if goal is None:
            verdict, goal_text = "-", "- (cdk8s' own cost)"
        else:
            verdict = "within" if value <= goal else "**ABOVE**"
            goal_text = f"≤ {100 * goal:.0f} %" if share else f"≤ {goal}"
        ratio_rows.append([key.replace(" sentinel", " with Sentinel"), f"**{shown}**", runs, goal_text, verdict])
    return "\n".join(
        [
            f"Cost of Valkeys as ratios to the floor (issue 16), in CPU time of the whole `cdk8s synth` process tree "
            f"(CLI, Python, Node): temporary apps of {few} and {many} `Valkey(...)` (2 BullMQ queues, ServiceMonitor "
            f"labels and alerts each), the {many} in one chart or each in a chart of its own, with and without "
            f"Sentinel; {result['rounds']} rounds of every app in a rotating order after an untimed round; each "
            "ratio is the median over the rounds of that round's ratio (min-max beside it):",
            "",
            md_table(["ratio", "median", "rounds min-max", "goal", "verdict"], ratio_rows),
            "",
            md_table(["app", "CPU s (median)", "CPU s min-max", "wall s (median)"], app_rows),
            "",
            f"Further Valkey, same chart: (t{many} - t{few}) / {many - few} / floor. Own chart: the same minus what "
            f"cdk8s charges for a further chart ((floor x{many} charts - floor) / {many - few}), / floor.",
        ]
    )


def _per_valkey(phase_runs: int, tmp: Path) -> dict[str, Any]:
    """Where each further Valkey's time goes: the phase profile of the apps of 5 and of 1 Valkey."""
    few, many = VALKEY_COUNTS
    phase_dir = tmp / "phases"
    phase_dir.mkdir()
    dirs = {count: _valkeys_app(phase_dir, count) for count in VALKEY_COUNTS}
    phases = {count: _phases("valkeys", phase_runs, tmp, dirs[count]) for count in VALKEY_COUNTS}
    steps = many - few

    def profile(prefix: str) -> dict[str, Any]:
        by_count = {count: _phase(phases[count][0], prefix) for count in VALKEY_COUNTS}
        return {
            "ms": {count: by_count[count]["seconds"] * 1000 for count in VALKEY_COUNTS},
            "jsii_calls": {count: by_count[count]["jsii_calls"] for count in VALKEY_COUNTS},
            "jsii_ms": {count: by_count[count]["jsii_seconds"] * 1000 for count in VALKEY_COUNTS},
            "ms_per_valkey": (by_count[many]["seconds"] - by_count[few]["seconds"]) * 1000 / steps,
            "jsii_calls_per_valkey": (by_count[many]["jsii_calls"] - by_count[few]["jsii_calls"]) / steps,
            "jsii_ms_per_valkey": (by_count[many]["jsii_seconds"] - by_count[few]["jsii_seconds"]) * 1000 / steps,
        }

    return {
        "counts": list(VALKEY_COUNTS),
        "phase_runs": phase_runs,
        "build": profile("build the chart"),
        "synth": profile("app.synth()"),
        "inner_ms_per_valkey": (phases[many][1] - phases[few][1]) * 1000 / steps,
        "wall_ms_per_valkey": (phases[many][2] - phases[few][2]) * 1000 / steps,
    }


def _per_valkey_md(cost: dict[str, Any]) -> str:
    few, many = cost["counts"]
    build, synth = cost["build"], cost["synth"]
    rows = [
        [
            "building the chart (Python and jsii), ms",
            f"{build['ms'][few]:.0f}",
            f"{build['ms'][many]:.0f}",
            f"{build['ms_per_valkey']:.0f} ms",
        ],
        [
            "jsii round trips while building (waiting on Node, ms)",
            f"{build['jsii_calls'][few]} ({build['jsii_ms'][few]:.0f} ms)",
            f"{build['jsii_calls'][many]} ({build['jsii_ms'][many]:.0f} ms)",
            f"**{build['jsii_calls_per_valkey']:.0f}** ({build['jsii_ms_per_valkey']:.0f} ms)",
        ],
        [
            "`app.synth()` (Node resolves, sorts and writes the YAML), ms",
            f"{synth['ms'][few]:.0f}",
            f"{synth['ms'][many]:.0f}",
            f"{synth['ms_per_valkey']:.0f} ms",
        ],
        [
            "the instrumented interpreter, start to exit, ms",
            "-",
            "-",
            f"{cost['wall_ms_per_valkey']:.0f} ms",
        ],
    ]
    return "\n".join(
        [
            f"Where each further Valkey's time goes (phase profile of the apps of {many} and {few} Valkeys in one "
            f"chart, median of {cost['phase_runs']} instrumented runs each):",
            "",
            md_table(["measure", f"{few} Valkey", f"{many} Valkeys", f"per further Valkey (/{many - few})"], rows),
        ]
    )


def _our_imports(tmp: Path) -> list[dict[str, Any]]:
    """`python -X importtime` of cdk8s_valkey after cdk8s and cdk8s_plus_28: our modules' cost."""
    code = "import cdk8s, cdk8s_plus_28, constructs\nimport cdk8s_valkey"
    result = run([PYTHON, "-X", "importtime", "-c", code], cwd=REPO, env=_python_env(tmp, bytecode=True))
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and match.group(4).startswith("cdk8s_valkey"):
            rows.append(
                {
                    "module": match.group(4),
                    "self_ms": int(match.group(1)) / 1000,
                    "cumulative_ms": int(match.group(2)) / 1000,
                }
            )
    return rows


def _test_suite(tmp: Path) -> dict[str, Any]:
    start = time.perf_counter()
    result = run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=REPO, env=bench_env(), timeout=3600, check=False
    )
    seconds = time.perf_counter() - start
    tail = [line for line in result.stdout.strip().splitlines() if line.strip()]
    return {"seconds": seconds, "exit_code": result.returncode, "summary": tail[-1] if tail else ""}


def bench(opts: Options) -> Result:
    started = time.perf_counter()
    runs = 1 if opts.quick else 9
    phase_runs = 1 if opts.quick else 5
    mach = machine()
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp_name:
        tmp = Path(tmp_name)
        floor_dir = tmp / "floor-app"
        _write_floor_app(floor_dir)
        cli = [str(CDK8S_CLI), "synth", "--no-check-upgrade", "--output", "{outdir}"]
        # one untimed round each: page cache, __pycache__, the CLI's own caches
        _interleaved(cli, cli, 1, floor_dir=floor_dir, tmp=tmp)
        synth = _interleaved(cli, cli, runs, floor_dir=floor_dir, tmp=tmp)
        python = _interleaved([PYTHON, "main.py"], [PYTHON, "main.py"], runs, floor_dir=floor_dir, tmp=tmp)
        no_bytecode = _interleaved(cli, cli, runs, floor_dir=floor_dir, tmp=tmp, bytecode=False)
        project_phases, project_inner, project_wall = _phases("project", phase_runs, tmp)
        floor_phases, floor_inner, floor_wall = _phases("floor", phase_runs, tmp)
        ours = _our_imports(tmp)
        # quick: one round, no warm-up (the earlier runs warmed the CLI and cdk8s' bytecode)
        ratios = _ratios(cli, 1 if opts.quick else 7, tmp, warm_up=not opts.quick)
        per_valkey = _per_valkey(phase_runs, tmp)
        suite = _test_suite(tmp) if opts.suite and not opts.quick else None

    synth_ratio = median(synth["project"]) / median(synth["floor"])
    python_ratio = median(python["project"]) / median(python["floor"])
    no_bytecode_ratio = median(no_bytecode["project"]) / median(no_bytecode["floor"])
    rows = [
        [
            "`cdk8s synth` whole process",
            f"{median(synth['project']):.2f}",
            f"{median(synth['floor']):.2f}",
            f"**{synth_ratio:.2f}**",
            f"{spread(synth['project'])} / {spread(synth['floor'])}",
        ],
        [
            "`python main.py` alone",
            f"{median(python['project']):.2f}",
            f"{median(python['floor']):.2f}",
            f"{python_ratio:.2f}",
            f"{spread(python['project'])} / {spread(python['floor'])}",
        ],
    ]
    rows.append(
        [
            "`cdk8s synth` with `PYTHONDONTWRITEBYTECODE=1` (as this machine's environment sets it)",
            f"{median(no_bytecode['project']):.2f}",
            f"{median(no_bytecode['floor']):.2f}",
            f"{no_bytecode_ratio:.2f}",
            f"{spread(no_bytecode['project'])} / {spread(no_bytecode['floor'])}",
        ]
    )
    if suite is not None:
        rows.append(
            [
                "full test suite `.venv/bin/python -m pytest -q`",
                f"{suite['seconds']:.0f}",
                "-",
                "-",
                f"1 run, exit {suite['exit_code']}: {suite['summary']}",
            ]
        )

    # where the time goes: phases of one synth, project beside floor
    cli_project = median(synth["project"]) - median(python["project"])
    cli_floor = median(synth["floor"]) - median(python["floor"])
    by_name = {p["phase"]: p for p in floor_phases}
    phase_rows = [
        [
            "cdk8s CLI (Node start, load cdk8s-cli, spawn the app, collect output)",
            f"{cli_project * 1000:.0f}",
            f"{cli_floor * 1000:.0f}",
            "-",
        ],
        [
            "interpreter start-up and exit (exit stops the jsii Node runtime)",
            f"{(project_wall - project_inner) * 1000:.0f}",
            f"{(floor_wall - floor_inner) * 1000:.0f}",
            "-",
        ],
    ]
    for phase in project_phases:
        other = by_name.get(phase["phase"])
        label = phase["phase"]
        if phase["runtime_start_seconds"]:
            label += f" — of which Node runtime start {phase['runtime_start_seconds'] * 1000:.0f} ms"
        phase_rows.append(
            [
                label,
                f"{phase['seconds'] * 1000:.0f}",
                f"{other['seconds'] * 1000:.0f}" if other else "-",
                f"{phase['jsii_calls']} / {other['jsii_calls'] if other else '-'}"
                + f" ({phase['jsii_seconds'] * 1000:.0f} ms / {other['jsii_seconds'] * 1000 if other else 0:.0f} ms)",
            ]
        )
    ours_top = sorted(ours, key=lambda r: -r["self_ms"])[:6]
    ours_total = next((r["cumulative_ms"] for r in ours if r["module"] == "cdk8s_valkey"), 0.0)
    extra = "\n".join(
        [
            f"Where the time goes (median of {phase_runs} instrumented runs, ms; jsii calls are round trips "
            "to the Node runtime, with the time spent waiting on them):",
            "",
            md_table(["phase", "project ms", "floor ms", "jsii calls project / floor"], phase_rows),
            "",
            f"Our imports (`python -X importtime`, after cdk8s and cdk8s_plus_28): cdk8s_valkey {ours_total:.0f} ms "
            "in all; largest self times: "
            + ", ".join(f"`{r['module']}` {r['self_ms']:.1f} ms" for r in ours_top)
            + ".",
            "",
            _ratios_md(ratios),
            "",
            _per_valkey_md(per_valkey),
        ]
    )
    verdict = "within" if synth_ratio <= TARGET_RATIO else "ABOVE"
    notes = [
        f"Target: synth ratio ≤ {TARGET_RATIO} — this run is {verdict} it ({synth_ratio:.2f}).",
        *(
            []
            if suite is not None or opts.quick
            else ["No test-suite row: run with `--no-suite` (the suite runs in CI; timing it here costs its length)."]
        ),
        f"{runs} runs of each, interleaved, after one untimed warm-up round; medians in seconds; "
        "last column min-max (project / floor). First two rows and the profile: Python's default bytecode "
        "cache (in a private PYTHONPYCACHEPREFIX, warmed by the first round).",
    ]
    data = {
        "runs": runs,
        "synth_seconds": synth,
        "python_seconds": python,
        "synth_ratio": synth_ratio,
        "python_ratio": python_ratio,
        "no_bytecode_seconds": no_bytecode,
        "no_bytecode_ratio": no_bytecode_ratio,
        "project_phases": project_phases,
        "floor_phases": floor_phases,
        "project_phase_wall": project_wall,
        "floor_phase_wall": floor_wall,
        "our_imports": ours,
        "ratios": ratios,
        "per_valkey": per_valkey,
        "test_suite": suite,
    }
    return Result(
        name="synth",
        title="1. Synth: project vs minimal cdk8s app",
        command=command_line("synth", opts),
        machine=mach,
        headers=["measure", "project s", "floor s", "ratio", "runs min-max s"],
        rows=rows,
        notes=notes,
        data=data,
        extra_md=extra,
        seconds=time.perf_counter() - started,
    )
