"""Valkey: one Valkey with its exporter and alerts from one call, repeatable in a chart."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import cdk8s
import pytest

from cdk8s_valkey import AlertOptions, ExporterOptions, Valkey, ValkeyProps, ValkeyStatefulSet
from cdk8s_valkey.alerts import ALERT_NAMES
from harness.synth import find, new_chart, objects


def test_valkey_props_are_exactly_the_statefulset_props() -> None:
    """ValkeyProps lists names and types only; it must never drift from ValkeyStatefulSet."""
    signature = inspect.signature(ValkeyStatefulSet.__init__)
    expected = {
        name: str(param.annotation)
        for name, param in signature.parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    }
    declared = {name: getattr(hint, "__forward_arg__", hint) for name, hint in ValkeyProps.__annotations__.items()}
    assert declared == expected
    assert not ValkeyProps.__required_keys__


def test_one_call_renders_server_exporter_and_alerts() -> None:
    chart = new_chart()
    sessions = Valkey(chart, "sessions", memory_limit=cdk8s.Size.gibibytes(1))
    kinds = sorted(o["kind"] for o in objects(chart))
    assert kinds == sorted(
        [
            *("ConfigMap", "ConfigMap", "Service", "Service", "PersistentVolumeClaim", "StatefulSet"),
            *("Service", "ServiceMonitor", "PrometheusRule"),
        ]
    )
    assert sessions.name == sessions.server.name == "sessions"
    assert (sessions.host, sessions.port, sessions.url) == ("sessions.apps.svc", 6379, "redis://sessions.apps.svc:6379")
    assert sessions.exporter.valkey is sessions.server
    assert sessions.alerts.exporter is sessions.exporter


def test_options_reach_the_exporter_and_the_alerts() -> None:
    chart = new_chart()
    Valkey(
        chart,
        "queues",
        exporter=ExporterOptions(bullmq_queues=["emails"], service_monitor_labels={"release": "prom"}),
        alerts=AlertOptions(rule_labels={"release": "prom"}, queue_depth_threshold=7),
    )
    objs = objects(chart)
    assert find(objs, "ServiceMonitor")["metadata"]["labels"]["release"] == "prom"
    rule = find(objs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prom"
    assert "> on (queue) group_left (threshold)" in str(rule["spec"]) and "vector(7)" in str(rule["spec"])


def _alerts(chart: cdk8s.Chart) -> dict[str, dict[str, Any]]:
    rule = find(objects(chart), "PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_alerts_can_be_switched_off_and_regraded() -> None:
    chart = new_chart()
    Valkey(
        chart,
        "valkey",
        exporter=ExporterOptions(bullmq_queues=["emails"]),
        alerts=AlertOptions(
            disabled=["ValkeyAdrRevisitMemory", "ValkeyAdrRevisitThroughput"],
            severities={"ValkeyTooManyClients": "critical"},
        ),
    )
    rendered = _alerts(chart)
    assert set(rendered) == set(ALERT_NAMES) - {"ValkeyAdrRevisitMemory", "ValkeyAdrRevisitThroughput"}
    assert rendered["ValkeyTooManyClients"]["labels"]["severity"] == "critical"
    assert rendered["ValkeyMemoryHigh"]["labels"]["severity"] == "warning"


def test_alert_names_list_is_every_rule() -> None:
    chart = new_chart()
    Valkey(chart, "valkey", exporter=ExporterOptions(bullmq_queues=["emails"]))
    assert tuple(_alerts(chart)) == ALERT_NAMES


BAD_ALERT_OPTIONS = [
    pytest.param(
        {"disabled": ["ValkeyTooManyClient"]},
        "disabled: 'ValkeyTooManyClient' is not an alert of Alerts; did you mean 'ValkeyTooManyClients'? use one "
        f"of {list(ALERT_NAMES)}",
        id="disabled-typo",
    ),
    pytest.param(
        {"disabled": "ValkeyDown"},
        "disabled: 'ValkeyDown' is a single string; pass a list of alert names such as ['ValkeyDown']",
        id="disabled-string",
    ),
    pytest.param(
        {"severities": {"ValkeyDown": "page"}},
        "severities['ValkeyDown']: 'page' is not a severity; use one of ['critical', 'warning', 'info']",
        id="severity-unknown",
    ),
    pytest.param(
        {"severities": {"Down": "info"}},
        f"severities: 'Down' is not an alert of Alerts; use one of {list(ALERT_NAMES)}",
        id="severity-alert-unknown",
    ),
    pytest.param(
        {"down_for": "5m"},
        "down_for: '5m' is a str; pass a cdk8s.Duration such as cdk8s.Duration.minutes(5)",
        id="down-for-str",
    ),
]


@pytest.mark.parametrize(("props", "message"), BAD_ALERT_OPTIONS)
def test_bad_alert_options_raise(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        AlertOptions(**props)
    assert str(excinfo.value) == message


def test_exporter_options_wrong_types_name_the_prop() -> None:
    with pytest.raises(ValueError) as excinfo:
        ExporterOptions(scrape_interval=30)  # type: ignore[arg-type]
    assert str(excinfo.value) == "scrape_interval: 30 is a int; pass a cdk8s.Duration such as cdk8s.Duration.minutes(5)"


def test_options_objects_are_checked() -> None:
    with pytest.raises(ValueError) as excinfo:
        Valkey(new_chart(), "valkey", exporter={"bullmq_queues": ["a"]})  # type: ignore[arg-type]
    assert str(excinfo.value) == "exporter: {'bullmq_queues': ['a']} is a dict; pass an ExporterOptions(...)"


def test_a_chart_without_namespace_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"set namespace= on its cdk8s\.Chart$"):
        Valkey(new_chart(namespace=None), "valkey")


def test_typed_dict_keeps_mypy_honest() -> None:
    """The keywords are typed (PEP 692): a typo is a type error, and a runtime TypeError."""
    hints = typing.get_type_hints(ValkeyProps)
    assert hints["memory_limit"] is cdk8s.Size
    with pytest.raises(TypeError, match="unexpected keyword argument 'memory_limt'"):
        Valkey(new_chart(), "valkey", memory_limt=cdk8s.Size.gibibytes(1))  # type: ignore[call-arg]
