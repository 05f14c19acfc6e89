"""Alerts: the rendered PrometheusRule checked and unit-tested with the real promtool, the
contract every alert keeps (severity, annotations, a runbook section, scoped selectors), the
props' effect on the output, and one test per validation rule.

The promtool unit tests live in tests/promtool/*.yaml. Each is written against the chart of
:func:`brief_chart` (namespace ``apps``, Valkey ``valkey``, queues ``emails`` and ``reports``,
``reports`` threshold 50); this module writes that chart's rule groups to a temporary file and
points the unit test's ``rule_files`` at it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cdk8s
import pytest
import yaml

from cdk8s_valkey import AlertOptions, Alerts, ExporterOptions, ExporterSidecar, SentinelAlerts, ValkeyStatefulSet
from cdk8s_valkey._catalogue import CATALOGUE, SENTINEL, VALKEY, alert_names
from cdk8s_valkey.alerts import ALERT_NAMES, DEFAULT_RUNBOOK_BASE_URL
from harness.paths import REPO, require_binary
from harness.synth import find, objects, to_yaml

pytestmark = pytest.mark.real

PROMTOOL_TESTS = REPO / "tests" / "promtool"
RUNBOOKS = REPO / "docs" / "runbooks.md"
SEVERITIES = {"critical", "warning", "info"}
# The catalogue is the one list of alerts; the tests below hold the rules, docs/runbooks.md and
# the promtool unit tests to it.
EXPECTED_ALERTS = alert_names(VALKEY)


# -- helpers ---------------------------------------------------------------------------


def build(
    *,
    namespace: str | None = "apps",
    queues: tuple[str, ...] = ("emails", "reports"),
    exporter_props: dict[str, Any] | None = None,
    **alert_props: Any,
) -> tuple[cdk8s.Chart, Alerts]:
    """A fresh app and chart with a Valkey, its exporter and Alerts(**alert_props)."""
    chart = cdk8s.Chart(cdk8s.App(), "t", namespace=namespace)
    valkey = ValkeyStatefulSet(chart, "valkey")
    exporter = ExporterSidecar(
        chart, "metrics", valkey=valkey, options=ExporterOptions(bullmq_queues=list(queues), **(exporter_props or {}))
    )
    alerts = Alerts(chart, "alerts", valkey=valkey, exporter=exporter, options=AlertOptions(**alert_props))
    return chart, alerts


def brief_chart() -> tuple[cdk8s.Chart, Alerts]:
    """The chart the promtool unit tests are written against."""
    return build(queue_depth_thresholds={"reports": 50})


def prometheus_rule(chart: cdk8s.Chart) -> dict[str, Any]:
    return find(objects(chart), "PrometheusRule")


def rules(chart: cdk8s.Chart) -> list[dict[str, Any]]:
    return [rule for group in prometheus_rule(chart)["spec"]["groups"] for rule in group["rules"]]


def write_rules_file(chart: cdk8s.Chart, path: Path) -> Path:
    """The PrometheusRule's spec.groups as a Prometheus rules file."""
    path.write_text(yaml.safe_dump({"groups": prometheus_rule(chart)["spec"]["groups"]}, sort_keys=False))
    return path


def load_unit_test(path: Path) -> dict[str, Any]:
    """A promtool unit-test file with its "x-" anchor holders dropped (anchors resolved)."""
    data = yaml.safe_load(path.read_text())
    return {key: value for key, value in data.items() if not key.startswith("x-")}


