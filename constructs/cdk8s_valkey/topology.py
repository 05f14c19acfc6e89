"""Topology: what a Valkey's pods are to each other, as one value every option renders for.

A Valkey is one pod (ADR 0005) or a primary with replicas watched by Sentinels (``Sentinel``),
and later perhaps shards. Options (backups, NetworkPolicy, alerts, the smoke check, a client
endpoint) do not ask which construct made the pods: they read the Valkey's :class:`Topology`
(``ValkeyStatefulSet.topology``), its pod and claim names, who may take writes and how clients
find the writable node, and render for that.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kinds of topology.
SINGLE = "single"
SENTINEL = "sentinel"
KINDS = (SINGLE, SENTINEL)

# How clients reach the node that takes writes.
CLIENT_SERVICE = "service"  # the client Service <name> selects the pods: the one pod is the primary
CLIENT_SENTINEL = "sentinel"  # clients ask the Sentinels for the primary (ioredis `sentinels` + `name`)
CLIENT_ENDPOINTS = (CLIENT_SERVICE, CLIENT_SENTINEL)

DATA_VOLUME = "data"  # the pod volume (and claim template) holding /data


@dataclass(frozen=True, kw_only=True)
class Topology:
    """The pods of one Valkey and their roles, as data.

    :param kind: ``single`` (one pod, ADR 0005) or ``sentinel`` (a primary and replicas with a
        Sentinel in every pod; any pod may become the primary).
    :param name: The Valkey's ``name``: the StatefulSet, so the pods are ``<name>-<ordinal>``.
    :param replicas: Pods of the StatefulSet (primary included).
    :param client_endpoint: How clients reach the writable node: ``service`` (the client Service
        ``<name>`` selects the pods) or ``sentinel`` (they ask the Sentinels; the Service has no
        endpoints unless something is pointed at it, see
        :meth:`ValkeyStatefulSet.set_client_service_selector`).
    """

    kind: str
    name: str
    replicas: int
    client_endpoint: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r} is not a topology; use one of {list(KINDS)}")
        if self.client_endpoint not in CLIENT_ENDPOINTS:
            raise ValueError(
                f"client_endpoint: {self.client_endpoint!r} is not allowed; use one of {list(CLIENT_ENDPOINTS)}"
            )
        replicas = self.replicas
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas: {replicas!r} is not allowed; use a whole number, at least 1")
        if (self.kind == SINGLE) != (replicas == 1):
            raise ValueError(
                f"replicas: {replicas} does not fit kind {self.kind!r}; a single topology has 1 pod, "
                "a replicated one at least 2"
            )

    @classmethod
    def single(cls, name: str) -> Topology:
        """ADR 0005's one pod, reached through the client Service."""
        return cls(kind=SINGLE, name=name, replicas=1, client_endpoint=CLIENT_SERVICE)

    @classmethod
    def sentinel(cls, name: str, replicas: int) -> Topology:
        """``replicas`` pods, one primary at a time, chosen by the Sentinels."""
        return cls(kind=SENTINEL, name=name, replicas=replicas, client_endpoint=CLIENT_SENTINEL)

    @property
    def pod_names(self) -> tuple[str, ...]:
        """Every pod, ``<name>-0`` to ``<name>-<replicas - 1>``."""
        return tuple(f"{self.name}-{ordinal}" for ordinal in range(self.replicas))

    @property
    def claim_names(self) -> tuple[str, ...]:
        """Every pod's data claim, ``data-<name>-<ordinal>``, in pod order."""
        return tuple(f"{DATA_VOLUME}-{pod}" for pod in self.pod_names)

    @property
    def writable_pod_names(self) -> tuple[str, ...]:
        """The pods that may take writes at some time: the one pod, or under Sentinel every pod
        (any replica may be promoted). A check of guardrails that matter for writes (maxmemory,
        ``noeviction``, AOF) covers these."""
        return self.pod_names

    @property
    def replicated(self) -> bool:
        """More than one pod holds the data (each on a claim of its own, from a claim template)."""
        return self.replicas > 1

    @property
    def publish_not_ready_addresses(self) -> bool:
        """Whether the headless Service publishes pods before they are ready: replicas in a full
        sync, or a primary being failed over, are still what the other pods connect to."""
        return self.replicated
