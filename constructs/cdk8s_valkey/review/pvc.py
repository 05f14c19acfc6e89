"""PersistentVolumeClaim: the data claim. What the API server accepts, and what loses data.

Ported from kubernetes ``pkg/apis/core/validation/validation.go``
``ValidatePersistentVolumeClaimUpdate``: the spec is immutable after creation except
``resources.requests`` (of a bound claim) and ``volumeAttributesClassName``; ``volumeName``
may be set once when it was empty; ``storageClassName`` may only go from unset to a value
(``validateStorageClassUpgradeFromNil``); ``resources.requests.storage`` "can not be less than
previous value"; ``volumeMode`` is immutable; the beta storage-class annotation is immutable.
Growing a claim also needs a StorageClass with ``allowVolumeExpansion: true``
(``plugin/pkg/admission/storage/persistentvolume/resize``); Longhorn expands online.
"""

from __future__ import annotations

from . import _quantity, generic
from ._context import (
    Context,
    kubectl,
    missing_prune_protection,
    name_of,
    namespace_of,
)
from ._diff import MISSING, get, leaves, show
from ._model import Finding, Manifest, Verdict

BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
# Mutable parts of the spec (ValidatePersistentVolumeClaimUpdate copies them over before comparing).
_MUTABLE = ("spec.resources.requests.storage", "spec.volumeAttributesClassName")
_SPEC_FROZEN = (
    "is frozen: a claim's spec is immutable after creation except resources.requests "
    "(ValidatePersistentVolumeClaimUpdate)"
)


def new_claim_procedure(claim: Manifest) -> str:
    return (
        "a claim's spec cannot change in place: revert this, or create a new claim with the new spec, "
        f"copy the data into it while Valkey is stopped (or restore a Longhorn backup into it), and mount it; "
        f"`{name_of(claim)}` stays until deleted by hand"
    )


def spec_findings(old: Manifest, new: Manifest, *, subject: str) -> list[Finding]:
    """The update rules for two claim specs (``old`` may be a claim template's rendering)."""
    out: list[Finding] = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    out += _storage(old_spec, new_spec, subject)
    old_class, new_class = old_spec.get("storageClassName"), new_spec.get("storageClassName")
    if old_class != new_class:
        if old_class is None:
            out.append(
                Finding(
                    Verdict.SAFE,
                    f"storageClassName (unset) -> {show(new_class)}: accepted only if it names the class the "
                    "claim got by default when it was created (validateStorageClassUpgradeFromNil)",
                )
            )
        else:
            out.append(
                Finding(
                    Verdict.REJECTED, f"`spec.storageClassName` {show(old_class)} -> {show(new_class)} {_SPEC_FROZEN}"
                )
            )
            out.append(
                Finding(
                    Verdict.DATA_AT_RISK,
                    f"storage class {show(old_class)} -> {show(new_class)}: only a new, empty claim can have another "
                    "class, so the data has to move",
                    f"keep storage_class={old_class!r}, or restore the data into a new claim of class {new_class!r}",
                )
            )
    for leaf in leaves(old_spec, new_spec, "spec"):
        if leaf.path.startswith(_MUTABLE) or leaf.path == "spec.storageClassName":
            continue
        if leaf.path == "spec.volumeName" and leaf.old is MISSING:
            out.append(Finding(Verdict.SAFE, f"{leaf.describe()}: may be set once on a claim without one"))
            continue
        out.append(Finding(Verdict.REJECTED, f"{leaf.describe()} {_SPEC_FROZEN}", new_claim_procedure(new)))
    for leaf in leaves(get(old_spec, "volumeAttributesClassName"), get(new_spec, "volumeAttributesClassName")):
        out.append(Finding(Verdict.SAFE, f"volumeAttributesClassName {show(leaf.old)} -> {show(leaf.new)}"))
    return out


