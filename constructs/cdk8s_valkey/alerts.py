"""Alerts: ADR 0005's alerting rules for one Valkey, as a prometheus-operator PrometheusRule."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cdk8s
from constructs import Construct

from . import _labels, _plain, _registry
from ._options import with_legacy_props
from ._promql import scope_matchers
from ._validation import check_duration, check_instance, check_labels, duration_millis
from ._wiring import check_exporter_of
from .exporter_sidecar import ExporterSidecar
from .valkey_statefulset import ValkeyStatefulSet

if TYPE_CHECKING:  # dashboard.py imports this module
    from .dashboard import Dashboard

# A placeholder on a reserved domain (RFC 2606) until this library has a public home: it is
# obviously not a real page, and it never points at somebody else's content.
DEFAULT_RUNBOOK_BASE_URL = "https://git.example.com/platform/cdk8s-valkey/blob/main/docs/runbooks.md"
COMPONENT = "alerts"
API_VERSION = "monitoring.coreos.com/v1"  # PrometheusRule, prometheus-operator's CRD

# BullMQ keys whose jobs are waiting to run now. `delayed` (scheduled for later: retries
# with back-off, repeatable jobs) is a backlog by design and `active` is being worked on,
# so neither makes a queue late.
WAITING_STATES: tuple[str, ...] = ("wait", "paused", "prioritized")

# Fixed thresholds: each is ADR 0005's figure or follows from a guardrail, so they are
# constants, not props. Memory ratios are of maxmemory (80 % of the container limit).
MEMORY_WARNING_RATIO = 0.90
MEMORY_CRITICAL_RATIO = 0.97
CAPACITY_REVIEW_RATIO = 0.65  # ADR 0005, capacity review: steady state above 65 %
CLIENTS_NEAR_MAX_RATIO = 0.90
REVISIT_MEMORY_BYTES = 50 << 30  # ADR 0005, revisit trigger: sustained memory above 50 GiB
REVISIT_COMMANDS_PER_SECOND = 10_000  # ADR 0005, revisit trigger: throughput above 10k ops/s

CLIENTS_FOR_SECONDS = 10 * 60  # a deploy that briefly doubles the workers is no leak

# The data volume, from the kubelet's kubelet_volume_stats_* of the claim. The trend is fitted
# over 6 h, and only for a series with 6 h of history: a shorter window extrapolates a burst of
# jobs, or the AOF's growth between two rewrites, into a false "full tomorrow".
VOLUME_TREND_WINDOW_SECONDS = 6 * 60 * 60
VOLUME_FULL_HORIZON_SECONDS = 24 * 60 * 60  # warn a day ahead: time to expand the claim by day
VOLUME_FILLING_FOR_SECONDS = 60 * 60
# Below 10 % free the next AOF rewrite (a new base file about the size of the dataset, written
# while the old files still exist) may not fit, and then the AOF itself hits ENOSPC.
VOLUME_CRITICAL_FREE_RATIO = 0.10
VOLUME_CRITICAL_FOR_SECONDS = 5 * 60

# The Valkey container's working set (cAdvisor) against its memory limit (kube-state-metrics;
# kube-prometheus-stack drops cAdvisor's container_spec_* by default). Measured here (bench/README
# section 5): ~82 % filled to maxmemory, ~86 % with an AOF rewrite in flight under the ADR's 10k
# SET/s, for seconds; design notes give 94-95 % of the cgroup charge for that rewrite. So 90 %
# held for 10 minutes is no rewrite but lost headroom for the next fork, and 97 % is above every
# normal peak, a step from the OOM kill at 100 %.
CONTAINER_MEMORY_WARNING_RATIO = 0.90
CONTAINER_MEMORY_WARNING_FOR_SECONDS = 10 * 60
CONTAINER_MEMORY_CRITICAL_RATIO = 0.97
CONTAINER_MEMORY_CRITICAL_FOR_SECONDS = 60
# The volume and container series come from the kubelet and kube-state-metrics, not the
# exporter: while Valkey is up, their absence means those alerts are blind. Half an hour rides
# out a restart of the kubelet, kube-state-metrics or the pod.
POD_METRICS_ABSENT_FOR_SECONDS = 30 * 60

# The shortest `for` the props accept, and the multiple of the scrape interval below which
# one odd scrape could fire an alert.
MIN_FOR_SECONDS = 60
MIN_FOR_SCRAPES = 2

SEVERITIES = ("critical", "warning", "info")
# Every alert this construct can render; which ones it does depends on the exporter's queues
# and AlertOptions.disabled. A test keeps the list in step with the rules.
ALERT_NAMES: tuple[str, ...] = (
    "ValkeyDown",
    "ValkeyMetricsAbsent",
    "ValkeyMemoryHigh",
    "ValkeyMemoryCritical",
    "ValkeyMemoryCapacityReview",
    "ValkeyMaxmemoryUnset",
    "ValkeyWritesRefusedOOM",
    "ValkeyAofWriteFailing",
    "ValkeyAofRewriteFailing",
    "ValkeyMaxmemoryPolicyNotNoeviction",
    "ValkeyTooManyClients",
    "ValkeyClientsNearMaxclients",
    "ValkeyVolumeFillingUp",
    "ValkeyVolumeAlmostFull",
    "ValkeyContainerMemoryHigh",
    "ValkeyContainerMemoryCritical",
    "ValkeyPodMetricsAbsent",
    "ValkeyBullMQQueueBacklog",
    "ValkeyAdrRevisitMemory",
    "ValkeyAdrRevisitThroughput",
)


@dataclass(frozen=True)
class _Rule:
    alert: str
    expr: str
    for_seconds: int
    severity: str
    summary: str
    description: str


@dataclass(frozen=True, kw_only=True)
class AlertOptions:
    """Props of :class:`Alerts`, also taken by :class:`Valkey` as ``alerts=``.

    :param rule_labels: Extra labels of the PrometheusRule, for the ``ruleSelector`` of
        the Prometheus that should load it, e.g. ``{"release": "kube-prometheus-stack"}``
        (kube-prometheus-stack's default selector). The ``app.kubernetes.io/*`` labels are
        the construct's and cannot be given here. Default: none, which suits a Prometheus
        that loads every PrometheusRule.
    :param runbook_base_url: Absolute http(s) URL of the runbooks page (``docs/runbooks.md``
        of this library); each alert's ``runbook_url`` is it plus ``#<alert name in lower
        case>``. No ``#``, whitespace or braces. Default: a placeholder on
        ``git.example.com``, because this library has no public home yet; point it at
        where your team reads ``docs/runbooks.md``.
    :param down_for: How long Valkey must be unreachable (``ValkeyDown``) or its metrics
        missing (``ValkeyMetricsAbsent``) before they fire. At least 1 minute and two scrape
        intervals. Default: 5 minutes, so a normal restart (pod rescheduled, Longhorn volume
        reattached, AOF replayed) passes without a page and a crash loop does not.
    :param client_threshold: ``ValkeyTooManyClients`` fires when more clients stay
        connected than this. At least 1. Default: 1000, a tenth of Valkey's ``maxclients``
        and far more than a small cluster's session cache and BullMQ workers open (BullMQ:
        one connection per Queue, two per Worker); a climb past it is a connection leak.
    :param queue_depth_threshold: ``ValkeyBullMQQueueBacklog`` fires for a queue when more
        jobs than this wait to run (``wait`` + ``paused`` + ``prioritized``; ``delayed``
        jobs are scheduled for later on purpose and do not count). At least 1.
        Default: 1000.
    :param queue_depth_thresholds: Per-queue overrides of ``queue_depth_threshold``, e.g.
        ``{"reports": 50}``. Keys must be queues of ``exporter.bullmq_queues``; values at
        least 1. Default: none, every queue uses ``queue_depth_threshold``.
    :param queue_depth_for: How long a queue must stay above its threshold before
        ``ValkeyBullMQQueueBacklog`` fires. At least 1 minute and two scrape intervals.
        Default: 15 minutes: a burst that workers drain is normal, a backlog that lasts
        means workers are down, stuck or too few.
    :param disabled: Names of alerts not to render, e.g. ``["ValkeyAdrRevisitMemory"]`` for a
        team that does not track ADR 0005's revisit triggers. Each must be an alert this
        construct renders (``Alerts.ALERT_NAMES``). Default: none, every alert is rendered.
    :param severities: Severity overrides by alert name, e.g. ``{"ValkeyTooManyClients":
        "critical"}``; the values are ``critical``, ``warning`` or ``info``. Default: none,
        each alert keeps the severity documented in ``docs/runbooks.md``.
    :param grafana_url: Absolute http(s) URL of the Grafana that loads the :class:`Dashboard`
        (e.g. ``https://grafana.example.com``). With a dashboard, each alert then carries a
        ``dashboard_url`` annotation: its panel viewed alone, for Alertmanager's notifications
        next to ``runbook_url``. Default: none, no link (``__dashboardUid__`` and
        ``__panelId__`` are rendered with a dashboard all the same).
    """

    rule_labels: Mapping[str, str] | None = None
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    down_for: cdk8s.Duration = cdk8s.Duration.minutes(5)
    client_threshold: int = 1000
    queue_depth_threshold: int = 1000
    queue_depth_thresholds: Mapping[str, int] | None = None
    queue_depth_for: cdk8s.Duration = cdk8s.Duration.minutes(15)
    disabled: Collection[str] = ()
    severities: Mapping[str, str] | None = None
    grafana_url: str | None = None

    def __post_init__(self) -> None:
        labels = check_labels("rule_labels", dict(self.rule_labels or {}))
        for key in labels:
            if key.startswith("app.kubernetes.io/"):
                raise ValueError(
                    f"rule_labels: {key!r} is set by Alerts; "
                    "use labels outside the app.kubernetes.io/ prefix (for example 'release')"
                )
        _check_runbook_base_url(self.runbook_base_url)
        if self.grafana_url is not None and not re.fullmatch(r"https?://[^\s#?{}]+", self.grafana_url):
            raise ValueError(
                f"grafana_url: {self.grafana_url!r} is not allowed; use the absolute http(s) URL of Grafana "
                "(with its sub-path, if any) without query, fragment, whitespace or braces"
            )
        check_duration("down_for", self.down_for)
        check_duration("queue_depth_for", self.queue_depth_for)
        _check_positive_int("client_threshold", self.client_threshold)
        _check_positive_int("queue_depth_threshold", self.queue_depth_threshold)
        for queue, threshold in (self.queue_depth_thresholds or {}).items():
            _check_positive_int(f"queue_depth_thresholds[{queue!r}]", threshold)
        check_alert_selection("Alerts", ALERT_NAMES, self.disabled, self.severities)


class Alerts(Construct):
    """ADR 0005's alerts for one Valkey: a PrometheusRule ``<name>`` with one group.

    Covers availability (``ValkeyDown``, ``ValkeyMetricsAbsent``), memory against
    ``maxmemory`` (warning, critical, capacity review, unset ``maxmemory``), refused writes
    (OOM errors under ``noeviction``), AOF persistence, the eviction policy, clients, BullMQ
    queue depth and ADR 0005's revisit triggers. Every expression selects the exporter's
    series by ``namespace`` (when the chart has one) and ``service`` (the metrics Service),
    the labels a ServiceMonitor attaches, so that two Valkeys never fire each other's alerts.
    Each alert carries a ``severity`` label (``critical``, ``warning`` or ``info``) and the
    annotations ``summary``, ``description`` and ``runbook_url`` (``<runbook_base_url>#<alert
    name in lower case>``, a heading of ``docs/runbooks.md``).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        valkey: ValkeyStatefulSet,
        exporter: ExporterSidecar,
        options: AlertOptions | None = None,
        dashboard: Dashboard | None = None,
        **legacy_props: Any,
    ) -> None:
        """
        :param valkey: The Valkey the alerts are about; its namespace scopes every expression.
        :param exporter: The ExporterSidecar of that Valkey; its metrics Service, metric prefix
            and BullMQ queues shape the expressions.
        :param options: Thresholds, durations, labels and which alerts to render, see
            :class:`AlertOptions`. The 0.1 flat keywords (``client_threshold=...``) still work
            until 0.3.0, with a DeprecationWarning. Default: ``AlertOptions()``.
        :param dashboard: The :class:`Dashboard` of this Valkey: each alert then names its panel
            (``__dashboardUid__``, ``__panelId__``, and ``dashboard_url`` with
            ``AlertOptions.grafana_url``). Default: none, no links.
        """
        opts = with_legacy_props("Alerts", options or AlertOptions(), legacy_props)
        # Validate everything before defining any child (and before joining the tree).
        check_instance("valkey", valkey, ValkeyStatefulSet, "the ValkeyStatefulSet the alerts are about")
        check_instance("exporter", exporter, ExporterSidecar, "the ExporterSidecar of that Valkey")
        check_exporter_of(exporter, valkey)
        missing = [state for state in WAITING_STATES if state not in exporter.queue_key_states]
        if missing:
            raise ValueError(
                f"exporter: it does not export the BullMQ key states {missing}; the queue-depth "
                f"alert needs {list(WAITING_STATES)}"
            )
        scrape_seconds = _whole_seconds(exporter.scrape_interval)
        down_seconds = _check_for("down_for", opts.down_for, scrape_seconds)
        overrides = dict(opts.queue_depth_thresholds or {})
        for queue in overrides:
            if queue not in exporter.bullmq_queues:
                known = ", ".join(repr(q) for q in exporter.bullmq_queues) or "none"
                raise ValueError(
                    f"queue_depth_thresholds: {queue!r} is not a queue the exporter watches; "
                    f"use one of exporter.bullmq_queues ({known})"
                )
        queue_seconds = _check_for("queue_depth_for", opts.queue_depth_for, scrape_seconds)
        queue_depth_threshold = opts.queue_depth_threshold

        super().__init__(scope, id)

        self.valkey = valkey
        self.exporter = exporter
        self.name = valkey.name
        self.group_name = f"{valkey.name}.rules"
        self.options = opts
        if dashboard is not None and dashboard.valkey is not valkey:
            raise ValueError(
                f"dashboard: it shows Valkey {dashboard.valkey.name!r}, not {valkey.name!r}; "
                "pass the Dashboard created with valkey=<this Valkey>"
            )
        self.dashboard = dashboard
        self._rule_labels = dict(opts.rule_labels or {})
        self.runbook_base_url = opts.runbook_base_url
        self.down_for = opts.down_for
        self.client_threshold = opts.client_threshold
        self.queue_depth_threshold = queue_depth_threshold
        self._queue_depth_thresholds = {q: overrides.get(q, queue_depth_threshold) for q in exporter.bullmq_queues}
        self.queue_depth_for = opts.queue_depth_for
        self.labels = _labels.common_labels(valkey.name, valkey.version, COMPONENT)

        self._metric_prefix = exporter.metric_namespace
        self._matchers = scope_matchers(valkey, exporter)
        self._target = f"{valkey.namespace}/{valkey.name}"

        severities = dict(opts.severities or {})
        self._rules = selected_rules(self._render_rules(down_seconds, queue_seconds), opts.disabled, severities)
        self.alert_names: tuple[str, ...] = tuple(dict.fromkeys(rule.alert for rule in self._rules))

        _registry.register(self, [("PrometheusRule", self.name)])
        # Plain JSON, not the generated CRD binding: one static call per expression less
        # (_plain.py); tests/test_crd_schemas.py validates it against the CRD instead.
        self.prometheus_rule = _plain.api_object(
            self,
            "Resource",
            api_version=API_VERSION,
            kind="PrometheusRule",
            name=self.name,
            labels={**self.labels, **self._rule_labels},
            spec={"groups": [{"name": self.group_name, "rules": [self._rule(rule) for rule in self._rules]}]},
        )

    # -- wiring points -------------------------------------------------------------

    @property
    def rule_labels(self) -> dict[str, str]:
        """The extra PrometheusRule labels given (a copy)."""
        return dict(self._rule_labels)

    @property
    def queue_depth_thresholds(self) -> dict[str, int]:
        """The threshold in force for every watched queue, overrides applied (a copy)."""
        return dict(self._queue_depth_thresholds)

    @property
    def selector(self) -> str:
        """The label matchers every expression uses, e.g. ``namespace="apps",service="valkey-metrics"``."""
        return self._matchers

    def runbook_url(self, alert: str) -> str:
        """The ``runbook_url`` annotation of an alert: the base URL plus its anchor."""
        if alert not in self.alert_names:
            raise ValueError(f"alert: {alert!r} is not rendered; use one of {list(self.alert_names)}")
        return f"{self.runbook_base_url}#{alert.lower()}"

    # -- rendering -----------------------------------------------------------------

    def _rule(self, rule: _Rule) -> _plain.JsonObject:
        return rule_json(rule, self.runbook_base_url, self._dashboard_links(rule.alert))

    def _dashboard_links(self, alert: str) -> dict[str, str]:
        """Grafana's own link annotations, and an absolute link for Alertmanager's receivers."""
        panels = self.dashboard.alert_panels if self.dashboard is not None else {}
        if self.dashboard is None or alert not in panels:
            return {}
        links = {"__dashboardUid__": self.dashboard.uid, "__panelId__": str(panels[alert])}
        if self.options.grafana_url is not None:
            links["dashboard_url"] = self.dashboard.alert_url(alert, self.options.grafana_url)
        return links

    def _sel(self, *extra: str) -> str:
        return "{" + ",".join([self._matchers, *extra]) + "}"

    def _m(self, metric: str, *extra: str) -> str:
        """A metric of the exporter, selected by this Valkey's namespace and metrics Service."""
        return f"{self._metric_prefix}_{metric}{self._sel(*extra)}"

    def _render_rules(self, down_seconds: int, queue_seconds: int) -> list[_Rule]:
        m = self._m
        target = self._target
        down = _prometheus_duration(down_seconds)
        used, max_bytes = m("memory_used_bytes"), m("memory_max_bytes")
        oom = m("errors_total", 'err="OOM"')
        info = m("instance_info", 'maxmemory_policy!="noeviction"')
        rules = [
            _Rule(
                "ValkeyDown",
                f"{m('up')} == 0",
                down_seconds,
                "critical",
                f"Valkey {target} is down",
                f"The exporter in pod {{{{ $labels.pod }}}} has not reached Valkey {target} for {down}: "
                "clients (sessions, BullMQ) get connection errors until it is back.",
            ),
            _Rule(
                "ValkeyMetricsAbsent",
                f"absent({m('up')})",
                down_seconds,
                "critical",
                f"No metrics from Valkey {target}",
                f"Prometheus has had no {self._metric_prefix}_up series from service "
                f"{self.exporter.metrics_service_name} for {down}: the Valkey pod is gone (node or volume "
                "down, pod pending) or no longer scraped, and every other Valkey alert is blind.",
            ),
            _Rule(
                "ValkeyMemoryHigh",
                f"{used} / ({max_bytes} > 0) > {MEMORY_WARNING_RATIO}",
                10 * 60,
                "warning",
                f"Valkey {target} uses over {MEMORY_WARNING_RATIO:.0%} of maxmemory",
                f"Valkey {target} uses {{{{ $value | humanizePercentage }}}} of maxmemory. At 100% it "
                "refuses writes (maxmemory-policy noeviction): BullMQ cannot add or move jobs.",
            ),
            _Rule(
                "ValkeyMemoryCritical",
                f"{used} / ({max_bytes} > 0) > {MEMORY_CRITICAL_RATIO}",
                2 * 60,
                "critical",
                f"Valkey {target} is about to refuse writes",
                f"Valkey {target} uses {{{{ $value | humanizePercentage }}}} of maxmemory: writes are "
                "refused with OOM errors at 100%. Free memory or raise the memory limit now.",
            ),
            _Rule(
                "ValkeyMemoryCapacityReview",
                f"max by (namespace, service) (avg_over_time({used}[1h]))\n"
                f"/\nmax by (namespace, service) (max_over_time({max_bytes}[1h]) > 0)\n> {CAPACITY_REVIEW_RATIO}",
                24 * 60 * 60,
                "info",
                f"Valkey {target} stays above {CAPACITY_REVIEW_RATIO:.0%} of maxmemory",
                f"Valkey {target} has used {{{{ $value | humanizePercentage }}}} of maxmemory (hourly "
                f"average) for a day. ADR 0005: above {CAPACITY_REVIEW_RATIO:.0%} in steady state, "
                "plan vertical scaling (memory_limit) or another instance.",
            ),
            _Rule(
                "ValkeyMaxmemoryUnset",
                f"{max_bytes} == 0",
                5 * 60,
                "warning",
                f"Valkey {target} has no maxmemory",
                f"Valkey {target} runs with maxmemory 0 (unlimited): instead of refusing writes it grows "
                "until the kernel OOM-kills the pod, and the memory alerts are blind. The entrypoint "
                "sets maxmemory at start, so someone changed it at runtime (CONFIG SET).",
            ),
            _Rule(
                "ValkeyWritesRefusedOOM",
                f"increase({oom}[5m]) > 0\nor\n({oom} unless {oom} offset 5m)",
                0,
                "critical",
                f"Valkey {target} refuses writes (OOM)",
                f"Valkey {target} answered about {{{{ $value | humanize }}}} commands with OOM errors in "
                "the last 5 minutes: memory is at maxmemory and noeviction refuses writes. BullMQ "
                "producers and workers are failing.",
            ),
            _Rule(
                "ValkeyAofWriteFailing",
                f"{m('aof_last_write_status')} == 0",
                60,
                "critical",
                f"Valkey {target} cannot write its AOF",
                f"The last AOF write of Valkey {target} failed (disk full or volume read-only): "
                "writes are refused until the volume accepts them again.",
            ),
            _Rule(
                "ValkeyAofRewriteFailing",
                f"{m('aof_last_bgrewrite_status')} == 0",
                10 * 60,
                "warning",
                f"Valkey {target} cannot rewrite its AOF",
                f"The last AOF rewrite of Valkey {target} failed (fork refused for lack of memory, or "
                "disk full): the AOF keeps growing and restarts replay more of it.",
            ),
            _Rule(
                "ValkeyMaxmemoryPolicyNotNoeviction",
                f"count by (namespace, service, pod, maxmemory_policy) (\n  {info}\n)",
                5 * 60,
                "warning",
                f"Valkey {target} may evict keys",
                f"Valkey {target} runs with maxmemory-policy {{{{ $labels.maxmemory_policy }}}}, not "
                "noeviction: at maxmemory it deletes keys, BullMQ jobs included, instead of refusing "
                "writes (ADR 0005; BullMQ requires noeviction).",
            ),
            _Rule(
                "ValkeyTooManyClients",
                f"{m('connected_clients')} > {self.client_threshold}",
                CLIENTS_FOR_SECONDS,
                "warning",
                f"Valkey {target} has more than {self.client_threshold} clients",
                f"Valkey {target} has had more than {self.client_threshold} connected clients for "
                f"{_prometheus_duration(CLIENTS_FOR_SECONDS)}, now {{{{ $value | humanize }}}}: likely a "
                "connection leak in a client.",
            ),
            _Rule(
                "ValkeyClientsNearMaxclients",
                f"{m('connected_clients')} / ({m('config_maxclients')} > 0) > {CLIENTS_NEAR_MAX_RATIO}",
                2 * 60,
                "critical",
                f"Valkey {target} is about to refuse connections",
                f"Valkey {target} uses {{{{ $value | humanizePercentage }}}} of maxclients: new "
                "connections (a restarted worker, a new pod) are refused at 100%.",
            ),
            *self._volume_and_container_rules(),
            *self._queue_rules(queue_seconds),
            _Rule(
                "ValkeyAdrRevisitMemory",
                f"max by (namespace, service) ({used}) > {REVISIT_MEMORY_BYTES}",
                60 * 60,
                "info",
                f"Valkey {target} holds more than 50 GiB: revisit ADR 0005",
                f"Valkey {target} has used {{{{ $value | humanize1024 }}}}B for an hour, past ADR 0005's "
                "revisit trigger (sustained memory above 50 GiB). Re-open the ADR.",
            ),
            _Rule(
                "ValkeyAdrRevisitThroughput",
                f"sum by (namespace, service) (rate({m('commands_processed_total')}[5m])) "
                f"> {REVISIT_COMMANDS_PER_SECOND}",
                60 * 60,
                "info",
                f"Valkey {target} serves over 10k commands/s: revisit ADR 0005",
                f"Valkey {target} has processed {{{{ $value | humanize }}}} commands/s for an hour, past "
                "ADR 0005's revisit trigger (throughput above 10k ops/s; commands count, a BullMQ job "
                "is several). Re-open the ADR.",
            ),
        ]
        return rules

    def _volume_and_container_rules(self) -> list[_Rule]:
        """The data volume and the Valkey container's memory, from series the exporter does not
        export: the kubelet's ``kubelet_volume_stats_*`` (labels ``namespace`` and
        ``persistentvolumeclaim``), cAdvisor's ``container_memory_working_set_bytes`` and
        kube-state-metrics' ``kube_pod_container_resource_limits`` (labels ``namespace``,
        ``pod``, ``container``). Selected by the namespace, the claim
        ``data-<name>-0`` and the pod ``<name>-0`` (each claim and pod when there are several:
        :meth:`ValkeyStatefulSet.set_replicas`), so that two Valkeys never mix."""
        target = self._target
        scope = [f'namespace="{self.valkey.namespace}"']
        claim, claim_matcher = _one_or_each("persistentvolumeclaim", self.valkey.claim_names)
        pod, pod_matcher = _one_or_each("pod", self.valkey.pod_names)

        def k8s(metric: str, *matchers: str) -> str:
            return f"{metric}{{{','.join([*scope, *matchers])}}}"

        volume = (claim_matcher,)
        available = k8s("kubelet_volume_stats_available_bytes", *volume)
        capacity = k8s("kubelet_volume_stats_capacity_bytes", *volume)
        container = (pod_matcher, 'container="valkey"')
        working_set = k8s("container_memory_working_set_bytes", *container)
        limit = k8s("kube_pod_container_resource_limits", *container, 'resource="memory"')
        memory_ratio = (
            f"max by (namespace, pod, container) ({working_set})\n/\nmax by (namespace, pod, container) ({limit} > 0)"
        )
        window = _prometheus_duration(VOLUME_TREND_WINDOW_SECONDS)
        window_hours = f"{VOLUME_TREND_WINDOW_SECONDS // 3600} hours"
        horizon = f"{VOLUME_FULL_HORIZON_SECONDS // 3600} hours"
        absent = "\nor\n".join(
            f'label_replace(absent({series}), "metric", "{series.partition("{")[0]}", "", "")'
            for series in (capacity, working_set, limit)
        )
        return [
            _Rule(
                "ValkeyVolumeFillingUp",
                f"({available} / {capacity})\n"
                f"and\npredict_linear({available}[{window}], {VOLUME_FULL_HORIZON_SECONDS}) < 0\n"
                f"and\n{available} offset {window}",
                VOLUME_FILLING_FOR_SECONDS,
                "warning",
                f"The data volume of Valkey {target} will be full within {horizon}",
                f"Claim {claim} of Valkey {target} has {{{{ $value | humanizePercentage }}}} free and, at "
                f"the rate of the last {window_hours}, is full within {horizon}. A full volume stops the AOF: "
                "Valkey then refuses every write. Expand the claim (storage_size) or find what grows.",
            ),
            _Rule(
                "ValkeyVolumeAlmostFull",
                f"{available} / {capacity} < {VOLUME_CRITICAL_FREE_RATIO}",
                VOLUME_CRITICAL_FOR_SECONDS,
                "critical",
                f"The data volume of Valkey {target} is almost full",
                f"Claim {claim} of Valkey {target} has only {{{{ $value | humanizePercentage }}}} free: the "
                "next AOF rewrite may not fit, and once the AOF cannot be written Valkey refuses every "
                "write. Expand the claim (storage_size) now.",
            ),
            _Rule(
                "ValkeyContainerMemoryHigh",
                f"{memory_ratio}\n> {CONTAINER_MEMORY_WARNING_RATIO}",
                CONTAINER_MEMORY_WARNING_FOR_SECONDS,
                "warning",
                f"Valkey {target} uses over {CONTAINER_MEMORY_WARNING_RATIO:.0%} of its memory limit",
                f"The valkey container of pod {pod} has used {{{{ $value | humanizePercentage }}}} of its "
                f"memory limit (working set) for {_prometheus_duration(CONTAINER_MEMORY_WARNING_FOR_SECONDS)}: "
                "the headroom above maxmemory that an AOF rewrite's fork needs is going, and a rewrite "
                "under a high write rate may get the pod OOM-killed.",
            ),
            _Rule(
                "ValkeyContainerMemoryCritical",
                f"{memory_ratio}\n> {CONTAINER_MEMORY_CRITICAL_RATIO}",
                CONTAINER_MEMORY_CRITICAL_FOR_SECONDS,
                "critical",
                f"Valkey {target} is about to be OOM-killed",
                f"The valkey container of pod {pod} uses {{{{ $value | humanizePercentage }}}} of its memory "
                "limit (working set), above any normal AOF rewrite: the kernel OOM-kills it at 100%, and "
                "clients fail until it has restarted and replayed its AOF.",
            ),
            _Rule(
                "ValkeyPodMetricsAbsent",
                f"(\n{absent}\n)\nand on ()\n({self._m('up')} == 1)",
                POD_METRICS_ABSENT_FOR_SECONDS,
                "warning",
                f"No volume or container metrics for Valkey {target}",
                f"Valkey {target} is up, but Prometheus has had no {{{{ $labels.metric }}}} series for it "
                f"for {_prometheus_duration(POD_METRICS_ABSENT_FOR_SECONDS)}: the alerts on its data volume "
                "or container memory are blind. Scrape the kubelet (volume stats, cAdvisor) and "
                "kube-state-metrics, or silence this alert where they cannot be had.",
            ),
        ]

    def _queue_rules(self, queue_seconds: int) -> list[_Rule]:
        """The queue-depth rule: waiting jobs per queue against a vector of per-queue thresholds.

        One rule whatever the overrides (an override is one line of the threshold vector),
        and none without queues. The thresholds carry the labels ``queue`` and ``threshold``;
        ``group_left (threshold)`` copies the latter onto the alert for its description.
        """
        thresholds = self._queue_depth_thresholds
        if not thresholds:
            return []
        states = "|".join(WAITING_STATES)
        prefix = _re_escape(self.exporter.bullmq_prefix)
        names = "|".join(_re_escape(queue) for queue in thresholds)
        series = self._m("key_size", f"key=~{_promql_string(f'{prefix}:(?:{names}):(?:{states})')}")
        capture = _promql_string(f"{prefix}:(.+):(?:{states})")
        vector = "\n  or\n".join(
            f"    label_replace(label_replace(vector({threshold}), "
            f'"queue", {_promql_string(queue)}, "", ""), "threshold", "{threshold}", "", "")'
            for queue, threshold in thresholds.items()
        )
        expr = (
            "sum without (db, key) (\n"
            f'  label_replace({series}, "queue", "$1", "key", {capture})\n'
            ")\n"
            "> on (queue) group_left (threshold)\n"
            f"(\n{vector}\n)"
        )
        duration = _prometheus_duration(queue_seconds)
        return [
            _Rule(
                "ValkeyBullMQQueueBacklog",
                expr,
                queue_seconds,
                "warning",
                f"BullMQ queue {{{{ $labels.queue }}}} on Valkey {self._target} is backed up",
                "BullMQ queue {{ $labels.queue }} has had more than {{ $labels.threshold }} jobs waiting "
                f"to run (wait + paused + prioritized) for {duration}, now {{{{ $value | humanize }}}}: its "
                "workers are down, stuck or too few, or the queue is paused.",
            )
        ]


