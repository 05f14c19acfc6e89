"""ExporterSidecar: the rendered container, metrics Service and ServiceMonitor, the
validation rules, and the rendered args run by the real redis_exporter against a real Valkey."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
import pytest

from cdk8s_valkey import ExporterOptions, ExporterSidecar, ValkeyStatefulSet
from harness.exporter import (
    exporter_args_for_test,
    listen_url,
    metric_names,
    running_exporter,
    samples,
    scrape,
    scrape_until,
)
from harness.paths import free_port
from harness.servers import client, running_server, wait_for_pong, write_config
from harness.synth import container, find, new_chart, objects

QUEUE_KEYS = "db0=bull:{q}:wait,db0=bull:{q}:paused,db0=bull:{q}:prioritized,db0=bull:{q}:delayed,db0=bull:{q}:active"
BASE_ARGS = [
    "--redis.addr=redis://localhost:6379",
    "--namespace=valkey",
    "--web.listen-address=:9121",
    "--web.telemetry-path=/metrics",
    "--connection-timeout=5s",
    "--redis-only-metrics",
]
VALKEY_LABELS = {
    "app.kubernetes.io/name": "valkey",
    "app.kubernetes.io/instance": "valkey",
    "app.kubernetes.io/version": "8.1.11",
    "app.kubernetes.io/managed-by": "cdk8s",
}


def build(namespace: str | None = "apps", **props: Any) -> tuple[cdk8s.Chart, ExporterSidecar]:
    chart = new_chart(namespace)
    valkey = ValkeyStatefulSet(chart, "valkey")
    return chart, ExporterSidecar(chart, "exporter", valkey=valkey, options=ExporterOptions(**props))


def rendered(**props: Any) -> list[dict[str, Any]]:
    chart, _ = build(**props)
    return objects(chart)


# -- container ---------------------------------------------------------------------


def test_default_args() -> None:
    _, exporter = build()
    assert exporter.args == BASE_ARGS


def test_bullmq_queues_become_single_key_checks() -> None:
    _, exporter = build(bullmq_queues=["emails", "reports"], bullmq_prefix="myapp")
    expected = ",".join(QUEUE_KEYS.format(q=q) for q in ("emails", "reports")).replace("bull:", "myapp:")
    assert exporter.args == [*BASE_ARGS, f"--check-single-keys={expected}"]
    assert not any(arg.startswith("--check-keys") for arg in exporter.args), "--check-keys SCANs the keyspace"
    assert exporter.checked_keys[:5] == tuple(f"myapp:emails:{s}" for s in exporter.queue_key_states)


def test_rendered_container_args_are_the_attribute() -> None:
    chart, exporter = build(bullmq_queues=["emails"])
    assert container(objects(chart), "exporter")["args"] == exporter.args
    exporter.args.append("--debug")  # a copy: changes nothing
    assert "--debug" not in exporter.args


def test_exporter_is_the_second_container_of_the_valkey_pod() -> None:
    sts = find(rendered(), "StatefulSet", "valkey")
    assert [c["name"] for c in sts["spec"]["template"]["spec"]["containers"]] == ["valkey", "exporter"]


def test_container() -> None:
    exporter = container(rendered(), "exporter")
    assert exporter["image"] == "oliver006/redis_exporter:v1.61.0"
    assert exporter["imagePullPolicy"] == "IfNotPresent"
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9121, "protocol": "TCP"}]
    assert "command" not in exporter, "the image's entrypoint is the exporter"
    assert exporter["resources"] == {
        "requests": {"cpu": "10m", "memory": "64Mi"},
        "limits": {"memory": "64Mi"},
    }


def test_liveness_is_http_on_the_metrics_port_and_nothing_gates_readiness() -> None:
    exporter = container(rendered(), "exporter")
    assert exporter["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": "metrics"},
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }
    # The pod's readiness (and so the Valkey Service's endpoints) is Valkey's alone.
    assert "readinessProbe" not in exporter
    assert "startupProbe" not in exporter


def test_security_context_is_hardened() -> None:
    assert container(rendered(), "exporter")["securityContext"] == {
        "runAsUser": 59000,
        "runAsGroup": 59000,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_resources_and_image_overrides() -> None:
    image = "oliver006/redis_exporter:v1.61.0@sha256:" + "a" * 64
    exporter = container(
        rendered(image=image, memory_limit=cdk8s.Size.mebibytes(32), cpu_request=kplus.Cpu.millis(50)), "exporter"
    )
    assert exporter["image"] == image
    assert exporter["resources"] == {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}}


# -- metrics Service and ServiceMonitor --------------------------------------------


def test_metrics_service() -> None:
    service = find(rendered(), "Service", "valkey-metrics")
    assert service["metadata"]["namespace"] == "apps"
    assert service["metadata"]["labels"] == {
        **VALKEY_LABELS,
        "app.kubernetes.io/component": "metrics",
        "valkey.cdk8s.io/instance": "valkey",  # what the ServiceMonitor selects (Argo CD rewrites instance)
    }
    assert service["spec"] == {
        "type": "ClusterIP",
        "selector": {"app.kubernetes.io/name": "valkey", "app.kubernetes.io/instance": "valkey"},
        "ports": [{"name": "metrics", "port": 9121, "targetPort": "metrics", "protocol": "TCP"}],
    }


def test_service_monitor() -> None:
    monitor = find(rendered(service_monitor_labels={"release": "kube-prometheus-stack"}), "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"] == "valkey"
    assert monitor["metadata"]["namespace"] == "apps"
    assert monitor["metadata"]["labels"] == {
        **VALKEY_LABELS,
        "app.kubernetes.io/component": "metrics",
        "release": "kube-prometheus-stack",
    }
    assert monitor["spec"] == {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "valkey",
                "valkey.cdk8s.io/instance": "valkey",
                "app.kubernetes.io/component": "metrics",
            }
        },
        "namespaceSelector": {"matchNames": ["apps"]},
        "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}],
    }


def test_service_monitor_selects_only_the_metrics_service() -> None:
    objs = rendered()
    selector = find(objs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    selected = [
        o["metadata"]["name"]
        for o in objs
        if o["kind"] == "Service" and selector.items() <= o["metadata"]["labels"].items()
    ]
    assert selected == ["valkey-metrics"]


def test_a_chart_without_namespace_is_refused() -> None:
    """Without a namespace, one environment's series would satisfy another's alerts."""
    chart = new_chart(namespace=None)
    valkey = ValkeyStatefulSet(chart, "valkey")
    with pytest.raises(ValueError) as excinfo:
        ExporterSidecar(chart, "exporter", valkey=valkey)
    assert str(excinfo.value) == (
        "valkey: 'valkey' renders into a chart without a namespace, so the metrics of this Valkey cannot be "
        "told from another's with the same name; set namespace= on its cdk8s.Chart"
    )


@pytest.mark.parametrize(
    ("interval", "rendered_interval", "timeout", "connection_timeout"),
    [
        pytest.param(cdk8s.Duration.seconds(5), "5s", "2s", "1s", id="5s"),
        pytest.param(cdk8s.Duration.seconds(90), "1m30s", "10s", "5s", id="90s"),
        pytest.param(cdk8s.Duration.minutes(5), "5m", "10s", "5s", id="5m"),
    ],
)
def test_scrape_interval(
    interval: cdk8s.Duration, rendered_interval: str, timeout: str, connection_timeout: str
) -> None:
    chart, exporter = build(scrape_interval=interval)
    (endpoint,) = find(objects(chart), "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == (rendered_interval, timeout)
    assert f"--connection-timeout={connection_timeout}" in exporter.args
    assert exporter.scrape_interval is interval


def test_wiring_attributes() -> None:
    _, exporter = build(bullmq_queues=["emails"], service_monitor_labels={"release": "kps"})
    assert exporter.metric_namespace == "valkey"
    assert exporter.metrics_port == 9121
    assert exporter.metrics_port_name == "metrics"
    assert exporter.metrics_service_name == "valkey-metrics"
    assert exporter.bullmq_queues == ("emails",)
    assert exporter.bullmq_prefix == "bull"
    assert exporter.queue_key_states == ("wait", "paused", "prioritized", "delayed", "active")
    assert exporter.service_monitor_labels == {"release": "kps"}
    exporter.service_monitor_labels["release"] = "other"  # a copy: changes nothing
    assert exporter.service_monitor_labels == {"release": "kps"}
    assert exporter.valkey.name == "valkey"


def test_named_valkey() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey", name="sessions")
    exporter = ExporterSidecar(chart, "exporter", valkey=valkey)
    objs = objects(chart)
    assert exporter.metrics_service_name == "sessions-metrics"
    assert find(objs, "Service", "sessions-metrics")["spec"]["selector"] == valkey.match_labels
    assert find(objs, "ServiceMonitor", "sessions")["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "valkey",
        "valkey.cdk8s.io/instance": "sessions",
        "app.kubernetes.io/component": "metrics",
    }
    assert find(objs, "Service", "sessions-metrics")["metadata"]["labels"]["valkey.cdk8s.io/instance"] == "sessions"


def test_second_exporter_on_the_same_valkey_raises() -> None:
    chart, exporter = build()
    with pytest.raises(ValueError) as excinfo:
        ExporterSidecar(chart, "exporter2", valkey=exporter.valkey)
    assert str(excinfo.value) == (
        "valkey: 'valkey' already has an ExporterSidecar (its pod has a container 'exporter'); create one "
        "ExporterSidecar per Valkey and share it with Alerts and Dashboard"
    )
    assert [o["metadata"]["name"] for o in objects(chart) if o["kind"] == "Service"].count("valkey-metrics") == 1


# -- validation: one exact message per rule ----------------------------------------

ALLOWED_QUEUE = "use a name without"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        pytest.param(
            {"bullmq_queues": [""]},
            "bullmq_queues: '' is empty; use a non-empty name such as 'emails'",
            id="queue-empty",
        ),
        pytest.param(
            {"bullmq_queues": ["a:b"]},
            "bullmq_queues: 'a:b' contains ':', which BullMQ uses to separate the parts of its keys; "
            "use a name without ':'",
            id="queue-colon",
        ),
        pytest.param(
            {"bullmq_queues": ["emails*"]},
            "bullmq_queues: 'emails*' contains a glob character, which would make key patterns match "
            "other keys; use a name without * ? [ ] \\",
            id="queue-glob",
        ),
        pytest.param(
            {"bullmq_queues": ["a,b"]},
            "bullmq_queues: 'a,b' contains whitespace, ',' or '=', which would break the exporter's "
            "--check-single-keys list; use a name without them",
            id="queue-comma",
        ),
        pytest.param(
            {"bullmq_queues": ["emails", "emails"]},
            "bullmq_queues: 'emails' is given twice; each entry must be unique",
            id="queue-duplicate",
        ),
        pytest.param(
            {"bullmq_queues": "emails"},
            "bullmq_queues: 'emails' is a single string; pass a list of queue names such as ['emails']",
            id="queues-string",
        ),
        pytest.param(
            {"bullmq_prefix": "my app"},
            "bullmq_prefix: 'my app' contains whitespace, ',' or '=', which would break the exporter's "
            "--check-single-keys list; use a name without them",
            id="prefix-space",
        ),
        pytest.param(
            {"bullmq_prefix": "app:bull"},
            "bullmq_prefix: 'app:bull' contains ':', which BullMQ uses to separate the parts of its keys; "
            "use a name without ':'",
            id="prefix-colon",
        ),
        pytest.param(
            {"image": "oliver006/redis_exporter:latest"},
            "image: 'oliver006/redis_exporter:latest' uses the moving tag 'latest'; pin an exact version tag "
            "such as 'valkey/valkey:8.1.11', optionally with '@sha256:<digest>'",
            id="image-latest",
        ),
        pytest.param(
            {"image": "oliver006/redis_exporter"},
            "image: 'oliver006/redis_exporter' has no tag, so every pull may get another version; pin an exact "
            "version tag such as 'valkey/valkey:8.1.11', optionally with '@sha256:<digest>'",
            id="image-untagged",
        ),
        pytest.param(
            {"service_monitor_labels": {"release!": "kps"}},
            "service_monitor_labels: label key 'release!' is not a valid Kubernetes label name",
            id="label-key",
        ),
        pytest.param(
            {"service_monitor_labels": {"release": "kube prometheus"}},
            "service_monitor_labels: label 'release' has value 'kube prometheus'; use at most 63 letters, "
            "digits, '-', '_' and '.', starting and ending with a letter or digit",
            id="label-value",
        ),
        pytest.param(
            {"service_monitor_labels": {"app.kubernetes.io/component": "x"}},
            "service_monitor_labels: 'app.kubernetes.io/component' is set by ExporterSidecar; "
            "use labels outside the app.kubernetes.io/ prefix (for example 'release')",
            id="label-reserved",
        ),
        pytest.param(
            {"scrape_interval": cdk8s.Duration.seconds(4)},
            "scrape_interval: 4s is not allowed; use whole seconds from 5s to 5m",
            id="interval-short",
        ),
        pytest.param(
            {"scrape_interval": cdk8s.Duration.seconds(301)},
            "scrape_interval: 5m1s is not allowed; use whole seconds from 5s to 5m",
            id="interval-long",
        ),
        pytest.param(
            {"scrape_interval": cdk8s.Duration.millis(7500)},
            "scrape_interval: 7500ms is not allowed; use whole seconds from 5s to 5m",
            id="interval-fraction",
        ),
        pytest.param(
            {"memory_limit": cdk8s.Size.mebibytes(8)},
            "memory_limit: 8Mi is too small to run redis_exporter; use at least 16Mi",
            id="memory",
        ),
    ],
)
def test_invalid_props_raise_before_any_child(props: dict[str, Any], message: str) -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    with pytest.raises(ValueError) as raised:
        ExporterSidecar(chart, "exporter", valkey=valkey, options=ExporterOptions(**props))
    assert str(raised.value) == message
    # Nothing was defined: the id is free and the pod still has only the valkey container.
    assert chart.node.try_find_child("exporter") is None
    assert [c["name"] for c in find(objects(chart), "StatefulSet")["spec"]["template"]["spec"]["containers"]] == [
        "valkey"
    ]


def test_valkey_in_another_namespace_raises() -> None:
    app = cdk8s.Testing.app()
    valkey = ValkeyStatefulSet(cdk8s.Chart(app, "data", namespace="data"), "valkey")
    with pytest.raises(ValueError) as raised:
        ExporterSidecar(cdk8s.Chart(app, "monitoring", namespace="monitoring"), "exporter", valkey=valkey)
    assert str(raised.value) == (
        "valkey: 'valkey' renders into namespace 'data' but this chart renders into 'monitoring'; define "
        "the ExporterSidecar in a chart of the Valkey's namespace, where its Service can select the pod"
    )


# -- the rendered args, run by the real exporter against a real Valkey --------------


@pytest.fixture
def valkey_port(tmp_path: Path, valkey_env: dict[str, str]) -> Any:
    port = free_port()
    config = write_config(tmp_path / "valkey.conf", port=port, data_dir=tmp_path)
    log = tmp_path / "valkey.log"
    with running_server(valkey_env, config, port, log) as server:
        wait_for_pong(server, port, log=log)
        yield port, server


def test_args_differ_from_rendered_only_in_addresses() -> None:
    _, exporter = build(bullmq_queues=["emails"])
    args = exporter_args_for_test(exporter.args, 16379, 19121)
    changed = [(a, b) for a, b in zip(exporter.args, args, strict=True) if a != b]
    assert changed == [
        ("--redis.addr=redis://localhost:6379", "--redis.addr=redis://127.0.0.1:16379"),
        ("--web.listen-address=:9121", "--web.listen-address=127.0.0.1:19121"),
    ]


def test_real_exporter_serves_valkey_and_bullmq_metrics(tmp_path: Path, valkey_port: tuple[int, Any]) -> None:
    port, _ = valkey_port
    _, exporter = build(bullmq_queues=["emails"])
    with client(port) as conn:
        conn.rpush("bull:emails:wait", "1", "2", "3")
        conn.zadd("bull:emails:prioritized", {"4": 1, "5": 2})  # no bull:emails:paused key at all
    args = exporter_args_for_test(exporter.args, port, free_port())
    with running_exporter(args, log=tmp_path / "exporter.log"):
        body = scrape_until(listen_url(args), lambda b: "valkey_up 1" in b.splitlines())
    values = samples(body)
    names = metric_names(body)

    assert values["valkey_up"] == 1
    assert values["valkey_memory_used_bytes"] > 0
    assert values["valkey_connected_clients"] >= 1  # the exporter's own connection
    key = 'valkey_key_size{{db="db0",key="bull:emails:{}"}}'.format
    assert values[key("wait")] == 3
    assert values[key("prioritized")] == 2
    assert values[key("paused")] == 0  # a missing key is exported as 0, not left out
    assert values[key("delayed")] == values[key("active")] == 0
    # maxclients/maxmemory come without --include-config-metrics (and its ~300 config series).
    assert {"valkey_config_maxclients", "valkey_config_maxmemory", "valkey_memory_max_bytes"} <= names
    assert "valkey_config_key_value" not in names
    assert not [n for n in names if n.startswith("redis_")], "every metric must carry --namespace=valkey"
    assert not [n for n in names if n.startswith(("go_", "process_"))], "--redis-only-metrics"


def test_hung_valkey_is_reported_within_the_scrape_timeout(tmp_path: Path, valkey_port: tuple[int, Any]) -> None:
    """--connection-timeout below scrapeTimeout: a stopped (hung) Valkey is exported as
    valkey_up 0 before Prometheus would give up on the scrape."""
    port, server = valkey_port
    _, exporter = build(scrape_interval=cdk8s.Duration.seconds(5))  # scrapeTimeout 2s, connection 1s
    args = exporter_args_for_test(exporter.args, port, free_port())
    with running_exporter(args, log=tmp_path / "exporter.log"):
        scrape_until(listen_url(args), lambda b: "valkey_up 1" in b.splitlines())
        os.kill(server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            body = scrape(listen_url(args), timeout=10)
            elapsed = time.monotonic() - started
        finally:
            os.kill(server.pid, signal.SIGCONT)
    assert samples(body)["valkey_up"] == 0
    assert elapsed < exporter.scrape_timeout.to_seconds(), f"scrape took {elapsed:.2f}s"
