"""Valkey: one Valkey with its monitoring and alerts in one call, repeatable in any chart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict, Unpack

import cdk8s
import cdk8s_plus_28 as kplus
from cdk8s_plus_28 import k8s
from constructs import Construct

from ._validation import check_instance
from .alerts import AlertOptions, Alerts
from .backups import BackupOptions, Backups
from .dashboard import Dashboard, DashboardOptions
from .exporter_sidecar import ExporterOptions, ExporterSidecar
from .pod_options import PodOptions
from .primary_endpoint import PrimaryEndpoint, PrimaryEndpointOptions
from .sentinel import Sentinel, SentinelOptions
from .sentinel_alerts import SentinelAlerts
from .smoke_check import SmokeCheck, SmokeCheckOptions
from .valkey_statefulset import SecretKeyRef, ValkeyStatefulSet


class ValkeyProps(TypedDict, total=False):
    """The props of :class:`ValkeyStatefulSet`, which :class:`Valkey` takes as keywords.

    Names and types only: each is documented once, on ValkeyStatefulSet. A test keeps this
    list equal to that constructor's keyword parameters."""

    name: str | None
    image: str
    memory_limit: cdk8s.Size
    maxmemory_ratio: float
    maxmemory_fallback: cdk8s.Size | None
    cpu_request: kplus.Cpu
    storage_size: cdk8s.Size | None
    storage_class: str
    startup_budget: cdk8s.Duration | None
    extra_config: Mapping[str, str] | None
    auth_secret: SecretKeyRef | None
    network_policy: bool
    allowed_clients: Sequence[k8s.NetworkPolicyPeer] | None
    pod: PodOptions | None
    service_annotations: Mapping[str, str] | None
    allow_untested_image: bool


