"""The Valkey pod as Python data, owned by ValkeyStatefulSet and rendered once at synth.

Containers, volumes, env, probes, annotations, command wrappers and the preStop hook are held
here. Options (the exporter, Sentinel, auth, a user's sidecar) contribute through the public
methods of :class:`PodModel`, each with an ``order``; nobody edits the rendered JSON. The pod
renders in a canonical order: the owner's own items first, then contributions sorted by
``order`` (ties keep the order they were added in). Every construct of this library has an
order of its own, so the YAML is the same whatever order they are created in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ._plain import JsonObject

# Declared orders of the library's contributors: each renders in this place, however created.
ORDER_OWNER = 0
ORDER_EXPORTER = 100
ORDER_SENTINEL = 200
ORDER_SENTINEL_EXPORTER = 300
ORDER_USER = 1000  # add_container / add_volume / ... of ValkeyStatefulSet, unless told otherwise

PROBE_KINDS = ("startup", "readiness", "liveness")


@dataclass
class ContainerModel:
    """One container of the pod, as data (the Kubernetes field names, plain JSON values), which
    a construct hands to :meth:`PodModel.add_container`. Contributors may then add env, mounts,
    args and wrappers to it through the :class:`PodModel`.

    :param name: The container's name, unique in the pod.
    :param image: Its image, pinned.
    :param command: ``command``. Default: none, the image's entrypoint.
    :param args: ``args``; contributed args follow them. Default: none.
    :param env: ``env`` entries (``{"name": ..., "value": ...}`` or ``valueFrom``); contributed
        ones follow them. Default: none.
    :param ports: ``ports`` entries. Default: none.
    :param resources: ``resources``. Default: none.
    :param security_context: ``securityContext``. Default: none.
    :param probes: ``startup``/``readiness``/``liveness`` to a probe as JSON; an exec probe's
        command can be wrapped by contributors (:meth:`PodModel.wrap_probe`). Default: none.
    :param volume_mounts: ``volumeMounts`` entries; contributed ones follow them. Default: none.
    :param image_pull_policy: ``imagePullPolicy``. Default: ``IfNotPresent``: tags are pinned.
    """

    name: str
    image: str
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: list[JsonObject] = field(default_factory=list)
    ports: list[JsonObject] = field(default_factory=list)
    resources: JsonObject | None = None
    security_context: JsonObject | None = None
    probes: dict[str, JsonObject] = field(default_factory=dict)
    volume_mounts: list[JsonObject] = field(default_factory=list)
    image_pull_policy: str | None = "IfNotPresent"

    def render(self) -> JsonObject:
        return {
            "name": self.name,
            "image": self.image,
            "imagePullPolicy": self.image_pull_policy,
            "command": list(self.command) or None,
            "args": list(self.args) or None,
            "env": [dict(var) for var in self.env] or None,
            "ports": [dict(port) for port in self.ports] or None,
            "resources": copy.deepcopy(self.resources),
            "securityContext": copy.deepcopy(self.security_context),
            **{f"{kind}Probe": copy.deepcopy(probe) for kind, probe in self.probes.items()},
            "volumeMounts": [dict(mount) for mount in self.volume_mounts] or None,
        }


@dataclass
class _Entry:
    order: int
    seq: int
    value: Any


class PodModel:
    """The pod template of one Valkey: what each construct contributed, rendered on demand."""

    def __init__(self, pod_name: str, *, reserved_volumes: tuple[str, ...] = ()) -> None:
        """:param reserved_volumes: names of volumes the owner renders itself (outside the model)."""
        self._pod_name = pod_name
        self._reserved_volumes = reserved_volumes
        self._seq = 0
        self._containers: dict[str, _Entry] = {}
        self._raw_containers: set[str] = set()
        self._volumes: dict[str, _Entry] = {}
        self._annotations: dict[str, str] = {}
        self._env: dict[str, list[_Entry]] = {}
        self._mounts: dict[str, list[_Entry]] = {}
        self._args: dict[str, list[_Entry]] = {}
        self._wrappers: dict[str, list[_Entry]] = {}
        self._probe_wrappers: dict[tuple[str, str], list[_Entry]] = {}
        self._pre_stop: dict[str, list[str]] = {}

    def _entry(self, order: int, value: Any) -> _Entry:
        if isinstance(order, bool) or not isinstance(order, int):
            raise ValueError(f"order: {order!r} is not a whole number")
        self._seq += 1
        return _Entry(order, self._seq, value)

    # -- what contributors call ----------------------------------------------------------

    @property
    def container_names(self) -> frozenset[str]:
        return frozenset(self._containers)

    @property
    def volume_names(self) -> frozenset[str]:
        return frozenset(self._volumes)

    def has_container(self, name: str) -> bool:
        return name in self._containers

    def add_container(self, container: ContainerModel | JsonObject, *, order: int) -> None:
        """Add a container (a :class:`ContainerModel`, or one already rendered as JSON, which is then
        rendered as given and takes no further contributions). Raises on a duplicate name."""
        name = container.name if isinstance(container, ContainerModel) else str(container["name"])
        self._reserve(self._containers, "container", name)
        if not isinstance(container, ContainerModel):
            self._raw_containers.add(name)
            container = copy.deepcopy(container)
        self._containers[name] = self._entry(order, container)

    def add_volume(self, volume: JsonObject, *, order: int) -> None:
        """Add a pod volume (JSON, with its ``name``). Raises on a duplicate name."""
        name = str(volume["name"])
        if name in self._reserved_volumes:
            raise ValueError(f"volume name {name!r} is already used in the {self._pod_name} pod")
        self._reserve(self._volumes, "volume", name)
        self._volumes[name] = self._entry(order, copy.deepcopy(volume))

    def add_annotation(self, key: str, value: str) -> None:
        """Annotate the pod template (a checksum of a ConfigMap the pod mounts: a new value rolls
        the pods). Raises on a key already set."""
        if key in self._annotations:
            raise ValueError(f"annotation {key!r} is already set on the {self._pod_name} pod")
        self._annotations[key] = value

    def add_env(self, container: str, var: JsonObject, *, order: int) -> None:
        """Add an env var (JSON with ``name`` and ``value`` or ``valueFrom``) to ``container``.
        Raises on a name the container already has."""
        target = self._library_container(container)
        name = var.get("name")
        values = ("value" in var) + ("valueFrom" in var)
        names = {v["name"] for v in target.env} | {e.value["name"] for e in self._env.get(container, [])}
        if not isinstance(name, str) or name in names or values != 1:
            raise ValueError(f"env {name!r}: give a new name and exactly one of value and field_path")
        self._env.setdefault(container, []).append(self._entry(order, dict(var)))

    def add_volume_mount(self, container: str, volume: str, mount_path: str, *, read_only: bool, order: int) -> None:
        """Mount a pod volume into ``container``."""
        self._library_container(container)
        mount = {"name": volume, "mountPath": mount_path, **({"readOnly": True} if read_only else {})}
        self._mounts.setdefault(container, []).append(self._entry(order, mount))

    def add_args(self, container: str, *args: str, order: int) -> None:
        """Append arguments to ``container`` (after its own)."""
        self._library_container(container)
        self._args.setdefault(container, []).append(self._entry(order, list(args)))

    def wrap_command(self, container: str, *prefix: str, order: int) -> None:
        """Run ``container``'s command through a wrapper, which must ``exec`` the rest. Wrappers of a
        lower order run first (outermost)."""
        self._library_container(container)
        self._wrappers.setdefault(container, []).append(self._entry(order, list(prefix)))

    def wrap_probe(self, container: str, kind: str, *prefix: str, order: int) -> None:
        """Run one exec probe (``startup``, ``readiness`` or ``liveness``) through a wrapper."""
        if kind not in PROBE_KINDS:
            raise ValueError(f"kind: {kind!r} is not a probe; use 'startup', 'readiness' or 'liveness'")
        target = self._library_container(container)
        if "exec" not in target.probes.get(kind, {}):
            raise ValueError(f"kind: container {container!r} has no {kind} exec probe to wrap")
        self._probe_wrappers.setdefault((container, kind), []).append(self._entry(order, list(prefix)))

    def set_pre_stop(self, container: str, *command: str) -> None:
        """Run ``command`` before the kubelet stops ``container`` (one preStop hook per container)."""
        self._library_container(container)
        if container in self._pre_stop:
            raise ValueError(f"container {container!r} of the {self._pod_name} pod already has a preStop hook")
        self._pre_stop[container] = list(command)

    # -- rendering -----------------------------------------------------------------------

    def render_containers(self) -> list[JsonObject]:
        return [self._render_container(name, entry.value) for name, entry in self._sorted(self._containers)]

    def render_volumes(self, leading: list[JsonObject]) -> list[JsonObject]:
        """``leading`` (the owner's volumes that depend on the topology) and then the others."""
        return [*leading, *(copy.deepcopy(entry.value) for _, entry in self._sorted(self._volumes))]

    def annotations(self) -> dict[str, str]:
        return dict(self._annotations)

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _sorted(items: dict[str, _Entry]) -> list[tuple[str, _Entry]]:
        return sorted(items.items(), key=lambda item: (item[1].order, item[1].seq))

    @staticmethod
    def _flat(entries: list[_Entry]) -> list[Any]:
        out: list[Any] = []
        for entry in sorted(entries, key=lambda e: (e.order, e.seq)):
            out.extend(entry.value if isinstance(entry.value, list) else [entry.value])
        return out

    def _render_container(self, name: str, value: ContainerModel | JsonObject) -> JsonObject:
        if not isinstance(value, ContainerModel):
            return copy.deepcopy(value)
        body = value.render()
        wrappers = self._flat(self._wrappers.get(name, []))
        if wrappers:
            body["command"] = [*wrappers, *value.command]
        args = self._flat(self._args.get(name, []))
        if args:
            body["args"] = [*value.args, *args]
        env = self._flat(self._env.get(name, []))
        if env:
            body["env"] = [*(body["env"] or []), *env]
        mounts = self._flat(self._mounts.get(name, []))
        if mounts:
            body["volumeMounts"] = [*(body["volumeMounts"] or []), *mounts]
        for kind in PROBE_KINDS:
            prefix = self._flat(self._probe_wrappers.get((name, kind), []))
            if prefix:
                probe = body[f"{kind}Probe"]
                probe["exec"] = {"command": [*prefix, *probe["exec"]["command"]]}
        if name in self._pre_stop:
            body["lifecycle"] = {"preStop": {"exec": {"command": list(self._pre_stop[name])}}}
        return body

    def _library_container(self, name: str) -> ContainerModel:
        entry = self._containers.get(name)
        if entry is None:
            raise ValueError(f"container {name!r}: the {self._pod_name} pod has no such container")
        if not isinstance(entry.value, ContainerModel):
            raise ValueError(f"container {name!r} was added as rendered JSON; it takes no contributions")
        return entry.value

    def _reserve(self, names: dict[str, _Entry], what: str, name: str) -> None:
        if name in names:
            raise ValueError(f"{what} name {name!r} is already used in the {self._pod_name} pod")
