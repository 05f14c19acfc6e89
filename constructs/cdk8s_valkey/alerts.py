"""Alerts: ADR 0005's alerting rules for one Valkey, as a prometheus-operator PrometheusRule."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import cdk8s
from constructs import Construct

from . import _catalogue, _labels, _plain
from ._catalogue import (
    CAPACITY_REVIEW_RATIO,
    CLIENTS_NEAR_MAX_RATIO,
    CONTAINER_MEMORY_CRITICAL_RATIO,
    CONTAINER_MEMORY_WARNING_RATIO,
    MEMORY_CRITICAL_RATIO,
    MEMORY_WARNING_RATIO,
    REVISIT_COMMANDS_PER_SECOND,
    REVISIT_MEMORY_BYTES,
    WAITING_STATES,
)
from ._options import with_legacy_props
from ._promql import bullmq_keys, one_of, prometheus_duration, promql_string, re_escape, scope_matchers, series
from ._rules import Rule, check_alert_selection, prometheus_rule, rule, rule_json, runbook_url, selected_rules
from ._validation import check_duration, check_instance, check_labels, duration_millis
from ._wiring import check_exporter_of
from .dashboard import Dashboard
from .exporter_sidecar import ExporterSidecar
from .valkey_statefulset import ValkeyStatefulSet

# A placeholder on a reserved domain (RFC 2606) until this library has a public home: it is
# obviously not a real page, and it never points at somebody else's content.
DEFAULT_RUNBOOK_BASE_URL = "https://git.example.com/platform/cdk8s-valkey/blob/main/docs/runbooks.md"
COMPONENT = "alerts"

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

# How long the Valkey container's working set must stay above CONTAINER_MEMORY_*_RATIO of its
# limit (the ratios and why: _catalogue.py).
CONTAINER_MEMORY_WARNING_FOR_SECONDS = 10 * 60
CONTAINER_MEMORY_CRITICAL_FOR_SECONDS = 60
# The volume and container series come from the kubelet and kube-state-metrics, not the
# exporter: while Valkey is up, their absence means those alerts are blind. Half an hour rides
# out a restart of the kubelet, kube-state-metrics or the pod.
POD_METRICS_ABSENT_FOR_SECONDS = 30 * 60

# The shortest `for` the props accept, and the multiple of the scrape interval below which
# one odd scrape could fire an alert.
MIN_FOR_SECONDS = 60
MIN_FOR_SCRAPES = 2

# Every alert this construct can render (docs/runbooks.md, _catalogue.py); which ones it does
# depends on the exporter's queues and AlertOptions.disabled.
ALERT_NAMES: tuple[str, ...] = _catalogue.alert_names(_catalogue.VALKEY)


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
        scrape_seconds = duration_millis(exporter.scrape_interval) // 1000
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

        self.prometheus_rule = prometheus_rule(
            self,
            name=self.name,
            labels={**self.labels, **self._rule_labels},
            group_name=self.group_name,
            rules=[self._rule(rule) for rule in self._rules],
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
        return runbook_url(self.runbook_base_url, alert)

    # -- rendering -----------------------------------------------------------------

    def _rule(self, rule: Rule) -> _plain.JsonObject:
        links = self.dashboard.alert_annotations(rule.alert, self.options.grafana_url) if self.dashboard else {}
        return rule_json(rule, self.runbook_base_url, links)

    def _m(self, metric: str, *extra: str) -> str:
        """A metric of the exporter, selected by this Valkey's namespace and metrics Service."""
        return series(self._metric_prefix, metric, self._matchers, *extra)

    def _render_rules(self, down_seconds: int, queue_seconds: int) -> list[Rule]:
        m = self._m
        target = self._target
        down = prometheus_duration(down_seconds)
        used, max_bytes = m("memory_used_bytes"), m("memory_max_bytes")
        oom = m("errors_total", 'err="OOM"')
        # ValkeyDown needs the pod's series: a pod that is gone entirely has none, so each pod's
        # absence is an alert of its own (one pod: any series of this Valkey).
        pods = self.valkey.pod_names
        absent_up = f"absent({m('up')})"
        of_pod, to_it = "", ""
        if len(pods) > 1:
            absent_up = "\nor\n".join(f"absent({m('up', one_of('pod', [pod]))})" for pod in pods)
            of_pod, to_it = " for pod {{ $labels.pod }}", " to it"
        info = m("instance_info", 'maxmemory_policy!="noeviction"')
        rules = [
            rule(
                "ValkeyDown",
                f"{m('up')} == 0",
                down_seconds,
                f"Valkey {target} is down",
                f"The exporter in pod {{{{ $labels.pod }}}} has not reached Valkey {target} for {down}: "
                "clients (sessions, BullMQ) get connection errors until it is back.",
            ),
            rule(
                "ValkeyMetricsAbsent",
                absent_up,
                down_seconds,
                f"No metrics from Valkey {target}",
                f"Prometheus has had no {self._metric_prefix}_up series from service "
                f"{self.exporter.metrics_service_name}{of_pod} for {down}: the Valkey pod is gone (node or "
                "volume down, pod pending) or no longer scraped, and every other Valkey alert is blind"
                f"{to_it}.",
            ),
            rule(
                "ValkeyMemoryHigh",
                f"{used} / ({max_bytes} > 0) > {MEMORY_WARNING_RATIO}",
                10 * 60,
                f"Valkey {target} uses over {MEMORY_WARNING_RATIO:.0%} of maxmemory",
                f"Valkey {target} uses {{{{ $value | humanizePercentage }}}} of maxmemory. At 100% it "
                "refuses writes (maxmemory-policy noeviction): BullMQ cannot add or move jobs.",
            ),
            rule(
                "ValkeyMemoryCritical",
                f"{used} / ({max_bytes} > 0) > {MEMORY_CRITICAL_RATIO}",
                2 * 60,
                f"Valkey {target} is about to refuse writes",
                f"Valkey {target} uses {{{{ $value | humanizePercentage }}}} of maxmemory: writes are "
                "refused with OOM errors at 100%. Free memory or raise the memory limit now.",
            ),
            rule(
                "ValkeyMemoryCapacityReview",
                f"max by (namespace, service) (avg_over_time({used}[1h]))\n"
                f"/\nmax by (namespace, service) (max_over_time({max_bytes}[1h]) > 0)\n> {CAPACITY_REVIEW_RATIO}",
                24 * 60 * 60,
                f"Valkey {target} stays above {CAPACITY_REVIEW_RATIO:.0%} of maxmemory",
                f"Valkey {target} has used {{{{ $value | humanizePercentage }}}} of maxmemory (hourly "
                f"average) for a day. ADR 0005: above {CAPACITY_REVIEW_RATIO:.0%} in steady state, "
                "plan vertical scaling (memory_limit) or another instance.",
            ),
            rule(
                "ValkeyMaxmemoryUnset",
                f"{max_bytes} == 0",
                5 * 60,
                f"Valkey {target} has no maxmemory",
                f"Valkey {target} runs with maxmemory 0 (unlimited): instead of refusing writes it grows "
                "until the kernel OOM-kills the pod, and the memory alerts are blind. The entrypoint "
                "sets maxmemory at start, so someone changed it at runtime (CONFIG SET).",
            ),
            rule(
                "ValkeyWritesRefusedOOM",
                f"increase({oom}[5m]) > 0\nor\n({oom} unless {oom} offset 5m)",
                0,
                f"Valkey {target} refuses writes (OOM)",
                f"Valkey {target} answered about {{{{ $value | humanize }}}} commands with OOM errors in "
                "the last 5 minutes: memory is at maxmemory and noeviction refuses writes. BullMQ "
                "producers and workers are failing.",
            ),
            rule(
                "ValkeyAofWriteFailing",
                f"{m('aof_last_write_status')} == 0",
                60,
                f"Valkey {target} cannot write its AOF",
                f"The last AOF write of Valkey {target} failed (disk full or volume read-only): "
                "writes are refused until the volume accepts them again.",
            ),
            rule(
                "ValkeyAofRewriteFailing",
                f"{m('aof_last_bgrewrite_status')} == 0",
                10 * 60,
                f"Valkey {target} cannot rewrite its AOF",
                f"The last AOF rewrite of Valkey {target} failed (fork refused for lack of memory, or "
                "disk full): the AOF keeps growing and restarts replay more of it.",
            ),
            rule(
                "ValkeyMaxmemoryPolicyNotNoeviction",
                f"count by (namespace, service, pod, maxmemory_policy) (\n  {info}\n)",
                5 * 60,
                f"Valkey {target} may evict keys",
                f"Valkey {target} runs with maxmemory-policy {{{{ $labels.maxmemory_policy }}}}, not "
                "noeviction: at maxmemory it deletes keys, BullMQ jobs included, instead of refusing "
                "writes (ADR 0005; BullMQ requires noeviction).",
            ),
            rule(
                "ValkeyTooManyClients",
                f"{m('connected_clients')} > {self.client_threshold}",
                CLIENTS_FOR_SECONDS,
                f"Valkey {target} has more than {self.client_threshold} clients",
                f"Valkey {target} has had more than {self.client_threshold} connected clients for "
                f"{prometheus_duration(CLIENTS_FOR_SECONDS)}, now {{{{ $value | humanize }}}}: likely a "
                "connection leak in a client.",
            ),
            rule(
                "ValkeyClientsNearMaxclients",
                f"{m('connected_clients')} / ({m('config_maxclients')} > 0) > {CLIENTS_NEAR_MAX_RATIO}",
                2 * 60,
                f"Valkey {target} is about to refuse connections",
                f"Valkey {target} uses {{{{ $value | humanizePercentage }}}} of maxclients: new "
                "connections (a restarted worker, a new pod) are refused at 100%.",
            ),
            *self._volume_and_container_rules(),
            *self._queue_rules(queue_seconds),
            rule(
                "ValkeyAdrRevisitMemory",
                f"max by (namespace, service) ({used}) > {REVISIT_MEMORY_BYTES}",
                60 * 60,
                f"Valkey {target} holds more than 50 GiB: revisit ADR 0005",
                f"Valkey {target} has used {{{{ $value | humanize1024 }}}}B for an hour, past ADR 0005's "
                "revisit trigger (sustained memory above 50 GiB). Re-open the ADR.",
            ),
            rule(
                "ValkeyAdrRevisitThroughput",
                f"sum by (namespace, service) (rate({m('commands_processed_total')}[5m])) "
                f"> {REVISIT_COMMANDS_PER_SECOND}",
                60 * 60,
                f"Valkey {target} serves over 10k commands/s: revisit ADR 0005",
                f"Valkey {target} has processed {{{{ $value | humanize }}}} commands/s for an hour, past "
                "ADR 0005's revisit trigger (throughput above 10k ops/s; commands count, a BullMQ job "
                "is several). Re-open the ADR.",
            ),
        ]
        return rules

    def _volume_and_container_rules(self) -> list[Rule]:
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
        window = prometheus_duration(VOLUME_TREND_WINDOW_SECONDS)
        window_hours = f"{VOLUME_TREND_WINDOW_SECONDS // 3600} hours"
        horizon = f"{VOLUME_FULL_HORIZON_SECONDS // 3600} hours"

        def absent_of(series: str, pod: str | None = None) -> str:
            """The absence of ``series``, labelled with its metric (and the pod it is about)."""
            found = f'label_replace(absent({series}), "metric", "{series.partition("{")[0]}", "", "")'
            return f'label_replace({found}, "pod", "{pod}", "", "")' if pod is not None else found

        pods = self.valkey.pod_names
        if len(pods) == 1:
            absent = "\nor\n".join(absent_of(series) for series in (capacity, working_set, limit))
            up_of, its = "on ()", ""
        else:
            # Each pod's series apart (pods run on different nodes, scraped by different kubelets),
            # and only while that pod's Valkey is up.
            absent = "\nor\n".join(
                term
                for pod_name, claim_name in zip(pods, self.valkey.claim_names, strict=True)
                for term in (
                    absent_of(k8s("kubelet_volume_stats_capacity_bytes", f'persistentvolumeclaim="{claim_name}"'),
                              pod_name),
                    absent_of(k8s("container_memory_working_set_bytes", f'pod="{pod_name}"', 'container="valkey"')),
                    absent_of(k8s("kube_pod_container_resource_limits", f'pod="{pod_name}"', 'container="valkey"',
                                  'resource="memory"')),
                )
            )  # fmt: skip
            up_of, its = "on (pod)", " pod {{ $labels.pod }}"
        return [
            rule(
                "ValkeyVolumeFillingUp",
                f"({available} / {capacity})\n"
                f"and\npredict_linear({available}[{window}], {VOLUME_FULL_HORIZON_SECONDS}) < 0\n"
                f"and\n{available} offset {window}",
                VOLUME_FILLING_FOR_SECONDS,
                f"The data volume of Valkey {target} will be full within {horizon}",
                f"Claim {claim} of Valkey {target} has {{{{ $value | humanizePercentage }}}} free and, at "
                f"the rate of the last {window_hours}, is full within {horizon}. A full volume stops the AOF: "
                "Valkey then refuses every write. Expand the claim (storage_size) or find what grows.",
            ),
            rule(
                "ValkeyVolumeAlmostFull",
                f"{available} / {capacity} < {VOLUME_CRITICAL_FREE_RATIO}",
                VOLUME_CRITICAL_FOR_SECONDS,
                f"The data volume of Valkey {target} is almost full",
                f"Claim {claim} of Valkey {target} has only {{{{ $value | humanizePercentage }}}} free: the "
                "next AOF rewrite may not fit, and once the AOF cannot be written Valkey refuses every "
                "write. Expand the claim (storage_size) now.",
            ),
            rule(
                "ValkeyContainerMemoryHigh",
                f"{memory_ratio}\n> {CONTAINER_MEMORY_WARNING_RATIO}",
                CONTAINER_MEMORY_WARNING_FOR_SECONDS,
                f"Valkey {target} uses over {CONTAINER_MEMORY_WARNING_RATIO:.0%} of its memory limit",
                f"The valkey container of pod {pod} has used {{{{ $value | humanizePercentage }}}} of its "
                f"memory limit (working set) for {prometheus_duration(CONTAINER_MEMORY_WARNING_FOR_SECONDS)}: "
                "the headroom above maxmemory that an AOF rewrite's fork needs is going, and a rewrite "
                "under a high write rate may get the pod OOM-killed.",
            ),
            rule(
                "ValkeyContainerMemoryCritical",
                f"{memory_ratio}\n> {CONTAINER_MEMORY_CRITICAL_RATIO}",
                CONTAINER_MEMORY_CRITICAL_FOR_SECONDS,
                f"Valkey {target} is about to be OOM-killed",
                f"The valkey container of pod {pod} uses {{{{ $value | humanizePercentage }}}} of its memory "
                "limit (working set), above any normal AOF rewrite: the kernel OOM-kills it at 100%, and "
                "clients fail until it has restarted and replayed its AOF.",
            ),
            rule(
                "ValkeyPodMetricsAbsent",
                f"(\n{absent}\n)\nand {up_of}\n({self._m('up')} == 1)",
                POD_METRICS_ABSENT_FOR_SECONDS,
                f"No volume or container metrics for Valkey {target}",
                f"Valkey {target}{its} is up, but Prometheus has had no {{{{ $labels.metric }}}} series for it "
                f"for {prometheus_duration(POD_METRICS_ABSENT_FOR_SECONDS)}: the alerts on its data volume "
                "or container memory are blind. Scrape the kubelet (volume stats, cAdvisor) and "
                "kube-state-metrics, or silence this alert where they cannot be had.",
            ),
        ]

    def _queue_rules(self, queue_seconds: int) -> list[Rule]:
        """The queue-depth rule: waiting jobs per queue against a vector of per-queue thresholds.

        One rule whatever the overrides (an override is one line of the threshold vector),
        and none without queues. The thresholds carry the labels ``queue`` and ``threshold``;
        ``group_left (threshold)`` copies the latter onto the alert for its description.
        """
        thresholds = self._queue_depth_thresholds
        if not thresholds:
            return []
        states = "|".join(WAITING_STATES)
        keys = self._m("key_size", bullmq_keys(self.exporter.bullmq_prefix, list(thresholds), WAITING_STATES))
        capture = promql_string(f"{re_escape(self.exporter.bullmq_prefix)}:(.+):(?:{states})")
        vector = "\n  or\n".join(
            f"    label_replace(label_replace(vector({threshold}), "
            f'"queue", {promql_string(queue)}, "", ""), "threshold", "{threshold}", "", "")'
            for queue, threshold in thresholds.items()
        )
        waiting = f'sum without (db, key) (\n  label_replace({keys}, "queue", "$1", "key", {capture})\n)'
        if len(self.valkey.pod_names) > 1:
            # Every replica holds a copy of the queue: one alert per queue, from the largest copy
            # (the primary's, unless a replica lags), not one per pod.
            waiting = f"max by (namespace, service, queue) (\n{waiting}\n)"
        expr = f"{waiting}\n> on (queue) group_left (threshold)\n(\n{vector}\n)"
        duration = prometheus_duration(queue_seconds)
        return [
            rule(
                "ValkeyBullMQQueueBacklog",
                expr,
                queue_seconds,
                f"BullMQ queue {{{{ $labels.queue }}}} on Valkey {self._target} is backed up",
                "BullMQ queue {{ $labels.queue }} has had more than {{ $labels.threshold }} jobs waiting "
                f"to run (wait + paused + prioritized) for {duration}, now {{{{ $value | humanize }}}}: its "
                "workers are down, stuck or too few, or the queue is paused.",
            )
        ]


