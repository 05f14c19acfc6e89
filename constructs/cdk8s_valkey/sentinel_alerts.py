"""SentinelAlerts: the alerts of the Sentinel topology, as a PrometheusRule beside the Alerts'."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from constructs import Construct

from . import _catalogue, _labels, _plain
from ._promql import prometheus_duration, series
from ._rules import Rule, check_alert_selection, prometheus_rule, rule, rule_json, runbook_url, selected_rules
from ._validation import check_instance, duration_millis
from .alerts import Alerts
from .sentinel import Sentinel

COMPONENT = "alerts"
# Every alert this construct renders unless disabled (docs/runbooks.md, _catalogue.py; the
# promtool unit tests are in tests/promtool/sentinel/).
ALERT_NAMES: tuple[str, ...] = _catalogue.alert_names(_catalogue.SENTINEL)
# A failover leaves no primary for about down-after + 1.3 s and lets replicas point at two
# primaries for a second or two more: a minute is many failovers' worth, never one.
TOPOLOGY_FOR_SECONDS = 60
DISAGREEMENT_FOR_SECONDS = 2 * 60
# A full sync keeps master_link_status down until the dataset is loaded: a large one takes
# tens of seconds, so five minutes down is no sync but a broken link.
REPLICATION_BROKEN_FOR_SECONDS = 5 * 60
LAGGING_FOR_SECONDS = 2 * 60
# How long ValkeyFailover stays firing after a node became the primary.
FAILOVER_WINDOW_SECONDS = 10 * 60
SENTINEL_DOWN_FOR_SECONDS = 5 * 60


@dataclass(frozen=True, kw_only=True)
class SentinelAlertOptions:
    """Props of :class:`SentinelAlerts`. Thresholds follow from the :class:`Sentinel` (quorum,
    ``min_replicas_to_write``, ``min_replicas_max_lag``); labels, the runbook URL and the scope of
    the expressions from the :class:`Alerts` of the same Valkey.

    :param disabled: Names of alerts not to render, e.g. ``["ValkeyFailover"]``. Each must be an
        alert of ``SentinelAlerts.ALERT_NAMES``. Default: none, every alert is rendered.
    :param severities: Severity overrides by alert name, e.g. ``{"ValkeyFailover": "info"}``;
        the values are ``critical``, ``warning`` or ``info``. Default: none, each alert keeps the
        severity documented in ``docs/runbooks.md``.
    """

    disabled: Collection[str] = ()
    severities: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        check_alert_selection("SentinelAlerts", ALERT_NAMES, self.disabled, self.severities)


class SentinelAlerts(Construct):
    """The Sentinel topology's alerts for one Valkey: ``PrometheusRule <name>-sentinel``.

    From the Valkey exporters (every pod's ``exporter``, ``service="<name>-metrics"``): no
    primary, more than one primary or replicas following different ones, a primary that refuses
    writes for want of replicas (``min-replicas-to-write``), a replica whose link is down or
    lagging, a failover. From the Sentinel exporters (``sentinel-exporter``,
    ``service="<name>-sentinel-metrics"``): the Sentinels disagreeing on the primary, the quorum
    lost, a Sentinel down. Every expression is scoped by namespace and metrics Service, like
    the :class:`Alerts` of the same Valkey, whose ``rule_labels`` and ``runbook_base_url`` it uses.
    """

    ALERT_NAMES = ALERT_NAMES

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        sentinel: Sentinel,
        alerts: Alerts,
        options: SentinelAlertOptions | None = None,
    ) -> None:
        """
        :param sentinel: The Sentinel topology the alerts are about; it must have been given the
            Valkey's ExporterSidecar (the quorum comes from the Sentinel exporters).
        :param alerts: The :class:`Alerts` of the same Valkey: its rule labels, runbook URL and
            selectors are reused, so both rules load into the same Prometheus.
        :param options: Which alerts to render and their severities, see
            :class:`SentinelAlertOptions`. Default: ``SentinelAlertOptions()``.
        """
        opts = options if options is not None else SentinelAlertOptions()
        check_instance("options", opts, SentinelAlertOptions, "a SentinelAlertOptions(...)")
        check_instance("sentinel", sentinel, Sentinel, "the Sentinel the alerts are about")
        check_instance("alerts", alerts, Alerts, "the Alerts of the same Valkey")
        if alerts.valkey is not sentinel.valkey:
            raise ValueError(
                f"alerts: they are about Valkey {alerts.valkey.name!r}, not {sentinel.valkey.name!r}; "
                "pass the Alerts created with valkey=<the Sentinel's Valkey>"
            )
        if sentinel.metrics_service_name is None:
            raise ValueError(
                f"sentinel: the Sentinels of {sentinel.valkey.name!r} are not exported; create the Sentinel "
                "with exporter=<the Valkey's ExporterSidecar>"
            )
        super().__init__(scope, id)

        valkey = sentinel.valkey
        self.sentinel = sentinel
        self.alerts = alerts
        self.options = opts
        self.name = f"{valkey.name}-sentinel"
        self.group_name = f"{self.name}.rules"
        self.labels = _labels.common_labels(valkey.name, valkey.version, COMPONENT)
        self.runbook_base_url = alerts.runbook_base_url
        self._prefix = alerts.exporter.metric_namespace
        self._valkey_scope = alerts.selector
        self._sentinel_scope = (
            f'namespace="{valkey.namespace}",service="{sentinel.metrics_service_name}",'
            f'master_name="{sentinel.master_name}"'
        )
        self._sentinel_service_scope = f'namespace="{valkey.namespace}",service="{sentinel.metrics_service_name}"'
        self._target = f"{valkey.namespace}/{valkey.name}"

        severities = dict(opts.severities or {})
        self._rules = selected_rules(self._render_rules(), opts.disabled, severities)
        self.alert_names: tuple[str, ...] = tuple(rule.alert for rule in self._rules)
        self.prometheus_rule = prometheus_rule(
            self,
            name=self.name,
            labels={**self.labels, **alerts.rule_labels},
            group_name=self.group_name,
            rules=[self._rule(rule) for rule in self._rules],
        )

    def runbook_url(self, alert: str) -> str:
        """The ``runbook_url`` annotation of an alert: the base URL plus its anchor."""
        if alert not in self.alert_names:
            raise ValueError(f"alert: {alert!r} is not rendered; use one of {list(self.alert_names)}")
        return runbook_url(self.runbook_base_url, alert)

    # -- rendering -----------------------------------------------------------------

    def _rule(self, rule: Rule) -> _plain.JsonObject:
        dashboard, grafana_url = self.alerts.dashboard, self.alerts.options.grafana_url
        links = dashboard.alert_annotations(rule.alert, grafana_url) if dashboard is not None else {}
        return rule_json(rule, self.runbook_base_url, links)

    def _m(self, metric: str, *extra: str) -> str:
        """A series of the Valkey exporters of this Valkey."""
        return series(self._prefix, metric, self._valkey_scope, *extra)

    def _s(self, metric: str, *extra: str, master: bool = True) -> str:
        """A series of the Sentinel exporters of this Valkey (for this master name)."""
        scope = self._sentinel_scope if master else self._sentinel_service_scope
        return series(self._prefix, metric, scope, *extra)

    def _render_rules(self) -> list[Rule]:
        m, s = self._m, self._s
        target = self._target
        sentinel = self.sentinel
        quorum = sentinel.quorum
        sentinels = sentinel.replicas + 1
        master = sentinel.master_name
        role_master = 'role="master"'
        primary = f"max by (namespace, service, pod) ({m('instance_info', role_master)})"
        max_lag = duration_millis(sentinel.min_replicas_max_lag) // 1000
        window = prometheus_duration(FAILOVER_WINDOW_SECONDS)
        online = m("connected_slave_lag_seconds", 'slave_state="online"')
        writes = sentinel.min_replicas_to_write
        rules = [
            rule(
                "ValkeyNoPrimary",
                f"count by (namespace, service) ({m('up')} == 1)\nunless\n"
                f"count by (namespace, service) ({m('instance_info', role_master)})",
                TOPOLOGY_FOR_SECONDS,
                f"Valkey {target} has no primary",
                f"{{{{ $value }}}} Valkey nodes of {target} answer and none of them is the primary: every write "
                "fails. The Sentinels have not promoted a replica (quorum lost, no replica in sync, or a "
                "failover that keeps failing).",
            ),
            rule(
                "ValkeyPrimaryDisagreement",
                f"count by (namespace, service) ({primary}) > 1\nor\n"
                "count by (namespace, service) (\n"
                f"  count by (namespace, service, master_host, master_port) ({m('slave_info')})\n) > 1\nor\n"
                "count by (namespace, service) (\n"
                f"  count by (namespace, service, master_address) ({s('sentinel_master_status')})\n) > 1",
                DISAGREEMENT_FOR_SECONDS,
                f"Valkey {target} has more than one primary, or its nodes disagree on it",
                f"For {prometheus_duration(DISAGREEMENT_FOR_SECONDS)}, {{{{ $value }}}} different primaries have "
                f"been seen in {target} ({{{{ $labels.service }}}}: several nodes in role master, replicas "
                "following different primaries, or Sentinels naming different ones). Writes to the wrong one "
                "are lost when the Sentinels converge.",
            ),
            *(
                [
                    rule(
                        "ValkeyWritesRefusedNoReplicas",
                        f"{primary}\nunless on (namespace, service, pod)\n"
                        f"count by (namespace, service, pod) ({online} <= {max_lag}) >= {writes}",
                        TOPOLOGY_FOR_SECONDS,
                        f"The primary of Valkey {target} refuses writes (NOREPLICAS)",
                        f"Primary {{{{ $labels.pod }}}} of {target} has fewer than {writes} "
                        f"replica(s) in sync (acknowledged within {max_lag}s): with min-replicas-to-write it "
                        "refuses every write (NOREPLICAS). BullMQ producers and workers are failing.",
                    )
                ]
                if writes > 0
                else []
            ),
            rule(
                "ValkeyReplicationBroken",
                f"{m('master_link_up')} == 0",
                REPLICATION_BROKEN_FOR_SECONDS,
                f"A replica of Valkey {target} is not linked to its primary",
                f"Replica {{{{ $labels.pod }}}} of {target} has not been in sync with {{{{ $labels.master_host }}}} "
                f"for {prometheus_duration(REPLICATION_BROKEN_FOR_SECONDS)}: it serves stale data, cannot be "
                "promoted safely, and one replica fewer stands between the primary and NOREPLICAS.",
            ),
            rule(
                "ValkeyReplicationLagging",
                f"{m('connected_slave_lag_seconds')} > {max_lag}",
                LAGGING_FOR_SECONDS,
                f"A replica of Valkey {target} lags",
                f"Primary {{{{ $labels.pod }}}} of {target} has had no acknowledgement from replica "
                f"{{{{ $labels.slave_ip }}}} for {{{{ $value }}}}s, more than min-replicas-max-lag ({max_lag}s), "
                f"at every evaluation for {prometheus_duration(LAGGING_FOR_SECONDS)}: it does not count for "
                "min-replicas-to-write, and with no replica left that counts, writes stop.",
            ),
            rule(
                "ValkeyFailover",
                f"{primary}\nunless\n"
                f"max by (namespace, service, pod) ({m('instance_info', role_master)} offset {window})\n"
                "and on (namespace, service)\n"
                f"count by (namespace, service) ({m('instance_info', role_master)} offset {window})",
                0,
                f"Valkey {target} failed over",
                f"{{{{ $labels.pod }}}} has become the primary of {target} within the last {window}, in place "
                "of another node: the Sentinels promoted it. Find out why the old primary was lost (restart, "
                "OOM, node, network) and check that it is back as a replica.",
            ),
            rule(
                "ValkeySentinelQuorumLost",
                f"max by (namespace, service) ({s('sentinel_master_ok_sentinels')}) < {quorum}\nor\n"
                f"count by (namespace, service) ({s('up', master=False)})\nunless\n"
                f"count by (namespace, service) ({s('sentinel_master_ok_sentinels')})",
                TOPOLOGY_FOR_SECONDS,
                f"The Sentinels of Valkey {target} have lost their quorum",
                f"No Sentinel of {target} sees {quorum} of the {sentinels} Sentinels (quorum {quorum}) for master "
                f"{master}: if the primary fails now, nothing fails over and writes stop until a person acts.",
            ),
            rule(
                "ValkeySentinelDown",
                f"{s('up', master=False)} == 0",
                SENTINEL_DOWN_FOR_SECONDS,
                f"A Sentinel of Valkey {target} is down",
                f"The Sentinel in pod {{{{ $labels.pod }}}} of {target} has not answered its exporter for "
                f"{prometheus_duration(SENTINEL_DOWN_FOR_SECONDS)}: {sentinels - 1} Sentinels are left, and "
                f"below {quorum} no failover is possible.",
            ),
        ]
        return rules
