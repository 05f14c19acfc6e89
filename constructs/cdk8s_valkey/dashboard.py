"""Dashboard: a Grafana dashboard for one Valkey, as a ConfigMap for kube-prometheus-stack's
Grafana sidecar."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cdk8s_plus_28 import k8s
from constructs import Construct
from grafana_foundation_sdk.builders import bargauge, gauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models.prometheus import QueryEditorMode

from . import _labels, _registry
from ._promql import scope_matchers
from ._validation import check_labels, size_to_bytes
from ._wiring import check_exporter_of
from .alerts import (
    CAPACITY_REVIEW_RATIO,
    MEMORY_CRITICAL_RATIO,
    MEMORY_WARNING_RATIO,
    WAITING_STATES,
    _promql_string,
    _re_escape,
)
from .exporter_sidecar import ExporterSidecar
from .valkey_statefulset import ValkeyStatefulSet

COMPONENT = "dashboard"
# kube-prometheus-stack's defaults (grafana.sidecar.dashboards.label / labelValue).
DEFAULT_LABEL_KEY = "grafana_dashboard"
DEFAULT_LABEL_VALUE = "1"
# The annotation most sidecar set-ups name in sidecar.dashboards.folderAnnotation.
DEFAULT_FOLDER_ANNOTATION = "grafana_folder"
DEFAULT_FOLDER = "Valkey"
MAX_FOLDER_LENGTH = 255  # a directory name on the sidecar's volume
UID_MAX_LENGTH = 40  # Grafana refuses longer dashboard uids
_UID_HASH_LENGTH = 8
DATASOURCE_VARIABLE = "datasource"
TIME_FROM = "now-3h"
REFRESH = "30s"
TAGS = ("valkey",)

# The RSS of the server against the container limit: the fork of an AOF rewrite adds a second
# process that the cgroup also counts, and 94-95 % of the limit is the highest peak measured
# to survive (design brief: rewrite under a 10k SET/s writer), so the bands narrow there.
RSS_OF_LIMIT_WARNING = 0.90
RSS_OF_LIMIT_CRITICAL = 0.95
UPTIME_RECENT_SECONDS = 600  # an uptime below this is a restart the on-call should know of

# Grafana units (https://grafana.com/docs/grafana/latest/panels-visualizations/configure-standard-options/).
_BYTES = "bytes"
_BYTES_PER_SECOND = "Bps"
_SECONDS = "s"
_RATIO = "percentunit"
_PER_SECOND = "ops"
_COUNT = "short"

_GREEN, _YELLOW, _ORANGE, _RED, _BLUE = "green", "yellow", "orange", "red", "blue"

_FOLDER_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_BASE_URL = re.compile(r"https?://[^\s?#{}]+")

# Which panel each alert of Alerts links to (see Dashboard.alert_panels).
ALERT_PANELS: dict[str, str] = {
    "ValkeyDown": "up",
    "ValkeyMetricsAbsent": "up",
    "ValkeyMemoryHigh": "memory_of_maxmemory",
    "ValkeyMemoryCritical": "memory_of_maxmemory",
    "ValkeyMemoryCapacityReview": "memory",
    "ValkeyMaxmemoryUnset": "memory",
    "ValkeyWritesRefusedOOM": "oom_rate",
    "ValkeyAofWriteFailing": "aof_write",
    "ValkeyAofRewriteFailing": "aof_rewrite",
    "ValkeyMaxmemoryPolicyNotNoeviction": "eviction_policy",
    "ValkeyTooManyClients": "clients",
    "ValkeyClientsNearMaxclients": "clients",
    # The kubelet's and cAdvisor's series are not the exporter's, so they get no panel of their
    # own here (the end-to-end test could not prove such a query): the AOF is what fills the
    # volume, and the RSS against the limit is the memory the fork envelope starts from.
    "ValkeyVolumeFillingUp": "aof_size",
    "ValkeyVolumeAlmostFull": "aof_size",
    "ValkeyContainerMemoryHigh": "memory_of_limit",
    "ValkeyContainerMemoryCritical": "memory_of_limit",
    "ValkeyPodMetricsAbsent": "up",
    "ValkeyBullMQQueueBacklog": "bullmq_waiting",
    "ValkeyAdrRevisitMemory": "memory",
    "ValkeyAdrRevisitThroughput": "commands",
}


@dataclass(frozen=True, kw_only=True)
class DashboardOptions:
    """Options of a :class:`Dashboard`: how kube-prometheus-stack's Grafana sidecar finds the
    ConfigMap, and where the dashboard lands.

    :param label_key: Label the Grafana sidecar selects dashboard ConfigMaps by
        (``sidecar.dashboards.label`` in the Grafana values); not an ``app.kubernetes.io/``
        label. Default: ``grafana_dashboard``, kube-prometheus-stack's.
    :param label_value: Value of that label (``sidecar.dashboards.labelValue``); a valid label
        value, may be empty. Default: ``"1"``, kube-prometheus-stack's.
    :param folder_annotation: Annotation that names the dashboard's Grafana folder
        (``sidecar.dashboards.folderAnnotation``). It only takes effect when the Grafana values
        set both that and ``sidecar.dashboards.provider.foldersFromFilesStructure: true``;
        otherwise the dashboard lands in the provider's folder. Default: ``grafana_folder``.
    :param folder: The Grafana folder, the value of ``folder_annotation``: a non-empty name of
        at most 255 characters without ``/``, ``\\`` or control characters, no leading or
        trailing spaces, not ``.`` or ``..`` (the sidecar makes it a directory). ``None``
        renders no annotation. Default: ``Valkey``.
    :param namespace: Namespace of the ConfigMap. kube-prometheus-stack's sidecar searches all
        namespaces (``sidecar.dashboards.searchNamespace: ALL``); a sidecar that only searches
        its own namespace needs that namespace here (e.g. ``monitoring``). Default: the
        Valkey's namespace, so that the dashboard is created, changed and pruned with the
        Valkey it shows, by the same GitOps application and with the same RBAC.
    """

    label_key: str = DEFAULT_LABEL_KEY
    label_value: str = DEFAULT_LABEL_VALUE
    folder_annotation: str = DEFAULT_FOLDER_ANNOTATION
    folder: str | None = DEFAULT_FOLDER
    namespace: str | None = None

    def __post_init__(self) -> None:
        _check_key("DashboardOptions.label_key", self.label_key, "label")
        if self.label_key.startswith("app.kubernetes.io/"):
            raise ValueError(
                f"DashboardOptions.label_key: {self.label_key!r} is set by Dashboard; use the label "
                "your Grafana sidecar selects (sidecar.dashboards.label), e.g. 'grafana_dashboard'"
            )
        check_labels("DashboardOptions.label_value", {self.label_key: self.label_value})
        _check_key("DashboardOptions.folder_annotation", self.folder_annotation, "annotation")
        if self.folder is not None and (
            not self.folder
            or len(self.folder) > MAX_FOLDER_LENGTH
            or self.folder != self.folder.strip()
            or self.folder in (".", "..")
            or _FOLDER_FORBIDDEN.search(self.folder)
        ):
            raise ValueError(
                f"DashboardOptions.folder: {self.folder!r} is not allowed; use a folder name of 1 to "
                f"{MAX_FOLDER_LENGTH} characters without '/', '\\' or control characters, no leading or "
                "trailing spaces, other than '.' and '..' (the sidecar makes it a directory), or None "
                "for the provider's folder"
            )
        if self.namespace is not None and (len(self.namespace) > 63 or not _NAMESPACE.match(self.namespace)):
            raise ValueError(
                f"DashboardOptions.namespace: {self.namespace!r} is not a valid namespace name; use at most "
                "63 lower-case letters, digits and '-', starting and ending with a letter or digit, or "
                "None for the Valkey's namespace"
            )


@dataclass(frozen=True)
class _Panel:
    key: str
    id: int
    title: str


class Dashboard(Construct):
    """A Grafana dashboard of one Valkey: ``ConfigMap <name>-dashboard`` for kube-prometheus-stack's
    Grafana sidecar.

    The ConfigMap carries the sidecar's label (``grafana_dashboard: "1"``), the folder
    annotation (``grafana_folder: Valkey``) and one key, ``<uid>.json``: the dashboard JSON,
    built with grafana-foundation-sdk (Grafana 11.6 types), keys sorted so that a change shows
    as a small diff. The key is the uid, so two Valkeys of the same name in two namespaces
    never overwrite each other's file in the sidecar's folder.

    The dashboard's uid (``valkey_<namespace>_<name>``, at most 40 characters) and title
    (``Valkey <namespace>/<name>``) are stable. A ``datasource`` variable picks the Prometheus
    (default: Grafana's default data source). Every query selects the exporter's series by
    ``namespace`` and ``service`` like the alerts do, and uses the exporter's scrape interval
    as its minimum step, so ``$__rate_interval`` always spans four scrapes. Rows: availability
    (up, uptime, restarts, eviction policy, refused writes, evicted keys), memory (used, RSS,
    maxmemory, container limit), clients and commands, persistence (AOF), keyspace, BullMQ
    (with ``exporter.bullmq_queues``) and network.

    Alerts link to panels through :attr:`alert_panels`, :meth:`alert_url` and :meth:`panel_url`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        valkey: ValkeyStatefulSet,
        exporter: ExporterSidecar,
        options: DashboardOptions | None = None,
    ) -> None:
        """
        :param valkey: The Valkey the dashboard shows; its namespace and name scope every query
            and name the ConfigMap, the uid and the title.
        :param exporter: The ExporterSidecar of that Valkey; its metrics Service, metric prefix,
            scrape interval and BullMQ queues shape the queries.
        :param options: See :class:`DashboardOptions`. Default: ``DashboardOptions()``.
        """
        # Validate everything before defining any child (and before joining the tree).
        if options is None:
            options = DashboardOptions()
        if not isinstance(options, DashboardOptions):
            raise ValueError(f"options: {options!r} is not a DashboardOptions; pass DashboardOptions(...)")
        check_exporter_of(exporter, valkey)

        super().__init__(scope, id)

        self.valkey = valkey
        self.exporter = exporter
        self.options = options
        self.name = f"{valkey.name}-dashboard"
        self.namespace: str | None = options.namespace if options.namespace is not None else valkey.namespace
        self.uid = dashboard_uid(valkey.namespace, valkey.name)
        target = f"{valkey.namespace}/{valkey.name}" if valkey.namespace else valkey.name
        self.title = f"Valkey {target}"
        self.data_key = f"{self.uid}.json"
        self.labels = {
            **_labels.common_labels(valkey.name, valkey.version, COMPONENT),
            options.label_key: options.label_value,
        }
        self.annotations = {options.folder_annotation: options.folder} if options.folder is not None else {}

        self._matchers = scope_matchers(valkey, exporter)
        self._prefix = exporter.metric_namespace
        self._min_step = f"{int(exporter.scrape_interval.to_seconds())}s"
        self._memory_limit_bytes = size_to_bytes(valkey.memory_limit)
        self._panels: dict[str, _Panel] = {}
        self.json = JSONEncoder(sort_keys=True, indent=2).encode(self._build().build()) + "\n"
        self._alert_panels = {alert: self._panels[key].id for alert, key in ALERT_PANELS.items() if key in self._panels}

        _registry.register(self, [("ConfigMap", self.name)])
        self.config_map = k8s.KubeConfigMap(
            self,
            "Resource",
            metadata=k8s.ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                labels=dict(self.labels),
                annotations=dict(self.annotations) or None,
            ),
            data={self.data_key: self.json},
        )

    # -- wiring points -------------------------------------------------------------

    @property
    def panel_keys(self) -> tuple[str, ...]:
        """The keys of the rendered panels (rows excluded), in dashboard order."""
        return tuple(self._panels)

    def panel_id(self, key: str) -> int:
        """The Grafana panel id of a panel, e.g. ``panel_id("memory")``; stable across releases."""
        return self._panel(key).id

    def panel_title(self, key: str) -> str:
        """The title of a panel as rendered."""
        return self._panel(key).title

    @property
    def alert_panels(self) -> dict[str, int]:
        """Alert name -> id of the panel that shows what the alert fires on (a copy), for every
        alert of :class:`Alerts` whose panel is rendered (``ValkeyBullMQQueueBacklog`` only with
        BullMQ queues)."""
        return dict(self._alert_panels)

    def url(self, grafana_url: str) -> str:
        """The dashboard's address in the Grafana at ``grafana_url`` (e.g.
        ``https://grafana.example.com``): ``<grafana_url>/d/<uid>``."""
        if not _BASE_URL.fullmatch(grafana_url):
            raise ValueError(
                f"grafana_url: {grafana_url!r} is not allowed; use the absolute http(s) URL of Grafana "
                "(with its sub-path, if any) without query, fragment, whitespace or braces"
            )
        return f"{grafana_url.rstrip('/')}/d/{self.uid}"

    def panel_url(self, key: str, grafana_url: str) -> str:
        """A panel viewed alone: ``<grafana_url>/d/<uid>?viewPanel=<id>``. Grafana has read a
        numeric ``viewPanel`` since 7.0 and still does with 11's scenes (as ``panel-<id>``)."""
        return f"{self.url(grafana_url)}?viewPanel={self.panel_id(key)}"

    def alert_url(self, alert: str, grafana_url: str) -> str:
        """The panel of an alert (see :attr:`alert_panels`) viewed alone, for its
        ``dashboard_url`` annotation: ``<grafana_url>/d/<uid>?viewPanel=<id>``."""
        if alert not in self._alert_panels:
            raise ValueError(f"alert: {alert!r} has no panel here; use one of {list(self._alert_panels)}")
        return f"{self.url(grafana_url)}?viewPanel={self._alert_panels[alert]}"

    def _panel(self, key: str) -> _Panel:
        if key not in self._panels:
            raise ValueError(f"key: {key!r} is not a rendered panel; use one of {list(self._panels)}")
        return self._panels[key]

    # -- PromQL ----------------------------------------------------------------------

    def _m(self, metric: str, *extra: str) -> str:
        """A metric of the exporter, selected by this Valkey's namespace and metrics Service."""
        return f"{self._prefix}_{metric}{{{','.join([self._matchers, *extra])}}}"

    def _by_target(self, expr: str) -> str:
        return f"sum by (namespace, service) ({expr})"

    def _or_zero(self, expr: str) -> str:
        """``expr``, or 0 while this Valkey's exporter reports but ``expr`` has no series (a
        counter such as ``errors_total{err="OOM"}`` only appears with its first increment).
        Both sides carry ``namespace`` and ``service``, so another Valkey never shows up here."""
        return f"{self._by_target(expr)}\nor\n0 * {self._by_target(self._m('up'))}"

    def _queue_keys(self, states: Sequence[str], by: str) -> str:
        """BullMQ key sizes of the watched queues in ``states``, with ``queue`` and ``state``
        labels taken from the key, summed by ``by``."""
        prefix = _re_escape(self.exporter.bullmq_prefix)
        names = "|".join(_re_escape(queue) for queue in self.exporter.bullmq_queues)
        alternatives = "|".join(states)
        series = self._m("key_size", f"key=~{_promql_string(f'{prefix}:(?:{names}):(?:{alternatives})')}")
        queue = _promql_string(f"{prefix}:([^:]+):[^:]+")
        state = _promql_string(f"{prefix}:[^:]+:([^:]+)")
        return (
            f"sum by ({by}) (\n"
            f'  label_replace(label_replace({series}, "queue", "$1", "key", {queue}), "state", "$1", "key", {state})\n'
            ")"
        )

    # -- building ----------------------------------------------------------------------

    def _register(self, key: str, panel_id: int, title: str) -> int:
        self._panels[key] = _Panel(key, panel_id, title)
        return panel_id

    def _query(self, ref: str, expr: str, legend: str, *, instant: bool) -> prometheus.Dataquery:
        query = (
            prometheus.Dataquery()
            .ref_id(ref)
            .expr(expr)
            .legend_format(legend)
            .editor_mode(QueryEditorMode.CODE)
            .interval(self._min_step)
        )
        return query.instant() if instant else query.range()

    def _stat(
        self,
        key: str,
        panel_id: int,
        title: str,
        description: str,
        expr: str,
        *,
        legend: str,
        grid: tuple[int, int, int, int],
        unit: str = _COUNT,
        thresholds: Sequence[tuple[float, str]] = (),
        base_color: str = _GREEN,
        mappings: Sequence[tuple[str, str, str]] = (),
        text_mode: common.BigValueTextMode = common.BigValueTextMode.AUTO,
        display_name: str | None = None,
        no_value: str | None = None,
    ) -> stat.Panel:
        """A big number from an instant query, its background coloured by thresholds or mappings."""
        panel = (
            stat.Panel()
            .id(self._register(key, panel_id, title))
            .title(title)
            .description(description)
            .datasource(_DATASOURCE)
            .grid_pos(_grid(*grid))
            .with_target(self._query("A", expr, legend, instant=True))
            .unit(unit)
            .thresholds(_thresholds(base_color, thresholds))
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .graph_mode(common.BigValueGraphMode.NONE)
            .text_mode(text_mode)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
        if mappings:
            panel = panel.mappings(_value_map(mappings))
        if display_name is not None:
            panel = panel.display_name(display_name)
        if no_value is not None:
            panel = panel.no_value(no_value)
        return panel

    def _timeseries(
        self,
        key: str,
        panel_id: int,
        title: str,
        description: str,
        targets: Sequence[tuple[str, str]],
        *,
        grid: tuple[int, int, int, int],
        unit: str,
        colors: Sequence[tuple[str, str]] = (),
        dashed: Sequence[str] = (),
    ) -> timeseries.Panel:
        """Lines over time, one range query per (expr, legend); ``colors`` and ``dashed`` fix
        the look of series by legend (limits as dashed lines, failures in red)."""
        panel = (
            timeseries.Panel()
            .id(self._register(key, panel_id, title))
            .title(title)
            .description(description)
            .datasource(_DATASOURCE)
            .grid_pos(_grid(*grid))
            .unit(unit)
            .min(0)
            .fill_opacity(10)
            .line_width(1)
            .show_points(common.VisibilityMode.NEVER)
            .legend(
                common_builders.VizLegendOptions()
                .show_legend(True)
                .display_mode(common.LegendDisplayMode.TABLE)
                .placement(common.LegendPlacement.BOTTOM)
                .calcs(["lastNotNull", "max"])
            )
            .tooltip(
                common_builders.VizTooltipOptions()
                .mode(common.TooltipDisplayMode.MULTI)
                .sort(common.SortOrder.DESCENDING)
            )
        )
        for index, (expr, legend) in enumerate(targets):
            panel = panel.with_target(self._query(chr(ord("A") + index), expr, legend, instant=False))
        # byNames, not byName: its options are an object, which the 11.6 schema demands.
        styles: dict[str, list[dashboard.DynamicConfigValue]] = {}
        for legend, color in colors:
            fixed = {"mode": "fixed", "fixedColor": color}
            styles.setdefault(legend, []).append(dashboard.DynamicConfigValue(id_val="color", value=fixed))
        for legend in dashed:
            dash = {"fill": "dash", "dash": [10, 10]}
            styles.setdefault(legend, []).append(dashboard.DynamicConfigValue(id_val="custom.lineStyle", value=dash))
        for legend, properties in styles.items():
            matcher = dashboard.MatcherConfig(id_val="byNames", options={"mode": "include", "names": [legend]})
            panel = panel.with_override(matcher, properties)
        return panel

    def _gauge(
        self,
        key: str,
        panel_id: int,
        title: str,
        description: str,
        expr: str,
        *,
        legend: str,
        grid: tuple[int, int, int, int],
        thresholds: Sequence[tuple[float, str]],
    ) -> gauge.Panel:
        """A ratio from 0 to 1 on a dial with threshold bands."""
        return (
            gauge.Panel()
            .id(self._register(key, panel_id, title))
            .title(title)
            .description(description)
            .datasource(_DATASOURCE)
            .grid_pos(_grid(*grid))
            .with_target(self._query("A", expr, legend, instant=True))
            .unit(_RATIO)
            .min(0)
            .max(1)
            .thresholds(_thresholds(_GREEN, thresholds))
            .show_threshold_markers(True)
            .show_threshold_labels(False)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )

    def _row(self, panel_id: int, title: str, y: int) -> dashboard_builders.Row:
        return dashboard_builders.Row(title).id(panel_id).grid_pos(_grid(0, y, 24, 1))

    def _build(self) -> dashboard_builders.Dashboard:
        m, by, or_zero = self._m, self._by_target, self._or_zero
        limit = self._memory_limit_bytes
        oom_errors = m("errors_total", 'err="OOM"')
        other_policy = m("instance_info", 'maxmemory_policy!="noeviction"')
        builder = (
            dashboard_builders.Dashboard(self.title)
            .uid(self.uid)
            .description(
                f"Valkey {self.valkey.name}: exporter series of service {self.exporter.metrics_service_name}"
                + (f" in namespace {self.valkey.namespace}" if self.valkey.namespace else "")
                + ". Generated by cdk8s-valkey; edit the construct, not this dashboard."
            )
            .tags(list(TAGS))
            .timezone("browser")
            .time(TIME_FROM, "now")
            .refresh(REFRESH)
            .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
            .with_variable(
                dashboard_builders.DatasourceVariable(DATASOURCE_VARIABLE).label("Prometheus").type("prometheus")
            )
        )

        # Availability: is it up, did it restart, is it refusing or losing writes.
        y = 0
        builder = builder.with_row(self._row(1, "Availability", y))
        y += 1
        builder = (
            builder.with_panel(
                self._stat(
                    "up",
                    2,
                    "Up",
                    "valkey_up: 1 while the exporter in the pod reaches Valkey. No data: the pod is gone or "
                    "not scraped (ValkeyMetricsAbsent).",
                    m("up"),
                    legend="{{pod}}",
                    grid=(0, y, 4, 4),
                    thresholds=[(1, _GREEN)],
                    base_color=_RED,
                    mappings=[("1", "UP", _GREEN), ("0", "DOWN", _RED)],
                    no_value="no metrics",
                )
            )
            .with_panel(
                self._stat(
                    "uptime",
                    3,
                    "Uptime",
                    "Time since valkey-server started; orange for the first "
                    f"{UPTIME_RECENT_SECONDS // 60} minutes after a restart.",
                    m("uptime_in_seconds"),
                    legend="{{pod}}",
                    grid=(4, y, 4, 4),
                    unit=_SECONDS,
                    base_color=_ORANGE,
                    thresholds=[(UPTIME_RECENT_SECONDS, _GREEN)],
                )
            )
            .with_panel(
                self._stat(
                    "restarts",
                    4,
                    "Restarts in range",
                    "Times the uptime went back to zero in the dashboard's time range: container restarts "
                    "(OOM kill, crash, probe) and new pods alike (the maximum over the pod's series).",
                    f"resets(max by (namespace, service) ({m('uptime_in_seconds')})[$__range:])",
                    legend="restarts",
                    grid=(8, y, 4, 4),
                    thresholds=[(1, _ORANGE)],
                )
            )
            .with_panel(
                self._stat(
                    "eviction_policy",
                    5,
                    "maxmemory-policy",
                    "Red unless noeviction, which BullMQ requires (ADR 0005): any other policy deletes "
                    "keys, jobs included, at maxmemory.",
                    f"max by (maxmemory_policy) ({other_policy})\n"
                    f"or\n0 * max by (maxmemory_policy) ({m('instance_info')})",
                    legend="{{maxmemory_policy}}",
                    grid=(12, y, 4, 4),
                    thresholds=[(1, _RED)],
                    text_mode=common.BigValueTextMode.NAME,
                    display_name="${__field.labels.maxmemory_policy}",
                )
            )
            .with_panel(
                self._stat(
                    "oom_total",
                    6,
                    "Writes refused (OOM) since start",
                    "Commands refused with -OOM since valkey-server started: memory reached maxmemory and "
                    "noeviction refused the write. Must stay 0.",
                    or_zero(oom_errors),
                    legend="refused",
                    grid=(16, y, 4, 4),
                    thresholds=[(1, _RED)],
                )
            )
            .with_panel(
                self._stat(
                    "evicted_total",
                    7,
                    "Evicted keys since start",
                    "Keys deleted to free memory since valkey-server started. Must stay 0: with noeviction "
                    "nothing is ever evicted, so any eviction means the policy was changed.",
                    by(m("evicted_keys_total")),
                    legend="evicted",
                    grid=(20, y, 4, 4),
                    thresholds=[(1, _RED)],
                )
            )
        )
        y += 4

        # Memory: against maxmemory (where writes stop) and the container limit (where the kernel kills).
        builder = builder.with_row(self._row(10, "Memory", y))
        y += 1
        builder = (
            builder.with_panel(
                self._timeseries(
                    "memory",
                    11,
                    "Memory: used, RSS, maxmemory and container limit",
                    "used_memory (what maxmemory counts) and the server's RSS against maxmemory (80 % of "
                    "the limit, set by the entrypoint) and the container's memory limit as rendered in the "
                    "manifest. During an AOF rewrite the forked child's copied pages add to the container's "
                    "usage (cAdvisor's container_memory_working_set_bytes), not to this RSS.",
                    [
                        (by(m("memory_used_bytes")), "used"),
                        (by(m("memory_used_rss_bytes")), "RSS"),
                        (by(m("memory_max_bytes")), "maxmemory"),
                        (f"vector({limit})", "container limit"),
                    ],
                    grid=(0, y, 12, 8),
                    unit=_BYTES,
                    colors=[("maxmemory", _ORANGE), ("container limit", _RED)],
                    dashed=["maxmemory", "container limit"],
                )
            )
            .with_panel(
                self._gauge(
                    "memory_of_maxmemory",
                    12,
                    "Used of maxmemory",
                    f"used_memory / maxmemory, as the memory alerts compute it: yellow above "
                    f"{CAPACITY_REVIEW_RATIO:.0%} (capacity review), orange above {MEMORY_WARNING_RATIO:.0%}, "
                    f"red above {MEMORY_CRITICAL_RATIO:.0%}; at 100 % writes are refused. No data: maxmemory is 0.",
                    f"{by(m('memory_used_bytes'))}\n/\n({by(m('memory_max_bytes'))} > 0)",
                    legend="of maxmemory",
                    grid=(12, y, 6, 8),
                    thresholds=[
                        (CAPACITY_REVIEW_RATIO, _YELLOW),
                        (MEMORY_WARNING_RATIO, _ORANGE),
                        (MEMORY_CRITICAL_RATIO, _RED),
                    ],
                )
            )
            .with_panel(
                self._gauge(
                    "memory_of_limit",
                    13,
                    "RSS of container limit",
                    f"The server's RSS against the container limit ({_human_bytes(limit)}); the kernel kills "
                    "the container at 100 %. maxmemory leaves the rest as headroom for the fork of an AOF "
                    f"rewrite: orange above {RSS_OF_LIMIT_WARNING:.0%}, red above {RSS_OF_LIMIT_CRITICAL:.0%}.",
                    f"{by(m('memory_used_rss_bytes'))} / {limit}",
                    legend="of container limit",
                    grid=(18, y, 6, 8),
                    thresholds=[
                        (self.valkey.maxmemory_percent / 100, _YELLOW),
                        (RSS_OF_LIMIT_WARNING, _ORANGE),
                        (RSS_OF_LIMIT_CRITICAL, _RED),
                    ],
                )
            )
        )
        y += 8

        # Clients and commands.
        builder = builder.with_row(self._row(20, "Clients and commands", y))
        y += 1
        builder = (
            builder.with_panel(
                self._timeseries(
                    "clients",
                    21,
                    "Clients: connected and blocked",
                    "Connected clients (BullMQ: one connection per Queue, two per Worker) and clients "
                    "blocked in BRPOPLPUSH/BZPOPMIN and the like (idle BullMQ workers wait there).",
                    [
                        (by(m("connected_clients")), "connected"),
                        (by(m("blocked_clients")), "blocked"),
                    ],
                    grid=(0, y, 8, 8),
                    unit=_COUNT,
                )
            )
            .with_panel(
                self._timeseries(
                    "commands",
                    22,
                    "Commands per second by command",
                    "Commands processed per second, by command (the exporter's own INFO and CONFIG GET "
                    "included). ADR 0005's revisit trigger is 10k commands/s in total.",
                    [(f"sum by (cmd) (rate({m('commands_total')}[$__rate_interval]))", "{{cmd}}")],
                    grid=(8, y, 8, 8),
                    unit=_PER_SECOND,
                )
            )
            .with_panel(
                self._timeseries(
                    "oom_rate",
                    23,
                    "Writes refused (OOM) per second",
                    "Commands refused with -OOM per second: memory is at maxmemory and noeviction refuses "
                    "writes; BullMQ producers and workers fail. 0 while none was ever refused.",
                    [(or_zero(f"rate({oom_errors}[$__rate_interval])"), "refused")],
                    grid=(16, y, 8, 8),
                    unit=_PER_SECOND,
                    colors=[("refused", _RED)],
                )
            )
        )
        y += 8

        # Persistence: AOF.
        builder = builder.with_row(self._row(30, "Persistence (AOF)", y))
        y += 1
        ok_failed = [("1", "OK", _GREEN), ("0", "FAILING", _RED)]
        builder = (
            builder.with_panel(
                self._stat(
                    "aof_write",
                    31,
                    "AOF last write",
                    "Status of the last write to the AOF. FAILING: the volume is full or read-only and "
                    "Valkey refuses writes until it can write again.",
                    m("aof_last_write_status"),
                    legend="{{pod}}",
                    grid=(0, y, 4, 4),
                    base_color=_RED,
                    thresholds=[(1, _GREEN)],
                    mappings=ok_failed,
                )
            )
            .with_panel(
                self._stat(
                    "aof_rewrite",
                    32,
                    "AOF last rewrite",
                    "Status of the last AOF rewrite. FAILING: the fork was refused (memory) or the disk is "
                    "full; the AOF keeps growing and restarts replay more of it.",
                    m("aof_last_bgrewrite_status"),
                    legend="{{pod}}",
                    grid=(4, y, 4, 4),
                    base_color=_RED,
                    thresholds=[(1, _GREEN)],
                    mappings=ok_failed,
                )
            )
            .with_panel(
                self._stat(
                    "aof_rewrite_in_progress",
                    33,
                    "AOF rewrite in progress",
                    "A forked child is rewriting the AOF now: memory peaks (copy-on-write) and disk "
                    "writes happen meanwhile.",
                    m("aof_rewrite_in_progress"),
                    legend="{{pod}}",
                    grid=(0, y + 4, 4, 4),
                    thresholds=[(1, _BLUE)],
                    mappings=[("0", "no", _GREEN), ("1", "rewriting", _BLUE)],
                )
            )
            .with_panel(
                self._stat(
                    "aof_last_rewrite_duration",
                    34,
                    "Last AOF rewrite took",
                    "Duration of the last AOF rewrite since valkey-server started; 'none yet' before the first.",
                    m("aof_last_rewrite_duration_sec"),
                    legend="{{pod}}",
                    grid=(4, y + 4, 4, 4),
                    unit=_SECONDS,
                    mappings=[("-1", "none yet", _GREEN)],
                )
            )
            .with_panel(
                self._timeseries(
                    "aof_size",
                    35,
                    "AOF size, rewrite base and last rewrite's copy-on-write",
                    "The AOF's size and its size after the last rewrite (the base): Valkey rewrites when the "
                    "AOF has doubled (auto-aof-rewrite-percentage 100, at least 64 MB), so the base drops "
                    "at each rewrite. Copy-on-write: memory the last rewrite's fork copied.",
                    [
                        (by(m("aof_current_size_bytes")), "AOF size"),
                        (by(m("aof_base_size_bytes")), "rewrite base"),
                        (by(m("aof_last_cow_size_bytes")), "last rewrite copy-on-write"),
                    ],
                    grid=(8, y, 16, 8),
                    unit=_BYTES,
                    dashed=["rewrite base"],
                )
            )
        )
        y += 8

        # Keyspace.
        builder = builder.with_row(self._row(40, "Keyspace", y))
        y += 1
        builder = builder.with_panel(
            self._timeseries(
                "keys",
                41,
                "Keys and expiring keys",
                "Keys in all databases, and those with a TTL (sessions expire; BullMQ keys mostly do not).",
                [
                    (by(m("db_keys")), "keys"),
                    (by(m("db_keys_expiring")), "expiring keys"),
                ],
                grid=(0, y, 12, 8),
                unit=_COUNT,
            )
        ).with_panel(
            self._timeseries(
                "evicted_rate",
                42,
                "Evicted and expired keys per second",
                "Evicted keys must stay at 0 (noeviction); expired keys are TTLs running out, as designed.",
                [
                    (by(f"rate({m('evicted_keys_total')}[$__rate_interval])"), "evicted"),
                    (by(f"rate({m('expired_keys_total')}[$__rate_interval])"), "expired"),
                ],
                grid=(12, y, 12, 8),
                unit=_PER_SECOND,
                colors=[("evicted", _RED)],
            )
        )
        y += 8

        # BullMQ: only with queues to watch (the exporter exports nothing else of them).
        if self.exporter.bullmq_queues:
            builder = builder.with_row(self._row(50, "BullMQ", y))
            y += 1
            builder = builder.with_panel(
                self._timeseries(
                    "bullmq",
                    51,
                    "BullMQ jobs per queue and state",
                    "Jobs in each watched queue by state (the exporter's key sizes): wait, paused and "
                    "prioritized wait to run; delayed are scheduled for later; active are being worked on.",
                    [(self._queue_keys(self.exporter.queue_key_states, "queue, state"), "{{queue}} {{state}}")],
                    grid=(0, y, 16, 8),
                    unit=_COUNT,
                )
            ).with_panel(self._waiting_jobs(grid=(16, y, 8, 8)))
            y += 8

        # Network.
        builder = builder.with_row(self._row(60, "Network", y))
        y += 1
        return builder.with_panel(
            self._timeseries(
                "network",
                61,
                "Network I/O",
                "Bytes per second received from and sent to clients (and replicas, if any).",
                [
                    (by(f"rate({m('net_input_bytes_total')}[$__rate_interval])"), "received"),
                    (by(f"rate({m('net_output_bytes_total')}[$__rate_interval])"), "sent"),
                ],
                grid=(0, y, 24, 8),
                unit=_BYTES_PER_SECOND,
            )
        )

    def _waiting_jobs(self, *, grid: tuple[int, int, int, int]) -> bargauge.Panel:
        title = "BullMQ jobs waiting to run"
        return (
            bargauge.Panel()
            .id(self._register("bullmq_waiting", 52, title))
            .title(title)
            .description(
                "Jobs waiting to run per queue (wait + paused + prioritized), what ValkeyBullMQQueueBacklog "
                "compares with its threshold. A queue that stays high: workers down, stuck, too few, or paused."
            )
            .datasource(_DATASOURCE)
            .grid_pos(_grid(*grid))
            .with_target(self._query("A", self._queue_keys(WAITING_STATES, "queue"), "{{queue}}", instant=True))
            .unit(_COUNT)
            .min(0)
            .thresholds(_thresholds(_GREEN, []))
            .display_mode(common.BarGaugeDisplayMode.BASIC)
            .orientation(common.VizOrientation.HORIZONTAL)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )


_DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")


def dashboard_uid(namespace: str | None, name: str) -> str:
    """``valkey_<namespace>_<name>`` (``valkey_<name>`` without a namespace): readable, and unique
    because ``_`` cannot occur in either name. Past Grafana's 40 characters, its first 31
    characters, ``_`` and 8 hex digits of its SHA-256."""
    readable = "_".join(["valkey", *([namespace] if namespace else []), name])
    if len(readable) <= UID_MAX_LENGTH:
        return readable
    digest = hashlib.sha256(readable.encode()).hexdigest()[:_UID_HASH_LENGTH]
    return f"{readable[: UID_MAX_LENGTH - _UID_HASH_LENGTH - 1]}_{digest}"


def _check_key(prop: str, key: str, what: str) -> None:
    """A label or annotation key (both are Kubernetes qualified names)."""
    try:
        check_labels(prop, {key: ""})
    except ValueError:
        raise ValueError(
            f"{prop}: {key!r} is not a valid {what} key; use an optional DNS subdomain prefix and '/', "
            "then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ) from None


def _grid(x: int, y: int, w: int, h: int) -> dashboard.GridPos:
    return dashboard.GridPos(h=h, w=w, x=x, y=y)


def _thresholds(base_color: str, steps: Sequence[tuple[float, str]]) -> dashboard_builders.ThresholdsConfig:
    # Grafana always reads the first step as -Infinity (it saves it as null, which the strict
    # 11.6 schema refuses), so its value here is a placeholder below every other step.
    base = min([0.0, *(value for value, _ in steps)])
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps(
            [dashboard.Threshold(value=base, color=base_color)]
            + [dashboard.Threshold(value=value, color=color) for value, color in steps]
        )
    )


def _value_map(mappings: Sequence[tuple[str, str, str]]) -> list[dashboard.ValueMapping]:
    return [
        dashboard.ValueMap(
            options={
                value: dashboard.ValueMappingResult(text=text, color=color, index=index)
                for index, (value, text, color) in enumerate(mappings)
            }
        )
    ]


def _human_bytes(count: int) -> str:
    for suffix, unit in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= unit and count % unit == 0:
            return f"{count // unit} {suffix}"
    return f"{count} B"