def _storage(old_spec: Manifest, new_spec: Manifest, subject: str) -> list[Finding]:
    old_raw = get(old_spec, "resources", "requests", "storage")
    new_raw = get(new_spec, "resources", "requests", "storage")
    old_size, new_size = _quantity.parse(old_raw), _quantity.parse(new_raw)
    if old_raw == new_raw or old_size == new_size or old_size is None or new_size is None:
        return []
    if new_size > old_size:
        return [
            Finding(
                Verdict.SAFE,
                f"{subject} storage {old_raw} -> {new_raw}: the volume grows in place (Longhorn expands it online; "
                "the StorageClass needs `allowVolumeExpansion: true`, and the claim must be bound)",
            )
        ]
    return [
        Finding(
            Verdict.REJECTED,
            f"{subject} storage {old_raw} -> {new_raw}: `spec.resources.requests.storage` can not be less than "
            "its previous value (ValidatePersistentVolumeClaimUpdate)",
        ),
        Finding(
            Verdict.DATA_AT_RISK,
            f"{subject} storage {old_raw} -> {new_raw}: a volume never shrinks; a smaller one is a new, empty claim",
            f"keep storage_size at {old_raw} or more; claims can only grow",
        ),
    ]


def changed(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    del ctx
    out = generic.metadata_findings(old, new)
    old_ann = get(old, "metadata", "annotations") or {}
    new_ann = get(new, "metadata", "annotations") or {}
    if old_ann.get(BETA_CLASS_ANNOTATION) != new_ann.get(BETA_CLASS_ANNOTATION):
        out.append(
            Finding(
                Verdict.REJECTED,
                f"annotation `{BETA_CLASS_ANNOTATION}` is immutable (ValidatePersistentVolumeClaimUpdate)",
                new_claim_procedure(new),
            )
        )
    lost = [p for p in missing_prune_protection(new) if p not in missing_prune_protection(old)]
    if lost:
        out.append(
            Finding(
                Verdict.DATA_AT_RISK,
                f"prune protection removed: {', '.join(lost)}; a later removal from dist/ would delete the claim "
                "and its volume",
                "keep both annotations on the data claim",
            )
        )
    out += spec_findings(old, new, subject="claim")
    return out


def added(ctx: Context, new: Manifest) -> list[Finding]:
    namespace, name = namespace_of(new), name_of(new)
    origin = ctx.claim_template_origin("old", namespace, name)
    if origin is None:
        return [Finding(Verdict.SAFE, "new claim: an empty volume is provisioned when a pod first uses it")]
    sts, template = origin
    # The claim exists already: the claim template created it. Applying this object adopts it,
    # and the API server checks it as an update of that claim.
    out = [
        Finding(
            Verdict.SAFE,
            f"adopts the existing claim that the claim template `{get(template, 'metadata', 'name')}` of StatefulSet "
            f"`{name_of(sts)}` created: same volume, same data",
        )
    ]
    out += spec_findings(template, new, subject="claim")
    return out


def removed(ctx: Context, old: Manifest) -> list[Finding]:
    namespace, name = namespace_of(old), name_of(old)
    missing = missing_prune_protection(old)
    users = ctx.statefulsets_mounting("new", namespace, name)
    if missing:
        return [
            Finding(
                Verdict.DATA_AT_RISK,
                f"claim no longer rendered and not protected from pruning ({', '.join(missing)} missing): GitOps "
                "deletes it, and with the usual reclaim policy `Delete` its volume and data",
                f"keep it in the manifests, or first protect it: `{kubectl(old)} annotate pvc {name} "
                "argocd.argoproj.io/sync-options=Prune=false,Delete=false kustomize.toolkit.fluxcd.io/prune=disabled`",
            )
        ]
    if users:
        by = ", ".join(f"`{u}`" for u in users)
        return [
            Finding(
                Verdict.SAFE,
                f"claim no longer rendered but protected from pruning: it stays, and StatefulSet {by} still uses it",
            )
        ]
    return [
        Finding(
            Verdict.DATA_AT_RISK,
            "claim no longer rendered: protected from pruning, it stays in the cluster, but no StatefulSet uses it, "
            "so its data is no longer served",
            f"if that is intended, delete it by hand once the data is not needed: `{kubectl(old)} delete pvc {name}`",
        )
    ]
