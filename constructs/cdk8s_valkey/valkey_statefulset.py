"""ValkeyStatefulSet: ADR 0005's single-replica Valkey on a persistent volume."""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cdk8s
import cdk8s_plus_28 as kplus
from cdk8s_plus_28 import k8s
from constructs import Construct

from . import _labels, _plain, _registry, _scripts
from ._config import check_image, render_config
from ._validation import (
    check_annotations,
    check_cpu,
    check_dns_label,
    check_dns_subdomain,
    check_duration,
    check_instance,
    check_labels,
    check_size,
    cpu_amount,
    duration_millis,
    gibibytes,
    image_tag,
    k8s_quantity,
    quantity,
    seconds,
    size_to_bytes,
)
from .pod_model import ORDER_OWNER, ORDER_USER, ContainerModel, PodModel
from .pod_options import PodOptions
from .topology import CLIENT_SERVICE, DATA_VOLUME, Topology

DEFAULT_IMAGE = "valkey/valkey:8.1.11"
PORT = 6379
UID = 999  # the valkey user of the official Debian-based image

DATA_DIR = "/data"
CONTAINER_NAME = "valkey"
# On the client Service <name> when it does not select the Valkey pods: where clients go instead.
CLIENTS_ANNOTATION = "cdk8s-valkey/clients"
DEFAULT_STORAGE_GIB = 5
# On the data claim: GitOps tools never prune or delete it, whatever happens to the manifests.
KEEP_ANNOTATIONS: Mapping[str, str] = {
    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}
CONFIG_DIR = "/etc/valkey"
SCRIPTS_DIR = "/scripts"

# Smallest container limit we accept: Valkey's own footprint plus headroom for the
# fork of an AOF rewrite leaves too little for data below this.
MIN_MEMORY_LIMIT_BYTES = 64 << 20
# The entrypoint refuses to start below this maxmemory (VALKEY_MIN_MAXMEMORY_BYTES).
MIN_MAXMEMORY_BYTES = 16 << 20
# The volume must hold the AOF at its rewrite threshold (auto-aof-rewrite-percentage
# 100: twice the dataset) plus the new base the rewrite writes beside it.
STORAGE_TO_MEMORY_MIN = 3
# SIGTERM makes Valkey fsync the AOF and exit; a second is usually plenty, but a slow
# Longhorn volume under load can take much longer and SIGKILL would cut the flush.
TERMINATION_GRACE_SECONDS = 60
STARTUP_PERIOD_SECONDS = 5
# set_replicas: at most this many pods; the claim template's size (fixed: Kubernetes refuses any
# change to it) is the smallest storage_size allowed, so any claim it creates can only grow.
MAX_REPLICAS = 7
CLAIM_TEMPLATE_STORAGE = f"{STORAGE_TO_MEMORY_MIN * MIN_MEMORY_LIMIT_BYTES >> 20}Mi"
STARTUP_SECONDS_PER_GIB = 25
STARTUP_BUDGET_FLOOR_SECONDS = 60

# With auth_secret: the container's command runs this script, which hands the password to
# valkey-server on stdin and then runs the entrypoint. The env names are the tools' own:
# valkey-cli (the probes) reads REDISCLI_AUTH itself.
AUTH_SCRIPT = "requirepass.sh"
AUTH_LIB = "auth-lib.sh"  # the config quoting requirepass.sh and Sentinel's start share
PASSWORD_ENV = "VALKEY_PASSWORD"
CLI_PASSWORD_ENV = "REDISCLI_AUTH"

_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


@dataclass(frozen=True)
class SecretKeyRef:
    """One key of an existing Kubernetes Secret, such as the password Valkey requires.

    Only the reference is rendered (``secretKeyRef``): the value is read by the kubelet when
    the pod starts and never passes through the library, the ConfigMaps or ``dist/``.
    """

    name: str
    key: str

    def __init__(self, *, name: str, key: str) -> None:
        """
        :param name: Name of the Secret, in the namespace of the pod that uses it (a Kubernetes
            object name: at most 253 lower-case letters, digits, '-' and '.').
        :param key: Key inside the Secret's ``data`` (at most 253 letters, digits, '-', '_' and
            '.'), for example ``password``.
        """
        check_dns_subdomain("SecretKeyRef.name", name)
        if len(key) > 253 or not _SECRET_KEY.match(key) or key in (".", "..") or key.startswith(".."):
            raise ValueError(
                f"SecretKeyRef.key: {key!r} is not a valid Secret key; use at most 253 letters, "
                "digits, '-', '_' and '.', other than '.' and '..' and not starting with '..'"
            )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "key", key)

    def env_var(self, env_name: str) -> k8s.EnvVar:
        """An env var the kubelet fills from this key at container start."""
        return k8s.EnvVar(
            name=env_name,
            value_from=k8s.EnvVarSource(secret_key_ref=k8s.SecretKeySelector(name=self.name, key=self.key)),
        )


