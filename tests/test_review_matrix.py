"""Day-2 changes, rendered old -> new with the library and reviewed: every change the docs tell
users to make is accepted by the ported update rules (never `rejected`), and the verdict of
each is the one the README promises. The storage guard of synth agrees with the review.

`render()` is the one place that knows the library's API.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
import pytest

from cdk8s_valkey import AlertOptions, ExporterOptions, SecretKeyRef, Valkey
from cdk8s_valkey.review import Verdict, guard_claims, review

PROM = {"release": "kube-prometheus-stack"}
# main.py's app.
BASE: dict[str, Any] = {
    "namespace": "apps",
    "memory_limit": ("Gi", 1),
    "storage_size": ("Gi", 10),
    "storage_class": "longhorn",
    "bullmq_queues": ("emails", "webhooks"),
    "service_monitor_labels": PROM,
    "rule_labels": PROM,
}
SAFE, RESTARTS, DATA_AT_RISK = Verdict.SAFE, Verdict.RESTARTS, Verdict.DATA_AT_RISK
AUTH = SecretKeyRef(name="valkey-auth", key="password")

# (change, props before, props after, verdict). Sizes, durations and CPU as (unit, n), see _value().
MATRIX: list[tuple[str, dict[str, Any], dict[str, Any], Verdict]] = [
    ("memory up 1Gi -> 2Gi", {}, {"memory_limit": ("Gi", 2)}, RESTARTS),
    ("memory down 2Gi -> 1Gi", {"memory_limit": ("Gi", 2)}, {}, RESTARTS),
    (
        "memory 2Gi -> 4Gi, storage 10Gi -> 12Gi",
        {"memory_limit": ("Gi", 2)},
        {"memory_limit": ("Gi", 4), "storage_size": ("Gi", 12)},
        RESTARTS,
    ),
    (
        "memory 2Gi -> 4Gi, storage left to its default (6Gi -> 12Gi)",
        {"memory_limit": ("Gi", 2), "storage_size": None},
        {"memory_limit": ("Gi", 4), "storage_size": None},
        RESTARTS,
    ),
    ("storage up 10Gi -> 20Gi", {}, {"storage_size": ("Gi", 20)}, SAFE),
    ("image patch bump", {}, {"image": "valkey/valkey:8.1.12"}, RESTARTS),
    ("extra_config integer (maxclients)", {}, {"extra_config": {"maxclients": "2000"}}, RESTARTS),
    ("extra_config yes/no (lazyfree-lazy-user-del)", {}, {"extra_config": {"lazyfree-lazy-user-del": "yes"}}, RESTARTS),
    ("extra_config enum (loglevel)", {}, {"extra_config": {"loglevel": "warning"}}, RESTARTS),
    (
        "extra_config memory (auto-aof-rewrite-min-size)",
        {},
        {"extra_config": {"auto-aof-rewrite-min-size": "128mb"}},
        RESTARTS,
    ),
    ("extra_config seconds (timeout)", {}, {"extra_config": {"timeout": "300"}}, RESTARTS),
    ("extra_config several values (save)", {}, {"extra_config": {"save": "900 1"}}, RESTARTS),
    ("extra_config string (notify-keyspace-events)", {}, {"extra_config": {"notify-keyspace-events": "Ex"}}, RESTARTS),
    ("auth on", {}, {"auth_secret": AUTH}, Verdict.CLIENT_OUTAGE),
    ("auth off", {"auth_secret": AUTH}, {}, RESTARTS),
    ("NetworkPolicy on", {}, {"network_policy": True}, SAFE),
    ("NetworkPolicy off", {"network_policy": True}, {}, SAFE),
    ("queue added", {}, {"bullmq_queues": ("emails", "webhooks", "reports")}, RESTARTS),
    ("queue removed", {}, {"bullmq_queues": ("emails",)}, RESTARTS),
    ("client_threshold", {}, {"client_threshold": 2000}, SAFE),
    ("queue_depth_threshold(s)", {}, {"queue_depth_threshold": 500, "queue_depth_thresholds": {"emails": 50}}, SAFE),
    ("down_for and queue_depth_for", {}, {"down_for": ("min", 10), "queue_depth_for": ("min", 30)}, SAFE),
    (
        "rule and ServiceMonitor labels",
        {},
        {"rule_labels": {"release": "kps"}, "service_monitor_labels": {"release": "kps"}},
        SAFE,
    ),
    ("runbook_base_url", {}, {"runbook_base_url": "https://wiki.example.com/runbooks"}, SAFE),
    ("scrape_interval 30s -> 60s", {}, {"scrape_interval": ("s", 60)}, SAFE),
    ("scrape_interval 30s -> 10s (exporter timeout follows)", {}, {"scrape_interval": ("s", 10)}, RESTARTS),
    ("cpu_request", {}, {"cpu_request": ("m", 250)}, RESTARTS),
    ("maxmemory_ratio 0.7 -> 0.6", {}, {"maxmemory_ratio": 0.6}, RESTARTS),
    ("startup_budget", {}, {"startup_budget": ("s", 300)}, RESTARTS),
    ("exporter_memory_limit", {}, {"exporter_memory_limit": ("Mi", 128)}, RESTARTS),
    # Not in the docs: flagged, with the procedure or the guard's refusal.
    ("storage down 10Gi -> 5Gi", {}, {"storage_size": ("Gi", 5)}, DATA_AT_RISK),
    ("storage_class changed", {}, {"storage_class": "longhorn-ssd"}, DATA_AT_RISK),
    ("name changed", {}, {"name": "cache"}, DATA_AT_RISK),
    ("namespace changed", {}, {"namespace": "cache"}, DATA_AT_RISK),
]
DOCUMENTED = [m for m in MATRIX if m[3] is not DATA_AT_RISK]


def _value(value: Any) -> Any:
    """A prop from its stand-in: (unit, n) for sizes, durations and CPU amounts."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
        unit, n = value
        return {
            "Gi": cdk8s.Size.gibibytes,
            "Mi": cdk8s.Size.mebibytes,
            "s": cdk8s.Duration.seconds,
            "min": cdk8s.Duration.minutes,
            "m": kplus.Cpu.millis,
        }[unit](n)
    return value


