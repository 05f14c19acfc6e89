"""The alert catalogue: every alert the library can render, as data, and the thresholds the
alerts and the dashboard share.

One entry per alert: its name (a heading of docs/runbooks.md), the construct that renders it,
its default severity and the dashboard panel that shows what it fires on. :class:`Alerts` and
:class:`SentinelAlerts` take names and severities from here, :class:`Dashboard` its alert links,
and the tests the list they check the runbooks and the promtool tests against. The expressions
and texts stay with the constructs, which know the Valkey they describe.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("critical", "warning", "info")

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

# The Valkey container's working set (cAdvisor) against its memory limit (kube-state-metrics;
# kube-prometheus-stack drops cAdvisor's container_spec_* by default). Measured here (bench/README
# section 5): ~82 % filled to maxmemory, ~86 % with an AOF rewrite in flight under the ADR's 10k
# SET/s, for seconds; design notes give 94-95 % of the cgroup charge for that rewrite. So 90 %
# held for 10 minutes is no rewrite but lost headroom for the next fork, and 97 % is above every
# normal peak, a step from the OOM kill at 100 %.
CONTAINER_MEMORY_WARNING_RATIO = 0.90
CONTAINER_MEMORY_CRITICAL_RATIO = 0.97

VALKEY = "Alerts"
SENTINEL = "SentinelAlerts"


@dataclass(frozen=True)
class AlertDefinition:
    """One alert of the catalogue.

    :param name: The alert name, also the heading of its runbook in docs/runbooks.md.
    :param construct: The construct that renders it, ``Alerts`` or ``SentinelAlerts``.
    :param severity: Its default ``severity`` label (``AlertOptions.severities`` overrides it).
    :param panel: The key of the :class:`Dashboard` panel that shows what it fires on.
    """

    name: str
    construct: str
    severity: str
    panel: str


CATALOGUE: tuple[AlertDefinition, ...] = (
    AlertDefinition("ValkeyDown", VALKEY, "critical", "up"),
    AlertDefinition("ValkeyMetricsAbsent", VALKEY, "critical", "up"),
    AlertDefinition("ValkeyMemoryHigh", VALKEY, "warning", "memory_of_maxmemory"),
    AlertDefinition("ValkeyMemoryCritical", VALKEY, "critical", "memory_of_maxmemory"),
    AlertDefinition("ValkeyMemoryCapacityReview", VALKEY, "info", "memory"),
    AlertDefinition("ValkeyMaxmemoryUnset", VALKEY, "warning", "memory"),
    AlertDefinition("ValkeyWritesRefusedOOM", VALKEY, "critical", "oom_rate"),
    AlertDefinition("ValkeyAofWriteFailing", VALKEY, "critical", "aof_write"),
    AlertDefinition("ValkeyAofRewriteFailing", VALKEY, "warning", "aof_rewrite"),
    AlertDefinition("ValkeyMaxmemoryPolicyNotNoeviction", VALKEY, "warning", "eviction_policy"),
    AlertDefinition("ValkeyTooManyClients", VALKEY, "warning", "clients"),
    AlertDefinition("ValkeyClientsNearMaxclients", VALKEY, "critical", "clients"),
    # The kubelet's and cAdvisor's series are not the exporter's, so they get no panel of their
    # own (the end-to-end test could not prove such a query): the AOF is what fills the volume,
    # and the RSS against the limit is the memory the fork envelope starts from.
    AlertDefinition("ValkeyVolumeFillingUp", VALKEY, "warning", "aof_size"),
    AlertDefinition("ValkeyVolumeAlmostFull", VALKEY, "critical", "aof_size"),
    AlertDefinition("ValkeyContainerMemoryHigh", VALKEY, "warning", "memory_of_limit"),
    AlertDefinition("ValkeyContainerMemoryCritical", VALKEY, "critical", "memory_of_limit"),
    AlertDefinition("ValkeyPodMetricsAbsent", VALKEY, "warning", "up"),
    AlertDefinition("ValkeyBullMQQueueBacklog", VALKEY, "warning", "bullmq_waiting"),
    AlertDefinition("ValkeyAdrRevisitMemory", VALKEY, "info", "memory"),
    AlertDefinition("ValkeyAdrRevisitThroughput", VALKEY, "info", "commands"),
    AlertDefinition("ValkeyNoPrimary", SENTINEL, "critical", "role"),
    AlertDefinition("ValkeyPrimaryDisagreement", SENTINEL, "critical", "sentinel_primary"),
    AlertDefinition("ValkeyWritesRefusedNoReplicas", SENTINEL, "critical", "connected_replicas"),
    AlertDefinition("ValkeyReplicationBroken", SENTINEL, "warning", "replication_link"),
    AlertDefinition("ValkeyReplicationLagging", SENTINEL, "warning", "replica_lag"),
    AlertDefinition("ValkeyFailover", SENTINEL, "warning", "role"),
    AlertDefinition("ValkeySentinelQuorumLost", SENTINEL, "critical", "sentinel_quorum"),
    AlertDefinition("ValkeySentinelDown", SENTINEL, "warning", "sentinel_quorum"),
)

_BY_NAME = {alert.name: alert for alert in CATALOGUE}


def alert_names(construct: str) -> tuple[str, ...]:
    """The alerts ``construct`` can render, in the order it renders them."""
    return tuple(alert.name for alert in CATALOGUE if alert.construct == construct)


def definition(name: str) -> AlertDefinition:
    """The catalogue entry of an alert (a KeyError for a name not in the catalogue is a bug)."""
    return _BY_NAME[name]


ALERT_PANELS: dict[str, str] = {alert.name: alert.panel for alert in CATALOGUE}