class ValkeyStatefulSet(Construct):
    """A single-replica Valkey 8.x StatefulSet with its Services and configuration.

    Renders, all named from ``name``:

    - ``ConfigMap <name>-config``: ``valkey.conf`` with AOF ``everysec`` and the RDB
      preamble, ``maxmemory-policy noeviction``, ``dir /data``, no AUTH (ADR 0005) unless
      ``auth_secret`` is given;
    - ``ConfigMap <name>-scripts``: the entrypoint, which sets ``maxmemory`` from the
      cgroup limit at start, and the probe script (plus ``requirepass.sh`` with AUTH);
    - ``Service <name>-headless`` (governs the pod's DNS) and ``Service <name>`` on 6379;
    - ``StatefulSet <name>``: one replica, a hardened pod, a ``data`` volumeClaimTemplate
      that is retained when the StatefulSet is deleted or scaled down;
    - with ``network_policy``: ``NetworkPolicy <name>``, port 6379 open to ``allowed_clients``
      only, no egress.

    It owns its pod as data (:attr:`pod_model`) and its :attr:`topology`, and renders both once,
    at synth. Other constructs contribute to the pod through the model's public methods (or
    :meth:`add_container`, :meth:`add_volume`, ...), set another topology
    (:meth:`set_topology`, as :class:`Sentinel` does) before any option reads it, and wire
    against the read-only attributes (``service_name``, ``port``, ``match_labels``, ``url``,
    ``pod_names``, ``claim_names``, ...). None of them edits the rendered JSON.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str | None = None,
        image: str = DEFAULT_IMAGE,
        memory_limit: cdk8s.Size = cdk8s.Size.mebibytes(512),
        maxmemory_ratio: float = 0.7,
        maxmemory_fallback: cdk8s.Size | None = None,
        cpu_request: kplus.Cpu = kplus.Cpu.millis(100),
        storage_size: cdk8s.Size | None = None,
        storage_class: str = "longhorn",
        startup_budget: cdk8s.Duration | None = None,
        extra_config: Mapping[str, str] | None = None,
        auth_secret: SecretKeyRef | None = None,
        network_policy: bool = False,
        allowed_clients: Sequence[k8s.NetworkPolicyPeer] | None = None,
        pod: PodOptions | None = None,
        service_annotations: Mapping[str, str] | None = None,
        allow_untested_image: bool = False,
    ) -> None:
        """
        :param name: Base name of every object (``<name>``, ``<name>-headless``,
            ``<name>-config``, ...) and the ``app.kubernetes.io/instance`` label. At most
            52 characters, the StatefulSet limit. Default: the construct id.
        :param image: Valkey image, pinned to an exact tag and optionally a digest
            (``valkey/valkey:8.1.11@sha256:...``). It must be a Valkey 8.x image (ADR 0005): the
            repository's last path component ``valkey`` (a registry or mirror prefix is fine) and
            an ``8.x.y`` tag, also beside a digest (``allow_untested_image`` lifts this).
            Default: ``valkey/valkey:8.1.11``, the newest 8.1 release when this library was made;
            upgrades are deliberate (ADR 0005).
        :param memory_limit: The container's memory request and limit (equal, so the pod
            is never the first to be evicted and the cgroup limit is what the entrypoint
            reads). At least 64 MiB. Default: 512 MiB, enough for sessions and BullMQ queues
            of a small cluster; watch the capacity alert before raising it.
        :param maxmemory_ratio: Share of the cgroup limit given to ``maxmemory``; the rest
            is headroom for the fork of an AOF rewrite and allocator overhead. A whole
            percentage between 0.01 and 0.99. Default: 0.7. ADR 0005 aims at ~0.8, but an AOF
            rewrite under its 10k writes/s took anonymous memory past 90 % of the limit at 0.8
            and 0.75; at 0.7 only for rewrites over ~4 s per GiB (docs/adr-0005.md, "How far the
            guardrail holds").
        :param maxmemory_fallback: ``maxmemory`` used when the container has no readable
            cgroup limit (a runtime without cgroups, an unlimited container). Default:
            ``maxmemory_ratio`` of ``memory_limit``, the value the cgroup would give.
        :param cpu_request: CPU request of the Valkey container. No CPU limit is rendered:
            throttling a single-threaded server turns into latency spikes for every client.
            Default: 100m.
        :param storage_size: Size of the ``data-<name>-0`` PersistentVolumeClaim. At least
            three times ``memory_limit`` (AOF at its rewrite threshold plus the rewrite's new
            base). It may grow on a live install (Longhorn expands the volume online when the
            StorageClass has ``allowVolumeExpansion: true``) but never shrink: Kubernetes
            refuses a smaller claim, and ``python -m cdk8s_valkey review`` flags it.
            Default: three times ``memory_limit`` rounded up to whole GiB, at least 5 GiB.
        :param storage_class: StorageClass of the claim. Default: ``longhorn`` (ADR 0005).
        :param startup_budget: Time the startup probe allows before the first ``PONG``,
            which covers replaying a large AOF after a crash; liveness only starts after.
            Default: 25 s per GiB of ``memory_limit``, at least 60 s: three times the worst
            restart measured by ``bench/`` (dataset at maxmemory plus an AOF tail as large).
        :param extra_config: More ``valkey.conf`` directives (``{"maxclients": "2000"}``).
            Directives that enforce a guardrail (``appendonly``, ``maxmemory-policy``,
            ``dir``, ``requirepass``, ...) are refused; ``save``, ``timeout`` and the other
            rendered tunables are replaced in place. Names and values are checked against Valkey
            8.1's directive table (generated from the real server): an unknown name, a yes/no or
            enumerated value the server refuses, or a number it cannot parse fails at synth
            instead of crash-looping the pod. Default: none.
        :param auth_secret: An existing Secret key holding the password Valkey then requires
            (``requirepass``, with ``protected-mode yes``), e.g.
            ``SecretKeyRef(name="valkey-auth", key="password")``. The kubelet puts it in the
            container's env; ``requirepass.sh`` hands it to valkey-server on stdin, never on a
            command line, and the probes use it through ``REDISCLI_AUTH``. An ExporterSidecar
            gets it as ``REDIS_PASSWORD``. Under :class:`Sentinel` it is also every replica's
            ``masterauth`` and the Sentinels' own password (docs/sentinel.md, AUTH). The library
            never creates or embeds a password. The pod restarts when the reference changes, not
            when the Secret's content does (docs/security.md: rotation). Default: no AUTH
            (ADR 0005): every client that can reach the Service reads and writes every key.
        :param network_policy: Render ``NetworkPolicy <name>``: the Valkey pod accepts
            connections only on port 6379 and only from ``allowed_clients``, and opens none
            (Valkey needs no egress; the exporter uses localhost). Policies add up: an
            ExporterSidecar opens its metrics port in a policy of its own. Needs a CNI that
            enforces NetworkPolicy. Default: false, no policy: every pod that can route to the
            Service can connect, from any namespace (ADR 0005).
        :param allowed_clients: Who may connect to port 6379 under ``network_policy``: peers
            that each set a ``pod_selector``, ``namespace_selector`` or ``ip_block``, e.g.
            ``[k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels={"app": "api"}))]``.
            Only with ``network_policy=True``; an empty list is refused (Kubernetes reads it as
            "from anywhere"). Default: every pod of the Valkey's own namespace
            (``podSelector: {}``), the clients ADR 0005 intends.
        :param pod: Placement and metadata of the pod (node selector, tolerations, affinity,
            priority class, extra labels and annotations, image pull secrets), see
            :class:`PodOptions`. Default: none of them; the pod schedules anywhere.
        :param service_annotations: Annotations of the client Service ``<name>`` (a service
            mesh, an internal load balancer). Default: none.
        :param allow_untested_image: Accept an ``image`` this library is not tested with: another
            major version (such as ``valkey/valkey:9.0.0``), a digest without a tag, or an image
            whose repository is not named ``valkey``. The image is rendered as given, and
            ``extra_config`` is then checked for the guardrails and the line syntax only, not
            against the Valkey 8.1 directive table. Rehearse such an upgrade first (the upgrade
            runbook in docs/operations.md). Default: false: only Valkey 8.x images, which the
            entrypoint, probes, configuration and alerts are tested with (ADR 0005).
        """
        super().__init__(scope, id)

        # Validate everything before defining any child.
        self.name = _resolve_name(name, id)
        self.image = image
        self.version = _image_version(image_tag("image", image))
        check_image("image", image, allow_untested=allow_untested_image)
        memory_bytes = size_to_bytes(check_size("memory_limit", memory_limit))
        if memory_bytes < MIN_MEMORY_LIMIT_BYTES:
            raise ValueError(
                f"memory_limit: {quantity(memory_limit)} is too small to run Valkey; "
                f"use at least {MIN_MEMORY_LIMIT_BYTES >> 20}Mi"
            )
        self.memory_limit = memory_limit
        self.maxmemory_percent = _percent("maxmemory_ratio", maxmemory_ratio)
        self.maxmemory_ratio = maxmemory_ratio
        self.maxmemory_fallback_bytes = _fallback_bytes(maxmemory_fallback, memory_limit, self.maxmemory_percent)
        self.cpu_request = check_cpu("cpu_request", cpu_request)
        self.storage_size = _storage_size(storage_size, memory_limit)
        self.storage_class = check_dns_subdomain("storage_class", storage_class)
        if startup_budget is None:
            # bench/README.md (restart): worst case 7.8 s per GiB of limit here, times 3 for
            # Longhorn, jemalloc and a busy node; the floor covers small instances.
            budget_seconds = max(STARTUP_BUDGET_FLOOR_SECONDS, -(-STARTUP_SECONDS_PER_GIB * memory_bytes // (1 << 30)))
            startup_budget = seconds(budget_seconds)
        budget_seconds = duration_millis(check_duration("startup_budget", startup_budget)) // 1000
        if budget_seconds < STARTUP_PERIOD_SECONDS * 2:
            raise ValueError(
                f"startup_budget: {budget_seconds}s leaves no time to load the AOF; "
                f"use at least {STARTUP_PERIOD_SECONDS * 2}s"
            )
        self.startup_budget = startup_budget
        if auth_secret is not None and not isinstance(auth_secret, SecretKeyRef):
            raise ValueError(
                f"auth_secret: {auth_secret!r} is not a SecretKeyRef; pass "
                "SecretKeyRef(name=<Secret name>, key=<key in the Secret>)"
            )
        self.auth_secret = auth_secret
        self.network_policy = network_policy
        self.allowed_clients = _check_clients(network_policy, allowed_clients)
        if pod is not None:
            check_instance("pod", pod, PodOptions, "a PodOptions(...)")
        self.pod = pod or PodOptions()
        # Typed by the caller: converted by cdk8s-plus once, when given (one jsii round trip).
        self._placement = _plain.pod_spec_fields(tolerations=self.pod.tolerations or (), affinity=self.pod.affinity)
        self._service_annotations = check_annotations("service_annotations", service_annotations or {})
        self.extra_config = dict(extra_config or {})
        self.config_text = render_config(
            extra_config or {},
            port=PORT,
            data_dir=DATA_DIR,
            auth=auth_secret is not None,
            check_directives=not allow_untested_image,
        )

        self.namespace: str | None = _registry.namespace_of(self)
        self.port = PORT
        self.service_name = self.name
        self.headless_service_name = f"{self.name}-headless"
        self.config_map_name = f"{self.name}-config"
        self.scripts_config_map_name = f"{self.name}-scripts"
        # The name the StatefulSet's claim template gave it in 0.1.x, so installs keep their volume.
        self.claim_name = f"{DATA_VOLUME}-{self.name}-0"
        self.host = f"{self.service_name}.{self.namespace}.svc" if self.namespace else self.service_name
        self._match_labels = _labels.match_labels(self.name)
        self.labels = _labels.common_labels(self.name, self.version, "database")
        _registry.register(
            self,
            [
                ("ConfigMap", self.config_map_name),
                ("ConfigMap", self.scripts_config_map_name),
                ("Service", self.headless_service_name),
                ("Service", self.service_name),
                ("PersistentVolumeClaim", self.claim_name),
                ("StatefulSet", self.name),
                *([("NetworkPolicy", self.name)] if network_policy else []),
            ],
        )
        self._topology = Topology.single(self.name)
        self._topology_readers: list[str] = []
        self._client_selector: dict[str, str] | None = None
        self._client_selector_set = False
        self._checksum_inputs: dict[str, str] = {}
        # The pod as data: every container, volume, env var, probe and annotation, rendered once
        # at synth. Other constructs contribute through pod_model's methods (or the add_* below).
        self.pod_model = PodModel(self.name, reserved_volumes=(DATA_VOLUME,))
        self.pod_model.add_container(self._valkey_container(budget_seconds), order=ORDER_OWNER)
        for volume, source in (("config", self.config_map_name), ("scripts", self.scripts_config_map_name)):
            self.pod_model.add_volume({"name": volume, "configMap": {"name": source}}, order=ORDER_OWNER)

        scripts = {
            _scripts.ENTRYPOINT: _scripts.script(_scripts.ENTRYPOINT),
            _scripts.PROBE: _scripts.script(_scripts.PROBE),
        }
        if auth_secret is not None:
            scripts[AUTH_SCRIPT] = _scripts.script(AUTH_SCRIPT)
            scripts[AUTH_LIB] = _scripts.script(AUTH_LIB)
        k8s.KubeConfigMap(
            self,
            "Config",
            metadata=self._metadata(self.config_map_name),
            data={"valkey.conf": self.config_text},
        )
        k8s.KubeConfigMap(
            self,
            "Scripts",
            metadata=self._metadata(self.scripts_config_map_name),
            data=scripts,
        )
        self._checksum_inputs["valkey.conf"] = self.config_text
        self._checksum_inputs.update(scripts)
        if auth_secret is not None:
            # The password is unknown at synth: a new Secret or key restarts the pod, a new
            # value in the same key does not (docs/security.md: rotation).
            self._checksum_inputs["auth-secret"] = f"{auth_secret.name}\0{auth_secret.key}"

        # Both Services render from the topology (and the client Service from
        # set_client_service_selector): here, and again by this construct when either changes.
        self.headless_service = _plain.api_object(
            self,
            "HeadlessService",
            api_version="v1",
            kind="Service",
            name=self.headless_service_name,
            labels=self.labels,
            spec=self._headless_service_spec(),
        )
        self.service = _plain.api_object(
            self,
            "Service",
            api_version="v1",
            kind="Service",
            name=self.service_name,
            labels=self.labels,
            annotations=self._service_annotations,
            spec=self._client_service_spec(),
        )
        self.claim = self._claim("Data", self.claim_name)
        self.claims: list[k8s.KubePersistentVolumeClaim] = [self.claim]
        # Plain JSON rendered at synth, not k8s.StatefulSetSpec: the typed pod template was the
        # costliest part of a synth (_plain.py); tests/test_manifests.py validates it instead.
        self.statefulset = _plain.RenderedApiObject(
            self,
            "Resource",
            api_version="apps/v1",
            kind="StatefulSet",
            name=self.name,
            labels=self.labels,
            render=self._statefulset_spec,
        )
        self.network_policy_name: str | None = None
        if network_policy:
            self.network_policy_name = self.name
            k8s.KubeNetworkPolicy(
                self,
                "NetworkPolicy",
                metadata=self._metadata(self.network_policy_name),
                spec=k8s.NetworkPolicySpec(
                    pod_selector=k8s.LabelSelector(match_labels=self.match_labels),
                    policy_types=["Ingress", "Egress"],
                    ingress=[
                        k8s.NetworkPolicyIngressRule(
                            from_=list(self.allowed_clients),
                            ports=[k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(self.port), protocol="TCP")],
                        )
                    ],
                    # Empty with Egress in policyTypes: no connection out of the pod at all.
                    egress=[],
                ),
            )

    # -- wiring points -------------------------------------------------------------

    @property
    def match_labels(self) -> dict[str, str]:
        """The pod selector labels (a copy: changing it changes nothing rendered)."""
        return dict(self._match_labels)

    @property
    def url(self) -> str:
        """Connection URL for clients in the cluster. It never holds a password: with
        ``auth_secret``, clients take the password from that Secret themselves."""
        return f"redis://{self.host}:{self.port}"

    @property
    def container_names(self) -> frozenset[str]:
        """Names of the pod's containers so far (``valkey`` and the sidecars added)."""
        return self.pod_model.container_names

    @property
    def service_annotations(self) -> dict[str, str]:
        """The client Service's annotations (a copy)."""
        return dict(self._service_annotations)

    def add_container(self, container: k8s.Container, *, order: int = ORDER_USER) -> None:
        """Add a sidecar container to the pod. Raises on a duplicate container name. Containers
        render by ``order`` (the library's own come first), then in the order they were added."""
        # As cdk8s-plus renders a typed container (converted once, here).
        self.pod_model.add_container(_plain.pod_spec_fields(containers=[container])["containers"][0], order=order)

    def add_volume(self, volume: k8s.Volume, *, order: int = ORDER_USER) -> None:
        """Add a pod volume for a sidecar. Raises on a duplicate volume name."""
        self.pod_model.add_volume(_plain.pod_spec_fields(volumes=[volume])["volumes"][0], order=order)

    # -- the topology: what the pods are to each other -------------------------------------

    @property
    def topology(self) -> Topology:
        """The pods and their roles (:class:`Topology`): one pod unless a topology such as
        :class:`Sentinel` set another. Options render for it; once read, it can no longer change
        (an option would otherwise render for pods that do not exist)."""
        return self._read_topology("topology")

    @property
    def replicas(self) -> int:
        """Pods of the StatefulSet (primary included)."""
        return self._topology.replicas

    @property
    def pod_names(self) -> tuple[str, ...]:
        """The pods' names, ``<name>-0`` to ``<name>-<replicas - 1>`` (:attr:`topology`)."""
        return self._read_topology("pod_names").pod_names

    @property
    def claim_names(self) -> tuple[str, ...]:
        """The data claims, one per pod: ``data-<name>-0`` to ``data-<name>-<replicas - 1>``."""
        return self._read_topology("claim_names").claim_names

    def set_topology(self, topology: Topology, *, client_note: str | None = None) -> None:
        """Run the pods of ``topology`` (once, before any option reads :attr:`topology`). What
        the pods are to each other (a primary and its replicas) is the caller's to set up.

        With more than one pod, a pod template is the same for every pod, so one claim name
        cannot serve them all: the StatefulSet gets a claim template ``data``, whose claims
        ``data-<name>-<ordinal>`` are also rendered as claims of their own like ``data-<name>-0``
        (never pruned, growing in place; the StatefulSet adopts them). The template stays as it
        is first rendered, because Kubernetes refuses any change to it: its size is the smallest
        this construct allows, which each claim may only grow from. Pods start and stop together
        (``podManagementPolicy: Parallel``), so that no pod waits for another's readiness, and the
        claims are kept when the StatefulSet is deleted or scaled down. Both fields, and the claim
        template, are frozen on a live StatefulSet: going from one pod to several is the one-time
        ``kubectl delete statefulset <name> --cascade=orphan`` (docs/operations.md).

        :param client_note: With a topology whose clients do not use the client Service: the
            annotation ``cdk8s-valkey/clients`` on it, saying where clients go instead.
        """
        check_instance("topology", topology, Topology, "a Topology(...)")
        if topology.name != self.name:
            raise ValueError(f"topology: it names {topology.name!r}, not this Valkey {self.name!r}")
        if not 1 <= topology.replicas <= MAX_REPLICAS:
            raise ValueError(
                f"replicas: {topology.replicas!r} is not allowed; use a whole number from 2 to {MAX_REPLICAS}"
            )
        if self._topology.replicated:
            raise ValueError(f"replicas: {self.name!r} already runs {self._topology.replicas} pods; set them once")
        if self._topology_readers:
            raise ValueError(
                f"topology: {self._topology_readers[0]} of {self.name!r} was already read for a single pod; "
                "set the topology (create the Sentinel) before the options that render for it"
            )
        self._topology = topology
        for ordinal in range(1, topology.replicas):
            self.claims.append(self._claim(f"Data{ordinal}", topology.claim_names[ordinal]))
        _registry.register(self, [("PersistentVolumeClaim", name) for name in topology.claim_names[1:]])
        for claim in self.claims:
            # Claims first in the output: kubectl apply then creates them before the StatefulSet.
            self.statefulset.add_dependency(claim)
        if client_note is not None and not self._client_selector_set:
            self.service.metadata.add_annotation(CLIENTS_ANNOTATION, client_note)
        self._render_services()

    def set_replicas(self, replicas: int) -> None:
        """Deprecated (0.2's hook): ``set_topology(Topology.sentinel(name, replicas))``, which also
        says what the pods are to each other. Kept for one minor release."""
        warnings.warn(
            "ValkeyStatefulSet.set_replicas is deprecated: use "
            "set_topology(Topology.sentinel(valkey.name, replicas)); it goes in 0.4",
            DeprecationWarning,
            stacklevel=2,
        )
        self.set_topology(Topology.sentinel(self.name, replicas))

    def set_client_service_selector(self, selector: Mapping[str, str] | None, *, note: str | None = None) -> None:
        """Point the client Service ``<name>`` at other pods (a primary endpoint such as HAProxy),
        or at none (``None``: no endpoints). Once. Default: the Valkey pods while the topology's
        clients use the Service (one pod), else none.

        :param note: The annotation ``cdk8s-valkey/clients`` on the Service, saying what it
            points at. Default: none (a topology's note is kept).
        """
        if self._client_selector_set:
            raise ValueError(f"selector: the client Service {self.service_name!r} was already pointed elsewhere")
        self._client_selector = None if selector is None else check_labels("selector", dict(selector))
        self._client_selector_set = True
        if note is not None:
            self.service.metadata.add_annotation(CLIENTS_ANNOTATION, note)
        self._render_services()

    def add_claim_labels(self, labels: Mapping[str, str]) -> None:
        """Label every data claim of the topology (a backup schedule's group, ...). Reads the
        topology: set it first."""
        self._read_topology("claims")
        for claim in self.claims:
            metadata = claim.metadata
            for key, value in check_labels("labels", dict(labels)).items():
                metadata.add_label(key, value)

    # -- contributions to the valkey container (see pod_model for the whole pod) -----------

    def wrap_command(self, *prefix: str, order: int = ORDER_USER) -> None:
        """Run the ``valkey`` container's command through a wrapper: the command becomes ``prefix``
        followed by the current one, which the wrapper must ``exec`` (with arguments it may add)."""
        self.pod_model.wrap_command(CONTAINER_NAME, *prefix, order=order)

    def add_args(self, *args: str, order: int = ORDER_USER) -> None:
        """Append arguments to the ``valkey`` container (``args``): the entrypoint hands them to
        valkey-server, where a command-line option overrides ``valkey.conf``."""
        self.pod_model.add_args(CONTAINER_NAME, *args, order=order)

    def add_env(
        self, name: str, *, value: str | None = None, field_path: str | None = None, order: int = ORDER_USER
    ) -> None:
        """Add an env var to the ``valkey`` container: a ``value``, or a ``field_path`` of the pod
        (downward API, e.g. ``metadata.name``). Raises on a name the container already has."""
        if (value is None) == (field_path is None):
            raise ValueError(f"env {name!r}: give a new name and exactly one of value and field_path")
        var = _plain.value_env(name, value) if value is not None else _plain.field_env(name, str(field_path))
        self.pod_model.add_env(CONTAINER_NAME, var, order=order)

    def add_volume_mount(
        self, volume: str, mount_path: str, *, read_only: bool = True, order: int = ORDER_USER
    ) -> None:
        """Mount a pod volume (see :meth:`add_volume`) into the ``valkey`` container."""
        self.pod_model.add_volume_mount(CONTAINER_NAME, volume, mount_path, read_only=read_only, order=order)

    def wrap_probe(self, kind: str, *prefix: str, order: int = ORDER_USER) -> None:
        """Run one exec probe of the ``valkey`` container (``startup``, ``readiness`` or ``liveness``)
        through a wrapper: its command becomes ``prefix`` followed by the current one."""
        self.pod_model.wrap_probe(CONTAINER_NAME, kind, *prefix, order=order)

    def set_pre_stop(self, *command: str) -> None:
        """Run ``command`` in the ``valkey`` container before the kubelet stops it (a ``preStop``
        exec hook), within the pod's termination grace period."""
        self.pod_model.set_pre_stop(CONTAINER_NAME, *command)

    def add_pod_annotation(self, key: str, value: str) -> None:
        """Annotate the pod template, e.g. a checksum of a ConfigMap the pod mounts: a new value
        rolls the pods."""
        if key == "checksum/config" or key in (self.pod.annotations or {}):
            raise ValueError(f"annotation {key!r} is already set on the {self.name} pod")
        self.pod_model.add_annotation(key, value)

    def _read_topology(self, what: str) -> Topology:
        if what not in self._topology_readers:
            self._topology_readers.append(what)
        return self._topology

    # -- rendering -----------------------------------------------------------------

    def _metadata(self, name: str) -> k8s.ObjectMeta:
        return k8s.ObjectMeta(name=name, labels=dict(self.labels))

    def _service_port(self) -> _plain.JsonObject:
        return {"name": "valkey", "port": self.port, "targetPort": "valkey", "protocol": "TCP"}

    def _render_services(self) -> None:
        """Render both Services' spec again (one JSON patch each replaces the whole ``spec``)."""
        _plain.set_spec(self.headless_service, self._headless_service_spec())
        _plain.set_spec(self.service, self._client_service_spec())

    def _headless_service_spec(self) -> _plain.JsonObject:
        return {
            "clusterIP": "None",
            "selector": self.match_labels,
            "ports": [self._service_port()],
            "publishNotReadyAddresses": True if self._topology.publish_not_ready_addresses else None,
        }

    def _client_service_spec(self) -> _plain.JsonObject:
        if self._client_selector_set:
            selector = self._client_selector
        elif self._topology.client_endpoint == CLIENT_SERVICE:
            selector = self.match_labels
        else:
            # The Service would spread clients over the primary and the replicas (READONLY on
            # writes): without a selector it has no endpoints, and connections are refused.
            selector = None
        return {"type": "ClusterIP", "selector": selector, "ports": [self._service_port()]}

    def _claim(self, id: str, name: str) -> k8s.KubePersistentVolumeClaim:
        return k8s.KubePersistentVolumeClaim(
            self,
            id,
            metadata=k8s.ObjectMeta(
                name=name,
                # No version label: a claim outlives images, and an upgrade should not touch it.
                labels={k: v for k, v in self.labels.items() if k != _labels.VERSION},
                # The data outlives any change of the manifests: GitOps never prunes or deletes it.
                annotations=dict(KEEP_ANNOTATIONS),
            ),
            spec=k8s.PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                storage_class_name=self.storage_class,
                resources=k8s.ResourceRequirements(requests={"storage": k8s_quantity(quantity(self.storage_size))}),
            ),
        )

    def _checksum(self) -> str:
        digest = hashlib.sha256()
        for key in sorted(self._checksum_inputs):
            digest.update(f"{key}\0{self._checksum_inputs[key]}\0".encode())
        return digest.hexdigest()

    def _valkey_container(self, budget_seconds: int) -> ContainerModel:
        """The ``valkey`` container as data."""
        memory = quantity(self.memory_limit)
        probe = ["sh", f"{SCRIPTS_DIR}/{_scripts.PROBE}"]
        env = [
            _plain.value_env("VALKEY_CONFIG_FILE", f"{CONFIG_DIR}/valkey.conf"),
            _plain.value_env("VALKEY_DATA_DIR", DATA_DIR),
            _plain.value_env("VALKEY_MAXMEMORY_PERCENT", str(self.maxmemory_percent)),
            _plain.value_env("VALKEY_MAXMEMORY_FALLBACK_BYTES", str(self.maxmemory_fallback_bytes)),
            _plain.value_env("VALKEY_MIN_MAXMEMORY_BYTES", str(MIN_MAXMEMORY_BYTES)),
        ]
        command = ["sh", f"{SCRIPTS_DIR}/{_scripts.ENTRYPOINT}"]
        if self.auth_secret is not None:
            # Both from the Secret: requirepass.sh reads (and unsets) VALKEY_PASSWORD, the
            # probes' valkey-cli reads REDISCLI_AUTH. Neither is ever on a command line.
            secret = self.auth_secret
            env += [_plain.secret_env(n, secret.name, secret.key) for n in (PASSWORD_ENV, CLI_PASSWORD_ENV)]
            command = ["sh", f"{SCRIPTS_DIR}/{AUTH_SCRIPT}"]
        return ContainerModel(
            name=CONTAINER_NAME,
            image=self.image,
            command=command,
            env=env,
            ports=[{"name": "valkey", "containerPort": self.port, "protocol": "TCP"}],
            resources=_plain.guaranteed_memory(cpu_amount(self.cpu_request), memory),
            security_context=_plain.restricted_container(),
            # Startup and readiness demand PONG; liveness also accepts LOADING so that
            # replaying a large AOF never gets the pod restarted in a loop.
            probes={
                "startup": _plain.exec_probe(
                    [*probe, "ready"],
                    period=STARTUP_PERIOD_SECONDS,
                    timeout=3,
                    failures=-(-budget_seconds // STARTUP_PERIOD_SECONDS),
                ),
                "readiness": _plain.exec_probe([*probe, "ready"], period=5, timeout=3, failures=2),
                "liveness": _plain.exec_probe([*probe, "alive"], period=10, timeout=5, failures=6),
            },
            volume_mounts=[
                {"name": DATA_VOLUME, "mountPath": DATA_DIR},
                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                {"name": "scripts", "mountPath": SCRIPTS_DIR, "readOnly": True},
            ],
        )

    def _statefulset_spec(self) -> _plain.JsonObject:
        """The StatefulSet's ``spec`` (``k8s.StatefulSetSpec``) as JSON, from the pod model and
        the topology: rendered once, at synth."""
        pod = self.pod
        topology = self._topology
        leading: list[_plain.JsonObject] = []
        spec: _plain.JsonObject = {}
        if topology.replicated:
            # The claim template replaces the pod volume `data`: each pod mounts its own claim.
            spec = {
                "podManagementPolicy": "Parallel",
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": DATA_VOLUME},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": CLAIM_TEMPLATE_STORAGE}},
                            "storageClassName": self.storage_class,
                        },
                    }
                ],
            }
        else:
            leading = [{"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": self.claim_name}}]
        return {
            **spec,
            "replicas": topology.replicas,
            "serviceName": self.headless_service_name,
            "selector": {"matchLabels": self.match_labels},
            "template": {
                "metadata": {
                    "labels": {**(pod.labels or {}), **self.labels},
                    "annotations": {
                        **(pod.annotations or {}),
                        **self.pod_model.annotations(),
                        "checksum/config": self._checksum(),
                    },
                },
                "spec": {
                    **_plain.hardened_pod(
                        node_selector=pod.node_selector,
                        priority_class_name=pod.priority_class_name,
                        image_pull_secrets=pod.image_pull_secrets,
                        uid=UID,
                        grace_seconds=TERMINATION_GRACE_SECONDS,
                        fs_group=True,
                    ),
                    "containers": self.pod_model.render_containers(),
                    "volumes": self.pod_model.render_volumes(leading),
                    # Typed by the caller (PodOptions): converted by cdk8s-plus, when given.
                    **self._placement,
                },
            },
        }