def github_anchor(heading: str) -> str:
    """The anchor GitHub derives from a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", RUNBOOKS.read_text(), re.M)}


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def promtool() -> str:
    """The Debian promtool: fail, never skip, when it is missing."""
    return require_binary("promtool")


@pytest.fixture
def rules_file(tmp_path: Path) -> Iterator[Path]:
    chart, _ = brief_chart()
    yield write_rules_file(chart, tmp_path / "valkey.rules.yaml")


# -- promtool --------------------------------------------------------------------------


def test_promtool_check_rules_succeeds(promtool: str, rules_file: Path) -> None:
    result = run_promtool(promtool, "check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout, result.stdout


def test_promtool_check_rules_succeeds_without_queues(promtool: str, tmp_path: Path) -> None:
    chart, _ = build(queues=())
    path = write_rules_file(chart, tmp_path / "rules.yaml")
    result = run_promtool(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS) - 1} rules found" in result.stdout, result.stdout


@pytest.mark.parametrize("unit_test", sorted(PROMTOOL_TESTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_promtool_unit_tests_pass(promtool: str, rules_file: Path, tmp_path: Path, unit_test: Path) -> None:
    data = load_unit_test(unit_test)
    data["rule_files"] = [str(rules_file)]
    generated = tmp_path / unit_test.name
    generated.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_promtool(promtool, "test", "rules", str(generated))
    assert result.returncode == 0, f"{unit_test.name}:\n{result.stdout}{result.stderr}"
    assert "SUCCESS" in result.stdout, result.stdout


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    """For each alert, a case where it fires with every annotation checked, and one where it
    must stay silent; and at least one case where another Valkey's series are present."""
    firing: set[str] = set()
    silent: set[str] = set()
    cross_valkey = False
    for path in PROMTOOL_TESTS.glob("*.yaml"):
        for case in load_unit_test(path)["tests"]:
            series = " ".join(s["series"] for s in case["input_series"])
            cross_valkey |= 'namespace="other"' in series or 'service="cache-metrics"' in series
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if not expected:
                    silent.add(check["alertname"])
                for alert in expected:
                    assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}, (
                        f"{path.name}: {case['name']}"
                    )
                    assert "severity" in alert["exp_labels"], f"{path.name}: {case['name']}"
                    firing.add(check["alertname"])
    assert firing == set(EXPECTED_ALERTS), sorted(set(EXPECTED_ALERTS) ^ firing)
    assert silent == set(EXPECTED_ALERTS), sorted(set(EXPECTED_ALERTS) ^ silent)
    assert cross_valkey


# -- the contract of every alert ----------------------------------------------------------


def test_alert_names() -> None:
    chart, alerts = brief_chart()
    assert alerts.alert_names == EXPECTED_ALERTS
    assert [rule["alert"] for rule in rules(chart)] == list(EXPECTED_ALERTS)


def test_every_alert_has_severity_annotations_and_a_runbook_section() -> None:
    chart, alerts = brief_chart()
    anchors = runbook_anchors()
    for rule in rules(chart):
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip(), name
        url = rule["annotations"]["runbook_url"]
        assert url == f"{DEFAULT_RUNBOOK_BASE_URL}#{name.lower()}" == alerts.runbook_url(name)
        base, _, anchor = url.partition("#")
        assert base.endswith("/docs/runbooks.md"), url
        assert anchor in anchors, f"docs/runbooks.md has no heading for #{anchor} ({name})"


def test_runbooks_has_a_section_for_every_alert_and_no_other() -> None:
    headings = set(re.findall(r"^## (\S+)$", RUNBOOKS.read_text(), re.M))
    assert headings == {alert.name for alert in CATALOGUE}
    assert set(EXPECTED_ALERTS) | set(SentinelAlerts.ALERT_NAMES) == headings


def test_the_catalogue_is_the_one_list_of_alerts() -> None:
    """Names unique, each construct's list taken from it, severities as documented."""
    names = [alert.name for alert in CATALOGUE]
    assert len(names) == len(set(names))
    assert ALERT_NAMES == EXPECTED_ALERTS == tuple(n for n in names if n not in SentinelAlerts.ALERT_NAMES)
    assert alert_names(SENTINEL) == SentinelAlerts.ALERT_NAMES
    assert {alert.construct for alert in CATALOGUE} == {VALKEY, SENTINEL}
    assert {alert.severity for alert in CATALOGUE} <= SEVERITIES


def _selectors(expr: str) -> list[tuple[str, str]]:
    """(metric, matchers) of every series selector of an expression."""
    return re.findall(r"\b(valkey_[a-z_]+)\{([^}]*)\}", expr)


def test_every_selector_is_scoped_to_this_valkey() -> None:
    """Every series selector carries namespace and service matchers, and no metric is
    selected without them: two Valkeys never trigger each other."""
    chart, alerts = build()
    scope = 'namespace="apps",service="valkey-metrics"'
    assert alerts.selector == scope
    for rule in rules(chart):
        expr = rule["expr"]
        selectors = _selectors(expr)
        assert selectors or _pod_selectors(expr), rule["alert"]
        for metric, matchers in selectors:
            assert matchers.startswith(scope), f"{rule['alert']}: {metric}{{{matchers}}}"
        bare = re.findall(r"\bvalkey_[a-z_]+\b(?![a-z_{])", expr)
        assert not bare, f"{rule['alert']}: unscoped {bare}"


