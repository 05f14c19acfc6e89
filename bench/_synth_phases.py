"""Time the phases of one synth in a fresh interpreter and count jsii round trips per phase.

Run by ``bench/synth.py`` as ``python bench/_synth_phases.py project|floor OUTDIR`` or
``python bench/_synth_phases.py valkeys OUTDIR APP_DIR`` (the temporary app of N Valkeys in
APP_DIR, its ``build(app, COUNT)``); prints one JSON object. The phases are the imports in
dependency order (the first jsii call starts the Node runtime, reported on its own), building
the chart, and ``app.synth()``.
Interpreter start-up and exit (which stops the Node runtime) are what the caller's wall clock
adds on top.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent

_phases: list[dict[str, Any]] = []
_calls: dict[str, float] = {"n": 0, "seconds": 0.0, "runtime_start": 0.0}
_last = [T0]


def _mark(name: str) -> None:
    now = time.perf_counter()
    _phases.append(
        {
            "phase": name,
            "seconds": now - _last[0],
            "jsii_calls": int(_calls["n"]),
            "jsii_seconds": _calls["seconds"],
            "runtime_start_seconds": _calls["runtime_start"],
        }
    )
    _calls.update(n=0, seconds=0.0, runtime_start=0.0)
    _last[0] = now


def _instrument() -> None:
    """Count and time every request to the jsii Node runtime, and its start-up."""
    from jsii._kernel.providers import process  # noqa: PLC0415

    node_process: Any = process._NodeProcess
    send, start = node_process.send, node_process.start

    def timed_send(self: Any, request: Any, response_type: Any) -> Any:
        begin = time.perf_counter()
        try:
            return send(self, request, response_type)
        finally:
            _calls["n"] += 1
            _calls["seconds"] += time.perf_counter() - begin

    def timed_start(self: Any) -> Any:
        begin = time.perf_counter()
        try:
            return start(self)
        finally:
            _calls["runtime_start"] += time.perf_counter() - begin

    node_process.send = timed_send
    node_process.start = timed_start


def main() -> None:
    app_kind, outdir = sys.argv[1], sys.argv[2]
    _instrument()
    _mark("import jsii (Python side of the runtime)")
    import constructs  # noqa: PLC0415, F401

    _mark("import constructs (starts Node, loads the constructs assembly)")
    import cdk8s  # noqa: PLC0415

    _mark("import cdk8s")
    import cdk8s_plus_28  # noqa: PLC0415, F401
    from cdk8s_plus_28 import k8s  # noqa: PLC0415

    _mark("import cdk8s_plus_28")
    app = None
    if app_kind in ("project", "valkeys"):
        sys.path.insert(0, str(REPO) if app_kind == "project" else sys.argv[3])
        import cdk8s_valkey  # noqa: PLC0415, F401

        _mark("import cdk8s_valkey (ours, with its CRD bindings)")
        import main as app_main  # noqa: PLC0415

        _mark("import main.py")
        app = cdk8s.App(outdir=outdir)
        if app_kind == "project":
            app_main.build(app, app_main.PRODUCTION)
        else:
            app_main.build(app, app_main.COUNT)
    else:
        app = cdk8s.App(outdir=outdir)
        chart = cdk8s.Chart(app, "floor")
        k8s.KubeConfigMap(chart, "cm", data={"key": "value"})
    _mark("build the chart")
    app.synth()
    _mark("app.synth() (YAML written by Node)")
    print(json.dumps({"phases": _phases, "inner_seconds": time.perf_counter() - T0}))


if __name__ == "__main__":
    main()