def _check_clients(
    network_policy: bool, allowed_clients: Sequence[k8s.NetworkPolicyPeer] | None
) -> tuple[k8s.NetworkPolicyPeer, ...]:
    """The ingress peers of the NetworkPolicy: the given ones, or every pod of the namespace."""
    if allowed_clients is None:
        return (k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector()),)
    if not network_policy:
        raise ValueError(
            "allowed_clients: only applies with network_policy=True; set network_policy=True "
            "to render the NetworkPolicy, or leave allowed_clients out"
        )
    peers = tuple(allowed_clients)
    if not peers:
        raise ValueError(
            f"allowed_clients: {allowed_clients!r} is empty, which Kubernetes reads as 'from anywhere'; "
            "list the peers, or leave allowed_clients out for every pod of the Valkey's namespace"
        )
    for index, peer in enumerate(peers):
        if not isinstance(peer, k8s.NetworkPolicyPeer):
            raise ValueError(f"allowed_clients: item {index} ({peer!r}) is not a k8s.NetworkPolicyPeer")
        if peer.pod_selector is None and peer.namespace_selector is None and peer.ip_block is None:
            raise ValueError(
                f"allowed_clients: item {index} selects nothing; set its pod_selector, namespace_selector or ip_block"
            )
    return peers


def _percent(prop: str, ratio: float) -> int:
    percent = round(ratio * 100)
    if not 0 < ratio < 1 or abs(percent - ratio * 100) > 1e-9 or not 1 <= percent <= 99:
        raise ValueError(
            f"{prop}: {ratio!r} is not allowed; use a whole percentage strictly between 0 and 1, "
            "from 0.01 to 0.99 (for example 0.8)"
        )
    return percent


