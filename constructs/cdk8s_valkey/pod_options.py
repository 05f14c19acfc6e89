"""PodOptions: where the Valkey pod runs and the metadata other tools hang on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdk8s_plus_28 import k8s

from ._validation import check_annotations, check_dns_subdomain, check_instance, check_labels

# Keys the library sets itself: a pod label there would break a selector, an annotation
# would hide a restart from reviewers.
_RESERVED_LABEL_PREFIX = "app.kubernetes.io/"
_RESERVED_ANNOTATIONS = ("checksum/config",)


@dataclass(frozen=True, kw_only=True)
class PodOptions:
    """Placement and metadata of the Valkey pod. Every field is optional; each renders one field of
    the pod template and changes nothing else. A change to any of them restarts Valkey (it is part
    of the pod template), like any template change.

    :param node_selector: ``nodeSelector`` of the pod, e.g. ``{"node-role.example.com/data": "true"}``.
        Default: none, any node (a single-node cluster has one).
    :param tolerations: ``tolerations`` of the pod, as ``k8s.Toleration`` objects, e.g. to run on
        tainted storage nodes. Default: none.
    :param affinity: ``affinity`` of the pod (``k8s.Affinity``). Default: none.
    :param priority_class_name: ``priorityClassName``: an existing PriorityClass, so that Valkey is
        not the pod the scheduler preempts first. Default: none, the cluster's default priority.
    :param labels: Extra pod labels (service meshes, cost tools). Keys under ``app.kubernetes.io/``
        are the library's and are refused. They are not part of the selector, so they can change
        later. Default: none.
    :param annotations: Extra pod annotations (``sidecar.istio.io/inject: "false"``, backup tools).
        ``checksum/config`` is the library's and is refused. Default: none.
    :param image_pull_secrets: Names of existing Secrets of type ``kubernetes.io/dockerconfigjson``
        for a private registry or mirror (``imagePullSecrets``). Default: none, public images.
    """

    node_selector: Mapping[str, str] | None = None
    tolerations: Sequence[k8s.Toleration] | None = None
    affinity: k8s.Affinity | None = None
    priority_class_name: str | None = None
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    image_pull_secrets: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        if self.node_selector is not None:
            check_labels("PodOptions.node_selector", dict(self.node_selector))
        for index, toleration in enumerate(self.tolerations or ()):
            check_instance(f"PodOptions.tolerations[{index}]", toleration, k8s.Toleration, "a k8s.Toleration(...)")
        if self.affinity is not None:
            check_instance("PodOptions.affinity", self.affinity, k8s.Affinity, "a k8s.Affinity(...)")
        if self.priority_class_name is not None:
            check_dns_subdomain("PodOptions.priority_class_name", self.priority_class_name)
        for key in check_labels("PodOptions.labels", dict(self.labels or {})):
            if key.startswith(_RESERVED_LABEL_PREFIX):
                raise ValueError(
                    f"PodOptions.labels: {key!r} is set by the library (selectors depend on it); "
                    "use a key outside the app.kubernetes.io/ prefix"
                )
        for key in check_annotations("PodOptions.annotations", self.annotations or {}):
            if key in _RESERVED_ANNOTATIONS:
                raise ValueError(
                    f"PodOptions.annotations: {key!r} is set by the library to mark config changes; use another key"
                )
        if isinstance(self.image_pull_secrets, str):
            raise ValueError(
                f"PodOptions.image_pull_secrets: {self.image_pull_secrets!r} is a single string; "
                f"pass a list of Secret names such as [{self.image_pull_secrets!r}]"
            )
        for name in self.image_pull_secrets:
            check_dns_subdomain("PodOptions.image_pull_secrets", name)