def _pod_selectors(expr: str) -> list[tuple[str, str]]:
    """(metric, matchers) of every selector of a series the kubelet or kube-state-metrics exports."""
    return re.findall(r"\b((?:kubelet|container|kube)_[a-z_]+)\{([^}]*)\}", expr)


def test_volume_and_container_selectors_are_scoped_to_this_valkey() -> None:
    """The kubelet's volume stats select this Valkey's claim, cAdvisor and kube-state-metrics its
    pod's valkey container, each with the namespace."""
    chart, _ = build()
    scope = 'namespace="apps",'
    claim = f'{scope}persistentvolumeclaim="data-valkey-0"'
    container = f'{scope}pod="valkey-0",container="valkey"'
    seen = set()
    for rule in rules(chart):
        for metric, matchers in _pod_selectors(rule["expr"]):
            seen.add(metric)
            if metric.startswith("kubelet_volume_stats_"):
                assert matchers == claim, f"{rule['alert']}: {metric}{{{matchers}}}"
            elif metric == "kube_pod_container_resource_limits":
                assert matchers == f'{container},resource="memory"', f"{rule['alert']}: {metric}{{{matchers}}}"
            else:
                assert matchers == container, f"{rule['alert']}: {metric}{{{matchers}}}"
        bare = re.findall(r"\b(?:kubelet|container|kube)_[a-z_]+\b(?![a-z_{])", rule["expr"])
        assert not [b for b in bare if f'"{b}"' not in rule["expr"]], f"{rule['alert']}: unscoped {bare}"
    assert seen == {
        "kubelet_volume_stats_available_bytes",
        "kubelet_volume_stats_capacity_bytes",
        "container_memory_working_set_bytes",
        "kube_pod_container_resource_limits",
    }


def test_metric_names_come_from_the_exporter() -> None:
    """The exporter renders --namespace=valkey (metric prefix) and the BullMQ key checks the
    queue-depth rule reads."""
    _, alerts = brief_chart()
    args = alerts.exporter.args
    assert f"--namespace={alerts.exporter.metric_namespace}" in args
    (keys,) = [arg for arg in args if arg.startswith("--check-single-keys=")]
    for queue in ("emails", "reports"):
        for state in ("wait", "paused", "prioritized"):
            assert f"db0=bull:{queue}:{state}" in keys.split("=", 1)[1].split(",")


# -- snapshot and props --------------------------------------------------------------------


def test_brief_chart_snapshot(yaml_snapshot: Any) -> None:
    chart, _ = brief_chart()
    rule = prometheus_rule(chart)
    assert rule["metadata"]["name"] == "valkey"
    assert rule["metadata"]["namespace"] == "apps"
    assert [g["name"] for g in rule["spec"]["groups"]] == ["valkey.rules"]
    assert str(cdk8s.Yaml.stringify(rule)) == yaml_snapshot


def test_defaults() -> None:
    chart, alerts = build()
    rule = prometheus_rule(chart)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"] == {
        "app.kubernetes.io/name": "valkey",
        "app.kubernetes.io/instance": "valkey",
        "app.kubernetes.io/version": "8.1.11",
        "app.kubernetes.io/component": "alerts",
        "app.kubernetes.io/managed-by": "cdk8s",
    }
    by_name = {r["alert"]: r for r in rules(chart)}
    assert by_name["ValkeyDown"]["for"] == "5m"
    assert by_name["ValkeyMetricsAbsent"]["for"] == "5m"
    assert by_name["ValkeyBullMQQueueBacklog"]["for"] == "15m"
    assert "for" not in by_name["ValkeyWritesRefusedOOM"]  # fires on the first refused write
    assert by_name["ValkeyTooManyClients"]["expr"].endswith("> 1000")
    assert alerts.queue_depth_thresholds == {"emails": 1000, "reports": 1000}
    assert alerts.rule_labels == {}
    assert alerts.runbook_base_url == DEFAULT_RUNBOOK_BASE_URL


def test_rule_labels_select_the_rule() -> None:
    chart, alerts = build(rule_labels={"release": "kube-prometheus-stack"})
    assert prometheus_rule(chart)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert alerts.rule_labels == {"release": "kube-prometheus-stack"}


