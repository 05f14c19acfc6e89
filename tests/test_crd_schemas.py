"""Synthesized custom resources against the openAPIV3Schema of the prometheus-operator CRDs."""

from __future__ import annotations

import copy
import re
from typing import Any

import cdk8s
import pytest

from cdk8s_valkey import ExporterOptions, ExporterSidecar, ValkeyStatefulSet
from harness.crd_schema import (
    UnsupportedGoRegexError,
    crd_errors,
    crd_kinds,
    go_regex_to_python,
    validate_crd_object,
)
from harness.synth import find, new_chart, objects


def exporter_objects() -> list[dict[str, Any]]:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    ExporterSidecar(
        chart,
        "exporter",
        valkey=valkey,
        options=ExporterOptions(bullmq_queues=["emails"], service_monitor_labels={"release": "kube-prometheus-stack"}),
    )
    return objects(chart)


def custom_resources(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = crd_kinds()
    return [
        o for o in objs if o["kind"] in kinds and o["apiVersion"].startswith(("monitoring.coreos.com/", "longhorn.io/"))
    ]


def service_monitor() -> dict[str, Any]:
    return copy.deepcopy(find(exporter_objects(), "ServiceMonitor"))


def prometheus_rule(**group: Any) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "valkey", "namespace": "apps"},
        "spec": {"groups": [{"name": "valkey", "rules": [{"alert": "ValkeyDown", "expr": "valkey_up == 0"}], **group}]},
    }


def test_exporter_custom_resources_match_their_crds() -> None:
    resources = custom_resources(exporter_objects())
    assert [r["kind"] for r in resources] == ["ServiceMonitor"]
    for resource in resources:
        validate_crd_object(resource)


def test_app_custom_resources_match_their_crds() -> None:
    """Every custom resource of the team's app (main.py), both environments, whatever adds them."""
    import main

    resources = [
        resource
        for env in main.ENVIRONMENTS
        for resource in custom_resources(objects(main.build(cdk8s.Testing.app(), env)))
    ]
    assert {r["kind"] for r in resources} == {"ServiceMonitor", "PrometheusRule", "RecurringJob"}
    for resource in resources:
        validate_crd_object(resource)


def test_prometheus_rule_is_validated_too() -> None:
    validate_crd_object(prometheus_rule())
    assert crd_errors(prometheus_rule(interval="30 seconds")) == [
        f"spec.groups.0.interval: '30 seconds' does not match {_DURATION!r}"
    ]


_DURATION = "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"


# -- strictness: what the API server enforces, plain jsonschema would not ------------


def test_misspelt_field_fails() -> None:
    monitor = service_monitor()
    monitor["spec"]["endpoints"][0]["intervall"] = monitor["spec"]["endpoints"][0].pop("interval")
    assert crd_errors(monitor) == [
        "spec.endpoints.0: Additional properties are not allowed ('intervall' was unexpected)"
    ]
    assert crd_errors(monitor, strict=False) == [], "plain JSON Schema lets the typo through"


def test_misspelt_top_level_spec_field_fails() -> None:
    monitor = service_monitor()
    monitor["spec"]["namespaceSelektor"] = monitor["spec"].pop("namespaceSelector")
    with pytest.raises(AssertionError, match=r"'namespaceSelektor' was unexpected"):
        validate_crd_object(monitor)


def test_free_form_maps_stay_free() -> None:
    monitor = service_monitor()
    monitor["spec"]["selector"]["matchLabels"]["any.example/key"] = "value"
    monitor["metadata"]["annotations"] = {"example.com/note": "kept"}
    assert crd_errors(monitor) == []


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        pytest.param(
            ("spec", "endpoints", 0, "interval"),
            "30 seconds",
            f"spec.endpoints.0.interval: '30 seconds' does not match {_DURATION!r}",
            id="duration",
        ),
        pytest.param(
            ("spec", "endpoints", 0, "port"),
            9121,
            "spec.endpoints.0.port: 9121 is not of type 'string'",
            id="type",
        ),
        pytest.param(
            ("spec", "sampleLimit"),
            2**64,
            f"spec.sampleLimit: {2**64} is not a 'int64'",
            id="int64",
        ),
        pytest.param(
            ("metadata", "name"),
            "Valkey",
            "metadata.name: 'Valkey' does not match "
            "'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'",
            id="object-name",
        ),
        pytest.param(
            ("metadata", "labels", "release"),
            1,
            "metadata.labels.release: 1 is not of type 'string'",
            id="label-value",
        ),
    ],
)
def test_invalid_values_fail(path: tuple[Any, ...], value: Any, error: str) -> None:
    monitor = service_monitor()
    node = monitor
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert crd_errors(monitor) == [error]


def test_missing_required_field_fails() -> None:
    monitor = service_monitor()
    del monitor["spec"]["selector"]
    assert crd_errors(monitor) == ["spec: 'selector' is a required property"]


def test_list_map_keys_must_be_unique() -> None:
    rule = prometheus_rule()
    rule["spec"]["groups"].append(copy.deepcopy(rule["spec"]["groups"][0]))
    assert crd_errors(rule) == ["spec.groups: entries 0 and 1 have the same map key {'name': 'valkey'}"]


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(LookupError, match=r"^no CRD for monitoring\.coreos\.com/v1 PodMonitor in "):
        crd_errors({"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "x"}})


# -- Go (RE2) patterns ---------------------------------------------------------------

GO_CASE_INSENSITIVE = "^(?i)(abort|warn)?$"  # PrometheusRule spec.groups[].partial_response_strategy


def test_python_rejects_the_crd_go_pattern_as_is() -> None:
    with pytest.raises(re.error, match="global flags not at the start"):
        re.compile(GO_CASE_INSENSITIVE)


def test_go_inline_flag_becomes_a_scoped_group() -> None:
    assert go_regex_to_python(GO_CASE_INSENSITIVE) == "^(?i:(abort|warn)?$)"


@pytest.mark.parametrize(
    ("go", "python"),
    [
        pytest.param("(?i)abc", "(?i:abc)", id="leading-flag"),
        pytest.param("a((?i)b)c", "a((?i:b))c", id="flag-scoped-to-group"),
        pytest.param("a(?i:b)c", "a(?i:b)c", id="already-scoped"),
        pytest.param("[(?i)]x", "[(?i)]x", id="in-class-is-literal"),
        pytest.param(r"\(?i\)x", r"\(?i\)x", id="escaped-parens"),
        pytest.param(r"^a\z", r"^a\Z", id="end-of-text"),
        pytest.param("[]a]", "[]a]", id="bracket-first-in-class"),
    ],
)
def test_go_regex_translation(go: str, python: str) -> None:
    assert go_regex_to_python(go) == python
    re.compile(python)


@pytest.mark.parametrize(
    "pattern", [r"\p{Greek}", "[[:alpha:]]", r"\Qa.b\E", "(?U)a+"], ids=["unicode-class", "posix", "quote", "ungreedy"]
)
def test_untranslatable_go_regex_raises(pattern: str) -> None:
    with pytest.raises(UnsupportedGoRegexError):
        go_regex_to_python(pattern)


@pytest.mark.parametrize(
    ("value", "valid"), [("warn", True), ("WARN", True), ("Abort", True), ("", True), ("fail", False)]
)
def test_case_insensitive_crd_pattern_is_enforced(value: str, valid: bool) -> None:
    errors = crd_errors(prometheus_rule(partial_response_strategy=value))
    assert (errors == []) is valid, errors
