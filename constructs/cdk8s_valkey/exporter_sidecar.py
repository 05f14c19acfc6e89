"""ExporterSidecar: ADR 0005's redis_exporter sidecar, its metrics Service and ServiceMonitor."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
from cdk8s_plus_28 import k8s
from constructs import Construct

from . import _plain, _registry
from ._network_policy import allow_ingress
from ._options import with_legacy_props
from ._promql import prometheus_duration as _prometheus_duration
from ._validation import (
    check_cpu,
    check_duration,
    check_instance,
    check_labels,
    check_size,
    check_unique,
    cpu_amount,
    duration_millis,
    image_tag,
    port_name,
    quantity,
    seconds,
    size_to_bytes,
)
from ._wiring import check_same_namespace
from .pod_model import ORDER_EXPORTER, ContainerModel
from .valkey_statefulset import ValkeyStatefulSet

DEFAULT_IMAGE = "oliver006/redis_exporter:v1.61.0"
API_VERSION = "monitoring.coreos.com/v1"  # ServiceMonitor, prometheus-operator's CRD
UID = 59000  # the user the FROM-scratch redis_exporter image runs as
CONTAINER_NAME = "exporter"
METRIC_NAMESPACE = "valkey"  # --namespace: metric names become valkey_up, valkey_memory_used_bytes, ...
METRICS_PORT = 9121
METRICS_PORT_NAME = "metrics"
METRICS_PATH = "/metrics"
HEALTH_PATH = "/health"  # answers "ok" whenever the HTTP server runs; checks nothing else
COMPONENT = "metrics"
# The exporter's own variable for --redis.password: an env var from the Secret, never a flag.
PASSWORD_ENV = "REDIS_PASSWORD"
# The label every namespace carries with its own name (Kubernetes >= 1.22).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# A label of this library's own on the metrics Services, with the Valkey's name: the
# ServiceMonitors select by it. Not app.kubernetes.io/instance: Argo CD before 3.0 tracks
# applications by that label and overwrites it with the Application's name on every object it
# applies (docs/operations.md, "Argo CD's tracking label").
INSTANCE_LABEL = "valkey.cdk8s.io/instance"


def metrics_selector(valkey: ValkeyStatefulSet, component: str) -> dict[str, str]:
    """The labels a ServiceMonitor selects a metrics Service of ``valkey`` by: none that a GitOps
    tool rewrites."""
    return {"app.kubernetes.io/name": "valkey", INSTANCE_LABEL: valkey.name, "app.kubernetes.io/component": component}


# BullMQ keys whose size is exported per queue (LLEN for lists, ZCARD for sorted sets,
# 0 while the key does not exist): the jobs waiting to run (wait, paused, prioritized),
# the ones scheduled for later (delayed) and the ones being worked on (active).
QUEUE_KEY_STATES: tuple[str, ...] = ("wait", "paused", "prioritized", "delayed", "active")

MIN_MEMORY_LIMIT_BYTES = 16 << 20  # the exporter's Go runtime needs ~10 MiB at rest
MIN_SCRAPE_INTERVAL_SECONDS = 5
MAX_SCRAPE_INTERVAL_SECONDS = 300
MAX_SCRAPE_TIMEOUT_SECONDS = 10

# Characters a queue name or prefix cannot hold, with the reason shown in the error.
_GLOB = re.compile(r"[*?\[\]\\]")
_FLAG_BREAKING = re.compile(r"[\s,=]")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class ExporterOptions:
    """Props of :class:`ExporterSidecar`, also taken by :class:`Valkey` as ``exporter=``.

    :param image: redis_exporter image, pinned to an exact tag and optionally a digest
        (``oliver006/redis_exporter:v1.61.0@sha256:...``). Default:
        ``oliver006/redis_exporter:v1.61.0``, the version ADR 0005 pins. It connects with
        ``redis://`` (``valkey://`` only exists from v1.65.0).
    :param bullmq_queues: BullMQ queue names whose keys ``<prefix>:<queue>:<state>`` for
        each state of ``queue_key_states`` are exported as ``valkey_key_size{db="db0",key=...}``
        with ``--check-single-keys``: one cheap LLEN/ZCARD per key and scrape, never a SCAN
        of the keyspace. Names must be unique and cannot hold ``:`` (BullMQ forbids it),
        whitespace, ``,``, ``=`` or glob characters. Default: none, so no key metrics; list
        the queues whose depth you alert on.
    :param bullmq_prefix: The ``prefix`` option of the BullMQ queues, the first part of
        every key; same character rules as the queue names. Default: ``bull``, BullMQ's own.
    :param service_monitor_labels: Extra labels of the ServiceMonitor, for the
        ``serviceMonitorSelector`` of the Prometheus that should pick it up, e.g.
        ``{"release": "kube-prometheus-stack"}``. The ``app.kubernetes.io/*`` labels are
        the construct's and cannot be given here. Default: none, which suits a Prometheus
        that selects every ServiceMonitor.
    :param scrape_interval: How often Prometheus scrapes the exporter; the scrape timeout
        is half of it, at most 10 s, and the exporter's connection timeout half of that, so
        a hung Valkey is reported as ``valkey_up 0`` rather than as a failed scrape. Whole
        seconds from 5 s to 5 min. Default: 30 s, kube-prometheus-stack's own interval.
    :param memory_limit: The exporter's memory request and limit (equal, like the Valkey
        container's). At least 16 MiB. Default: 64 MiB; the exporter uses about 10-20 MiB.
    :param cpu_request: CPU request of the exporter. No CPU limit is rendered, as for the
        Valkey container: throttling only makes scrapes time out. Default: 10m; a scrape
        costs a few milliseconds of CPU.
    :param metrics_namespace: The namespace whose pods (Prometheus) may reach the metrics
        port, selected by its ``kubernetes.io/metadata.name`` label. Only used when the Valkey
        has ``network_policy``; then no other pod can scrape. Default: ``monitoring``, where
        kube-prometheus-stack is usually installed.
    """

    image: str = DEFAULT_IMAGE
    bullmq_queues: Sequence[str] = ()
    bullmq_prefix: str = "bull"
    service_monitor_labels: Mapping[str, str] | None = None
    scrape_interval: cdk8s.Duration = cdk8s.Duration.seconds(30)
    memory_limit: cdk8s.Size = cdk8s.Size.mebibytes(64)
    cpu_request: kplus.Cpu = kplus.Cpu.millis(10)
    metrics_namespace: str = "monitoring"

    def __post_init__(self) -> None:
        object.__setattr__(self, "bullmq_queues", _check_queues(self.bullmq_queues))
        _check_key_part("bullmq_prefix", self.bullmq_prefix)
        image_tag("image", self.image)
        labels = check_labels("service_monitor_labels", dict(self.service_monitor_labels or {}))
        for key in labels:
            if key.startswith("app.kubernetes.io/"):
                raise ValueError(
                    f"service_monitor_labels: {key!r} is set by ExporterSidecar; "
                    "use labels outside the app.kubernetes.io/ prefix (for example 'release')"
                )
        object.__setattr__(self, "service_monitor_labels", labels)
        _check_scrape_interval(check_duration("scrape_interval", self.scrape_interval))
        if size_to_bytes(check_size("memory_limit", self.memory_limit)) < MIN_MEMORY_LIMIT_BYTES:
            raise ValueError(
                f"memory_limit: {quantity(self.memory_limit)} is too small to run redis_exporter; "
                f"use at least {MIN_MEMORY_LIMIT_BYTES >> 20}Mi"
            )
        check_cpu("cpu_request", self.cpu_request)
        if len(self.metrics_namespace) > 63 or not _NAMESPACE.match(self.metrics_namespace):
            raise ValueError(
                f"metrics_namespace: {self.metrics_namespace!r} is not a valid namespace name; use at most 63 "
                "lower-case letters, digits and '-', starting and ending with a letter or digit"
            )


class ExporterSidecar(Construct):
    """redis_exporter in the Valkey pod, a metrics Service and a prometheus-operator ServiceMonitor.

    Renders, all named from the Valkey's ``name``:

    - container ``exporter`` in the Valkey pod (contributed to the Valkey's ``pod_model``):
      redis_exporter reading ``redis://localhost:6379`` and serving ``valkey_*`` metrics on
      port 9121 (``metrics``), plus the sizes of the BullMQ queue keys it is given;
    - ``Service <name>-metrics`` (ClusterIP, port ``metrics``), labelled
      ``app.kubernetes.io/component: metrics`` so that only it is scraped;
    - ``ServiceMonitor <name>``: scrapes that Service. Prometheus attaches ``namespace``,
      ``service`` (= ``metrics_service_name``), ``pod`` and ``container`` to every series,
      which is what the alerts scope by;
    - when the Valkey has ``network_policy``: ``NetworkPolicy <name>-metrics``, the metrics
      port open to the pods of ``metrics_namespace`` only.

    When the Valkey has an ``auth_secret``, the exporter authenticates with it (env
    ``REDIS_PASSWORD`` from the same Secret key).

    Alerts and dashboards wire against the read-only attributes (``metric_namespace``,
    ``metrics_service_name``, ``bullmq_queues``, ``queue_key_states``, ``scrape_interval``, ...).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        valkey: ValkeyStatefulSet,
        options: ExporterOptions | None = None,
        **legacy_props: Any,
    ) -> None:
        """
        :param valkey: The Valkey whose pod gets the exporter container; the metrics Service
            selects that pod and the construct must live in a chart of the same namespace,
            which must be set (the alerts and dashboards select this Valkey's series by it).
            At most one ExporterSidecar per Valkey.
        :param options: The exporter's props, see :class:`ExporterOptions`. The 0.1 flat
            keywords (``bullmq_queues=...``) still work until 0.3.0, with a DeprecationWarning.
            Default: ``ExporterOptions()``.
        """
        opts = with_legacy_props("ExporterSidecar", options or ExporterOptions(), legacy_props)
        check_instance("valkey", valkey, ValkeyStatefulSet, "the ValkeyStatefulSet this exporter watches")
        if CONTAINER_NAME in valkey.container_names:
            raise ValueError(
                f"valkey: {valkey.name!r} already has an ExporterSidecar (its pod has a container "
                f"{CONTAINER_NAME!r}); create one ExporterSidecar per Valkey and share it with Alerts and Dashboard"
            )
        if valkey.namespace is None:
            raise ValueError(
                f"valkey: {valkey.name!r} renders into a chart without a namespace, so the metrics of this "
                "Valkey cannot be told from another's with the same name; set namespace= on its cdk8s.Chart"
            )
        interval_seconds = _check_scrape_interval(opts.scrape_interval)
        check_same_namespace("ExporterSidecar", scope, valkey, "where its Service can select the pod")

        super().__init__(scope, id)

        self.valkey = valkey
        self.options = opts
        self.image = opts.image
        self.metric_namespace = METRIC_NAMESPACE
        self.metrics_port = METRICS_PORT
        self.metrics_port_name = METRICS_PORT_NAME
        self.metrics_path = METRICS_PATH
        self.metrics_service_name = f"{valkey.name}-metrics"
        self.container_name = CONTAINER_NAME
        self.bullmq_queues: tuple[str, ...] = tuple(opts.bullmq_queues)
        self.bullmq_prefix = opts.bullmq_prefix
        self.queue_key_states = QUEUE_KEY_STATES
        self.checked_keys: tuple[str, ...] = tuple(
            f"{opts.bullmq_prefix}:{queue}:{state}" for queue in opts.bullmq_queues for state in QUEUE_KEY_STATES
        )
        self._service_monitor_labels = dict(opts.service_monitor_labels or {})
        self.scrape_interval = opts.scrape_interval
        timeout_seconds = min(MAX_SCRAPE_TIMEOUT_SECONDS, interval_seconds // 2)
        self.scrape_timeout = seconds(timeout_seconds)
        self.memory_limit = opts.memory_limit
        self.cpu_request = opts.cpu_request
        self.metrics_namespace = opts.metrics_namespace
        self._connection_timeout_seconds = max(1, timeout_seconds // 2)
        self._args = _render_args(
            valkey_port=valkey.port,
            connection_timeout_seconds=self._connection_timeout_seconds,
            checked_keys=self.checked_keys,
        )
        self.labels = {**valkey.labels, "app.kubernetes.io/component": COMPONENT}

        _registry.register(
            self,
            [
                ("Service", self.metrics_service_name),
                ("ServiceMonitor", valkey.name),
                *([("NetworkPolicy", self.metrics_service_name)] if valkey.network_policy else []),
            ],
        )
        valkey.pod_model.add_container(self.container(), order=ORDER_EXPORTER)
        self.service = k8s.KubeService(
            self,
            "Service",
            metadata=k8s.ObjectMeta(
                name=self.metrics_service_name, labels={**self.labels, **metrics_selector(valkey, COMPONENT)}
            ),
            spec=k8s.ServiceSpec(
                type="ClusterIP",
                selector=valkey.match_labels,
                ports=[
                    k8s.ServicePort(
                        name=METRICS_PORT_NAME,
                        port=METRICS_PORT,
                        target_port=port_name(METRICS_PORT_NAME),
                        protocol="TCP",
                    )
                ],
            ),
        )
        # Plain JSON, not the generated CRD binding (_plain.py); tests/test_crd_schemas.py
        # validates it against the CRD instead.
        self.service_monitor = _plain.api_object(
            self,
            "ServiceMonitor",
            api_version=API_VERSION,
            kind="ServiceMonitor",
            name=valkey.name,
            labels={**self.labels, **self._service_monitor_labels},
            spec={
                "selector": {"matchLabels": metrics_selector(valkey, COMPONENT)},
                "namespaceSelector": {"matchNames": [valkey.namespace]} if valkey.namespace else None,
                "endpoints": [
                    {
                        "port": METRICS_PORT_NAME,
                        "path": METRICS_PATH,
                        "interval": _prometheus_duration(interval_seconds),
                        "scrapeTimeout": _prometheus_duration(timeout_seconds),
                    }
                ],
            },
        )
        self.network_policy_name: str | None = None
        if valkey.network_policy:
            # Added to the Valkey's policy (policies are a union): the metrics port, for the
            # monitoring namespace only. Egress stays closed: the exporter talks over localhost.
            self.network_policy_name = self.metrics_service_name
            allow_ingress(
                self,
                "NetworkPolicy",
                name=self.network_policy_name,
                labels=self.labels,
                pod_labels=valkey.match_labels,
                peers=[
                    k8s.NetworkPolicyPeer(
                        namespace_selector=k8s.LabelSelector(
                            match_labels={NAMESPACE_NAME_LABEL: opts.metrics_namespace}
                        )
                    )
                ],
                port=METRICS_PORT,
            )

    # -- wiring points -------------------------------------------------------------

    @property
    def args(self) -> list[str]:
        """The exporter container's args exactly as rendered (a copy)."""
        return list(self._args)

    @property
    def service_monitor_labels(self) -> dict[str, str]:
        """The extra ServiceMonitor labels given (a copy)."""
        return dict(self._service_monitor_labels)

    # -- rendering -----------------------------------------------------------------

    def container(
        self,
        *,
        name: str = CONTAINER_NAME,
        target_port: int | None = None,
        listen_port: int = METRICS_PORT,
        port_name: str = METRICS_PORT_NAME,
        check_keys: bool = True,
        password_env: _plain.JsonObject | None = None,
    ) -> ContainerModel:
        """A redis_exporter container with this exporter's image, resources and hardening, as
        pod-model data. Default: this exporter's own ``exporter`` container, reading the Valkey
        on localhost. Other constructs get one for another local server (Sentinel's exporter:
        another ``target_port`` and ``listen_port``, no BullMQ keys).

        :param password_env: The ``REDIS_PASSWORD`` env var (from a Secret) the exporter
            authenticates with. Default: the Valkey's ``auth_secret`` for the Valkey itself,
            none for another ``target_port``."""
        memory = quantity(self.memory_limit)
        secret = self.valkey.auth_secret
        if target_port is None:
            args = self.args
            # With AUTH: the password from the Valkey's Secret, as the exporter's own env var
            # (a --redis.password flag would show it in /proc/<pid>/cmdline).
            if password_env is None and secret is not None:
                password_env = _plain.secret_env(PASSWORD_ENV, secret.name, secret.key)
        else:
            args = _render_args(
                valkey_port=target_port,
                connection_timeout_seconds=self._connection_timeout_seconds,
                checked_keys=self.checked_keys if check_keys else (),
            )
        if listen_port != METRICS_PORT:
            args = [
                f"--web.listen-address=:{listen_port}" if a.startswith("--web.listen-address=") else a for a in args
            ]
        return ContainerModel(
            name=name,
            image=self.image,
            args=args,
            env=[password_env] if password_env is not None else [],
            ports=[{"name": port_name, "containerPort": listen_port, "protocol": "TCP"}],
            resources=_plain.guaranteed_memory(cpu_amount(self.cpu_request), memory),
            # The image's user is root: run as another, with the seccomp profile of its own.
            security_context=_plain.restricted_container(
                runAsUser=UID, runAsGroup=UID, seccompProfile={"type": "RuntimeDefault"}
            ),
            # The image has no shell, so an HTTP probe. /health only proves that the process
            # serves HTTP; whether Valkey answers is valkey_up's job, not a probe's. No
            # readiness probe: a container's readiness gates the whole pod, and a struggling
            # exporter must never take Valkey out of its client Service.
            probes={
                "liveness": {
                    "httpGet": {"path": HEALTH_PATH, "port": port_name},
                    "periodSeconds": 10,
                    "timeoutSeconds": 3,
                    "failureThreshold": 3,
                }
            },
        )


def _render_args(*, valkey_port: int, connection_timeout_seconds: int, checked_keys: Sequence[str]) -> list[str]:
    """redis_exporter flags; each exists with the same meaning in v1.45 (Debian) and v1.61."""
    args = [
        f"--redis.addr=redis://localhost:{valkey_port}",
        f"--namespace={METRIC_NAMESPACE}",
        f"--web.listen-address=:{METRICS_PORT}",
        f"--web.telemetry-path={METRICS_PATH}",
        # Below the scrape timeout: a hung Valkey yields valkey_up 0, not a failed scrape.
        f"--connection-timeout={connection_timeout_seconds}s",
        # Only valkey_* series: no go_* / process_* of the exporter (cAdvisor covers its container).
        "--redis-only-metrics",
    ]
    if checked_keys:
        # Exact keys (one LLEN/ZCARD each), never --check-keys, which SCANs the keyspace.
        args.append("--check-single-keys=" + ",".join(f"db0={key}" for key in checked_keys))
    return args


def _check_key_part(prop: str, value: str) -> str:
    """A BullMQ queue name or prefix that can sit in a key and in a --check-single-keys list."""
    if not value:
        raise ValueError(f"{prop}: {value!r} is empty; use a non-empty name such as 'emails'")
    if ":" in value:
        raise ValueError(
            f"{prop}: {value!r} contains ':', which BullMQ uses to separate the parts of its keys; "
            "use a name without ':'"
        )
    if _GLOB.search(value):
        raise ValueError(
            f"{prop}: {value!r} contains a glob character, which would make key patterns match "
            "other keys; use a name without * ? [ ] \\"
        )
    if _FLAG_BREAKING.search(value):
        raise ValueError(
            f"{prop}: {value!r} contains whitespace, ',' or '=', which would break the exporter's "
            "--check-single-keys list; use a name without them"
        )
    return value


def _check_queues(queues: Sequence[str]) -> tuple[str, ...]:
    if isinstance(queues, str):
        raise ValueError(
            f"bullmq_queues: {queues!r} is a single string; pass a list of queue names such as [{queues!r}]"
        )
    for queue in queues:
        _check_key_part("bullmq_queues", queue)
    check_unique("bullmq_queues", queues)
    return tuple(queues)


def _check_scrape_interval(interval: cdk8s.Duration) -> int:
    millis = duration_millis(interval)
    seconds = millis // 1000
    if millis % 1000 or not MIN_SCRAPE_INTERVAL_SECONDS <= seconds <= MAX_SCRAPE_INTERVAL_SECONDS:
        shown = f"{millis}ms" if millis % 1000 else _prometheus_duration(seconds)
        raise ValueError(
            f"scrape_interval: {shown} is not allowed; use whole seconds "
            f"from {MIN_SCRAPE_INTERVAL_SECONDS}s to {MAX_SCRAPE_INTERVAL_SECONDS // 60}m"
        )
    return seconds
