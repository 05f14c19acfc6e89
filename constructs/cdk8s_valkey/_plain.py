"""Plain JSON bodies for the objects whose typed bindings cost the most synth time.

A typed binding (``k8s.KubeStatefulSet(spec=k8s.StatefulSetSpec(...))``, the generated CRD
classes) checks every field name and type at synth, at a price: a runtime type check of each
struct in Python, then a conversion of each struct and field by the jsii runtime on the way to
Node, plus a static call per ``Quantity``, ``IntOrString`` or PromQL expression. For the pod
template, the ServiceMonitor and the PrometheusRule that was most of what a Valkey cost
(bench/README.md, synth). Those bodies are plain dicts with the Kubernetes field names instead,
handed to Node as one JSON value each. What checked them before is now done by the tests, which
validate every rendered object strictly against the Kubernetes 1.28 schemas and the CRDs'
(tests/test_manifests.py, tests/test_crd_schemas.py): a misspelt field fails there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cdk8s
from cdk8s_plus_28 import k8s
from constructs import Construct

JsonObject = dict[str, Any]


def sanitized(value: Any) -> Any:
    """``value`` as cdk8s renders the props of an object: the keys of every mapping sorted and
    its ``None`` entries dropped. JSON patches apply after that step, so a body added by a patch
    must already be in that form for the YAML to match what a typed binding renders."""
    if isinstance(value, Mapping):
        return {key: sanitized(value[key]) for key in sorted(value) if value[key] is not None}
    if isinstance(value, list | tuple):
        return [sanitized(item) for item in value]
    return value


def set_spec(obj: cdk8s.ApiObject, spec: Mapping[str, Any]) -> None:
    """Render ``spec`` as the object's ``spec``: one JSON patch, two jsii round trips."""
    obj.add_json_patch(cdk8s.JsonPatch.add("/spec", sanitized(spec)))


def api_object(
    scope: Construct,
    id: str,
    *,
    api_version: str,
    kind: str,
    name: str,
    labels: Mapping[str, str],
    spec: Mapping[str, Any],
    annotations: Mapping[str, str] | None = None,
) -> cdk8s.ApiObject:
    """An object of any kind from its ``spec`` as plain JSON (no generated binding needed)."""
    obj = cdk8s.ApiObject(
        scope,
        id,
        api_version=api_version,
        kind=kind,
        metadata=cdk8s.ApiObjectMetadata(
            name=name, labels=dict(labels), annotations=dict(annotations) if annotations else None
        ),
    )
    set_spec(obj, spec)
    return obj


class RenderedApiObject(cdk8s.ApiObject):
    """An object whose ``spec`` is rendered once, at synth, by ``render`` (which returns it as
    plain JSON). Its owner keeps the object's model as Python data; other constructs change that
    model through the owner's public methods, never this object's JSON. JSON patches added
    with :meth:`add_json_patch` (escape hatches) still apply, after the spec is in place."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        api_version: str,
        kind: str,
        name: str,
        labels: Mapping[str, str],
        render: Callable[[], Mapping[str, Any]],
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            scope,
            id,
            api_version=api_version,
            kind=kind,
            metadata=cdk8s.ApiObjectMetadata(
                name=name, labels=dict(labels), annotations=dict(annotations) if annotations else None
            ),
        )
        self._render = render
        self._patches: list[cdk8s.JsonPatch] = []

    def add_json_patch(self, *ops: cdk8s.JsonPatch) -> None:
        """Apply ``ops`` to the rendered object (after its spec), as cdk8s does for any object."""
        self._patches.extend(ops)

    def to_json(self) -> Any:
        """The manifest: cdk8s renders ``apiVersion``, ``kind`` and ``metadata`` (the chart's
        namespace, labels added later), this object its ``spec`` (sorted as cdk8s sorts)."""
        manifest = super().to_json()
        manifest["spec"] = sanitized(self._render())
        return cdk8s.JsonPatch.apply(manifest, *self._patches) if self._patches else manifest


def secret_env(env_name: str, secret: str, key: str) -> JsonObject:
    """An env var the kubelet fills from one key of a Secret (``k8s.EnvVar`` with a ``secretKeyRef``)."""
    return {"name": env_name, "valueFrom": {"secretKeyRef": {"key": key, "name": secret}}}


def value_env(env_name: str, value: str) -> JsonObject:
    """An env var with a literal value."""
    return {"name": env_name, "value": value}


def field_env(env_name: str, field_path: str) -> JsonObject:
    """An env var from the downward API (``metadata.name``, ...)."""
    return {"name": env_name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def exec_probe(command: list[str], *, period: int, timeout: int, failures: int) -> JsonObject:
    """A ``k8s.Probe`` that runs ``command`` in the container."""
    return {
        "exec": {"command": command},
        "failureThreshold": failures,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
    }


def pod_spec_fields(
    *,
    containers: Sequence[k8s.Container] = (),
    volumes: Sequence[k8s.Volume] = (),
    tolerations: Sequence[k8s.Toleration] = (),
    affinity: k8s.Affinity | None = None,
) -> JsonObject:
    """Typed pod-spec fields that callers hand in (a sidecar, a toleration, an affinity) as JSON,
    by cdk8s-plus' own serializer (the one a typed pod spec goes through): one jsii round trip,
    and only when there is something to convert. Empty fields are left out."""
    if not (containers or volumes or tolerations or affinity):
        return {}
    spec = k8s.KubePod.manifest(
        spec=k8s.PodSpec(
            containers=list(containers),
            volumes=list(volumes) or None,
            tolerations=list(tolerations) or None,
            affinity=affinity,
        )
    )["spec"]
    return {key: value for key, value in spec.items() if value != []}


def restricted_container(**extra: Any) -> JsonObject:
    """A container's ``securityContext`` under Pod Security "restricted", as every container of
    this library runs: no privilege escalation, read-only root filesystem, no capability.
    ``extra`` adds fields (``runAsUser`` for an image whose default user is root, ...)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        **extra,
    }


def guaranteed_memory(cpu: str, memory: str) -> JsonObject:
    """``resources``: memory request equal to the limit (the cgroup limit is what a container is
    sized for, and it is never the first evicted); a CPU request and no CPU limit (throttling
    turns into latency for every client)."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def hardened_pod(
    *,
    node_selector: Mapping[str, str] | None,
    priority_class_name: str | None,
    image_pull_secrets: Sequence[str],
    uid: int,
    grace_seconds: int,
    fs_group: bool,
) -> JsonObject:
    """The pod-level fields every pod of this library shares: placement from PodOptions, no
    ServiceAccount token and no service links (nothing here talks to the API server), its
    grace period, and a non-root ``securityContext`` with the RuntimeDefault seccomp profile.
    ``fs_group``: the volumes are owned by ``uid`` (a data claim the server writes to)."""
    security: JsonObject = {"runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": True}
    if fs_group:
        security |= {"fsGroup": uid, "fsGroupChangePolicy": "OnRootMismatch"}
    return {
        "nodeSelector": dict(node_selector) if node_selector else None,
        "priorityClassName": priority_class_name,
        "imagePullSecrets": [{"name": n} for n in image_pull_secrets] or None,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_seconds,
        "securityContext": {**security, "seccompProfile": {"type": "RuntimeDefault"}},
    }