class Valkey(Construct):
    """ADR 0005's Valkey with everything it asks for: a :class:`ValkeyStatefulSet`, its
    :class:`ExporterSidecar` and its :class:`Alerts`, from one call.

    Repeat it for each Valkey of a chart (``Valkey(chart, "sessions")``,
    ``Valkey(chart, "queues", ...)``): names derive from each one's ``name``, and alerts select
    each one's series only. The keywords are :class:`ValkeyStatefulSet`'s props; the exporter
    and alerts take theirs as one typed object each, and so do the opt-in parts (``dashboard``,
    ``backups``, ``smoke_check``: none by default). The parts stay reachable under the same
    attribute names (and ``server``) for wiring.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        exporter: ExporterOptions | None = None,
        alerts: AlertOptions | None = None,
        dashboard: DashboardOptions | None = None,
        backups: BackupOptions | None = None,
        smoke_check: SmokeCheckOptions | None = None,
        sentinel: SentinelOptions | None = None,
        primary_endpoint: PrimaryEndpointOptions | bool = True,
        **server: Unpack[ValkeyProps],
    ) -> None:
        """
        :param exporter: Props of the ExporterSidecar (BullMQ queues, ServiceMonitor labels,
            scrape interval, ...), see :class:`ExporterOptions`. Default: ``ExporterOptions()``.
        :param alerts: Props of the Alerts (thresholds, rule labels, alerts switched off or
            re-graded), see :class:`AlertOptions`. Default: ``AlertOptions()``.
        :param dashboard: Render the :class:`Dashboard` ConfigMap for kube-prometheus-stack's
            Grafana sidecar, with these options (``DashboardOptions()`` for the defaults); the
            alerts then link to its panels. Default: none, no dashboard.
        :param backups: Render Longhorn RecurringJobs (snapshots, backups) for the data claim,
            which joins their group, see :class:`BackupOptions`. Default: none, no schedule
            (ADR 0005 deferred backups).
        :param smoke_check: Render the :class:`SmokeCheck` Job, which checks the live Valkey
            against this manifest after every sync (Argo CD PostSync hook; Flux re-creates it),
            with these options; ``SmokeCheckOptions()`` for the defaults. Default: none, no Job.
        :param sentinel: Run one primary and replicas with a Sentinel in every pod (ADR 0005's
            future path), see :class:`Sentinel`, with its :class:`SentinelAlerts` (labels and runbook
            URL of ``alerts``); ``SentinelOptions()`` for the defaults. Clients
            then connect through the Sentinels (``sentinel_hosts``, ``sentinel_port``,
            ``master_name``); the ``smoke_check`` then checks the primary, the replicas and the
            Sentinels. Default: none, the single replica of ADR 0005.
        :param primary_endpoint: With ``sentinel``: the client Service ``<name>`` follows the
            current primary through HAProxy, for clients that cannot speak Sentinel (see
            :class:`PrimaryEndpoint`), with these options; ``False`` renders none, and the
            Service has no endpoints. Only with ``sentinel``. Default: ``True``, with
            ``PrimaryEndpointOptions()``.
        :param server: The :class:`ValkeyStatefulSet` props, as keywords (``memory_limit=...``).
            ``name`` defaults to this construct's id.
        """
        exporter = exporter if exporter is not None else ExporterOptions()
        alerts = alerts if alerts is not None else AlertOptions()
        check_instance("exporter", exporter, ExporterOptions, "an ExporterOptions(...)")
        check_instance("alerts", alerts, AlertOptions, "an AlertOptions(...)")
        if dashboard is not None:
            check_instance("dashboard", dashboard, DashboardOptions, "a DashboardOptions(...)")
        if backups is not None:
            check_instance("backups", backups, BackupOptions, "a BackupOptions(...)")
        if smoke_check is not None:
            check_instance("smoke_check", smoke_check, SmokeCheckOptions, "a SmokeCheckOptions(...)")
        if sentinel is not None:
            check_instance("sentinel", sentinel, SentinelOptions, "a SentinelOptions(...)")
        if not isinstance(primary_endpoint, bool):
            check_instance(
                "primary_endpoint", primary_endpoint, PrimaryEndpointOptions, "a PrimaryEndpointOptions(...)"
            )
            if sentinel is None:
                raise ValueError(
                    "primary_endpoint: it follows the primary of a Sentinel topology; set sentinel=SentinelOptions() "
                    "or leave primary_endpoint out (the single Valkey's client Service already selects it)"
                )
        super().__init__(scope, id)
        # Same id as ours, so that the name defaults to it and errors about the id stay true.
        self.server = ValkeyStatefulSet(self, id, **server)
        self.exporter = ExporterSidecar(self, "Metrics", valkey=self.server, options=exporter)
        # Before the Alerts and the Dashboard: they read the pods this turns one into several.
        self.sentinel: Sentinel | None = None
        if sentinel is not None:
            self.sentinel = Sentinel(self, "Sentinel", valkey=self.server, exporter=self.exporter, options=sentinel)
        self.primary_endpoint: PrimaryEndpoint | None = None
        if self.sentinel is not None and primary_endpoint is not False:
            options = primary_endpoint if isinstance(primary_endpoint, PrimaryEndpointOptions) else None
            self.primary_endpoint = PrimaryEndpoint(self, "PrimaryEndpoint", sentinel=self.sentinel, options=options)
        self.dashboard: Dashboard | None = None
        if dashboard is not None:
            self.dashboard = Dashboard(
                self, "Dashboard", valkey=self.server, exporter=self.exporter, options=dashboard, sentinel=self.sentinel
            )
        self.alerts = Alerts(
            self, "Alerts", valkey=self.server, exporter=self.exporter, options=alerts, dashboard=self.dashboard
        )
        self.sentinel_alerts: SentinelAlerts | None = None
        if self.sentinel is not None:
            self.sentinel_alerts = SentinelAlerts(self, "SentinelAlerts", sentinel=self.sentinel, alerts=self.alerts)
        self.backups = Backups(self, "Backups", valkey=self.server, options=backups) if backups is not None else None
        self.smoke_check: SmokeCheck | None = None
        if smoke_check is not None:
            self.smoke_check = SmokeCheck(
                self, "SmokeCheck", valkey=self.server, options=smoke_check, sentinel=self.sentinel
            )

    # -- wiring points: what clients need -----------------------------------------------

    @property
    def name(self) -> str:
        """Base name of every object (the StatefulSet's and the client Service's name)."""
        return self.server.name

    @property
    def host(self) -> str:
        """Client Service host, ``<name>.<namespace>.svc`` (ioredis ``host``)."""
        return self.server.host

    @property
    def port(self) -> int:
        """Client port, 6379 (ioredis ``port``)."""
        return self.server.port

    @property
    def url(self) -> str:
        """``redis://<host>:<port>``, never with a password."""
        return self.server.url

    @property
    def sentinel_hosts(self) -> tuple[str, ...]:
        """With ``sentinel``: every Sentinel's host name (ioredis ``sentinels``); otherwise none."""
        return self.sentinel.sentinel_hosts if self.sentinel is not None else ()

    @property
    def sentinel_port(self) -> int | None:
        """With ``sentinel``: the Sentinels' port, 26379; otherwise ``None``."""
        return self.sentinel.sentinel_port if self.sentinel is not None else None

    @property
    def master_name(self) -> str | None:
        """With ``sentinel``: the name the Sentinels know the primary by (ioredis ``name``)."""
        return self.sentinel.master_name if self.sentinel is not None else None