def _one_or_each(label: str, names: tuple[str, ...]) -> tuple[str, str]:
    """The name for a description and the matcher of a pod's (or claim's) series: the name itself
    for one pod, and the series' own label for several (the Sentinel topology's pods)."""
    shown = names[0] if len(names) == 1 else f"{{{{ $labels.{label} }}}}"
    return shown, one_of(label, names)


def _check_runbook_base_url(url: str) -> None:
    if not re.fullmatch(r"https?://[^\s#{}]+", url):
        raise ValueError(
            f"runbook_base_url: {url!r} is not allowed; use an absolute http(s) URL of the runbooks "
            "page without '#', whitespace or braces (each alert adds '#<alert name in lower case>')"
        )


def _check_positive_int(prop: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{prop}: {value!r} is not allowed; use a whole number of at least 1")


def _check_for(prop: str, duration: cdk8s.Duration, scrape_seconds: int) -> int:
    millis = duration_millis(duration)
    minimum = max(MIN_FOR_SECONDS, MIN_FOR_SCRAPES * scrape_seconds)
    if millis % 1000 or millis // 1000 < minimum:
        shown = f"{millis}ms" if millis % 1000 else duration.to_human_string()
        raise ValueError(
            f"{prop}: {shown} is not allowed; use whole seconds, at least "
            f"{prometheus_duration(minimum)} (1 minute and {MIN_FOR_SCRAPES} scrape intervals of "
            f"{prometheus_duration(scrape_seconds)}), so that one odd scrape or a restart cannot fire it"
        )
    return millis // 1000