def test_runbook_base_url() -> None:
    base = "https://github.com/acme/platform/blob/main/docs/valkey-runbooks.md"
    chart, _ = build(runbook_base_url=base)
    for rule in rules(chart):
        assert rule["annotations"]["runbook_url"] == f"{base}#{rule['alert'].lower()}"


def test_durations_and_client_threshold() -> None:
    chart, _ = build(
        down_for=cdk8s.Duration.seconds(150),
        queue_depth_for=cdk8s.Duration.hours(1),
        client_threshold=250,
    )
    by_name = {r["alert"]: r for r in rules(chart)}
    assert by_name["ValkeyDown"]["for"] == "2m30s"
    assert by_name["ValkeyMetricsAbsent"]["for"] == "2m30s"
    assert "for 2m30s" in by_name["ValkeyDown"]["annotations"]["description"]
    assert by_name["ValkeyBullMQQueueBacklog"]["for"] == "1h"
    assert by_name["ValkeyTooManyClients"]["expr"].endswith("> 250")


def test_queue_thresholds_render_one_rule_with_a_threshold_per_queue() -> None:
    chart, alerts = build(queue_depth_threshold=500, queue_depth_thresholds={"reports": 50})
    assert alerts.queue_depth_thresholds == {"emails": 500, "reports": 50}
    (rule,) = [r for r in rules(chart) if r["alert"] == "ValkeyBullMQQueueBacklog"]
    expr = rule["expr"]
    assert 'key=~"bull:(?:emails|reports):(?:wait|paused|prioritized)"' in expr
    assert 'label_replace(vector(500), "queue", "emails", "", ""), "threshold", "500", "", "")' in expr
    assert 'label_replace(vector(50), "queue", "reports", "", ""), "threshold", "50", "", "")' in expr
    assert "delayed" not in expr and "active" not in expr


def test_no_queue_rule_without_queues() -> None:
    chart, alerts = build(queues=())
    assert "ValkeyBullMQQueueBacklog" not in alerts.alert_names
    assert all("key_size" not in r["expr"] for r in rules(chart))


