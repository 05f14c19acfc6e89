"""Sentinel: ADR 0005's future path, opt-in: a primary, its replicas and a Sentinel in every pod."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
from cdk8s_plus_28 import k8s
from constructs import Construct

from . import _labels, _plain, _registry, _scripts
from ._promql import prometheus_duration as _prometheus_duration
from ._validation import (
    check_cpu,
    check_duration,
    check_instance,
    check_size,
    cpu_amount,
    duration_millis,
    port_name,
    quantity,
    seconds,
    shown_duration,
    size_to_bytes,
    whole_seconds,
)
from .exporter_sidecar import NAMESPACE_NAME_LABEL, ExporterSidecar, metrics_selector
from .exporter_sidecar import PASSWORD_ENV as EXPORTER_PASSWORD_ENV
from .pod_model import ORDER_SENTINEL, ORDER_SENTINEL_EXPORTER, ContainerModel
from .topology import DATA_VOLUME, Topology
from .valkey_statefulset import (
    AUTH_LIB,
    CLI_PASSWORD_ENV,
    DATA_DIR,
    MAX_REPLICAS,
    PASSWORD_ENV,
    SCRIPTS_DIR,
    SecretKeyRef,
    ValkeyStatefulSet,
)
from .valkey_statefulset import CONTAINER_NAME as CONTAINER_VALKEY

COMPONENT = "sentinel"
CONTAINER_NAME = "sentinel"
PORT = 26379  # Sentinel's own port, which every Sentinel client library defaults to
PORT_NAME = "sentinel"
VOLUME = "sentinel"  # the ConfigMap <name>-sentinel, mounted in the valkey and sentinel containers
MOUNT_PATH = "/sentinel"
STATE_DIR = f"{DATA_DIR}/sentinel"  # on the pod's data claim: a restart keeps what Sentinel learnt
TEMPLATE = "sentinel.conf"
ROLE_SCRIPT = "valkey-role.sh"
START_SCRIPT = "sentinel-start.sh"
LIB_SCRIPT = "sentinel-lib.sh"
PROBE_SCRIPT = "replica-probe.sh"
HANDOVER_SCRIPT = "handover.sh"
PERSIST_SCRIPT = "sentinel-persist.sh"
SCRIPTS = (ROLE_SCRIPT, START_SCRIPT, LIB_SCRIPT, PROBE_SCRIPT, HANDOVER_SCRIPT, PERSIST_SCRIPT)
# With AUTH: Sentinel's own file holds the passwords (it rewrites them in plain text), so it lives
# in memory (emptyDir medium Memory, counted in the container's memory), readable by the Sentinel's
# user only; its state goes to the claim without them (sentinel-persist.sh).
RUN_VOLUME = "sentinel-run"
RUN_DIR = "/run/sentinel"
RUN_VOLUME_SIZE = "1Mi"

# The Sentinel exporter: a second redis_exporter per pod, reading the local Sentinel (redis_exporter
# recognizes a Sentinel by its INFO and exports valkey_sentinel_*). 9355 is the port the Sentinel
# exporters of the community use; port names are at most 15 characters.
EXPORTER_CONTAINER_NAME = "sentinel-exporter"
EXPORTER_PORT = 9355
EXPORTER_PORT_NAME = "sentinel-exp"
EXPORTER_COMPONENT = "sentinel-metrics"

MIN_REPLICAS = 2  # three Sentinels: the smallest number that survives the loss of one
MAX_SENTINEL_REPLICAS = MAX_REPLICAS - 1
# An isolated old primary takes writes until its replicas' acknowledgements are older than
# min-replicas-max-lag: measured (netns drills), until max-lag + 2 s after the partition (ACKs once
# a second, lag in whole seconds, the count refreshed once a second), while the Sentinels promote a
# replica from down-after - 1 s on (down counted from the last PONG, pings once a second). No second
# writable primary needs max-lag + 2 <= down-after - 1: max-lag <= down-after - 3 s, at least 1 s.
LAG_MARGIN_SECONDS = 3
MIN_DOWN_AFTER_MS = (1 + LAG_MARGIN_SECONDS) * 1000
MAX_DOWN_AFTER_MS = 60_000
MIN_FAILOVER_TIMEOUT_MS = 10_000
MIN_ROLE_WAIT_SECONDS = 5
MAX_ROLE_WAIT_SECONDS = 300
MIN_SENTINEL_MEMORY_BYTES = 32 << 20
DNS_PORT = 53

# Directives of valkey.conf that this topology sets on the command line of every node: in
# extra_config they would be overridden without a word, so they are refused there.
_OWNED_DIRECTIVES = (
    "replicaof",
    "slaveof",
    "replica-announce-ip",
    "slave-announce-ip",
    "replica-announce-port",
    "slave-announce-port",
    "min-replicas-to-write",
    "min-slaves-to-write",
    "min-replicas-max-lag",
    "min-slaves-max-lag",
    "repl-diskless-sync-delay",
)
_MASTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True, kw_only=True)
class SentinelOptions:
    """Props of :class:`Sentinel`, also taken by :class:`Valkey` as ``sentinel=``.

    :param replicas: Replicas of the primary, each in a pod of its own with its own data claim.
        Every pod also runs a Sentinel, so there are ``replicas + 1`` Sentinels and the quorum is
        their majority. From 2 to 6. Default: 2: three pods, quorum 2, which survives the loss of
        any one pod.
    :param master_name: The name the Sentinels know the primary by, which clients ask for
        (ioredis ``name``). Letters, digits, '.', '_' and '-', at most 63. Default: the Valkey's
        ``name``.
    :param down_after: ``down-after-milliseconds``: how long the primary must be unreachable
        before a Sentinel counts it down; a failover starts once the quorum agrees. Writes are
        accepted again about ``down_after`` + 1.3 s after the primary dies (measured with Valkey
        8.1: 6.3 s at 5 s; 6.0-6.3 s in the pod drills). Whole milliseconds from 4 s to 60 s:
        below 4 s no ``min_replicas_max_lag`` keeps an isolated old primary from taking writes
        after a replica was promoted. Default: 5 s, long enough that an AOF rewrite's fork, a
        slow Longhorn fsync or a busy node does not start a failover (each failover resyncs the
        replicas and reconnects every client).
    :param failover_timeout: ``failover-timeout``: how long a failover may take before the
        Sentinels give up, and, doubled, how long before they retry one for the same primary.
        Whole milliseconds, at least 10 s. Default: 60 s, so that a failed failover is retried
        after 2 minutes (Sentinel's own default of 3 minutes waits 6).
    :param min_replicas_to_write: ``min-replicas-to-write`` on every node: the primary refuses
        writes (NOREPLICAS) unless this many replicas are connected and acknowledged within
        ``min_replicas_max_lag``. It bounds the writes a failover can lose: an isolated or
        restarted old primary stops acknowledging writes that nobody replicates. The price:
        with fewer healthy replicas, writes stop. From 0 (off) to ``replicas``. Default: 1.
    :param min_replicas_max_lag: ``min-replicas-max-lag``: a replica counts for
        ``min_replicas_to_write`` only if it acknowledged within this time (replicas acknowledge
        once a second). An isolated old primary takes writes until this much after it was cut off,
        plus about 2 s, so it must stop before the Sentinels promote a replica, about
        ``down_after`` - 1 s: whole seconds from 1 s to ``down_after`` - 3 s. The price: a replica
        whose acknowledgements are later than this (a stalled disk) no longer counts, and with
        every replica that late, writes stop. Default: ``down_after`` - 3 s, 2 s for the default
        5 s (Valkey's own 10 s let the pod drills see two writable primaries for 2-3 s in a
        partition; 2 s, none).
    :param role_wait: How long a starting Valkey waits for the Sentinels to name the primary
        before it falls back to its own Sentinel state, then to the bootstrap rule (ordinal 0
        is the primary): see docs/sentinel.md, "How a node picks its role". Whole seconds
        from 5 s to 5 min. Default: 20 s, several times what a Sentinel of the same pod needs
        to start.
    :param memory_limit: The Sentinel container's memory request and limit. At least 32 MiB.
        Default: 64 MiB; a Sentinel uses a few MiB.
    :param cpu_request: The Sentinel container's CPU request; no CPU limit, as for Valkey.
        Default: 10m.
    """

    replicas: int = 2
    master_name: str | None = None
    down_after: cdk8s.Duration = cdk8s.Duration.seconds(5)
    failover_timeout: cdk8s.Duration = cdk8s.Duration.seconds(60)
    min_replicas_to_write: int = 1
    min_replicas_max_lag: cdk8s.Duration | None = None
    role_wait: cdk8s.Duration = cdk8s.Duration.seconds(20)
    memory_limit: cdk8s.Size = cdk8s.Size.mebibytes(64)
    cpu_request: kplus.Cpu = kplus.Cpu.millis(10)

    def __post_init__(self) -> None:
        replicas = self.replicas
        if (
            isinstance(replicas, bool)
            or not isinstance(replicas, int)
            or not MIN_REPLICAS <= replicas <= MAX_SENTINEL_REPLICAS
        ):
            raise ValueError(
                f"replicas: {replicas!r} is not allowed; use a whole number from {MIN_REPLICAS} to "
                f"{MAX_SENTINEL_REPLICAS} (with fewer than {MIN_REPLICAS}, losing one pod loses the quorum)"
            )
        if self.master_name is not None and not _MASTER_NAME.match(self.master_name):
            raise ValueError(
                f"master_name: {self.master_name!r} is not allowed; use at most 63 letters, digits, '.', '_' "
                "and '-', starting with a letter or digit"
            )
        down_after = _millis("down_after", self.down_after)
        if not MIN_DOWN_AFTER_MS <= down_after <= MAX_DOWN_AFTER_MS:
            raise ValueError(
                f"down_after: {down_after}ms is not allowed; use from {MIN_DOWN_AFTER_MS}ms to "
                f"{MAX_DOWN_AFTER_MS}ms (shorter leaves an isolated old primary taking writes after the failover, "
                "longer leaves clients without a primary)"
            )
        failover_timeout = _millis("failover_timeout", self.failover_timeout)
        if failover_timeout < MIN_FAILOVER_TIMEOUT_MS:
            raise ValueError(
                f"failover_timeout: {failover_timeout}ms is not allowed; use at least {MIN_FAILOVER_TIMEOUT_MS}ms, "
                "the time a failover needs to promote a replica and re-point the others"
            )
        writes = self.min_replicas_to_write
        if isinstance(writes, bool) or not isinstance(writes, int) or not 0 <= writes <= replicas:
            raise ValueError(
                f"min_replicas_to_write: {writes!r} is not allowed; use a whole number from 0 (off) to "
                f"replicas ({replicas}): more would refuse every write"
            )
        max_lag = down_after // 1000 - LAG_MARGIN_SECONDS
        if self.min_replicas_max_lag is None:
            object.__setattr__(self, "min_replicas_max_lag", seconds(max_lag))
        else:
            lag = _millis("min_replicas_max_lag", self.min_replicas_max_lag)
            if lag % 1000 or not 1000 <= lag <= max_lag * 1000:
                shown = f"{lag}ms" if lag % 1000 else f"{lag // 1000}s"
                raise ValueError(
                    f"min_replicas_max_lag: {shown} is not allowed with down_after {down_after}ms; use whole seconds "
                    f"from 1s to {max_lag}s (down_after - {LAG_MARGIN_SECONDS}s), so that an isolated old primary "
                    "stops taking writes before a replica is promoted"
                )
        _whole_seconds("role_wait", self.role_wait, MIN_ROLE_WAIT_SECONDS, MAX_ROLE_WAIT_SECONDS)
        if size_to_bytes(check_size("memory_limit", self.memory_limit)) < MIN_SENTINEL_MEMORY_BYTES:
            raise ValueError(
                f"memory_limit: {quantity(self.memory_limit)} is too small to run Sentinel; "
                f"use at least {MIN_SENTINEL_MEMORY_BYTES >> 20}Mi"
            )
        check_cpu("cpu_request", self.cpu_request)


class Sentinel(Construct):
    """Turns a :class:`ValkeyStatefulSet` into one primary and ``replicas`` replicas, with a
    Sentinel in every pod (docs/sentinel.md).

    Renders, named from the Valkey's ``name``:

    - on the StatefulSet: ``replicas + 1`` pods, each on its own claim ``data-<name>-<ordinal>``
      (rendered as claims of their own, like ``data-<name>-0``; see
      :meth:`ValkeyStatefulSet.set_replicas`); the ``valkey`` container started through
      ``valkey-role.sh``, which asks the Sentinels whether this node is the primary or whose
      replica it is, with ``min-replicas-to-write`` and ``min-replicas-max-lag``; a readiness
      probe that also wants a replica in sync; a ``sentinel`` container on port 26379 whose
      state lives on the data claim (``/data/sentinel/sentinel.conf``);
    - ``ConfigMap <name>-sentinel``: the Sentinel configuration template and the scripts;
    - ``Service <name>-sentinel`` on 26379 for clients (ioredis ``sentinels``), and the
      headless Service publishing every pod's name even while it is not ready;
    - the client Service ``<name>`` has no selector (the topology's clients use the Sentinels): a
      Service would send clients to replicas as well, where writes fail with READONLY. A primary
      endpoint can point it elsewhere (:meth:`ValkeyStatefulSet.set_client_service_selector`);
    - with ``exporter``: a ``sentinel-exporter`` container (redis_exporter reading the local
      Sentinel), ``Service <name>-sentinel-metrics`` and ``ServiceMonitor <name>-sentinel``;
    - with the Valkey's ``network_policy``: ``NetworkPolicy <name>-sentinel``, added to the
      Valkey's (policies add up): its pods reach each other on 6379 and 26379 (replication, the
      Sentinels) and DNS (host names), its ``allowed_clients`` reach the Sentinels, and the
      exporter's ``metrics_namespace`` the Sentinel exporter.

    It sets the Valkey's :class:`Topology` (``sentinel``, ``replicas + 1`` pods), which every
    option renders for, and contributes its containers, env, volumes and hooks to the Valkey's
    pod model. Create it right after the ExporterSidecar and before the Alerts and anything else
    that reads the Valkey's topology (``Valkey(..., sentinel=SentinelOptions())`` does); a
    topology already read for one pod is refused with the name of what read it.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        valkey: ValkeyStatefulSet,
        exporter: ExporterSidecar | None = None,
        options: SentinelOptions | None = None,
    ) -> None:
        """
        :param valkey: The Valkey to turn into a primary and replicas. Its chart must have a
            namespace (the pods' host names hold it), the same as this construct's. With its
            ``auth_secret``, every node, replica link, Sentinel, probe, exporter and the handover
            authenticate with that password (docs/sentinel.md, AUTH). Not with an ``extra_config``
            that sets the
            replication directives this topology owns. With its ``network_policy``, a
            NetworkPolicy ``<name>-sentinel`` opens what the topology needs besides.
        :param exporter: The Valkey's ExporterSidecar: the Sentinels are then exported too, with
            the same image, scrape interval and ServiceMonitor labels. Default: none, so no
            Sentinel metrics (and no :class:`SentinelAlerts`).
        :param options: See :class:`SentinelOptions`. Default: ``SentinelOptions()``.
        """
        opts = options if options is not None else SentinelOptions()
        check_instance("options", opts, SentinelOptions, "a SentinelOptions(...)")
        check_instance("valkey", valkey, ValkeyStatefulSet, "the ValkeyStatefulSet to replicate")
        if exporter is not None:
            check_instance("exporter", exporter, ExporterSidecar, "the ExporterSidecar of that Valkey")
            if exporter.valkey is not valkey:
                raise ValueError(
                    f"exporter: it watches Valkey {exporter.valkey.name!r}, not {valkey.name!r}; "
                    "pass the ExporterSidecar created with valkey=<this Valkey>"
                )
        if valkey.namespace is None:
            raise ValueError(
                f"valkey: {valkey.name!r} renders into a chart without a namespace, but the Sentinels find "
                "the pods by host names that hold it; set namespace= on its cdk8s.Chart"
            )
        if _registry.namespace_of(scope) != valkey.namespace:
            raise ValueError(
                f"valkey: {valkey.name!r} renders into namespace {valkey.namespace!r} but this chart renders "
                f"into {_registry.namespace_of(scope)!r}; define the Sentinel in a chart of the Valkey's namespace"
            )
        if valkey.replicas != 1:
            raise ValueError(f"valkey: {valkey.name!r} already runs {valkey.replicas} pods; one Sentinel per Valkey")
        owned = sorted(set(valkey.extra_config) & set(_OWNED_DIRECTIVES))
        if owned:
            raise ValueError(
                f"valkey: extra_config sets {owned}, which the Sentinel topology sets on every node; "
                "remove them from extra_config (min_replicas_to_write and min_replicas_max_lag are SentinelOptions)"
            )

        super().__init__(scope, id)

        name = valkey.name
        namespace = valkey.namespace
        self.valkey = valkey
        self.auth_secret: SecretKeyRef | None = valkey.auth_secret
        self.exporter = exporter
        self.options = opts
        self.replicas = opts.replicas
        self.master_name = opts.master_name if opts.master_name is not None else name
        self.quorum = (opts.replicas + 1) // 2 + 1
        self.down_after = opts.down_after
        self.failover_timeout = opts.failover_timeout
        self.min_replicas_to_write = opts.min_replicas_to_write
        assert opts.min_replicas_max_lag is not None  # resolved by SentinelOptions
        self.min_replicas_max_lag: cdk8s.Duration = opts.min_replicas_max_lag
        self.port = PORT
        self.service_name = f"{name}-sentinel"
        self.service_host = f"{self.service_name}.{namespace}.svc"
        self.config_map_name = f"{name}-sentinel"
        self.pod_domain = f"{valkey.headless_service_name}.{namespace}.svc"
        self.labels = _labels.common_labels(name, valkey.version, COMPONENT)
        self.metrics_service_name: str | None = None
        objects = [("ConfigMap", self.config_map_name), ("Service", self.service_name)]
        self.network_policy_name: str | None = None
        if valkey.network_policy:
            self.network_policy_name = f"{name}-sentinel"
            objects.append(("NetworkPolicy", self.network_policy_name))
        if exporter is not None:
            self.metrics_service_name = f"{name}-sentinel-metrics"
            objects += [("Service", self.metrics_service_name), ("ServiceMonitor", self.service_name)]
        _registry.register(self, objects)
        # Before anything reads the pods: options render for this topology.
        valkey.set_topology(
            Topology.sentinel(name, opts.replicas + 1),
            client_note=(
                f"no endpoints: connect through the Sentinels ({self.service_host}:{PORT}, "
                f"master name {self.master_name})"
            ),
        )
        self.pod_hosts: tuple[str, ...] = tuple(f"{pod}.{self.pod_domain}" for pod in valkey.pod_names)
        self.bootstrap_host = self.pod_hosts[0]

        self.config_text = self._render_template()
        data = {TEMPLATE: self.config_text, **{script: _scripts.script(script) for script in SCRIPTS}}
        k8s.KubeConfigMap(
            self,
            "Config",
            metadata=k8s.ObjectMeta(name=self.config_map_name, labels=dict(self.labels)),
            data=data,
        )
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

        self._wire_valkey_container()
        model = valkey.pod_model
        model.add_volume({"name": VOLUME, "configMap": {"name": self.config_map_name}}, order=ORDER_SENTINEL)
        model.add_annotation("checksum/sentinel", digest)
        model.add_container(self._container(), order=ORDER_SENTINEL)
        if self.auth_secret is not None:
            model.add_volume(
                {"name": RUN_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": RUN_VOLUME_SIZE}},
                order=ORDER_SENTINEL,
            )
        self.service = k8s.KubeService(
            self,
            "Service",
            metadata=k8s.ObjectMeta(name=self.service_name, labels=dict(self.labels)),
            spec=k8s.ServiceSpec(
                type="ClusterIP",
                selector=valkey.match_labels,
                # A Sentinel answers while its pod's Valkey is not ready (a replica whose primary
                # just died is exactly when clients ask the Sentinels most).
                publish_not_ready_addresses=True,
                ports=[k8s.ServicePort(name=PORT_NAME, port=PORT, target_port=port_name(PORT_NAME), protocol="TCP")],
            ),
        )
        if exporter is not None:
            self._export(exporter)
        if self.network_policy_name is not None:
            self._network_policy(exporter)

    # -- wiring points -------------------------------------------------------------

    @property
    def sentinel_hosts(self) -> tuple[str, ...]:
        """Every Sentinel's host name, ``<name>-<ordinal>.<name>-headless.<namespace>.svc``: the
        ``sentinels`` a client lists, each on :attr:`sentinel_port`."""
        return self.pod_hosts

    @property
    def sentinel_port(self) -> int:
        """The Sentinels' port, 26379."""
        return self.port

    @property
    def producer_ioredis_options(self) -> dict[str, Any]:
        """:attr:`ioredis_options` plus ``commandTimeout`` 500 ms, for connections that only
        produce (a BullMQ ``Queue``, an app's writes), never a Worker's. A primary frozen until a
        replica is promoted acknowledges, when it thaws, every command queued meanwhile, and the
        failover discards them (Sentinel's residual window, docs/sentinel.md): with the timeout
        those commands fail instead, so only the last 500 ms of the freeze and the time until the
        switch are lost, whatever the freeze lasted. The price: commands slower than 500 ms fail,
        and a command that timed out may still have been applied, so retry idempotently (a BullMQ
        ``jobId``)."""
        return {**self.ioredis_options, "commandTimeout": 500}

    @property
    def ioredis_options(self) -> dict[str, Any]:
        """The connection options for ioredis (and BullMQ, which passes them on), as JSON-able
        data, measured in the failover drills (docs/sentinel.md, clients): every Sentinel, the
        master name; ``failoverDetector``, without which a frozen primary lost writes and jobs
        and recovery took 20 s; ``disconnectTimeout`` 100 ms, so that a socket to a frozen or cut
        off primary is destroyed at once instead of after 2 s; ``connectTimeout`` and
        ``sentinelCommandTimeout`` 1 s, so that an unreachable Sentinel costs 1 s, not 10. Add the
        functions ``retryStrategy`` and ``reconnectOnError`` (docs/sentinel.md); never a
        ``commandTimeout``."""
        return {
            "sentinels": [{"host": host, "port": self.port} for host in self.sentinel_hosts],
            "name": self.master_name,
            "failoverDetector": True,
            "disconnectTimeout": 100,
            "connectTimeout": 1000,
            "sentinelCommandTimeout": 1000,
        }

    @property
    def ioredis_secret_options(self) -> dict[str, SecretKeyRef]:
        """With the Valkey's ``auth_secret``: which ioredis options to fill from which Secret key,
        never the value: ``password`` (the primary and replicas) and ``sentinelPassword`` (the
        Sentinels), both the same key. Mount the key into the client's env (``secretKeyRef``) and
        set both options from it. Empty without AUTH."""
        secret = self.auth_secret
        return {} if secret is None else {"password": secret, "sentinelPassword": secret}

    # -- rendering -----------------------------------------------------------------

    def _render_template(self) -> str:
        master = self.master_name
        return "\n".join(
            [
                "# sentinel.conf rendered by cdk8s_valkey: the template of each pod's Sentinel configuration.",
                "# sentinel-start.sh merges it at every start with the state the Sentinel keeps on the pod's",
                f"# data claim ({STATE_DIR}/{TEMPLATE}): the settings come from here; the primary it",
                "# monitors, the epochs and the known Sentinels and replicas from the state. The primary below",
                "# is the bootstrap one, used only when neither the state nor another Sentinel knows better.",
                f"port {PORT}",
                "bind * -::*",
                *(
                    [
                        "# AUTH: sentinel-start.sh adds requirepass, auth-pass and sentinel-pass from the Secret,",
                        f"# in Sentinel's own file in memory ({RUN_DIR}), never here or on the claim.",
                    ]
                    if self.valkey.auth_secret is not None
                    else ["# No AUTH (ADR 0005): the Sentinels accept connections from other pods."]
                ),
                "protected-mode no",
                f"dir {STATE_DIR}",
                'logfile ""',
                "# Pod IPs change on restart; host names of the headless Service do not.",
                "sentinel resolve-hostnames yes",
                "sentinel announce-hostnames yes",
                f"sentinel monitor {master} {self.bootstrap_host} {self.valkey.port} {self.quorum}",
                f"sentinel down-after-milliseconds {master} {duration_millis(self.down_after)}",
                f"sentinel failover-timeout {master} {duration_millis(self.failover_timeout)}",
                "# One replica resyncs from a new primary at a time: the other keeps serving reads.",
                f"sentinel parallel-syncs {master} 1",
                "",
            ]
        )

    def _env(self) -> list[_plain.JsonObject]:
        """What both containers' scripts read (sentinel-lib.sh)."""
        sentinels = " ".join(f"{host}:{PORT}" for host in self.sentinel_hosts)
        return [
            _plain.field_env("POD_NAME", "metadata.name"),
            _plain.value_env("VALKEY_POD_DOMAIN", self.pod_domain),
            _plain.value_env("VALKEY_MASTER_NAME", self.master_name),
            _plain.value_env("VALKEY_SENTINELS", sentinels),
            _plain.value_env("VALKEY_BOOTSTRAP_PRIMARY", f"{self.bootstrap_host}:{self.valkey.port}"),
            _plain.value_env("VALKEY_SENTINEL_STATE", f"{STATE_DIR}/{TEMPLATE}"),
        ]

    def _wire_valkey_container(self) -> None:
        model = self.valkey.pod_model
        valkey = CONTAINER_VALKEY
        wait = duration_millis(self.options.role_wait) // 1000
        for var in [*self._env(), _plain.value_env("VALKEY_SENTINEL_WAIT_SECONDS", str(wait))]:
            model.add_env(valkey, var, order=ORDER_SENTINEL)
        model.add_volume_mount(valkey, VOLUME, MOUNT_PATH, read_only=True, order=ORDER_SENTINEL)
        model.wrap_command(valkey, "sh", f"{MOUNT_PATH}/{ROLE_SCRIPT}", order=ORDER_SENTINEL)
        lag = duration_millis(self.min_replicas_max_lag) // 1000
        model.add_args(
            valkey,
            "--min-replicas-to-write",
            str(self.min_replicas_to_write),
            "--min-replicas-max-lag",
            str(lag),
            # Valkey waits 5 s before a full sync to serve several replicas with one transfer; with
            # parallel-syncs 1 they come one at a time anyway, and the wait only delays a resync.
            "--repl-diskless-sync-delay",
            "0",
            order=ORDER_SENTINEL,
        )
        model.wrap_probe(valkey, "readiness", "sh", f"{MOUNT_PATH}/{PROBE_SCRIPT}", order=ORDER_SENTINEL)
        # A rolling update stops the primary last: hand over first, instead of a failover.
        model.set_pre_stop(valkey, "sh", f"{MOUNT_PATH}/{HANDOVER_SCRIPT}")

    def _container(self) -> ContainerModel:
        """The ``sentinel`` container, as pod-model data."""
        memory = quantity(self.options.memory_limit)
        probe = ["sh", f"{SCRIPTS_DIR}/{_scripts.PROBE}"]
        return ContainerModel(
            name=CONTAINER_NAME,
            image=self.valkey.image,
            command=["sh", f"{MOUNT_PATH}/{START_SCRIPT}"],
            # VALKEY_PORT: probe.sh asks this Sentinel, which answers PING with PONG.
            env=[
                *self._env(),
                _plain.value_env("VALKEY_SENTINEL_TEMPLATE", f"{MOUNT_PATH}/{TEMPLATE}"),
                _plain.value_env("VALKEY_PORT", str(PORT)),
                *self._auth_env(),
            ],
            ports=[{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
            resources=_plain.guaranteed_memory(cpu_amount(self.options.cpu_request), memory),
            security_context=_plain.restricted_container(),
            # A Sentinel starts in well under a second; the first start may ask the others
            # for 5 s (sentinel-start.sh).
            probes={
                "startup": _plain.exec_probe([*probe, "ready"], period=2, timeout=3, failures=30),
                "readiness": _plain.exec_probe([*probe, "ready"], period=5, timeout=3, failures=2),
                "liveness": _plain.exec_probe([*probe, "alive"], period=10, timeout=5, failures=6),
            },
            volume_mounts=[
                {"name": DATA_VOLUME, "mountPath": DATA_DIR},
                {"name": VOLUME, "mountPath": MOUNT_PATH, "readOnly": True},
                {"name": "scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
                *([{"name": RUN_VOLUME, "mountPath": RUN_DIR}] if self.auth_secret is not None else []),
            ],
        )

    def _auth_env(self) -> list[_plain.JsonObject]:
        """With AUTH: the password from the Secret (sentinel-start.sh writes it into Sentinel's file
        in memory and unsets it; the probes' valkey-cli reads REDISCLI_AUTH), and that file."""
        secret = self.auth_secret
        if secret is None:
            return []
        return [
            _plain.value_env("VALKEY_SENTINEL_CONFIG", f"{RUN_DIR}/{TEMPLATE}"),
            _plain.value_env("VALKEY_AUTH_LIB", f"{SCRIPTS_DIR}/{AUTH_LIB}"),
            *(_plain.secret_env(name, secret.name, secret.key) for name in (PASSWORD_ENV, CLI_PASSWORD_ENV)),
        ]

    def _export(self, exporter: ExporterSidecar) -> None:
        """The ``sentinel-exporter`` container, its Service and ServiceMonitor."""
        valkey = self.valkey
        assert self.metrics_service_name is not None
        container = exporter.container(
            name=EXPORTER_CONTAINER_NAME,
            target_port=PORT,
            listen_port=EXPORTER_PORT,
            port_name=EXPORTER_PORT_NAME,
            check_keys=False,
            # With AUTH the Sentinel requires the password too.
            password_env=(
                _plain.secret_env(EXPORTER_PASSWORD_ENV, self.auth_secret.name, self.auth_secret.key)
                if self.auth_secret is not None
                else None
            ),
        )
        valkey.pod_model.add_container(container, order=ORDER_SENTINEL_EXPORTER)
        labels = {**valkey.labels, "app.kubernetes.io/component": EXPORTER_COMPONENT}
        k8s.KubeService(
            self,
            "MetricsService",
            metadata=k8s.ObjectMeta(
                name=self.metrics_service_name, labels={**labels, **metrics_selector(valkey, EXPORTER_COMPONENT)}
            ),
            spec=k8s.ServiceSpec(
                type="ClusterIP",
                selector=valkey.match_labels,
                ports=[
                    k8s.ServicePort(
                        name="metrics", port=EXPORTER_PORT, target_port=port_name(EXPORTER_PORT_NAME), protocol="TCP"
                    )
                ],
            ),
        )
        interval, timeout = (duration_millis(d) // 1000 for d in (exporter.scrape_interval, exporter.scrape_timeout))
        _plain.api_object(
            self,
            "ServiceMonitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            name=self.service_name,
            labels={**labels, **exporter.service_monitor_labels},
            spec={
                "selector": {"matchLabels": metrics_selector(valkey, EXPORTER_COMPONENT)},
                "namespaceSelector": {"matchNames": [valkey.namespace]},
                "endpoints": [
                    {
                        "port": "metrics",
                        "path": exporter.metrics_path,
                        "interval": _prometheus_duration(interval),
                        "scrapeTimeout": _prometheus_duration(timeout),
                    }
                ],
            },
        )

    def _network_policy(self, exporter: ExporterSidecar | None) -> None:
        """What the Valkey's policy (6379 from its clients, no egress) lacks for this topology."""
        valkey = self.valkey
        assert self.network_policy_name is not None
        pods = [k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels=valkey.match_labels))]
        between_pods = [_port(valkey.port), _port(PORT)]
        ingress = [
            k8s.NetworkPolicyIngressRule(from_=pods, ports=between_pods),
            k8s.NetworkPolicyIngressRule(from_=list(valkey.allowed_clients), ports=[_port(PORT)]),
        ]
        if exporter is not None:
            monitoring = k8s.LabelSelector(match_labels={NAMESPACE_NAME_LABEL: exporter.metrics_namespace})
            ingress.append(
                k8s.NetworkPolicyIngressRule(
                    from_=[k8s.NetworkPolicyPeer(namespace_selector=monitoring)], ports=[_port(EXPORTER_PORT)]
                )
            )
        k8s.KubeNetworkPolicy(
            self,
            "NetworkPolicy",
            metadata=k8s.ObjectMeta(name=self.network_policy_name, labels=dict(self.labels)),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=valkey.match_labels),
                policy_types=["Ingress", "Egress"],
                ingress=ingress,
                # DNS on port 53 to any address: the resolver differs per cluster (kube-dns,
                # CoreDNS, NodeLocal DNSCache on a link-local address), as for the SmokeCheck Job.
                egress=[
                    k8s.NetworkPolicyEgressRule(to=pods, ports=between_pods),
                    k8s.NetworkPolicyEgressRule(ports=[_port(DNS_PORT, "UDP"), _port(DNS_PORT, "TCP")]),
                ],
            ),
        )


def _port(port: int, protocol: str = "TCP") -> k8s.NetworkPolicyPort:
    return k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(port), protocol=protocol)


def _millis(prop: str, duration: cdk8s.Duration) -> int:
    return duration_millis(check_duration(prop, duration))


def _whole_seconds(prop: str, duration: cdk8s.Duration, minimum: int, maximum: int | None) -> int:
    seconds = whole_seconds(check_duration(prop, duration))
    if seconds is None or seconds < minimum or (maximum is not None and seconds > maximum):
        limit = f"from {minimum}s to {maximum}s" if maximum is not None else f"at least {minimum}s"
        raise ValueError(f"{prop}: {shown_duration(duration)} is not allowed; use whole seconds, {limit}")
    return seconds
