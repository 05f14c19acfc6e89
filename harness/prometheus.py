"""A real Prometheus server (Debian ``prometheus``) on 127.0.0.1 for end-to-end tests.

Scrape jobs attach the target labels prometheus-operator derives from the rendered
ServiceMonitor (:func:`service_monitor_labels`), so queries and rules scoped by ``namespace``
and ``service`` select exactly what they would in a cluster. Every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from cdk8s_valkey import ExporterSidecar
from harness.paths import free_port, require_binary
from harness.process import stop
from harness.synth import find


def service_monitor_labels(objs: list[dict[str, Any]], exporter: ExporterSidecar) -> dict[str, str]:
    """The target labels prometheus-operator derives from the rendered ServiceMonitor: the
    Service it selects, that Service's namespace, the endpoint's port name, the pod and container."""
    monitor = find(objs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        o for o in objs if o["kind"] == "Service" and selector.items() <= o["metadata"].get("labels", {}).items()
    ]
    assert [s["metadata"]["name"] for s in services] == [exporter.metrics_service_name]
    (endpoint,) = monitor["spec"]["endpoints"]
    statefulset = find(objs, "StatefulSet")
    return {
        "namespace": services[0]["metadata"]["namespace"],
        "service": services[0]["metadata"]["name"],
        "job": services[0]["metadata"]["name"],  # the operator's default jobLabel: the Service name
        "endpoint": endpoint["port"],
        "pod": f"{statefulset['metadata']['name']}-0",
        "container": exporter.container_name,
    }


def scrape_job(name: str, port: int, labels: Mapping[str, str], interval: str = "1s") -> dict[str, Any]:
    """A static scrape job for an exporter on 127.0.0.1:port whose series get ``labels``."""
    return {
        "job_name": name,
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        "relabel_configs": [{"target_label": key, "replacement": value} for key, value in sorted(labels.items())],
    }


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(what: str, check: Callable[[], Any], timeout: float, period: float = 0.2) -> Any:
    """Poll check() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s; last: {last!r}")
        time.sleep(period)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query now; its result (a list of series), or an AssertionError on an error answer."""
    answer = get_json(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def query_range(url: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """A range query, as Grafana runs a panel's range target."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    answer = get_json(f"{url}/api/v1/query_range?{params}")
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


@contextmanager
def running_prometheus(config: Mapping[str, Any], workdir: Path, *, timeout: float = 15) -> Iterator[str]:
    """A Prometheus with ``config`` (its TSDB and log under ``workdir``), ready; yields its URL.
    Stopped with SIGTERM (SIGKILL after 10 s) on exit."""
    binary = require_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    log_path = workdir / "prometheus.log"
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                return int(response.status) == 200

        wait_for("Prometheus ready", ready, timeout=timeout)
        yield url
    finally:
        stop(proc, 10)