def _image_version(tag: str) -> str | None:
    """The app.kubernetes.io/version label value: the tag, when the image has one."""
    return None if tag.startswith("sha256:") else tag.lstrip("v")


def _suggest_name(construct_id: str) -> str:
    """A valid name close to a construct id: ``SessionCache`` -> ``session-cache``."""
    dashed = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", construct_id).lower()
    dashed = re.sub(r"[^a-z0-9-]+", "-", dashed).strip("-")
    return dashed[:52].rstrip("-") or "valkey"


def _resolve_name(name: str | None, construct_id: str) -> str:
    if name is not None:
        return check_dns_label("name", name, max_length=52)
    try:
        return check_dns_label("name", construct_id, max_length=52)
    except ValueError as error:
        raise ValueError(
            f"name: not given, so it comes from the construct id {construct_id!r}, which is not a valid "
            f"Kubernetes name ({error}); pass name={_suggest_name(construct_id)!r} or use a lower-case id"
        ) from None


def _fallback_bytes(fallback: cdk8s.Size | None, memory_limit: cdk8s.Size, percent: int) -> int:
    memory_bytes = size_to_bytes(memory_limit)
    if fallback is None:
        return memory_bytes * percent // 100
    fallback_bytes = size_to_bytes(check_size("maxmemory_fallback", fallback))
    if not MIN_MAXMEMORY_BYTES <= fallback_bytes < memory_bytes:
        raise ValueError(
            f"maxmemory_fallback: {quantity(fallback)} must be at least "
            f"{MIN_MAXMEMORY_BYTES >> 20}Mi and below memory_limit ({quantity(memory_limit)})"
        )
    return fallback_bytes


def _storage_size(storage_size: cdk8s.Size | None, memory_limit: cdk8s.Size) -> cdk8s.Size:
    """The claim's size: the one given, or 3 x memory_limit in whole GiB (at least 5 GiB)."""
    minimum_bytes = STORAGE_TO_MEMORY_MIN * size_to_bytes(memory_limit)
    if storage_size is None:
        return gibibytes(max(DEFAULT_STORAGE_GIB, -(-minimum_bytes // (1 << 30))))
    if size_to_bytes(check_size("storage_size", storage_size)) < minimum_bytes:
        minimum = cdk8s.Size.kibibytes(minimum_bytes // 1024)
        raise ValueError(
            f"storage_size: {quantity(storage_size)} cannot hold the AOF and its rewrite "
            f"side by side for memory_limit {quantity(memory_limit)}; use at least "
            f"{quantity(minimum)} ({STORAGE_TO_MEMORY_MIN} x memory_limit), or leave storage_size out "
            "for that; on a live install the claim can grow but never shrink"
        )
    return storage_size
