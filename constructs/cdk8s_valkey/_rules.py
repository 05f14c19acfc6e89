"""Rendering of alerting rules: a :class:`Rule` as the CRD's ``Rule`` entry, the selection of
rules by ``disabled`` and ``severities``, and the PrometheusRule object that holds one group.
Shared by :class:`Alerts` and :class:`SentinelAlerts`."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import cdk8s
from constructs import Construct

from . import _plain, _registry
from ._catalogue import SEVERITIES, definition
from ._promql import prometheus_duration

API_VERSION = "monitoring.coreos.com/v1"  # PrometheusRule, prometheus-operator's CRD


@dataclass(frozen=True)
class Rule:
    """One alerting rule as rendered: ``for_seconds`` 0 renders no ``for``."""

    alert: str
    expr: str
    for_seconds: int
    severity: str
    summary: str
    description: str


def rule(alert: str, expr: str, for_seconds: int, summary: str, description: str) -> Rule:
    """A rule of a catalogued alert, with the catalogue's default severity."""
    return Rule(alert, expr, for_seconds, definition(alert).severity, summary, description)


def check_alert_selection(
    owner: str, names: Sequence[str], disabled: Collection[str], severities: Mapping[str, str] | None
) -> None:
    """``disabled`` and ``severities`` of an alerts construct name only alerts it renders."""
    if isinstance(disabled, str):
        raise ValueError(
            f"disabled: {disabled!r} is a single string; pass a list of alert names such as [{disabled!r}]"
        )
    for prop, alerts in (("disabled", list(disabled)), ("severities", list(severities or {}))):
        for alert in alerts:
            if alert not in names:
                close = difflib.get_close_matches(alert, names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"{prop}: {alert!r} is not an alert of {owner}; {hint}use one of {list(names)}")
    for alert, severity in (severities or {}).items():
        if severity not in SEVERITIES:
            raise ValueError(f"severities[{alert!r}]: {severity!r} is not a severity; use one of {list(SEVERITIES)}")


def selected_rules(rules: Sequence[Rule], disabled: Collection[str], severities: Mapping[str, str]) -> list[Rule]:
    """The rules not switched off, each with its severity override applied."""
    return [
        dataclasses.replace(rule, severity=severities.get(rule.alert, rule.severity))
        for rule in rules
        if rule.alert not in disabled
    ]


def runbook_url(runbook_base_url: str, alert: str) -> str:
    """An alert's ``runbook_url``: the runbooks page plus the anchor of the alert's heading."""
    return f"{runbook_base_url}#{alert.lower()}"


def rule_json(rule: Rule, runbook_base_url: str, extra_annotations: Mapping[str, str]) -> _plain.JsonObject:
    """One entry of a group's ``rules`` (the CRD's ``Rule``)."""
    return {
        "alert": rule.alert,
        "expr": rule.expr,
        "for": prometheus_duration(rule.for_seconds) if rule.for_seconds else None,
        "labels": {"severity": rule.severity},
        "annotations": {
            "summary": rule.summary,
            "description": rule.description,
            "runbook_url": runbook_url(runbook_base_url, rule.alert),
            **extra_annotations,
        },
    }


def prometheus_rule(
    scope: Construct,
    *,
    name: str,
    labels: Mapping[str, str],
    group_name: str,
    rules: Sequence[_plain.JsonObject],
) -> cdk8s.ApiObject:
    """``PrometheusRule <name>`` with one group, registered under its name. Plain JSON, not the
    generated CRD binding: one static call per expression less (_plain.py);
    tests/test_crd_schemas.py validates it against the CRD instead."""
    _registry.register(scope, [("PrometheusRule", name)])
    return _plain.api_object(
        scope,
        "Resource",
        api_version=API_VERSION,
        kind="PrometheusRule",
        name=name,
        labels=labels,
        spec={"groups": [{"name": group_name, "rules": list(rules)}]},
    )
