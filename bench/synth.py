"""Benchmark 1, synth: whole-process `cdk8s synth` of this project against the floor of a minimal
cdk8s app, plus `python main.py` alone, a phase profile of both, the cost of each further Valkey
in an app, and (full mode) the test suite.

The floor is the least any cdk8s-plus app pays: a temporary app that imports cdk8s,
cdk8s_plus_28 and constructs and synthesizes one ConfigMap, run by the same venv python through
the same CLI (`cdk8s synth --no-check-upgrade` into a temporary outdir). Runs are interleaved
(project, floor, floor, project, ...) so that load from other work on the machine hits both alike;
the figures are medians and the ratio is project / floor.

The cost of each further Valkey: two temporary apps that differ only in how many `Valkey(...)`
composites (each with exporter queues and alerts) one chart holds, 5 and 1, synthesized the same
way and interleaved; (t5 - t1) / 4 is what one more Valkey adds to a whole `cdk8s synth`. The
phase profile of both counts the jsii round trips each Valkey makes.
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
# Issue 12: each further Valkey in an app costs at most this much whole-process synth time.
TARGET_MS_PER_VALKEY = 40
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


VALKEYS_APP = '''\
"""{count} Valkey(s) in one chart, each as production sets one up: exporter queues, alerts."""

import cdk8s

from cdk8s_valkey import AlertOptions, ExporterOptions, Valkey

COUNT = {count}
LABELS = {{"release": "kube-prometheus-stack"}}


def build(app: cdk8s.App, count: int) -> None:
    chart = cdk8s.Chart(app, "valkeys", namespace="apps")
    for index in range(count):
        Valkey(
            chart,
            f"cache-{{index}}",
            memory_limit=cdk8s.Size.gibibytes(1),
            exporter=ExporterOptions(bullmq_queues=("emails", "webhooks"), service_monitor_labels=LABELS),
            alerts=AlertOptions(rule_labels=LABELS),
        )


if __name__ == "__main__":
    app = cdk8s.App()
    build(app, COUNT)
    app.synth()
'''


# Issue 16: the goals as ratios to the floor app, in CPU time of the whole process tree (absolute
# times differ about 3x between machines here): one Valkey at most 1.3x the floor; each further
# Valkey at most 4 % of the floor, in the same chart or in a chart of its own (net of what cdk8s
# itself charges for a further chart); the same with Sentinel.
TARGET_FURTHER_RATIO = 0.04
RATIO_COUNTS = (1, 5)

RATIO_APP = '''\
"""{count} Valkey(s), {layout}, each as production sets one up (exporter queues, alerts){sentinel_doc}."""

import cdk8s

from cdk8s_valkey import AlertOptions, ExporterOptions, SentinelOptions, Valkey

LABELS = {{"release": "kube-prometheus-stack"}}

app = cdk8s.App()
shared = cdk8s.Chart(app, "valkeys", namespace="apps")
for index in range({count}):
    chart = cdk8s.Chart(app, f"valkeys-{{index}}", namespace="apps") if {own_charts} else shared
    Valkey(
        chart,
        f"cache-{{index}}",
        memory_limit=cdk8s.Size.gibibytes(1),
        exporter=ExporterOptions(bullmq_queues=("emails", "webhooks"), service_monitor_labels=LABELS),
        alerts=AlertOptions(rule_labels=LABELS),
        sentinel=SentinelOptions() if {sentinel} else None,
    )
app.synth()
'''

FLOOR_CHARTS_APP = '''\
"""The floor with {count} charts of one ConfigMap each: what cdk8s charges for a further chart."""

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


def _per_valkey(cli: list[str], runs: int, phase_runs: int, tmp: Path) -> dict[str, Any]:
    """What each further Valkey costs: the apps of 5 and of 1 Valkey, interleaved, (t5 - t1) / 4."""
    few, many = VALKEY_COUNTS
    dirs = {count: _write_app(tmp / f"valkeys-{count}", VALKEYS_APP.format(count=count)) for count in VALKEY_COUNTS}
    apps = {str(count): (cli, directory) for count, directory in dirs.items()}
    _alternate(apps, 1, tmp=tmp)  # untimed: page cache, bytecode of the two apps
    cpu: dict[str, list[float]] = {}
    times = _alternate(apps, runs, tmp=tmp, cpu=cpu)
    whole = {count: median(times[str(count)]) for count in VALKEY_COUNTS}
    phases = {count: _phases("valkeys", phase_runs, tmp, dirs[count]) for count in VALKEY_COUNTS}
    steps = many - few

    def per_valkey_ms(series: dict[str, list[float]]) -> float:
        """The median of t_many - t_few over the pairs of runs made one after the other (load that
        comes and goes during the runs then hits both of a pair), per further Valkey."""
        pairs = zip(series[str(few)], series[str(many)], strict=True)
        return median([b - a for a, b in pairs]) * 1000 / steps

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
        "runs": runs,
        "synth_seconds": times,
        "cpu_seconds": cpu,
        "ms_per_valkey": per_valkey_ms(times),
        "ms_per_valkey_of_medians": (whole[many] - whole[few]) * 1000 / steps,
        "cpu_ms_per_valkey": per_valkey_ms(cpu),
        "build": profile("build the chart"),
        "synth": profile("app.synth()"),
        "inner_ms_per_valkey": (phases[many][1] - phases[few][1]) * 1000 / steps,
        "wall_ms_per_valkey": (phases[many][2] - phases[few][2]) * 1000 / steps,
    }


def _per_valkey_md(cost: dict[str, Any]) -> str:
    few, many = cost["counts"]
    times = cost["synth_seconds"]
    build, synth = cost["build"], cost["synth"]
    per = cost["ms_per_valkey"]
    rest = per - build["ms_per_valkey"] - synth["ms_per_valkey"]
    rows = [
        [
            "`cdk8s synth` whole process, s (median)",
            f"{median(times[str(few)]):.2f}",
            f"{median(times[str(many)]):.2f}",
            f"**{per:.0f} ms**",
        ],
        [
            "CPU time of its whole process tree (CLI, Python, Node), s (median)",
            f"{median(cost['cpu_seconds'][str(few)]):.2f}",
            f"{median(cost['cpu_seconds'][str(many)]):.2f}",
            f"{cost['cpu_ms_per_valkey']:.0f} ms",
        ],
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
        ["the rest (CLI, interpreter exit; whole process minus the two above)", "-", "-", f"{rest:.0f} ms"],
    ]
    verdict = "within" if per <= TARGET_MS_PER_VALKEY else "ABOVE"
    return "\n".join(
        [
            f"Each further Valkey (a temporary app of {many} `Valkey(...)` against the same app with {few}, "
            f"each with 2 BullMQ queues and alerts; {cost['runs']} runs each, interleaved, after a warm-up "
            "round; per further Valkey: the median of the differences between the two runs of each pair, "
            f"divided by {many - few}, so that load from other work hits both of a pair; the profile rows are "
            "medians of instrumented runs):",
            "",
            md_table(
                [
                    "measure",
                    f"{few} Valkey",
                    f"{many} Valkeys",
                    f"per further Valkey ((t{many} - t{few}) / {many - few})",
                ],
                rows,
            ),
            "",
            f"Target: at most {TARGET_MS_PER_VALKEY} ms per further Valkey (issue 12) — this run is {verdict} it "
            f"({per:.0f} ms).",
        ]
    )


def _ratio_apps(tmp: Path) -> dict[str, Path]:
    """name -> app directory: the floor with 1 and 5 charts, and 1 or 5 Valkeys, with and without
    Sentinel, in one chart or a chart each."""
    few, many = RATIO_COUNTS
    apps = {name: _write_app(tmp / f"ratio-{name}", FLOOR_CHARTS_APP.format(count=n)) for name, n in
            (("floor", few), (f"floor-{many}-charts", many))}  # fmt: skip
    for sentinel in (False, True):
        tag = "sentinel-" if sentinel else ""
        for count, own in ((few, False), (many, False), (many, True)):
            name = f"{tag}{count}" + ("-charts" if own else "")
            source = RATIO_APP.format(
                count=count,
                layout="a chart each" if own else "one chart",
                own_charts=own,
                sentinel=sentinel,
                sentinel_doc=", with Sentinel" if sentinel else "",
            )
            apps[name] = _write_app(tmp / f"ratio-{name}", source)
    return apps


def _ratios(cli: list[str], runs: int, tmp: Path) -> dict[str, Any]:
    """The issue's goals, in CPU seconds of the whole `cdk8s synth` process tree: every app run
    once per round (order reversed every other round), medians over the rounds, differences taken
    within a round (load that comes and goes hits both of a pair)."""
    few, many = RATIO_COUNTS
    steps = many - few
    dirs = _ratio_apps(tmp)
    apps = {name: (cli, directory) for name, directory in dirs.items()}
    _alternate(apps, 1, tmp=tmp)  # untimed: page cache, bytecode
    cpu: dict[str, list[float]] = {}
    _alternate(apps, runs, tmp=tmp, cpu=cpu)
    floor = median(cpu["floor"])

    def diff(a: str, b: str) -> float:
        return median([y - x for x, y in zip(cpu[a], cpu[b], strict=True)])

    chart_cost = diff("floor", f"floor-{many}-charts") / steps
    out: dict[str, Any] = {"runs": runs, "cpu_seconds": cpu, "floor_cpu_s": floor, "further_chart_cpu_s": chart_cost}
    for tag in ("", "sentinel-"):
        one = median(cpu[f"{tag}{few}"])
        same = diff(f"{tag}{few}", f"{tag}{many}") / steps
        own = diff(f"{tag}{few}", f"{tag}{many}-charts") / steps - chart_cost
        out[tag or "plain"] = {
            "one_valkey_cpu_s": one,
            "one_valkey_ratio": one / floor,
            "further_same_chart_cpu_s": same,
            "further_same_chart_ratio": same / floor,
            "further_own_chart_cpu_s": own,
            "further_own_chart_ratio": own / floor,
        }
    return out


def _ratios_md(ratios: dict[str, Any]) -> str:
    rows = []
    for tag, label in (("plain", "Valkey"), ("sentinel-", "Valkey with Sentinel")):
        r = ratios[tag]
        for key, what, target in (
            ("one_valkey", f"an app of one {label}", TARGET_RATIO),
            ("further_same_chart", f"each further {label}, same chart", TARGET_FURTHER_RATIO),
            ("further_own_chart", f"each further {label}, a chart of its own (net of a further chart)",
             TARGET_FURTHER_RATIO),
        ):  # fmt: skip
            ratio = r[f"{key}_ratio"]
            verdict = "within" if ratio <= target else "ABOVE"
            shown = f"{ratio:.2f}x" if key == "one_valkey" else f"{ratio * 100:.1f} %"
            goal = f"<= {target:.1f}x" if key == "one_valkey" else f"<= {target * 100:.0f} %"
            rows.append([what, f"{r[f'{key}_cpu_s'] * 1000:.0f}", f"**{shown}**", goal, verdict])
    return "\n".join(
        [
            f"The goals as ratios to the floor app, in CPU time of the whole `cdk8s synth` process tree (CLI, "
            f"Python, Node; floor {ratios['floor_cpu_s'] * 1000:.0f} ms, a further chart of the floor "
            f"{ratios['further_chart_cpu_s'] * 1000:.0f} ms; {ratios['runs']} rounds of every app, medians, "
            "differences within a round):",
            "",
            md_table(["measure", "CPU ms", "of the floor", "goal", "this run"], rows),
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
    runs = 2 if opts.quick else 9
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
        per_valkey = _per_valkey(cli, 2 if opts.quick else 15, phase_runs, tmp)
        ratios = _ratios(cli, 2 if opts.quick else 7, tmp)
        suite = None if opts.quick else _test_suite(tmp)

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
            _per_valkey_md(per_valkey),
            "",
            _ratios_md(ratios),
        ]
    )
    verdict = "within" if synth_ratio <= TARGET_RATIO else "ABOVE"
    notes = [
        f"Target: synth ratio ≤ {TARGET_RATIO} — this run is {verdict} it ({synth_ratio:.2f}).",
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
        "per_valkey": per_valkey,
        "ratios": ratios,
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