_RENDERED: dict[str, list[dict[str, Any]]] = {}


def rendered(changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The app with ``changes`` over main.py's props (each rendering synthesized once)."""
    props = {**BASE, **changes}
    key = repr(sorted(props.items()))
    if key not in _RENDERED:
        _RENDERED[key] = render(**{k: _value(v) for k, v in props.items() if v is not None})
    return copy.deepcopy(_RENDERED[key])


def render(**props: Any) -> list[dict[str, Any]]:
    """The app as main.py builds it (one Valkey, its exporter and alerts), with ``props`` changed.
    Flat props go to the part that owns them, as main.py passes them."""
    exporter_fields = {f.name for f in dataclasses.fields(ExporterOptions)}
    alert_fields = {f.name for f in dataclasses.fields(AlertOptions)}
    exporter = {k.removeprefix("exporter_"): props.pop(k) for k in list(props) if k.startswith("exporter_")}
    exporter |= {
        k: props.pop(k) for k in list(props) if k in exporter_fields - {"image", "memory_limit", "cpu_request"}
    }
    alerts = {k: props.pop(k) for k in list(props) if k in alert_fields}
    chart = cdk8s.Chart(cdk8s.Testing.app(), "valkey", namespace=props.pop("namespace"))
    Valkey(
        chart, props.pop("name", "valkey"), exporter=ExporterOptions(**exporter), alerts=AlertOptions(**alerts), **props
    )
    return [dict(o) for o in cdk8s.Testing.synth(chart)]


@pytest.mark.parametrize(("change", "before", "after", "verdict"), MATRIX, ids=[m[0] for m in MATRIX])
def test_day2_change(change: str, before: dict[str, Any], after: dict[str, Any], verdict: Verdict) -> None:
    report = review(rendered(before), rendered(after))
    assert report.verdict is verdict, report.markdown()


@pytest.mark.parametrize(("change", "before", "after", "verdict"), DOCUMENTED, ids=[m[0] for m in DOCUMENTED])
def test_documented_changes_are_never_rejected(
    change: str, before: dict[str, Any], after: dict[str, Any], verdict: Verdict
) -> None:
    report = review(rendered(before), rendered(after))
    assert all(f.verdict < Verdict.REJECTED for o in report.objects for f in o.findings), report.markdown()


@pytest.mark.parametrize(
    ("change", "after", "prop"),
    [
        ("shrink", {"storage_size": ("Gi", 5)}, "storage_size"),
        ("class", {"storage_class": "longhorn-ssd"}, "storage_class"),
    ],
)
def test_synth_guard_refuses_what_the_review_calls_data_at_risk(
    tmp_path: Path, change: str, after: dict[str, Any], prop: str
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "valkey.k8s.yaml").write_text(str(cdk8s.Yaml.stringify(*rendered({}))))
    with pytest.raises(ValueError, match=rf"^{prop}: the claim apps/data-valkey-0 "):
        guard_claims(dist, rendered(after))
    guard_claims(dist, rendered({"storage_size": ("Gi", 12), "memory_limit": ("Gi", 4)}))
