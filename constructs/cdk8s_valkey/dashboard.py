"""Dashboard: a Grafana dashboard for one Valkey, as a ConfigMap for kube-prometheus-stack's
Grafana sidecar."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cdk8s_plus_28 import k8s
from constructs import Construct
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import common, dashboard

from . import _labels, _registry
from ._catalogue import ALERT_PANELS, CAPACITY_REVIEW_RATIO, MEMORY_CRITICAL_RATIO, MEMORY_WARNING_RATIO, WAITING_STATES
from ._panels import (
    BLUE,
    BYTES,
    BYTES_PER_SECOND,
    DATASOURCE_VARIABLE,
    GREEN,
    ORANGE,
    PER_SECOND,
    RED,
    SECONDS,
    YELLOW,
    PanelSpec,
    RowSpec,
    Target,
    encode,
    render_rows,
)
from ._promql import bullmq_keys, one_of, promql_string, re_escape, scope_matchers, series
from ._validation import check_instance, check_labels
from ._wiring import check_exporter_of
from .exporter_sidecar import ExporterSidecar
from .sentinel import Sentinel
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
TIME_FROM = "now-3h"
REFRESH = "30s"
TAGS = ("valkey",)

# The RSS of the server against the container limit: the fork of an AOF rewrite adds a second
# process that the cgroup also counts, and 94-95 % of the limit is the highest peak measured
# to survive (design brief: rewrite under a 10k SET/s writer), so the bands narrow there.
RSS_OF_LIMIT_WARNING = 0.90
RSS_OF_LIMIT_CRITICAL = 0.95
UPTIME_RECENT_SECONDS = 600  # an uptime below this is a restart the on-call should know of

_FOLDER_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_BASE_URL = re.compile(r"https?://[^\s?#{}]+")


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


class Dashboard(Construct):
    """A Grafana dashboard of one Valkey: ``ConfigMap <name>-dashboard`` for kube-prometheus-stack's
    Grafana sidecar.

    The ConfigMap carries the sidecar's label (``grafana_dashboard: "1"``), the folder
    annotation (``grafana_folder: Valkey``) and one key, ``<uid>.json``: the dashboard JSON,
    built with grafana-foundation-sdk (Grafana 11.6 types), keys sorted and small objects on one
    line, so that a change shows as a small diff. The key is the uid, so two Valkeys of the same
    name in two namespaces never overwrite each other's file in the sidecar's folder.

    The dashboard's uid (``valkey_<namespace>_<name>``, at most 40 characters) and title
    (``Valkey <namespace>/<name>``) are stable. A ``datasource`` variable picks the Prometheus
    (default: Grafana's default data source). Every query selects the exporter's series by
    ``namespace`` and ``service`` like the alerts do, and uses the exporter's scrape interval
    as its minimum step, so ``$__rate_interval`` always spans four scrapes. Rows: availability
    (up, uptime, restarts, eviction policy, refused writes, evicted keys), memory (used, RSS,
    maxmemory, container limit), clients and commands, persistence (AOF), keyspace, BullMQ
    (with ``exporter.bullmq_queues``) and network. No size is written into the dashboard: the
    container limit is kube-state-metrics' ``kube_pod_container_resource_limits`` (or, where
    that is not scraped, maxmemory divided by ``maxmemory_ratio``), so a change of
    ``memory_limit`` leaves the ConfigMap as it is (docs/dashboard.md).

    With several pods (a :class:`Sentinel` topology) every panel shows each pod apart, and a
    replication row shows each pod's role, the replicas connected to the primary, each
    replica's link and how far it is behind (bytes and seconds). With ``sentinel`` (exported)
    a Sentinel row shows the primary each Sentinel names, the Sentinels and the replicas each
    one sees.

    Alerts link to panels through :attr:`alert_panels`, :meth:`alert_url`, :meth:`panel_url`
    and :meth:`alert_annotations`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        valkey: ValkeyStatefulSet,
        exporter: ExporterSidecar,
        options: DashboardOptions | None = None,
        sentinel: Sentinel | None = None,
    ) -> None:
        """
        :param valkey: The Valkey the dashboard shows; its namespace and name scope every query
            and name the ConfigMap, the uid and the title.
        :param exporter: The ExporterSidecar of that Valkey; its metrics Service, metric prefix,
            scrape interval and BullMQ queues shape the queries.
        :param options: See :class:`DashboardOptions`. Default: ``DashboardOptions()``.
        :param sentinel: The :class:`Sentinel` of that Valkey, when it has one: its Sentinel
            exporters (``<name>-sentinel-metrics``) fill the Sentinel row, its
            ``min_replicas_to_write`` colours the replicas panel. Default: none, no Sentinel row.
        """
        # Validate everything before defining any child (and before joining the tree).
        if options is None:
            options = DashboardOptions()
        if not isinstance(options, DashboardOptions):
            raise ValueError(f"options: {options!r} is not a DashboardOptions; pass DashboardOptions(...)")
        check_exporter_of(exporter, valkey)
        if sentinel is not None:
            check_instance("sentinel", sentinel, Sentinel, "the Sentinel of the Valkey")
            if sentinel.valkey is not valkey:
                raise ValueError(
                    f"sentinel: it watches Valkey {sentinel.valkey.name!r}, not {valkey.name!r}; "
                    "pass the Sentinel created with valkey=<this Valkey>"
                )

        super().__init__(scope, id)

        self.valkey = valkey
        self.exporter = exporter
        self.options = options
        self.sentinel = sentinel
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
        # One pod: one line per figure, as ADR 0005's single replica has. Several: one per pod.
        self._per_pod = len(valkey.pod_names) > 1
        self._rows = self._row_specs()
        self._panels = {panel.key: panel for row in self._rows for panel in row.panels}
        self.json = encode(self._build().build())
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

    @property
    def rows(self) -> tuple[RowSpec, ...]:
        """The rows and their panels as data, in dashboard order."""
        return self._rows

    def panel_id(self, key: str) -> int:
        """The Grafana panel id of a panel, e.g. ``panel_id("memory")``; stable across releases."""
        return self._panel(key).id

    def panel_title(self, key: str) -> str:
        """The title of a panel as rendered."""
        return self._panel(key).title

    @property
    def alert_panels(self) -> dict[str, int]:
        """Alert name -> id of the panel that shows what the alert fires on (a copy), for every
        alert of :class:`Alerts` and :class:`SentinelAlerts` whose panel is rendered
        (``ValkeyBullMQQueueBacklog`` only with BullMQ queues, the Sentinel alerts only with
        their topology)."""
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

    def alert_annotations(self, alert: str, grafana_url: str | None) -> dict[str, str]:
        """The annotations that link an alert to its panel: Grafana's own ``__dashboardUid__``
        and ``__panelId__``, and with ``grafana_url`` an absolute ``dashboard_url`` for
        Alertmanager's receivers. None for an alert without a panel here."""
        if alert not in self._alert_panels:
            return {}
        links = {"__dashboardUid__": self.uid, "__panelId__": str(self._alert_panels[alert])}
        if grafana_url is not None:
            links["dashboard_url"] = self.alert_url(alert, grafana_url)
        return links

    def _panel(self, key: str) -> PanelSpec:
        if key not in self._panels:
            raise ValueError(f"key: {key!r} is not a rendered panel; use one of {list(self._panels)}")
        return self._panels[key]

    # -- PromQL ----------------------------------------------------------------------

    def _m(self, metric: str, *extra: str) -> str:
        """A metric of the exporter, selected by this Valkey's namespace and metrics Service."""
        return series(self._prefix, metric, self._matchers, *extra)

    def _s(self, metric: str) -> str:
        """A metric of the Sentinel exporters, for this Valkey's master name."""
        assert self.sentinel is not None and self.sentinel.metrics_service_name is not None
        return series(
            self._prefix,
            metric,
            f'namespace="{self.valkey.namespace}"',
            f'service="{self.sentinel.metrics_service_name}"',
            f'master_name="{self.sentinel.master_name}"',
        )

    def _by_target(self, expr: str) -> str:
        """``expr`` summed per Valkey, or per pod of it with several pods."""
        return f"sum by ({self._by}) ({expr})"

    @property
    def _by(self) -> str:
        return "namespace, service, pod" if self._per_pod else "namespace, service"

    def _legend(self, legend: str) -> str:
        """A series' legend, prefixed by its pod with several pods."""
        return f"{{{{pod}}}} {legend}" if self._per_pod else legend

    def _or_zero(self, expr: str) -> str:
        """``expr``, or 0 while this Valkey's exporter reports but ``expr`` has no series (a
        counter such as ``errors_total{err="OOM"}`` only appears with its first increment).
        Both sides carry ``namespace`` and ``service``, so another Valkey never shows up here."""
        return f"{self._by_target(expr)}\nor\n0 * {self._by_target(self._m('up'))}"

    def _container_limit(self) -> str:
        """The memory limit of each pod's valkey container, by ``namespace`` and ``pod``: what
        kube-state-metrics reports from the pod spec, or, for a pod it does not report on,
        maxmemory divided by ``maxmemory_ratio`` (the entrypoint derives one from the other)."""
        pods = one_of("pod", self.valkey.pod_names)
        limits = series(
            "kube",
            "pod_container_resource_limits",
            f'namespace="{self.valkey.namespace}"',
            pods,
            'container="valkey"',
            'resource="memory"',
        )
        ratio = self.valkey.maxmemory_percent / 100
        return (
            f"max by (namespace, pod) ({limits})\n"
            f"or\nmax by (namespace, pod) ({self._m('memory_max_bytes')} > 0) / {ratio}"
        )

    def _queue_keys(self, states: Sequence[str], by: str) -> str:
        """BullMQ key sizes of the watched queues in ``states``, with ``queue`` and ``state``
        labels taken from the key, summed by ``by`` (with several pods, the largest pod's: every
        replica holds a copy of the primary's keys)."""
        prefix = re_escape(self.exporter.bullmq_prefix)
        keys = self._m("key_size", bullmq_keys(self.exporter.bullmq_prefix, self.exporter.bullmq_queues, states))
        queue = promql_string(f"{prefix}:([^:]+):[^:]+")
        state = promql_string(f"{prefix}:[^:]+:([^:]+)")
        aggregate = "max" if self._per_pod else "sum"
        return (
            f"{aggregate} by ({by}) (\n"
            f'  label_replace(label_replace({keys}, "queue", "$1", "key", {queue}), "state", "$1", "key", {state})\n'
            ")"
        )

    # -- the panels, as data ------------------------------------------------------------

    def _row_specs(self) -> tuple[RowSpec, ...]:
        rows = [self._availability(), *self._replication(), self._memory(), self._clients()]
        rows += [self._persistence(), self._keyspace(), *self._bullmq(), self._network()]
        return tuple(rows)

    def _availability(self) -> RowSpec:
        m, by, or_zero, legend = self._m, self._by_target, self._or_zero, self._legend
        other_policy = m("instance_info", 'maxmemory_policy!="noeviction"')
        policy_by = "pod, maxmemory_policy" if self._per_pod else "maxmemory_policy"
        return RowSpec(
            1,
            "Availability",
            (
                PanelSpec(
                    key="up",
                    id=2,
                    kind="stat",
                    title="Up",
                    description="valkey_up: 1 while the exporter in the pod reaches Valkey. No data: the pod is "
                    "gone or not scraped (ValkeyMetricsAbsent).",
                    targets=(Target(m("up"), "{{pod}}"),),
                    grid=(0, 0, 4, 4),
                    thresholds=((1, GREEN),),
                    base_color=RED,
                    mappings=(("1", "UP", GREEN), ("0", "DOWN", RED)),
                    no_value="no metrics",
                ),
                PanelSpec(
                    key="uptime",
                    id=3,
                    kind="stat",
                    title="Uptime",
                    description="Time since valkey-server started; orange for the first "
                    f"{UPTIME_RECENT_SECONDS // 60} minutes after a restart.",
                    targets=(Target(m("uptime_in_seconds"), "{{pod}}"),),
                    grid=(4, 0, 4, 4),
                    unit=SECONDS,
                    base_color=ORANGE,
                    thresholds=((UPTIME_RECENT_SECONDS, GREEN),),
                ),
                PanelSpec(
                    key="restarts",
                    id=4,
                    kind="stat",
                    title="Restarts in range",
                    description="Times the uptime went back to zero in the dashboard's time range: container "
                    "restarts (OOM kill, crash, probe) and new pods alike (the maximum over the pod's series).",
                    targets=(
                        Target(
                            f"resets(max by ({self._by}) ({m('uptime_in_seconds')})[$__range:])",
                            "{{pod}}" if self._per_pod else "restarts",
                        ),
                    ),
                    grid=(8, 0, 4, 4),
                    thresholds=((1, ORANGE),),
                ),
                PanelSpec(
                    key="eviction_policy",
                    id=5,
                    kind="stat",
                    title="maxmemory-policy",
                    description="Red unless noeviction, which BullMQ requires (ADR 0005): any other policy "
                    "deletes keys, jobs included, at maxmemory.",
                    targets=(
                        Target(
                            f"max by ({policy_by}) ({other_policy})\n"
                            f"or\n0 * max by ({policy_by}) ({m('instance_info')})",
                            legend("{{maxmemory_policy}}"),
                        ),
                    ),
                    grid=(12, 0, 4, 4),
                    thresholds=((1, RED),),
                    text_mode=common.BigValueTextMode.NAME,
                    display_name=(
                        "${__field.labels.pod} ${__field.labels.maxmemory_policy}"
                        if self._per_pod
                        else "${__field.labels.maxmemory_policy}"
                    ),
                ),
                PanelSpec(
                    key="oom_total",
                    id=6,
                    kind="stat",
                    title="Writes refused (OOM) since start",
                    description="Commands refused with -OOM since valkey-server started: memory reached "
                    "maxmemory and noeviction refused the write. Must stay 0.",
                    targets=(Target(or_zero(m("errors_total", 'err="OOM"')), legend("refused")),),
                    grid=(16, 0, 4, 4),
                    thresholds=((1, RED),),
                ),
                PanelSpec(
                    key="evicted_total",
                    id=7,
                    kind="stat",
                    title="Evicted keys since start",
                    description="Keys deleted to free memory since valkey-server started. Must stay 0: with "
                    "noeviction nothing is ever evicted, so any eviction means the policy was changed.",
                    targets=(Target(by(m("evicted_keys_total")), legend("evicted")),),
                    grid=(20, 0, 4, 4),
                    thresholds=((1, RED),),
                ),
            ),
        )

    def _replication(self) -> list[RowSpec]:
        """Each pod's role and replication, with several pods; the Sentinels' view with an
        exported Sentinel."""
        if not self._per_pod:
            return []
        m = self._m
        primary = m("instance_info", 'role="master"')
        sentinel = self.sentinel
        to_write = sentinel.min_replicas_to_write if sentinel is not None else 0
        replicas = len(self.valkey.pod_names) - 1
        lag = (
            f"clamp_min(\n  max by (namespace, service) ({m('master_repl_offset')} and on (namespace, service, pod) "
            f"{primary})\n  - on (namespace, service) group_right ()\n"
            f"  max by (namespace, service, pod) ({m('slave_repl_offset')}),\n  0\n)"
        )
        rows = [
            RowSpec(
                70,
                "Replication",
                (
                    PanelSpec(
                        key="role",
                        id=71,
                        kind="stat",
                        title="Role per node",
                        description="Each pod's role: one primary, the others replicas. No primary, or two: "
                        "ValkeyNoPrimary, ValkeyPrimaryDisagreement; a new primary: ValkeyFailover.",
                        targets=(
                            Target(
                                f"count by (namespace, service, pod) ({primary})\n"
                                f"or\n0 * count by (namespace, service, pod) ({m('instance_info')})",
                                "{{pod}}",
                            ),
                        ),
                        grid=(0, 0, 8, 4),
                        thresholds=((1, BLUE),),
                        mappings=(("1", "primary", BLUE), ("0", "replica", GREEN)),
                        text_mode=common.BigValueTextMode.VALUE_AND_NAME,
                    ),
                    PanelSpec(
                        key="connected_replicas",
                        id=72,
                        kind="stat",
                        title="Replicas connected to the primary",
                        description="Replicas the primary has (connected_slaves), of "
                        f"{replicas}. Below min-replicas-to-write ({to_write}) it refuses writes "
                        "(ValkeyWritesRefusedNoReplicas).",
                        targets=(
                            Target(f"{m('connected_slaves')}\nand on (namespace, service, pod)\n{primary}", "{{pod}}"),
                        ),
                        grid=(8, 0, 8, 4),
                        base_color=RED,
                        thresholds=((max(to_write, 1), ORANGE), (replicas, GREEN)),
                        text_mode=common.BigValueTextMode.VALUE_AND_NAME,
                    ),
                    PanelSpec(
                        key="replication_link",
                        id=73,
                        kind="stat",
                        title="Replica link to the primary",
                        description="master_link_status of each replica: DOWN while it is not in sync with "
                        "its primary (also during a full sync); ValkeyReplicationBroken after 5 minutes.",
                        targets=(Target(m("master_link_up"), "{{pod}}"),),
                        grid=(16, 0, 8, 4),
                        base_color=RED,
                        thresholds=((1, GREEN),),
                        mappings=(("1", "UP", GREEN), ("0", "DOWN", RED)),
                        text_mode=common.BigValueTextMode.VALUE_AND_NAME,
                    ),
                    PanelSpec(
                        key="replication_offset_lag",
                        id=74,
                        kind="timeseries",
                        title="Replication offset lag",
                        description="Bytes of the replication stream each replica has not yet processed: the "
                        "primary's master_repl_offset minus the replica's slave_repl_offset, as scraped (two "
                        "scrapes apart, so a busy primary shows a few KB). A lag that grows: the replica "
                        "cannot keep up, or its link is down.",
                        targets=(Target(lag, "{{pod}}"),),
                        grid=(0, 4, 12, 8),
                        unit=BYTES,
                    ),
                    PanelSpec(
                        key="replica_lag",
                        id=75,
                        kind="timeseries",
                        title="Seconds since each replica's last acknowledgement",
                        description="As the primary sees it (connected_slave_lag_seconds, by replica address): "
                        "above min-replicas-max-lag a replica does not count for min-replicas-to-write "
                        "(ValkeyReplicationLagging).",
                        targets=(
                            Target(
                                f"max by (namespace, service, slave_ip) ({m('connected_slave_lag_seconds')})",
                                "{{slave_ip}}",
                            ),
                        ),
                        grid=(12, 4, 12, 8),
                        unit=SECONDS,
                    ),
                ),
            )
        ]
        if sentinel is not None and sentinel.metrics_service_name is not None:
            s = self._s
            rows.append(
                RowSpec(
                    80,
                    "Sentinel",
                    (
                        PanelSpec(
                            key="sentinel_primary",
                            id=81,
                            kind="stat",
                            title="Primary as each Sentinel names it",
                            description="The address each Sentinel gives clients for master "
                            f"{sentinel.master_name}. Every Sentinel must name the same one "
                            "(ValkeyPrimaryDisagreement); red: the Sentinel sees it down.",
                            targets=(Target(s("sentinel_master_status"), "{{pod}}: {{master_address}}"),),
                            grid=(0, 0, 12, 4),
                            base_color=RED,
                            thresholds=((1, GREEN),),
                            text_mode=common.BigValueTextMode.NAME,
                        ),
                        PanelSpec(
                            key="sentinel_quorum",
                            id=82,
                            kind="stat",
                            title="Sentinels each Sentinel sees",
                            description=f"Sentinels that each Sentinel sees up (itself included), of "
                            f"{sentinel.replicas + 1}: below the quorum ({sentinel.quorum}) no failover is "
                            "possible (ValkeySentinelQuorumLost). No data for a pod: its Sentinel is down "
                            "(ValkeySentinelDown).",
                            targets=(Target(s("sentinel_master_ok_sentinels"), "{{pod}}"),),
                            grid=(12, 0, 6, 4),
                            base_color=RED,
                            thresholds=((sentinel.quorum, ORANGE), (sentinel.replicas + 1, GREEN)),
                            text_mode=common.BigValueTextMode.VALUE_AND_NAME,
                        ),
                        PanelSpec(
                            key="sentinel_replicas",
                            id=83,
                            kind="stat",
                            title="Replicas each Sentinel sees",
                            description=f"Replicas of master {sentinel.master_name} that each Sentinel sees "
                            f"up, of {replicas}: what it could promote.",
                            targets=(Target(s("sentinel_master_ok_slaves"), "{{pod}}"),),
                            grid=(18, 0, 6, 4),
                            base_color=RED,
                            thresholds=((1, ORANGE), (replicas, GREEN)),
                            text_mode=common.BigValueTextMode.VALUE_AND_NAME,
                        ),
                    ),
                )
            )
        return rows

    def _memory(self) -> RowSpec:
        m, by, legend = self._m, self._by_target, self._legend
        limit = self._container_limit()
        return RowSpec(
            10,
            "Memory",
            (
                PanelSpec(
                    key="memory",
                    id=11,
                    kind="timeseries",
                    title="Memory: used, RSS, maxmemory and container limit",
                    description="used_memory (what maxmemory counts) and the server's RSS against maxmemory "
                    f"({self.valkey.maxmemory_percent} % of the limit, set by the entrypoint) and the "
                    "container's memory limit (kube-state-metrics; where it is not scraped, maxmemory / "
                    f"{self.valkey.maxmemory_percent} %). During an AOF rewrite the forked child's copied pages "
                    "add to the container's usage (cAdvisor's container_memory_working_set_bytes), not to "
                    "this RSS.",
                    targets=(
                        Target(by(m("memory_used_bytes")), legend("used")),
                        Target(by(m("memory_used_rss_bytes")), legend("RSS")),
                        Target(by(m("memory_max_bytes")), legend("maxmemory")),
                        Target(limit, legend("container limit")),
                    ),
                    grid=(0, 0, 12, 8),
                    unit=BYTES,
                    colors=(("maxmemory", ORANGE), ("container limit", RED)),
                    dashed=("maxmemory", "container limit"),
                ),
                PanelSpec(
                    key="memory_of_maxmemory",
                    id=12,
                    kind="gauge",
                    title="Used of maxmemory",
                    description=f"used_memory / maxmemory, as the memory alerts compute it: yellow above "
                    f"{CAPACITY_REVIEW_RATIO:.0%} (capacity review), orange above {MEMORY_WARNING_RATIO:.0%}, "
                    f"red above {MEMORY_CRITICAL_RATIO:.0%}; at 100 % writes are refused. No data: maxmemory is 0.",
                    targets=(
                        Target(
                            f"{by(m('memory_used_bytes'))}\n/\n({by(m('memory_max_bytes'))} > 0)",
                            legend("of maxmemory"),
                        ),
                    ),
                    grid=(12, 0, 6, 8),
                    thresholds=(
                        (CAPACITY_REVIEW_RATIO, YELLOW),
                        (MEMORY_WARNING_RATIO, ORANGE),
                        (MEMORY_CRITICAL_RATIO, RED),
                    ),
                ),
                PanelSpec(
                    key="memory_of_limit",
                    id=13,
                    kind="gauge",
                    title="RSS of container limit",
                    description="The server's RSS against the container's memory limit; the kernel kills the "
                    "container at 100 %. maxmemory leaves the rest as headroom for the fork of an AOF "
                    f"rewrite: orange above {RSS_OF_LIMIT_WARNING:.0%}, red above {RSS_OF_LIMIT_CRITICAL:.0%}.",
                    targets=(
                        Target(
                            f"max by (namespace, pod) ({m('memory_used_rss_bytes')})\n/ on (namespace, pod)\n"
                            f"(\n{limit}\n)",
                            legend("of container limit"),
                        ),
                    ),
                    grid=(18, 0, 6, 8),
                    thresholds=(
                        (self.valkey.maxmemory_percent / 100, YELLOW),
                        (RSS_OF_LIMIT_WARNING, ORANGE),
                        (RSS_OF_LIMIT_CRITICAL, RED),
                    ),
                ),
            ),
        )

    def _clients(self) -> RowSpec:
        m, by, legend = self._m, self._by_target, self._legend
        oom_errors = m("errors_total", 'err="OOM"')
        cmd_by = "pod, cmd" if self._per_pod else "cmd"
        return RowSpec(
            20,
            "Clients and commands",
            (
                PanelSpec(
                    key="clients",
                    id=21,
                    kind="timeseries",
                    title="Clients: connected and blocked",
                    description="Connected clients (BullMQ: one connection per Queue, two per Worker) and "
                    "clients blocked in BRPOPLPUSH/BZPOPMIN and the like (idle BullMQ workers wait there).",
                    targets=(
                        Target(by(m("connected_clients")), legend("connected")),
                        Target(by(m("blocked_clients")), legend("blocked")),
                    ),
                    grid=(0, 0, 8, 8),
                ),
                PanelSpec(
                    key="commands",
                    id=22,
                    kind="timeseries",
                    title="Commands per second by command",
                    description="Commands processed per second, by command (the exporter's own INFO and "
                    "CONFIG GET included). ADR 0005's revisit trigger is 10k commands/s in total.",
                    targets=(
                        Target(f"sum by ({cmd_by}) (rate({m('commands_total')}[$__rate_interval]))", legend("{{cmd}}")),
                    ),
                    grid=(8, 0, 8, 8),
                    unit=PER_SECOND,
                ),
                PanelSpec(
                    key="oom_rate",
                    id=23,
                    kind="timeseries",
                    title="Writes refused (OOM) per second",
                    description="Commands refused with -OOM per second: memory is at maxmemory and noeviction "
                    "refuses writes; BullMQ producers and workers fail. 0 while none was ever refused.",
                    targets=(Target(self._or_zero(f"rate({oom_errors}[$__rate_interval])"), legend("refused")),),
                    grid=(16, 0, 8, 8),
                    unit=PER_SECOND,
                    colors=(("refused", RED),),
                ),
            ),
        )

    def _persistence(self) -> RowSpec:
        m, by, legend = self._m, self._by_target, self._legend
        ok_failed = (("1", "OK", GREEN), ("0", "FAILING", RED))
        return RowSpec(
            30,
            "Persistence (AOF)",
            (
                PanelSpec(
                    key="aof_write",
                    id=31,
                    kind="stat",
                    title="AOF last write",
                    description="Status of the last write to the AOF. FAILING: the volume is full or read-only "
                    "and Valkey refuses writes until it can write again.",
                    targets=(Target(m("aof_last_write_status"), "{{pod}}"),),
                    grid=(0, 0, 4, 4),
                    base_color=RED,
                    thresholds=((1, GREEN),),
                    mappings=ok_failed,
                ),
                PanelSpec(
                    key="aof_rewrite",
                    id=32,
                    kind="stat",
                    title="AOF last rewrite",
                    description="Status of the last AOF rewrite. FAILING: the fork was refused (memory) or the "
                    "disk is full; the AOF keeps growing and restarts replay more of it.",
                    targets=(Target(m("aof_last_bgrewrite_status"), "{{pod}}"),),
                    grid=(4, 0, 4, 4),
                    base_color=RED,
                    thresholds=((1, GREEN),),
                    mappings=ok_failed,
                ),
                PanelSpec(
                    key="aof_rewrite_in_progress",
                    id=33,
                    kind="stat",
                    title="AOF rewrite in progress",
                    description="A forked child is rewriting the AOF now: memory peaks (copy-on-write) and "
                    "disk writes happen meanwhile.",
                    targets=(Target(m("aof_rewrite_in_progress"), "{{pod}}"),),
                    grid=(0, 4, 4, 4),
                    thresholds=((1, BLUE),),
                    mappings=(("0", "no", GREEN), ("1", "rewriting", BLUE)),
                ),
                PanelSpec(
                    key="aof_last_rewrite_duration",
                    id=34,
                    kind="stat",
                    title="Last AOF rewrite took",
                    description="Duration of the last AOF rewrite since valkey-server started; 'none yet' "
                    "before the first.",
                    targets=(Target(m("aof_last_rewrite_duration_sec"), "{{pod}}"),),
                    grid=(4, 4, 4, 4),
                    unit=SECONDS,
                    mappings=(("-1", "none yet", GREEN),),
                ),
                PanelSpec(
                    key="aof_size",
                    id=35,
                    kind="timeseries",
                    title="AOF size, rewrite base and last rewrite's copy-on-write",
                    description="The AOF's size and its size after the last rewrite (the base): Valkey "
                    "rewrites when the AOF has doubled (auto-aof-rewrite-percentage 100, at least 64 MB), "
                    "so the base drops at each rewrite. Copy-on-write: memory the last rewrite's fork copied.",
                    targets=(
                        Target(by(m("aof_current_size_bytes")), legend("AOF size")),
                        Target(by(m("aof_base_size_bytes")), legend("rewrite base")),
                        Target(by(m("aof_last_cow_size_bytes")), legend("last rewrite copy-on-write")),
                    ),
                    grid=(8, 0, 16, 8),
                    unit=BYTES,
                    dashed=("rewrite base",),
                ),
            ),
        )

    def _keyspace(self) -> RowSpec:
        m, by, legend = self._m, self._by_target, self._legend
        return RowSpec(
            40,
            "Keyspace",
            (
                PanelSpec(
                    key="keys",
                    id=41,
                    kind="timeseries",
                    title="Keys and expiring keys",
                    description="Keys in all databases, and those with a TTL (sessions expire; BullMQ keys "
                    "mostly do not).",
                    targets=(
                        Target(by(m("db_keys")), legend("keys")),
                        Target(by(m("db_keys_expiring")), legend("expiring keys")),
                    ),
                    grid=(0, 0, 12, 8),
                ),
                PanelSpec(
                    key="evicted_rate",
                    id=42,
                    kind="timeseries",
                    title="Evicted and expired keys per second",
                    description="Evicted keys must stay at 0 (noeviction); expired keys are TTLs running out, "
                    "as designed.",
                    targets=(
                        Target(by(f"rate({m('evicted_keys_total')}[$__rate_interval])"), legend("evicted")),
                        Target(by(f"rate({m('expired_keys_total')}[$__rate_interval])"), legend("expired")),
                    ),
                    grid=(12, 0, 12, 8),
                    unit=PER_SECOND,
                    colors=(("evicted", RED),),
                ),
            ),
        )

    def _bullmq(self) -> list[RowSpec]:
        """Only with queues to watch (the exporter exports nothing else of them)."""
        if not self.exporter.bullmq_queues:
            return []
        return [
            RowSpec(
                50,
                "BullMQ",
                (
                    PanelSpec(
                        key="bullmq",
                        id=51,
                        kind="timeseries",
                        title="BullMQ jobs per queue and state",
                        description="Jobs in each watched queue by state (the exporter's key sizes): wait, "
                        "paused and prioritized wait to run; delayed are scheduled for later; active are "
                        "being worked on.",
                        targets=(
                            Target(
                                self._queue_keys(self.exporter.queue_key_states, "queue, state"),
                                "{{queue}} {{state}}",
                            ),
                        ),
                        grid=(0, 0, 16, 8),
                    ),
                    PanelSpec(
                        key="bullmq_waiting",
                        id=52,
                        kind="bargauge",
                        title="BullMQ jobs waiting to run",
                        description="Jobs waiting to run per queue (wait + paused + prioritized), what "
                        "ValkeyBullMQQueueBacklog compares with its threshold. A queue that stays high: "
                        "workers down, stuck, too few, or paused.",
                        targets=(Target(self._queue_keys(WAITING_STATES, "queue"), "{{queue}}"),),
                        grid=(16, 0, 8, 8),
                    ),
                ),
            )
        ]

    def _network(self) -> RowSpec:
        m, by, legend = self._m, self._by_target, self._legend
        return RowSpec(
            60,
            "Network",
            (
                PanelSpec(
                    key="network",
                    id=61,
                    kind="timeseries",
                    title="Network I/O",
                    description="Bytes per second received from and sent to clients (and replicas, if any).",
                    targets=(
                        Target(by(f"rate({m('net_input_bytes_total')}[$__rate_interval])"), legend("received")),
                        Target(by(f"rate({m('net_output_bytes_total')}[$__rate_interval])"), legend("sent")),
                    ),
                    grid=(0, 0, 24, 8),
                    unit=BYTES_PER_SECOND,
                ),
            ),
        )

    # -- rendering ----------------------------------------------------------------------

    def _build(self) -> dashboard_builders.Dashboard:
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
        return render_rows(builder, self._rows, self._min_step, self.valkey.pod_names if self._per_pod else ())


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
