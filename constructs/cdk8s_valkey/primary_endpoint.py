"""PrimaryEndpoint: the client Service of a Sentinel topology, pointed at the current primary
through HAProxy, for clients that cannot speak Sentinel."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cdk8s
import cdk8s_plus_28 as kplus
from cdk8s_plus_28 import k8s
from constructs import Construct

from . import _labels, _plain, _registry, _scripts
from ._validation import (
    check_cpu,
    check_dns_subdomain,
    check_instance,
    check_size,
    cpu_amount,
    image_tag,
    quantity,
    size_to_bytes,
)
from .sentinel import PORT as SENTINEL_PORT
from .sentinel import Sentinel

COMPONENT = "primary-endpoint"
CONFIG_FILE = "haproxy.cfg"
CONFIG_DIR = "/usr/local/etc/haproxy"  # where the official image looks for it
CONTAINER_NAME = "haproxy"
PORT = 6379
PORT_NAME = "valkey"
HEALTH_PORT = 8404
HEALTH_PORT_NAME = "health"
HEALTH_PATH = "/healthz"
PASSWORD_ENV = "VALKEY_PASSWORD"
# The official image runs HAProxy as the user haproxy, uid and gid 99.
UID = 99
DEFAULT_IMAGE = "haproxy:3.2.4"
MIN_MEMORY_BYTES = 32 << 20
MAX_REPLICAS = 10
MAX_CONNECTIONS = 100_000
DNS_PORT = 53
# Checks once a second; a Valkey node must fail two in a row to be marked down (one slow answer,
# during a fork, does not cut every client off), and answer three in a row (1 s at least) to be used
# again, which keeps a primary thawed after a freeze out until the Sentinels have moved on (with
# two, the endpoint drill of Sentinel's residual window sent clients to it once in two runs). A
# new primary waits about as long anyway, for a replica to make it writable. A Sentinel's
# answer counts at once either way: it is what the routing rule compares.
VALKEY_CHECK = "inter 1s fastinter 500ms downinter 250ms fall 2 rise 3"
SENTINEL_CHECK = "inter 1s downinter 250ms fall 1 rise 1"
# HAProxy stops at once on SIGTERM (its clients reconnect to the other pod): 10 s is plenty.
TERMINATION_GRACE_SECONDS = 10


@dataclass(frozen=True, kw_only=True)
class PrimaryEndpointOptions:
    """Props of :class:`PrimaryEndpoint`, also taken by :class:`Valkey` as ``primary_endpoint=``.

    :param replicas: HAProxy pods behind the client Service. Each decides on its own from the
        same checks, so any number routes to the same primary. From 1 to 10. Default: 2, on
        different nodes where possible (preferred anti-affinity), with a PodDisruptionBudget
        of one unavailable pod: a node drain never takes the endpoint away.
    :param image: The HAProxy image, pinned to an exact version tag. Default:
        ``haproxy:3.2.4`` (HAProxy 3.2 LTS; the configuration uses nothing newer than 2.6,
        Debian's, which the tests run).
    :param max_connections: Client connections each HAProxy pod accepts (``maxconn``); more
        wait in the kernel's queue. About 35 KiB of memory each at most. From 1 to 100000.
        Default: 2000 (a BullMQ Worker holds 2 connections, a Queue 1).
    :param memory_limit: Memory request and limit of the HAProxy container. At least 32 MiB.
        Default: 128 MiB: ``max_connections`` 2000 with both buffers full, and room to spare.
    :param cpu_request: CPU request of the HAProxy container; no CPU limit (throttling would
        add latency to every command). Default: 50m.
    :param cluster_domain: The cluster's DNS domain. HAProxy re-resolves the pods' names at run
        time without the resolver's search list, so it needs them fully qualified:
        ``<pod>.<headless>.<namespace>.svc.<cluster_domain>``. Default: ``cluster.local``.
    """

    replicas: int = 2
    image: str = DEFAULT_IMAGE
    max_connections: int = 2000
    memory_limit: cdk8s.Size = cdk8s.Size.mebibytes(128)
    cpu_request: kplus.Cpu = kplus.Cpu.millis(50)
    cluster_domain: str = "cluster.local"

    def __post_init__(self) -> None:
        for prop, value, top in (
            ("replicas", self.replicas, MAX_REPLICAS),
            ("max_connections", self.max_connections, MAX_CONNECTIONS),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ValueError(f"{prop}: {value!r} is not allowed; use a whole number from 1 to {top}")
        image_tag("image", self.image)
        if size_to_bytes(check_size("memory_limit", self.memory_limit)) < MIN_MEMORY_BYTES:
            raise ValueError(
                f"memory_limit: {quantity(self.memory_limit)} is too small to run HAProxy; "
                f"use at least {MIN_MEMORY_BYTES >> 20}Mi"
            )
        check_cpu("cpu_request", self.cpu_request)
        check_dns_subdomain("cluster_domain", self.cluster_domain)


class PrimaryEndpoint(Construct):
    """The client Service ``<name>`` of a :class:`Sentinel` topology, pointed at the current
    primary through HAProxy (docs/sentinel.md, "Primary endpoint for clients without Sentinel").

    Each HAProxy pod checks every Valkey node once a second and sends a client to a node only
    while both hold: the node answers ``role:master``, and a quorum of the Sentinels name it
    (``SENTINEL GET-MASTER-ADDR-BY-NAME``). A node that stops qualifying has its client
    connections closed (``on-marked-down shutdown-sessions``), so no client stays on a demoted
    or cut-off primary; with no node qualifying, connections are refused at once. It needs no
    ServiceAccount and no RBAC. Renders, named from the Valkey's ``name``:

    - ``ConfigMap <name>-endpoint``: ``haproxy.cfg`` (scripts/haproxy.cfg and the backends for
      this topology's pods). With the Valkey's ``auth_secret``, the checks authenticate with
      the password HAProxy reads from its environment at run time (``VALKEY_PASSWORD``, from the
      Secret): it is in no file, argument or rendered object;
    - ``Deployment <name>-endpoint``: ``replicas`` hardened HAProxy pods (non-root, read-only
      root filesystem, no capabilities, RuntimeDefault seccomp, no ServiceAccount token),
      spread over nodes where possible;
    - ``PodDisruptionBudget <name>-endpoint`` with more than one replica: one pod down at most;
    - the client Service ``<name>`` selects the HAProxy pods (port 6379);
    - with the Valkey's ``network_policy``: ``NetworkPolicy <name>-endpoint``: the HAProxy
      pods accept 6379 from the Valkey's ``allowed_clients`` and reach the Valkey pods on 6379
      and 26379 and DNS; and ``NetworkPolicy <name>-endpoint-ingress``: the Valkey pods accept
      6379 and 26379 from the HAProxy pods.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        sentinel: Sentinel,
        options: PrimaryEndpointOptions | None = None,
    ) -> None:
        """
        :param sentinel: The Sentinel topology whose primary the endpoint follows; its Valkey's
            client Service is pointed at the HAProxy pods. Same chart namespace.
        :param options: See :class:`PrimaryEndpointOptions`. Default: ``PrimaryEndpointOptions()``.
        """
        opts = options if options is not None else PrimaryEndpointOptions()
        check_instance("options", opts, PrimaryEndpointOptions, "a PrimaryEndpointOptions(...)")
        check_instance("sentinel", sentinel, Sentinel, "the Sentinel whose primary to follow")
        valkey = sentinel.valkey
        if _registry.namespace_of(scope) != valkey.namespace:
            raise ValueError(
                f"sentinel: Valkey {valkey.name!r} renders into namespace {valkey.namespace!r} but this chart "
                f"renders into {_registry.namespace_of(scope)!r}; define the PrimaryEndpoint in the Valkey's chart"
            )
        super().__init__(scope, id)
        name = valkey.name
        self.sentinel = sentinel
        self.valkey = valkey
        self.options = opts
        self.replicas = opts.replicas
        self.image = opts.image
        self.name = f"{name}-endpoint"
        self.port = PORT
        # Not the Valkey's selector labels: the StatefulSet, the headless and Sentinel Services
        # and the Valkey's NetworkPolicies select by those, and must never pick HAProxy pods.
        self.match_labels = {"app.kubernetes.io/name": "valkey-endpoint", "app.kubernetes.io/instance": name}
        self.labels = {
            **_labels.common_labels(name, valkey.version, COMPONENT),
            "app.kubernetes.io/name": "valkey-endpoint",
        }
        self.node_hosts: tuple[str, ...] = tuple(f"{host}.{opts.cluster_domain}" for host in sentinel.pod_hosts)
        self.network_policy_name: str | None = f"{self.name}" if valkey.network_policy else None
        objects = [("ConfigMap", self.name), ("Deployment", self.name)]
        if opts.replicas > 1:
            objects.append(("PodDisruptionBudget", self.name))
        if self.network_policy_name is not None:
            objects += [("NetworkPolicy", self.name), ("NetworkPolicy", f"{self.name}-ingress")]
        _registry.register(self, objects)

        self.config_text = render_config(
            master_name=sentinel.master_name,
            announced_hosts=sentinel.pod_hosts,
            node_hosts=self.node_hosts,
            valkey_port=valkey.port,
            sentinel_port=SENTINEL_PORT,
            quorum=sentinel.quorum,
            auth=valkey.auth_secret is not None,
            max_connections=opts.max_connections,
        )
        k8s.KubeConfigMap(
            self,
            "Config",
            metadata=k8s.ObjectMeta(name=self.name, labels=dict(self.labels)),
            data={CONFIG_FILE: self.config_text},
        )
        self.deployment = _plain.api_object(
            self,
            "Deployment",
            api_version="apps/v1",
            kind="Deployment",
            name=self.name,
            labels=self.labels,
            spec=self._deployment_spec(),
        )
        if opts.replicas > 1:
            # Drains and node upgrades take one HAProxy pod at a time: clients always find one.
            _plain.api_object(
                self,
                "Budget",
                api_version="policy/v1",
                kind="PodDisruptionBudget",
                name=self.name,
                labels=self.labels,
                spec={"maxUnavailable": 1, "selector": {"matchLabels": dict(self.match_labels)}},
            )
        # The client Service follows the primary: it selects the HAProxy pods.
        valkey.set_client_service_selector(
            self.match_labels,
            note=(
                f"the current primary, through HAProxy (Deployment {self.name}); Sentinel clients: "
                f"{sentinel.service_host}:{SENTINEL_PORT}, master name {sentinel.master_name}"
            ),
        )
        if self.network_policy_name is not None:
            self._network_policies()

    def _container(self) -> _plain.JsonObject:
        memory = quantity(self.options.memory_limit)
        health = {"httpGet": {"path": HEALTH_PATH, "port": HEALTH_PORT_NAME}}
        secret = self.valkey.auth_secret
        return {
            "name": CONTAINER_NAME,
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            # Foreground, logs on stdout; the image's entry point would add the same flags.
            "command": ["haproxy", "-db", "-f", f"{CONFIG_DIR}/{CONFIG_FILE}"],
            "env": [_plain.secret_env(PASSWORD_ENV, secret.name, secret.key)] if secret is not None else None,
            "ports": [
                {"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"},
                {"name": HEALTH_PORT_NAME, "containerPort": HEALTH_PORT, "protocol": "TCP"},
            ],
            "resources": _plain.guaranteed_memory(cpu_amount(self.options.cpu_request), memory),
            "securityContext": _plain.restricted_container(),
            "readinessProbe": {**health, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 2},
            "livenessProbe": {**health, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
            "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        }

    def _deployment_spec(self) -> _plain.JsonObject:
        digest = hashlib.sha256(self.config_text.encode()).hexdigest()
        pod = self.valkey.pod
        return {
            "replicas": self.replicas,
            "selector": {"matchLabels": dict(self.match_labels)},
            # One new pod up before an old one goes: the endpoint never drops to zero pods.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": dict(self.labels),
                    # A new configuration (another replica count, AUTH on) rolls the pods.
                    "annotations": {"checksum/config": digest},
                },
                "spec": {
                    **_plain.hardened_pod(
                        node_selector=pod.node_selector,
                        priority_class_name=pod.priority_class_name,
                        image_pull_secrets=pod.image_pull_secrets,
                        uid=UID,
                        grace_seconds=TERMINATION_GRACE_SECONDS,
                        fs_group=False,
                    ),
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": dict(self.match_labels)},
                                    },
                                }
                            ]
                        }
                    },
                    "containers": [self._container()],
                    "volumes": [{"name": "config", "configMap": {"name": self.name}}],
                },
            },
        }

    def _network_policies(self) -> None:
        valkey = self.valkey
        assert self.network_policy_name is not None
        endpoint = [k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels=dict(self.match_labels)))]
        nodes = [k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels=valkey.match_labels))]
        checked = [_port(valkey.port), _port(SENTINEL_PORT)]
        k8s.KubeNetworkPolicy(
            self,
            "NetworkPolicy",
            metadata=k8s.ObjectMeta(name=self.network_policy_name, labels=dict(self.labels)),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=dict(self.match_labels)),
                policy_types=["Ingress", "Egress"],
                # The Valkey's clients, as they would reach Valkey itself; the kubelet's HTTP
                # probes are not subject to NetworkPolicy.
                ingress=[k8s.NetworkPolicyIngressRule(from_=list(valkey.allowed_clients), ports=[_port(PORT)])],
                egress=[
                    k8s.NetworkPolicyEgressRule(to=nodes, ports=checked),
                    # DNS on port 53 to any address: the resolver differs per cluster.
                    k8s.NetworkPolicyEgressRule(ports=[_port(DNS_PORT, "UDP"), _port(DNS_PORT, "TCP")]),
                ],
            ),
        )
        # Policies add up: the Valkey pods also accept the checks and the proxied clients.
        k8s.KubeNetworkPolicy(
            self,
            "IngressPolicy",
            metadata=k8s.ObjectMeta(name=f"{self.name}-ingress", labels=dict(self.labels)),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=valkey.match_labels),
                policy_types=["Ingress"],
                ingress=[k8s.NetworkPolicyIngressRule(from_=endpoint, ports=checked)],
            ),
        )