def _one_or_each(label: str, names: tuple[str, ...]) -> tuple[str, str]:
    """The name for a description and the matcher of a pod's (or claim's) series: the name itself
    for one pod, and the series' own label for several (the Sentinel topology's pods)."""
    if len(names) == 1:
        return names[0], f'{label}="{names[0]}"'
    return f"{{{{ $labels.{label} }}}}", f'{label}=~"{"|".join(_re_escape(n) for n in names)}"'


def _check_runbook_base_url(url: str) -> None:
    if not re.fullmatch(r"https?://[^\s#{}]+", url):
        raise ValueError(
            f"runbook_base_url: {url!r} is not allowed; use an absolute http(s) URL of the runbooks "
            "page without '#', whitespace or braces (each alert adds '#<alert name in lower case>')"
        )


def _check_positive_int(prop: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{prop}: {value!r} is not allowed; use a whole number of at least 1")


def _whole_seconds(duration: cdk8s.Duration) -> int:
    return duration_millis(duration) // 1000


def _check_for(prop: str, duration: cdk8s.Duration, scrape_seconds: int) -> int:
    millis = duration_millis(duration)
    minimum = max(MIN_FOR_SECONDS, MIN_FOR_SCRAPES * scrape_seconds)
    if millis % 1000 or millis // 1000 < minimum:
        shown = f"{millis}ms" if millis % 1000 else duration.to_human_string()
        raise ValueError(
            f"{prop}: {shown} is not allowed; use whole seconds, at least "
            f"{_prometheus_duration(minimum)} (1 minute and {MIN_FOR_SCRAPES} scrape intervals of "
            f"{_prometheus_duration(scrape_seconds)}), so that one odd scrape or a restart cannot fire it"
        )
    return millis // 1000


def _prometheus_duration(seconds: int) -> str:
    """A Prometheus duration as people write it: 90s -> 1m30s, 3600 -> 1h, 86400 -> 1d."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _re_escape(text: str) -> str:
    """``text`` as a literal in an RE2 regular expression (Prometheus' regex dialect)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def _promql_string(text: str) -> str:
    """A PromQL double-quoted string literal (Go escaping, which JSON's is a subset of)."""
    return json.dumps(text, ensure_ascii=False)


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


def selected_rules(rules: Sequence[_Rule], disabled: Collection[str], severities: Mapping[str, str]) -> list[_Rule]:
    """The rules not switched off, each with its severity override applied."""
    return [
        dataclasses.replace(rule, severity=severities.get(rule.alert, rule.severity))
        for rule in rules
        if rule.alert not in disabled
    ]


def rule_json(rule: _Rule, runbook_base_url: str, extra_annotations: Mapping[str, str]) -> _plain.JsonObject:
    """One entry of a group's ``rules`` (the CRD's ``Rule``)."""
    return {
        "alert": rule.alert,
        "expr": rule.expr,
        "for": _prometheus_duration(rule.for_seconds) if rule.for_seconds else None,
        "labels": {"severity": rule.severity},
        "annotations": {
            "summary": rule.summary,
            "description": rule.description,
            "runbook_url": f"{runbook_base_url}#{rule.alert.lower()}",
            **extra_annotations,
        },
    }
