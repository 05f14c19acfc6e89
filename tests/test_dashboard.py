"""Dashboard: the rendered ConfigMap and dashboard JSON, validated against the Grafana 11.6 and
Kubernetes 1.28 schemas, the options' effect, the wiring points the alerts link through, the
queries' scoping (checked by promtool for every variant), and one test per validation rule.

Every query returning data from the real exporter is tests/test_dashboard_e2e.py's job."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import cdk8s
import kubernetes_validate
import pytest
import yaml

from cdk8s_valkey import Alerts, ExporterOptions, ExporterSidecar, SentinelOptions, Valkey, ValkeyStatefulSet
from cdk8s_valkey._panels import JSON_WIDTH
from cdk8s_valkey._promql import scope_matchers
from cdk8s_valkey.alerts import CAPACITY_REVIEW_RATIO, MEMORY_CRITICAL_RATIO, MEMORY_WARNING_RATIO
from cdk8s_valkey.dashboard import ALERT_PANELS, TIME_FROM, UID_MAX_LENGTH, Dashboard, DashboardOptions
from harness.grafana import dashboard_errors, grafana_expr, panels
from harness.paths import require_binary
from harness.synth import find, new_chart, objects

pytestmark = pytest.mark.real

SCOPE = 'namespace="apps",service="valkey-metrics"'
GRAFANA = "https://grafana.example.com"


def build(
    *,
    namespace: str | None = "apps",
    name: str | None = None,
    queues: tuple[str, ...] = ("emails", "reports"),
    valkey_props: dict[str, Any] | None = None,
    exporter_props: dict[str, Any] | None = None,
    options: DashboardOptions | None = None,
) -> tuple[cdk8s.Chart, Dashboard]:
    """A fresh chart with a Valkey, its exporter and a Dashboard."""
    chart = new_chart(namespace)
    valkey = ValkeyStatefulSet(chart, "valkey", name=name, **(valkey_props or {}))
    exporter = ExporterSidecar(
        chart, "metrics", valkey=valkey, options=ExporterOptions(bullmq_queues=list(queues), **(exporter_props or {}))
    )
    return chart, Dashboard(chart, "dashboard", valkey=valkey, exporter=exporter, options=options)


def config_map(chart: cdk8s.Chart, dashboard: Dashboard) -> dict[str, Any]:
    return find(objects(chart), "ConfigMap", dashboard.name)


def document(chart: cdk8s.Chart, dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard JSON exactly as the ConfigMap ships it."""
    (text,) = config_map(chart, dashboard)["data"].values()
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def exprs(doc: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(doc) for target in panel["targets"]]


# -- snapshot and defaults ------------------------------------------------------------------


def test_defaults_snapshot(yaml_snapshot: Any) -> None:
    chart, dashboard = build()
    cm = config_map(chart, dashboard)
    assert cm["metadata"]["name"] == "valkey-dashboard"
    assert str(cdk8s.Yaml.stringify(cm)) == yaml_snapshot


def test_defaults() -> None:
    chart, dashboard = build()
    cm = config_map(chart, dashboard)
    assert cm["metadata"] == {
        "name": "valkey-dashboard",
        "namespace": "apps",
        "labels": {
            "app.kubernetes.io/name": "valkey",
            "app.kubernetes.io/instance": "valkey",
            "app.kubernetes.io/version": "8.1.11",
            "app.kubernetes.io/component": "dashboard",
            "app.kubernetes.io/managed-by": "cdk8s",
            "grafana_dashboard": "1",
        },
        "annotations": {"grafana_folder": "Valkey"},
    }
    assert list(cm["data"]) == ["valkey_apps_valkey.json"]
    doc = document(chart, dashboard)
    assert doc["uid"] == dashboard.uid == "valkey_apps_valkey"
    assert doc["title"] == dashboard.title == "Valkey apps/valkey"
    assert doc["time"] == {"from": "now-3h", "to": "now"}
    assert [v["name"] for v in doc["templating"]["list"]] == ["datasource"]
    assert {json.dumps(p["datasource"]) for p in panels(doc)} == {'{"type": "prometheus", "uid": "${datasource}"}'}
    assert dashboard.options == DashboardOptions()
    assert dashboard.namespace == "apps"