def _port(port: int, protocol: str = "TCP") -> k8s.NetworkPolicyPort:
    return k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(port), protocol=protocol)


def _auth_check(accept: str) -> list[str]:
    """AUTH as a RESP array, with the password's length and bytes read from the environment when
    the check runs: any password works (no quoting), and none is in the configuration."""
    password = f"%[env({PASSWORD_ENV})]"
    length = f"%[env({PASSWORD_ENV}),length]"
    return [
        f"    tcp-check send-lf *2\\r\\n$4\\r\\nAUTH\\r\\n${length}\\r\\n{password}\\r\\n",
        f"    tcp-check expect {accept}",
    ]


def render_config(
    *,
    master_name: str,
    announced_hosts: tuple[str, ...],
    node_hosts: tuple[str, ...],
    valkey_port: int,
    sentinel_port: int,
    quorum: int,
    auth: bool,
    max_connections: int,
) -> str:
    """``haproxy.cfg``: scripts/haproxy.cfg, then the client frontend, the ``primary`` backend
    and, per node, a ``node<i>-is-primary`` backend (its own check) and a
    ``sentinels-name-node<i>`` backend (the quorum). ``announced_hosts`` are the names the
    Sentinels give (their ``announce-hostnames``); ``node_hosts`` the same, fully qualified,
    which HAProxy resolves."""
    server = "resolvers cluster resolve-prefer ipv4 init-addr last,libc,none"
    sentinel_auth = _auth_check("rstring ^(\\+OK|-ERR\\ AUTH)") if auth else []
    lines = [
        _scripts.script(CONFIG_FILE).rstrip("\n"),
        "",
        "frontend valkey",
        "    bind :6379",
        f"    maxconn {max_connections}",
        "    default_backend primary",
        "",
        "# The current primary: a node that passes its own check (node<i>-is-primary) AND that a",
        "# quorum of the Sentinels name (sentinels-name-node<i>). A new client goes to the first",
        "# such node; with none, it is refused at once (weight 0: no fallback to another server).",
        "# A node's clients are disconnected as soon as it fails its own check.",
        "backend primary",
        "    balance first",
    ]
    qualifies = [
        f"{{ srv_is_up(primary/node{i}) }} {{ nbsrv(sentinels-name-node{i}) ge {quorum} }}"
        for i in range(len(node_hosts))
    ]
    # Servers start as up: no routing until the first checks are done (scripts/haproxy.cfg).
    lines.append("    tcp-request content reject if { date,sub(proc.boot) lt 3 }")
    lines.append("    tcp-request content reject unless " + " || ".join(qualifies))
    lines += [f"    use-server node{i} if {rule}" for i, rule in enumerate(qualifies)]
    lines += [
        f"    server node{i} {host}:{valkey_port} weight 0 track node{i}-is-primary/valkey "
        f"on-marked-down shutdown-sessions {server}"
        for i, host in enumerate(node_hosts)
    ]
    for i, (announced, host) in enumerate(zip(announced_hosts, node_hosts, strict=True)):
        lines += [
            "",
            f"# node{i} ({announced}) says role:master, and its own pod's Sentinel names it. The",
            "# Sentinel's part ends the sessions of an old primary that thawed or came back while a",
            "# quorum still named it, as soon as its Sentinel learns of the promotion: without it they",
            "# stay until the Sentinels demote that node, about 10 s later (the endpoint drills).",
            f"backend node{i}-is-primary",
            "    option tcp-check",
            "    tcp-check connect",
            *(_auth_check("string +OK") if auth else []),
            "    tcp-check send PING\\r\\n",
            "    tcp-check expect string +PONG",
            "    tcp-check send INFO\\ replication\\r\\n",
            # min-recv: the first packet decides (a replica says role:slave there); without it a
            # mismatch waits for the check timeout, and a new primary is seen a second later.
            f"    tcp-check expect min-recv {len('role:master')} string role:master",
            f"    tcp-check connect port {sentinel_port}",
            *sentinel_auth,
            f"    tcp-check send SENTINEL\\ get-master-addr-by-name\\ {master_name}\\r\\n",
            f"    tcp-check expect min-recv {len(announced) + 2} string {announced}\\r\\n",
            f"    server valkey {host}:{valkey_port} {server} check {VALKEY_CHECK}",
            "",
            f"# Sentinels that name node{i} ({announced}) as the primary of {master_name}.",
            f"backend sentinels-name-node{i}",
            "    option tcp-check",
            "    tcp-check connect",
            # A Sentinel without a password answers -ERR to AUTH; a wrong password is -WRONGPASS.
            *sentinel_auth,
            f"    tcp-check send SENTINEL\\ get-master-addr-by-name\\ {master_name}\\r\\n",
            f"    tcp-check expect min-recv {len(announced) + 2} string {announced}\\r\\n",
        ]
        lines += [
            f"    server sentinel{j} {sentinel}:{sentinel_port} {server} check {SENTINEL_CHECK}"
            for j, sentinel in enumerate(node_hosts)
        ]
    return "\n".join(lines) + "\n"