def test_queue_names_and_prefix_are_regex_literals(promtool: str, tmp_path: Path) -> None:
    """A '.' in a queue name matches a dot only; the rules still parse."""
    chart, _ = build(queues=("v1.emails", "a+b"), exporter_props={"bullmq_prefix": "app.bull"})
    (rule,) = [r for r in rules(chart) if r["alert"] == "ValkeyBullMQQueueBacklog"]
    assert r'key=~"app\\.bull:(?:v1\\.emails|a\\+b):(?:wait|paused|prioritized)"' in rule["expr"]
    assert r'"app\\.bull:(.+):(?:wait|paused|prioritized)")' in rule["expr"]
    path = write_rules_file(chart, tmp_path / "rules.yaml")
    result = run_promtool(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_yaml_is_plain() -> None:
    """No hashes in names, one object."""
    chart, _ = brief_chart()
    text = to_yaml(chart)
    assert "name: valkey\n" in text
    assert len([o for o in objects(chart) if o["kind"] == "PrometheusRule"]) == 1


# -- validation: one test per rule, exact messages ----------------------------------------------


def _expect(message: str, **alert_props: Any) -> None:
    with pytest.raises(ValueError) as info:
        build(**alert_props)
    assert str(info.value) == message


def test_exporter_must_watch_this_valkey() -> None:
    chart = cdk8s.Chart(cdk8s.App(), "t", namespace="apps")
    first = ValkeyStatefulSet(chart, "first")
    second = ValkeyStatefulSet(chart, "second")
    exporter = ExporterSidecar(chart, "metrics", valkey=first)
    with pytest.raises(ValueError) as info:
        Alerts(chart, "alerts", valkey=second, exporter=exporter)
    assert str(info.value) == (
        "exporter: it watches Valkey 'first', not 'second'; pass the ExporterSidecar created with valkey=<this Valkey>"
    )


def test_exporter_must_export_the_waiting_states(monkeypatch: pytest.MonkeyPatch) -> None:
    chart = cdk8s.Chart(cdk8s.App(), "t", namespace="apps")
    valkey = ValkeyStatefulSet(chart, "valkey")
    exporter = ExporterSidecar(chart, "metrics", valkey=valkey, options=ExporterOptions(bullmq_queues=["emails"]))
    monkeypatch.setattr(exporter, "queue_key_states", ("wait", "delayed"))
    with pytest.raises(ValueError) as info:
        Alerts(chart, "alerts", valkey=valkey, exporter=exporter)
    assert str(info.value) == (
        "exporter: it does not export the BullMQ key states ['paused', 'prioritized']; "
        "the queue-depth alert needs ['wait', 'paused', 'prioritized']"
    )


def test_rule_labels_must_be_valid_labels() -> None:
    _expect("rule_labels: label key 'not a key' is not a valid Kubernetes label name", rule_labels={"not a key": "x"})
    _expect(
        "rule_labels: label 'release' has value 'kube prometheus'; use at most 63 letters, digits, '-', '_' and '.', "
        "starting and ending with a letter or digit",
        rule_labels={"release": "kube prometheus"},
    )


def test_rule_labels_cannot_set_the_construct_labels() -> None:
    _expect(
        "rule_labels: 'app.kubernetes.io/name' is set by Alerts; use labels outside the app.kubernetes.io/ prefix "
        "(for example 'release')",
        rule_labels={"app.kubernetes.io/name": "cache"},
    )


@pytest.mark.parametrize(
    "url",
    [
        "docs/runbooks.md",
        "ftp://example.com/runbooks.md",
        "https://example.com/runbooks.md#top",
        "https://example.com/run books.md",
        "https://example.com/{{ $labels.namespace }}/runbooks.md",
    ],
)
def test_runbook_base_url_must_be_an_absolute_url_without_fragment(url: str) -> None:
    _expect(
        f"runbook_base_url: {url!r} is not allowed; use an absolute http(s) URL of the runbooks page without '#', "
        "whitespace or braces (each alert adds '#<alert name in lower case>')",
        runbook_base_url=url,
    )


@pytest.mark.parametrize("prop", ["down_for", "queue_depth_for"])
def test_for_durations_must_be_at_least_a_minute(prop: str) -> None:
    _expect(
        f"{prop}: 30 seconds is not allowed; use whole seconds, at least 1m (1 minute and 2 scrape intervals "
        "of 30s), so that one odd scrape or a restart cannot fire it",
        **{prop: cdk8s.Duration.seconds(30)},
    )


@pytest.mark.parametrize("prop", ["down_for", "queue_depth_for"])
def test_for_durations_must_be_whole_seconds(prop: str) -> None:
    _expect(
        f"{prop}: 90500ms is not allowed; use whole seconds, at least 1m (1 minute and 2 scrape intervals "
        "of 30s), so that one odd scrape or a restart cannot fire it",
        **{prop: cdk8s.Duration.millis(90500)},
    )


@pytest.mark.parametrize("prop", ["down_for", "queue_depth_for"])
def test_for_durations_must_cover_two_scrape_intervals(prop: str) -> None:
    _expect(
        f"{prop}: 3 minutes is not allowed; use whole seconds, at least 4m (1 minute and 2 scrape intervals "
        "of 2m), so that one odd scrape or a restart cannot fire it",
        exporter_props={"scrape_interval": cdk8s.Duration.minutes(2)},
        **{prop: cdk8s.Duration.minutes(3)},
    )


@pytest.mark.parametrize("prop", ["client_threshold", "queue_depth_threshold"])
@pytest.mark.parametrize("value", [0, -5, True, 2.5])
def test_thresholds_must_be_whole_numbers_of_at_least_one(prop: str, value: Any) -> None:
    _expect(f"{prop}: {value!r} is not allowed; use a whole number of at least 1", **{prop: value})


def test_queue_depth_thresholds_must_name_watched_queues() -> None:
    _expect(
        "queue_depth_thresholds: 'invoices' is not a queue the exporter watches; "
        "use one of exporter.bullmq_queues ('emails', 'reports')",
        queue_depth_thresholds={"invoices": 10},
    )
    _expect(
        "queue_depth_thresholds: 'emails' is not a queue the exporter watches; use one of exporter.bullmq_queues "
        "(none)",
        queues=(),
        queue_depth_thresholds={"emails": 10},
    )


def test_queue_depth_thresholds_values_must_be_at_least_one() -> None:
    _expect(
        "queue_depth_thresholds['reports']: 0 is not allowed; use a whole number of at least 1",
        queue_depth_thresholds={"reports": 0},
    )