def test_panels_an_on_call_engineer_needs() -> None:
    chart, dashboard = build()
    assert dashboard.panel_keys == (
        "up",
        "uptime",
        "restarts",
        "eviction_policy",
        "oom_total",
        "evicted_total",
        "memory",
        "memory_of_maxmemory",
        "memory_of_limit",
        "clients",
        "commands",
        "oom_rate",
        "aof_write",
        "aof_rewrite",
        "aof_rewrite_in_progress",
        "aof_last_rewrite_duration",
        "aof_size",
        "keys",
        "evicted_rate",
        "bullmq",
        "bullmq_waiting",
        "network",
    )
    doc = document(chart, dashboard)
    assert [p["title"] for p in doc["panels"] if p["type"] == "row"] == [
        "Availability",
        "Memory",
        "Clients and commands",
        "Persistence (AOF)",
        "Keyspace",
        "BullMQ",
        "Network",
    ]
    by_id = {p["id"]: p for p in panels(doc)}
    for key in dashboard.panel_keys:
        assert by_id[dashboard.panel_id(key)]["title"] == dashboard.panel_title(key)
        assert by_id[dashboard.panel_id(key)]["description"]


def test_json_validates_against_the_grafana_schemas() -> None:
    chart, dashboard = build()
    errors = dashboard_errors(document(chart, dashboard))
    assert not errors, "\n".join(errors)


def test_schema_validation_catches_what_grafana_would_not_load() -> None:
    """The schema check is not vacuous: a misspelt field, a timeseries without its legend
    options and a target without refId all fail."""
    chart, dashboard = build()
    broken = copy.deepcopy(document(chart, dashboard))
    broken["refresh_interval"] = "30s"
    memory = next(p for p in broken["panels"] if p["id"] == dashboard.panel_id("memory"))
    del memory["options"]["legend"]
    del memory["targets"][0]["refId"]
    errors = "\n".join(dashboard_errors(broken))
    assert "'refresh_interval' was unexpected" in errors
    assert "'legend' is a required property" in errors
    assert "'refId' is a required property" in errors


def test_config_map_validates_against_kubernetes_1_28() -> None:
    chart, dashboard = build()
    kubernetes_validate.validate(config_map(chart, dashboard), "1.28", strict=True)


def test_json_is_deterministic_and_sorted() -> None:
    """Two syntheses give the same bytes, keys sorted, one value per line except objects and
    lists that fit in JSON_WIDTH columns, so a dist/ diff shows only real changes."""
    first = build()[1].json
    assert first == build()[1].json

    def sorted_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        assert keys == sorted(keys), keys
        return dict(pairs)

    parsed = json.loads(first, object_pairs_hook=sorted_keys)
    assert parsed == json.loads(json.dumps(parsed, indent=2))
    for line in first.splitlines():
        inline = line.strip().rstrip(",")
        if len(line) > JSON_WIDTH:  # only a long string, never a container that would fit
            assert not inline.endswith(("}", "]")), line
        if inline.endswith(("}", "]")) and inline not in ("}", "]"):
            assert len(line.rstrip(",")) <= JSON_WIDTH, line


def test_config_map_stays_small() -> None:
    """kubectl's client-side apply copies the object into an annotation, which may not exceed
    256 KiB; dashboards are the usual victims. Keep this one well below."""
    chart, dashboard = build()
    assert len(yaml.safe_dump(config_map(chart, dashboard)).encode()) < 128 << 10


