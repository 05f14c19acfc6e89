"""Both renderings, indexed, for rules that look across objects (a StatefulSet's ConfigMaps
and claims, a claim's StatefulSet)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ._diff import by_name, get
from ._model import Manifest, ObjectKey

Side = Literal["old", "new"]

# GitOps prune protection (design brief): Argo CD honours the sync option, Flux the annotation.
ARGO_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
FLUX_PRUNE = "kustomize.toolkit.fluxcd.io/prune"


@dataclass(frozen=True)
class Context:
    old: Mapping[ObjectKey, Manifest]
    new: Mapping[ObjectKey, Manifest]

    def side(self, side: Side) -> Mapping[ObjectKey, Manifest]:
        return self.old if side == "old" else self.new

    def find(self, side: Side, kind: str, namespace: str, name: str) -> Manifest | None:
        for key, manifest in self.side(side).items():
            if key.kind == kind and key.namespace == namespace and key.name == name:
                return manifest
        return None

    def of_kind(self, side: Side, kind: str, namespace: str | None = None) -> list[Manifest]:
        return [
            m for k, m in self.side(side).items() if k.kind == kind and (namespace is None or k.namespace == namespace)
        ]

    def statefulsets_mounting(self, side: Side, namespace: str, claim: str) -> list[str]:
        """Names of the StatefulSets of one side whose pods use the claim ``claim``."""
        return [name_of(sts) for sts in self.of_kind(side, "StatefulSet", namespace) if claim in claims_of(sts)]

    def claim_template_origin(self, side: Side, namespace: str, claim: str) -> tuple[Manifest, Manifest] | None:
        """The (StatefulSet, claim template) of one side that creates the claim ``claim``."""
        for sts in self.of_kind(side, "StatefulSet", namespace):
            for template in get(sts, "spec", "volumeClaimTemplates") or []:
                if claim in template_claim_names(sts, template):
                    return sts, template
        return None

    def configmap_users(self, side: Side, namespace: str, name: str) -> list[Manifest]:
        """The StatefulSets of one side whose pod template mounts the ConfigMap ``name``."""
        return [
            sts
            for sts in self.of_kind(side, "StatefulSet", namespace)
            if name in mounted_configmaps(get(sts, "spec", "template"))
        ]


def name_of(manifest: Manifest) -> str:
    return str(get(manifest, "metadata", "name") or "")


def namespace_of(manifest: Manifest) -> str:
    return str(get(manifest, "metadata", "namespace") or "")


def kubectl(manifest: Manifest) -> str:
    """``kubectl`` with the object's namespace, for procedures that can be pasted."""
    namespace = namespace_of(manifest)
    return f"kubectl -n {namespace}" if namespace else "kubectl"


def template_claim_names(sts: Manifest, template: Manifest) -> list[str]:
    """The claims a claim template creates: ``<template>-<statefulset>-<ordinal>``."""
    replicas = get(sts, "spec", "replicas")
    count = replicas if isinstance(replicas, int) else 1
    start = get(sts, "spec", "ordinals", "start") or 0
    base = f"{get(template, 'metadata', 'name')}-{name_of(sts)}"
    return [f"{base}-{ordinal}" for ordinal in range(start, start + max(count, 1))]


def claims_of(sts: Manifest) -> dict[str, str]:
    """Every claim the StatefulSet's pods use, with the pod volume that mounts it."""
    claims: dict[str, str] = {}
    for template in get(sts, "spec", "volumeClaimTemplates") or []:
        for claim in template_claim_names(sts, template):
            claims[claim] = str(get(template, "metadata", "name"))
    for volume_name, volume in by_name(get(sts, "spec", "template", "spec", "volumes")).items():
        claim = get(volume, "persistentVolumeClaim", "claimName")
        if claim:
            claims[str(claim)] = volume_name
    return claims


def mounted_configmaps(template: Manifest | None) -> list[str]:
    """Names of the ConfigMaps a pod template mounts as volumes (projected ones too)."""
    names: list[str] = []
    for volume in get(template, "spec", "volumes") or []:
        name = get(volume, "configMap", "name")
        if name:
            names.append(str(name))
        for source in get(volume, "projected", "sources") or []:
            name = get(source, "configMap", "name")
            if name:
                names.append(str(name))
    return names


def missing_prune_protection(manifest: Manifest) -> list[str]:
    """The GitOps prune protections the object lacks (empty when both are there)."""
    annotations = get(manifest, "metadata", "annotations") or {}
    missing = []
    options = {o.strip() for o in str(annotations.get(ARGO_SYNC_OPTIONS, "")).split(",")}
    if "Prune=false" not in options:
        missing.append(f"`{ARGO_SYNC_OPTIONS}: Prune=false` (Argo CD)")
    if annotations.get(FLUX_PRUNE) != "disabled":
        missing.append(f"`{FLUX_PRUNE}: disabled` (Flux)")
    return missing