def test_layout_fills_the_grid_without_overlaps() -> None:
    chart, dashboard = build()
    doc = document(chart, dashboard)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in doc["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


# -- queries -----------------------------------------------------------------------------------


def test_every_query_is_scoped_like_the_alerts() -> None:
    chart, dashboard = build()
    alerts = Alerts(chart, "alerts", valkey=dashboard.valkey, exporter=dashboard.exporter)
    assert scope_matchers(dashboard.valkey, dashboard.exporter) == alerts.selector == SCOPE
    for expr in exprs(document(chart, dashboard)):
        selectors = re.findall(r"\bvalkey_\w+(\{[^}]*\})?", expr)
        assert all(s.startswith("{" + SCOPE) for s in selectors), expr
        assert selectors or expr.startswith("vector("), expr


def test_every_target_uses_the_scrape_interval_as_min_step() -> None:
    chart, dashboard = build(exporter_props={"scrape_interval": cdk8s.Duration.minutes(1)})
    assert {t["interval"] for p in panels(document(chart, dashboard)) for t in p["targets"]} == {"60s"}


def test_stats_and_gauges_are_instant_and_graphs_range_queries() -> None:
    chart, dashboard = build()
    for panel in panels(document(chart, dashboard)):
        for target in panel["targets"]:
            assert target["instant"] is (panel["type"] != "timeseries"), panel["title"]
            assert target["range"] is (panel["type"] == "timeseries"), panel["title"]


def _check_with_promtool(promtool: str, doc: dict[str, Any], tmp_path: Path) -> None:
    """Every target, with Grafana's macros substituted, as a recording rule: promtool parses it."""
    rules = [
        {"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": grafana_expr(
            target["expr"], min_step=target["interval"], time_from=TIME_FROM
        )}
        for panel in panels(doc)
        for target in panel["targets"]
    ]  # fmt: skip
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"queues": ()},
        {"queues": ("v1.emails", "a+b"), "exporter_props": {"bullmq_prefix": "app.bull"}},
    ],
    ids=["defaults", "no-queues", "regex-characters"],
)
def test_every_query_parses(variant: dict[str, Any], tmp_path: Path) -> None:
    chart, dashboard = build(**variant)
    _check_with_promtool(require_binary("promtool"), document(chart, dashboard), tmp_path)


def test_bullmq_queries_match_queue_names_literally() -> None:
    chart, dashboard = build(queues=("v1.emails", "a+b"), exporter_props={"bullmq_prefix": "app.bull"})
    doc = document(chart, dashboard)
    (waiting,) = [p for p in panels(doc) if p["id"] == dashboard.panel_id("bullmq_waiting")]
    expr = waiting["targets"][0]["expr"]
    assert r'key=~"app\\.bull:(?:v1\\.emails|a\\+b):(?:wait|paused|prioritized)"' in expr
    assert r'"queue", "$1", "key", "app\\.bull:([^:]+):[^:]+"' in expr


def test_bullmq_panel_shows_every_exported_state() -> None:
    chart, dashboard = build()
    doc = document(chart, dashboard)
    (by_state,) = [p for p in panels(doc) if p["id"] == dashboard.panel_id("bullmq")]
    assert ':(?:wait|paused|prioritized|delayed|active)"' in by_state["targets"][0]["expr"]
    assert by_state["targets"][0]["legendFormat"] == "{{queue}} {{state}}"


def test_memory_limit_line_and_thresholds_follow_the_valkey_and_the_alerts() -> None:
    chart, dashboard = build(valkey_props={"memory_limit": cdk8s.Size.gibibytes(1), "maxmemory_ratio": 0.75})
    doc = document(chart, dashboard)
    by_id = {p["id"]: p for p in panels(doc)}
    memory = by_id[dashboard.panel_id("memory")]
    limit = (
        'max by (namespace, pod) (kube_pod_container_resource_limits{namespace="apps",pod="valkey-0",'
        'container="valkey",resource="memory"})\n'
        f"or\nmax by (namespace, pod) (valkey_memory_max_bytes{{{SCOPE}}} > 0) / 0.75"
    )
    assert {t["legendFormat"]: t["expr"] for t in memory["targets"]}["container limit"] == limit
    of_limit = by_id[dashboard.panel_id("memory_of_limit")]
    assert of_limit["targets"][0]["expr"] == (
        f"max by (namespace, pod) (valkey_memory_used_rss_bytes{{{SCOPE}}})\n/ on (namespace, pod)\n(\n{limit}\n)"
    )
    steps = of_limit["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps[1:]] == [0.75, 0.9, 0.95]
    of_max = by_id[dashboard.panel_id("memory_of_maxmemory")]
    steps = of_max["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps[1:]] == [CAPACITY_REVIEW_RATIO, MEMORY_WARNING_RATIO, MEMORY_CRITICAL_RATIO]
    assert [s["color"] for s in steps] == ["green", "yellow", "orange", "red"]


def test_a_memory_change_leaves_the_dashboard_as_it_is() -> None:
    """Issue 17: no size is written into the dashboard, so changing memory_limit (or the storage
    that follows it) changes no byte of the ConfigMap."""
    sizes = [cdk8s.Size.mebibytes(512), cdk8s.Size.gibibytes(1), cdk8s.Size.gibibytes(3)]
    maps = [config_map(*build(valkey_props={"memory_limit": size})) for size in sizes]
    assert maps[0] == maps[1] == maps[2]
    assert "1073741824" not in json.dumps(maps[1]) and "536870912" not in json.dumps(maps[0])


def test_container_limit_comes_from_kube_state_metrics_else_from_maxmemory(tmp_path: Path) -> None:
    """The limit query evaluated by promtool: kube-state-metrics' limit where it reports the pod
    (even when maxmemory says otherwise), maxmemory / ratio where it does not; never another
    Valkey's, another container's or another resource's."""
    chart, dashboard = build()
    (memory,) = [p for p in panels(document(chart, dashboard)) if p["id"] == dashboard.panel_id("memory")]
    limit = next(t["expr"] for t in memory["targets"] if t["legendFormat"] == "container limit")
    ksm = 'kube_pod_container_resource_limits{namespace="apps",pod="valkey-0",container="valkey",resource="memory"'
    series = [
        {"series": f'valkey_memory_max_bytes{{{SCOPE},pod="valkey-0"}}', "values": "429496729x3"},
        {"series": 'valkey_memory_max_bytes{namespace="other",service="valkey-metrics",pod="valkey-0"}',
         "values": "100x3"},
        {"series": 'kube_pod_container_resource_limits{namespace="apps",pod="valkey-0",container="exporter",'
                   'resource="memory"}', "values": "1x3"},
        {"series": 'kube_pod_container_resource_limits{namespace="apps",pod="valkey-0",container="valkey",'
                   'resource="cpu"}', "values": "2x3"},
    ]  # fmt: skip
    with_ksm = [*series, {"series": f'{ksm},node="n1"}}', "values": "1073741824x3"}]
    tests = [
        {"input_series": with_ksm, "promql_expr_test": [{"expr": limit, "eval_time": "1m", "exp_samples": [
            {"labels": '{namespace="apps",pod="valkey-0"}', "value": 1073741824}]}]},
        {"input_series": series, "promql_expr_test": [{"expr": limit, "eval_time": "1m", "exp_samples": [
            {"labels": '{namespace="apps",pod="valkey-0"}', "value": 429496729 / 0.7}]}]},
    ]  # fmt: skip
    path = tmp_path / "limit.test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": tests}))
    result = subprocess.run(
        [require_binary("promtool"), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_failures_are_red() -> None:
    """Evicted keys or refused writes above 0, an AOF status other than ok, a policy other than
    noeviction: red."""
    chart, dashboard = build()
    by_id = {p["id"]: p for p in panels(document(chart, dashboard))}
    for key in ("oom_total", "evicted_total", "eviction_policy"):
        steps = by_id[dashboard.panel_id(key)]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps == [{"color": "green", "value": 0}, {"color": "red", "value": 1}], key
    for key in ("aof_write", "aof_rewrite"):
        defaults = by_id[dashboard.panel_id(key)]["fieldConfig"]["defaults"]
        assert defaults["mappings"][0]["options"]["0"]["color"] == "red"
        assert defaults["mappings"][0]["options"]["1"]["color"] == "green"
    evicted = by_id[dashboard.panel_id("evicted_rate")]["fieldConfig"]["overrides"]
    assert evicted[0]["matcher"] == {"id": "byNames", "options": {"mode": "include", "names": ["evicted"]}}
    assert evicted[0]["properties"][0]["value"] == {"fixedColor": "red", "mode": "fixed"}


def test_counters_that_appear_late_read_zero_for_this_valkey_only() -> None:
    """errors_total{err="OOM"} only exists after the first refused write: the query falls back
    to 0 through this Valkey's own valkey_up, never a bare vector(0) that would show 0 for a
    Valkey whose metrics are gone."""
    chart, dashboard = build()
    by_id = {p["id"]: p for p in panels(document(chart, dashboard))}
    expr = by_id[dashboard.panel_id("oom_total")]["targets"][0]["expr"]
    assert expr == (
        f'sum by (namespace, service) (valkey_errors_total{{{SCOPE},err="OOM"}})\n'
        f"or\n0 * sum by (namespace, service) (valkey_up{{{SCOPE}}})"
    )


# -- options -------------------------------------------------------------------------------------


def test_label_and_folder_options() -> None:
    options = DashboardOptions(
        label_key="example.com/dashboard", label_value="valkey", folder_annotation="example.com/folder", folder="Data"
    )
    chart, _ = build(options=options)
    metadata = find(objects(chart), "ConfigMap", "valkey-dashboard")["metadata"]
    assert metadata["labels"]["example.com/dashboard"] == "valkey"
    assert "grafana_dashboard" not in metadata["labels"]
    assert metadata["annotations"] == {"example.com/folder": "Data"}


def test_no_folder_renders_no_annotation() -> None:
    chart, _ = build(options=DashboardOptions(folder=None))
    assert "annotations" not in find(objects(chart), "ConfigMap", "valkey-dashboard")["metadata"]


def test_namespace_option_moves_only_the_config_map() -> None:
    chart, dashboard = build(options=DashboardOptions(namespace="monitoring"))
    cm = config_map(chart, dashboard)
    assert cm["metadata"]["namespace"] == dashboard.namespace == "monitoring"
    assert dashboard.uid == "valkey_apps_valkey"
    assert all(SCOPE in expr for expr in exprs(document(chart, dashboard)) if "valkey_" in expr)


def test_named_valkey() -> None:
    chart, dashboard = build(name="cache")
    assert dashboard.name == "cache-dashboard"
    assert dashboard.uid == "valkey_apps_cache"
    assert 'valkey_up{namespace="apps",service="cache-metrics"}' in exprs(document(chart, dashboard))


def test_without_queues_there_is_no_bullmq_row() -> None:
    chart, dashboard = build(queues=())
    doc = document(chart, dashboard)
    assert "BullMQ" not in [p["title"] for p in doc["panels"]]
    assert "bullmq" not in dashboard.panel_keys and "bullmq_waiting" not in dashboard.panel_keys
    assert all("key_size" not in expr for expr in exprs(doc))
    assert "ValkeyBullMQQueueBacklog" not in dashboard.alert_panels


def test_long_names_get_a_uid_within_grafanas_limit() -> None:
    namespace = "a-namespace-with-a-rather-long-name"
    _, dashboard = build(namespace=namespace, name="valkey-for-the-sessions")
    assert len(dashboard.uid) == UID_MAX_LENGTH
    assert dashboard.uid == "valkey_a-namespace-with-a-rathe_b4017e4d"
    assert re.fullmatch(r"[A-Za-z0-9_-]+", dashboard.uid)
    _, other = build(namespace=namespace, name="valkey-for-the-queues")
    assert other.uid != dashboard.uid


# -- wiring points for the alerts ------------------------------------------------------------------


def test_every_alert_links_to_a_rendered_panel() -> None:
    for queues in (("emails",), ()):
        chart, dashboard = build(queues=queues)
        alerts = Alerts(chart, "alerts", valkey=dashboard.valkey, exporter=dashboard.exporter)
        unmapped = set(alerts.alert_names) - set(ALERT_PANELS)
        assert not unmapped, f"add a panel for {sorted(unmapped)} to dashboard.ALERT_PANELS"
        assert set(dashboard.alert_panels) == set(alerts.alert_names)
        ids = {p["id"] for p in panels(document(chart, dashboard))}
        assert set(dashboard.alert_panels.values()) <= ids


def test_alert_panels() -> None:
    _, dashboard = build()
    panels_of = dashboard.alert_panels
    assert panels_of["ValkeyDown"] == dashboard.panel_id("up") == 2
    assert panels_of["ValkeyMemoryCritical"] == dashboard.panel_id("memory_of_maxmemory")
    assert panels_of["ValkeyAofWriteFailing"] == dashboard.panel_id("aof_write")
    assert panels_of["ValkeyBullMQQueueBacklog"] == dashboard.panel_id("bullmq_waiting")
    panels_of["ValkeyDown"] = 99
    assert dashboard.alert_panels["ValkeyDown"] == 2  # a copy


def test_urls() -> None:
    _, dashboard = build()
    assert dashboard.url(GRAFANA) == "https://grafana.example.com/d/valkey_apps_valkey"
    assert dashboard.url(GRAFANA + "/grafana/") == "https://grafana.example.com/grafana/d/valkey_apps_valkey"
    assert dashboard.panel_url("memory", GRAFANA) == "https://grafana.example.com/d/valkey_apps_valkey?viewPanel=11"
    assert dashboard.alert_url("ValkeyAofWriteFailing", GRAFANA) == dashboard.panel_url("aof_write", GRAFANA)


# -- validation: one test per rule, exact messages ----------------------------------------------


def _expect(message: str, **option_fields: Any) -> None:
    with pytest.raises(ValueError) as info:
        DashboardOptions(**option_fields)
    assert str(info.value) == message


@pytest.mark.parametrize("prop", ["label_key", "folder_annotation"])
def test_keys_must_be_qualified_names(prop: str) -> None:
    what = "label" if prop == "label_key" else "annotation"
    _expect(
        f"DashboardOptions.{prop}: 'grafana dashboard' is not a valid {what} key; use an optional DNS subdomain "
        "prefix and '/', then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter "
        "or digit",
        **{prop: "grafana dashboard"},
    )


def test_label_key_cannot_be_a_construct_label() -> None:
    _expect(
        "DashboardOptions.label_key: 'app.kubernetes.io/component' is set by Dashboard; use the label your Grafana "
        "sidecar selects (sidecar.dashboards.label), e.g. 'grafana_dashboard'",
        label_key="app.kubernetes.io/component",
    )


def test_label_value_must_be_a_label_value() -> None:
    _expect(
        "DashboardOptions.label_value: label 'grafana_dashboard' has value 'yes please'; use at most 63 letters, "
        "digits, '-', '_' and '.', starting and ending with a letter or digit",
        label_value="yes please",
    )


@pytest.mark.parametrize("folder", ["", "Data/Valkey", "..", " Valkey", "Val\nkey", "x" * 256])
def test_folder_must_be_one_directory_name(folder: str) -> None:
    _expect(
        f"DashboardOptions.folder: {folder!r} is not allowed; use a folder name of 1 to 255 characters without "
        "'/', '\\' or control characters, no leading or trailing spaces, other than '.' and '..' (the sidecar "
        "makes it a directory), or None for the provider's folder",
        folder=folder,
    )


def test_namespace_must_be_a_namespace_name() -> None:
    _expect(
        "DashboardOptions.namespace: 'Monitoring' is not a valid namespace name; use at most 63 lower-case "
        "letters, digits and '-', starting and ending with a letter or digit, or None for the Valkey's namespace",
        namespace="Monitoring",
    )


def test_options_must_be_dashboard_options() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    exporter = ExporterSidecar(chart, "metrics", valkey=valkey)
    with pytest.raises(ValueError) as info:
        Dashboard(chart, "dashboard", valkey=valkey, exporter=exporter, options={"folder": "x"})  # type: ignore[arg-type]
    assert str(info.value) == "options: {'folder': 'x'} is not a DashboardOptions; pass DashboardOptions(...)"
    assert chart.node.try_find_child("dashboard") is None  # raised before joining the tree


def test_exporter_must_watch_this_valkey() -> None:
    chart = new_chart()
    first = ValkeyStatefulSet(chart, "first")
    second = ValkeyStatefulSet(chart, "second")
    exporter = ExporterSidecar(chart, "metrics", valkey=first)
    with pytest.raises(ValueError) as info:
        Dashboard(chart, "dashboard", valkey=second, exporter=exporter)
    assert str(info.value) == (
        "exporter: it watches Valkey 'first', not 'second'; pass the ExporterSidecar created with valkey=<this Valkey>"
    )
    assert chart.node.try_find_child("dashboard") is None


@pytest.mark.parametrize(
    "url", ["grafana.example.com", "https://grafana.example.com/?orgId=1", "https://grafana.example.com/#x"]
)
def test_grafana_url_must_be_an_absolute_base_url(url: str) -> None:
    _, dashboard = build()
    with pytest.raises(ValueError) as info:
        dashboard.panel_url("memory", url)
    assert str(info.value) == (
        f"grafana_url: {url!r} is not allowed; use the absolute http(s) URL of Grafana (with its sub-path, "
        "if any) without query, fragment, whitespace or braces"
    )


def test_alert_must_have_a_panel() -> None:
    _, dashboard = build(queues=())
    with pytest.raises(ValueError) as info:
        dashboard.alert_url("ValkeyBullMQQueueBacklog", GRAFANA)
    assert str(info.value).startswith("alert: 'ValkeyBullMQQueueBacklog' has no panel here; use one of ['ValkeyDown', ")


def test_panel_key_must_be_rendered() -> None:
    _, dashboard = build(queues=())
    with pytest.raises(ValueError) as info:
        dashboard.panel_id("bullmq")
    assert str(info.value).startswith("key: 'bullmq' is not a rendered panel; use one of ['up', 'uptime', ")


# -- the Sentinel topology: every pod, replication and the Sentinels' view ------------------------

SENTINEL_PANELS = (
    "role",
    "connected_replicas",
    "replication_link",
    "replication_offset_lag",
    "replica_lag",
    "sentinel_primary",
    "sentinel_quorum",
    "sentinel_replicas",
)


def build_sentinel(**sentinel_props: Any) -> tuple[cdk8s.Chart, Valkey]:
    """A Valkey with Sentinel (three pods by default), its dashboard and both alert groups."""
    chart = new_chart("apps")
    valkey = Valkey(
        chart,
        "valkey",
        exporter=ExporterOptions(bullmq_queues=["emails", "reports"]),
        dashboard=DashboardOptions(),
        sentinel=SentinelOptions(**sentinel_props),
    )
    return chart, valkey


def test_sentinel_topology_has_replication_and_sentinel_panels() -> None:
    chart, valkey = build_sentinel()
    dashboard = valkey.dashboard
    assert dashboard is not None and dashboard.sentinel is valkey.sentinel
    keys = dashboard.panel_keys
    assert keys[:6] == ("up", "uptime", "restarts", "eviction_policy", "oom_total", "evicted_total")
    assert keys[6:14] == SENTINEL_PANELS
    doc = document(chart, dashboard)
    rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
    assert rows[:3] == ["Availability", "Replication", "Sentinel"]
    errors = dashboard_errors(doc)
    assert not errors, "\n".join(errors)
    kubernetes_validate.validate(config_map(chart, dashboard), "1.28", strict=True)


def test_sentinel_topology_queries_parse_and_are_scoped(tmp_path: Path) -> None:
    chart, valkey = build_sentinel()
    assert valkey.dashboard is not None
    doc = document(chart, valkey.dashboard)
    _check_with_promtool(require_binary("promtool"), doc, tmp_path)
    sentinel_scope = 'namespace="apps",service="valkey-sentinel-metrics",master_name="valkey"'
    for panel in panels(doc):
        for target in panel["targets"]:
            for selector in re.findall(r"\bvalkey_\w+(\{[^}]*\})?", target["expr"]):
                assert selector.startswith(("{" + SCOPE, "{" + sentinel_scope)), (panel["title"], target["expr"])
            if "valkey_sentinel_" in target["expr"]:
                assert sentinel_scope in target["expr"], target["expr"]


def test_sentinel_topology_shows_every_pod_apart() -> None:
    """With three pods no panel sums them: every aggregation keeps ``pod``, every legend names it,
    and the BullMQ panels take the largest pod's copy of the keys instead of adding the copies."""
    chart, valkey = build_sentinel()
    assert valkey.dashboard is not None
    doc = document(chart, valkey.dashboard)
    for panel in panels(doc):
        for target in panel["targets"]:
            expr, legend = target["expr"], target["legendFormat"]
            assert "sum by (namespace, service)" not in expr, (panel["title"], expr)
            if "queue" not in legend:
                assert "{{pod}}" in legend or "{{slave_ip}}" in legend, (panel["title"], legend)
    (waiting,) = [p for p in panels(doc) if p["title"] == "BullMQ jobs waiting to run"]
    assert waiting["targets"][0]["expr"].startswith("max by (queue) (")
    (memory,) = [p for p in panels(doc) if p["title"].startswith("Memory:")]
    limit = next(t["expr"] for t in memory["targets"] if t["legendFormat"] == "{{pod}} container limit")
    assert 'pod=~"valkey-0|valkey-1|valkey-2"' in limit
    # The limit and maxmemory lines of each pod keep their colour and dash.
    matchers = [o["matcher"] for o in memory["fieldConfig"]["overrides"]]
    assert [m["options"]["names"] for m in matchers] == [
        ["valkey-0 maxmemory", "valkey-1 maxmemory", "valkey-2 maxmemory"],
        ["valkey-0 container limit", "valkey-1 container limit", "valkey-2 container limit"],
    ]


def test_sentinel_panels_follow_the_sentinel() -> None:
    chart, valkey = build_sentinel(replicas=4, min_replicas_to_write=2)
    assert valkey.dashboard is not None and valkey.sentinel is not None
    by_key = {key: valkey.dashboard.panel_id(key) for key in valkey.dashboard.panel_keys}
    by_id = {p["id"]: p for p in panels(document(chart, valkey.dashboard))}

    def steps(key: str) -> list[tuple[float, str]]:
        found = by_id[by_key[key]]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        return [(s["value"], s["color"]) for s in found]

    assert valkey.sentinel.quorum == 3
    assert steps("sentinel_quorum") == [(0, "red"), (3, "orange"), (5, "green")]
    assert steps("connected_replicas") == [(0, "red"), (2, "orange"), (4, "green")]
    assert steps("sentinel_replicas") == [(0, "red"), (1, "orange"), (4, "green")]
    assert "of 5: below the quorum (3)" in by_id[by_key["sentinel_quorum"]]["description"]


def test_every_sentinel_alert_links_to_a_rendered_panel() -> None:
    chart, valkey = build_sentinel()
    dashboard, sentinel_alerts = valkey.dashboard, valkey.sentinel_alerts
    assert dashboard is not None and sentinel_alerts is not None
    rendered = set(valkey.alerts.alert_names) | set(sentinel_alerts.alert_names)
    assert set(dashboard.alert_panels) == rendered
    ids = {p["id"] for p in panels(document(chart, dashboard))}
    assert set(dashboard.alert_panels.values()) <= ids
    rules = find(objects(chart), "PrometheusRule", "valkey-sentinel")["spec"]["groups"][0]["rules"]
    for rule in rules:
        assert rule["annotations"]["__dashboardUid__"] == dashboard.uid
        assert rule["annotations"]["__panelId__"] == str(dashboard.alert_panels[rule["alert"]])
    assert dashboard.alert_panels["ValkeyReplicationBroken"] == dashboard.panel_id("replication_link")


def test_sentinel_layout_fills_the_grid_without_overlaps() -> None:
    chart, valkey = build_sentinel()
    assert valkey.dashboard is not None
    cells: set[tuple[int, int]] = set()
    for panel in document(chart, valkey.dashboard)["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_sentinel_of_another_valkey_is_refused() -> None:
    chart, valkey = build_sentinel()
    other = ValkeyStatefulSet(chart, "other")
    exporter = ExporterSidecar(chart, "other-metrics", valkey=other)
    assert valkey.sentinel is not None
    with pytest.raises(ValueError, match=r"^sentinel: it watches Valkey 'valkey', not 'other'; pass the Sentinel"):
        Dashboard(chart, "d", valkey=other, exporter=exporter, sentinel=valkey.sentinel)
