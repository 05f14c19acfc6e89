"""StatefulSet: the update rules of the API server, and what each change does to Valkey.

Ported from kubernetes ``pkg/apis/apps/validation/validation.go`` ``ValidateStatefulSetUpdate``:
the new spec, with replicas, ordinals, template, updateStrategy,
persistentVolumeClaimRetentionPolicy and minReadySeconds copied from the old one, must equal
the old spec ("updates to statefulset spec for fields other than ... are forbidden").
Kubernetes 1.32 added revisionHistoryLimit to that list; older servers refuse it.
"""

from __future__ import annotations

import json

from . import _quantity, generic, pod_template
from ._context import (
    Context,
    claims_of,
    kubectl,
    name_of,
    namespace_of,
    template_claim_names,
)
from ._diff import MISSING, by_name, get, leaves, show
from ._model import Finding, Manifest, Verdict

# ValidateStatefulSetUpdate: the spec fields an update may change.
MUTABLE_SPEC = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
    "revisionHistoryLimit",
)
_FROZEN = (
    "is frozen: a StatefulSet update may change only replicas, ordinals, template, updateStrategy, "
    "persistentVolumeClaimRetentionPolicy, minReadySeconds and revisionHistoryLimit "
    "(ValidateStatefulSetUpdate)"
)
# pkg/apis/apps/v1/defaults.go SetDefaults_StatefulSet: both policies default to Retain.
_RETAIN = "Retain"


def orphan_procedure(sts: Manifest) -> str:
    name = name_of(sts)
    return (
        f"`{kubectl(sts)} delete statefulset {name} --cascade=orphan`, then sync: the new StatefulSet "
        f"adopts the running pod `{name}-0` and replaces it once; the claims and their data stay"
    )


def changed(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    out = generic.metadata_findings(old, new)
    out += frozen_findings(old, new)
    out += _replicas(old, new)
    out += _retention(old, new)
    out += _claims(old, new)
    for field in ("updateStrategy", "minReadySeconds", "revisionHistoryLimit", "ordinals"):
        for leaf in leaves(get(old, "spec", field), get(new, "spec", field), f"spec.{field}"):
            note = " (accepted by Kubernetes 1.32 and later)" if field == "revisionHistoryLimit" else ""
            out.append(Finding(Verdict.SAFE, f"{leaf.describe()}: changed in place{note}"))
    out += pod_template.template_findings(ctx, old, new)
    return out


def frozen_findings(old: Manifest, new: Manifest) -> list[Finding]:
    """ValidateStatefulSetUpdate: every spec field outside MUTABLE_SPEC is frozen."""
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    out: list[Finding] = []
    for field in sorted((set(old_spec) | set(new_spec)) - set(MUTABLE_SPEC)):
        a, b = old_spec.get(field), new_spec.get(field)
        if a == b:
            continue
        if field == "volumeClaimTemplates":
            out += _claim_templates(old, new)
        elif field == "selector":
            name = name_of(new)
            out.append(
                Finding(
                    Verdict.REJECTED,
                    f"`spec.selector` {show(a)} -> {show(b)} {_FROZEN}",
                    f"`{kubectl(new)} delete statefulset {name} --cascade=orphan`, sync, then "
                    f"`{kubectl(new)} delete pod {name}-0`: the old pod does not match the new selector, so "
                    "it is not adopted and holds the pod name; the claims and their data stay",
                )
            )
        else:
            out.append(
                Finding(Verdict.REJECTED, f"`spec.{field}` {show(a)} -> {show(b)} {_FROZEN}", orphan_procedure(new))
            )
    return out


def _claim_templates(old: Manifest, new: Manifest) -> list[Finding]:
    olds = by_name([{**t, "name": get(t, "metadata", "name")} for t in get(old, "spec", "volumeClaimTemplates") or []])
    news = by_name([{**t, "name": get(t, "metadata", "name")} for t in get(new, "spec", "volumeClaimTemplates") or []])
    procedure = orphan_procedure(new)
    new_claims = claims_of(new)
    out = []
    for name in [*olds, *(n for n in news if n not in olds)]:
        a, b = olds.get(name), news.get(name)
        if a == b:
            continue
        if b is None:
            claims = template_claim_names(old, a or {})
            kept = all(c in new_claims for c in claims)
            tail = f"; the pod mounts {_names(claims)} by name now, so the claim and its data stay" if kept else ""
            out.append(
                Finding(
                    Verdict.REJECTED,
                    f"claim template `{name}` removed: `spec.volumeClaimTemplates` {_FROZEN}{tail}",
                    procedure,
                )
            )
        elif a is None:
            out.append(
                Finding(
                    Verdict.REJECTED,
                    f"claim template `{name}` added: `spec.volumeClaimTemplates` {_FROZEN}",
                    procedure,
                )
            )
        else:
            out += _claim_template_change(old, name, a, b, procedure)
    return out


def _claim_template_change(old: Manifest, name: str, a: Manifest, b: Manifest, procedure: str) -> list[Finding]:
    claims = template_claim_names(old, a)
    out = []
    for leaf in leaves(a, b):
        what = f"claim template `{name}`: {leaf.describe()} {_FROZEN}"
        if leaf.path == "spec.resources.requests.storage" and _shrinks(leaf.old, leaf.new):
            out.append(
                Finding(
                    Verdict.REJECTED,
                    f"{what}. Claims never shrink: after the procedure the existing {_names(claims)} keeps "
                    f"{show(leaf.old)} anyway",
                    f"revert to {leaf.old} or more",
                )
            )
        elif leaf.path == "spec.resources.requests.storage":
            patch = json.dumps({"spec": {"resources": {"requests": {"storage": leaf.new}}}}, separators=(",", ":"))
            grow = " ".join(f"`{kubectl(old)} patch pvc {c} -p '{patch}'`" for c in claims)
            out.append(
                Finding(
                    Verdict.REJECTED,
                    f"{what}. A claim template only shapes new claims: after the procedure the existing "
                    f"{_names(claims)} keeps {show(leaf.old)}",
                    f"{procedure}; then grow the existing claim with {grow} (the StorageClass needs "
                    "`allowVolumeExpansion: true`; claims never shrink)",
                )
            )
        elif leaf.path == "spec.storageClassName":
            out.append(Finding(Verdict.REJECTED, what, procedure))
            out.append(
                Finding(
                    Verdict.DATA_AT_RISK,
                    f"storage class {show(leaf.old)} -> {show(leaf.new)}: the existing {_names(claims)} stays on "
                    f"{show(leaf.old)}; only a new, empty claim would get {show(leaf.new)}",
                    "keep the class, or restore the data into a new claim of the new class and mount that",
                )
            )
        elif leaf.path.startswith("metadata.labels"):
            out.append(
                Finding(
                    Verdict.REJECTED,
                    f"{what}. Template labels are stamped on a claim once, when it is created",
                    f"revert it and label the existing claim: `{kubectl(old)} label pvc {claims[0]} "
                    f"{_label_arg(leaf.path.removeprefix('metadata.labels.'), leaf.new)}`",
                )
            )
        else:
            out.append(Finding(Verdict.REJECTED, what, procedure))
    return out


def _shrinks(old: object, new: object) -> bool:
    before, after = _quantity.parse(old), _quantity.parse(new)
    return before is not None and after is not None and after < before


def _label_arg(key: str, value: object) -> str:
    """``kubectl label`` argument: ``key=value``, or ``key-`` to remove it."""
    return f"{key}-" if value is MISSING else f"{key}={value}"


def _replicas(old: Manifest, new: Manifest) -> list[Finding]:
    # An unset replicas defaults to 1 (SetDefaults_StatefulSet).
    a, b = get(old, "spec", "replicas"), get(new, "spec", "replicas")
    a = 1 if a is None else a
    b = 1 if b is None else b
    if a == b:
        return []
    if b == 0:
        return [Finding(Verdict.RESTARTS, f"replicas {a} -> 0: Valkey stops until replicas is 1 again")]
    if b > 1 and _runs_sentinel(new):
        return [
            Finding(
                Verdict.SAFE,
                f"replicas {a} -> {b}: the Sentinel topology; each new pod starts as a replica of the primary the "
                "Sentinels name (valkey-role.sh), on its own claim, and is ready once it holds the primary's data",
            )
        ]
    if b > 1:
        return [
            Finding(
                Verdict.DATA_AT_RISK,
                f"replicas {a} -> {b}: every extra pod is an independent Valkey on an empty claim of its own, "
                "and the Service spreads clients over them (ADR 0005 runs exactly one)",
                "keep replicas at 1",
            )
        ]
    return [Finding(Verdict.SAFE, f"replicas {a} -> {b}")]


def _runs_sentinel(sts: Manifest) -> bool:
    """The pod of ``Sentinel`` (sentinel.py): a ``sentinel`` container beside a ``valkey`` container
    started through valkey-role.sh, which makes every pod but the primary its replica."""
    containers = by_name(get(sts, "spec", "template", "spec", "containers") or [])
    command = get(containers.get("valkey"), "command") or []
    return "sentinel" in containers and any(str(arg).endswith("/valkey-role.sh") for arg in command)


def _retention(old: Manifest, new: Manifest) -> list[Finding]:
    has_templates = bool(get(new, "spec", "volumeClaimTemplates"))
    out = []
    for when, event in (("whenDeleted", "the StatefulSet is deleted"), ("whenScaled", "it scales down")):
        a = get(old, "spec", "persistentVolumeClaimRetentionPolicy", when) or _RETAIN
        b = get(new, "spec", "persistentVolumeClaimRetentionPolicy", when) or _RETAIN
        if a == b:
            continue
        what = f"persistentVolumeClaimRetentionPolicy.{when} {a} -> {b}"
        if b == _RETAIN:
            out.append(Finding(Verdict.SAFE, f"{what}: claims are kept"))
        elif has_templates:
            out.append(
                Finding(
                    Verdict.DATA_AT_RISK,
                    f"{what}: the claims of its claim templates, and their volumes, are deleted when {event}",
                    f"keep `{when}: Retain`",
                )
            )
        else:
            out.append(Finding(Verdict.SAFE, f"{what}: no effect, the StatefulSet has no claim templates"))
    return out


def _claims(old: Manifest, new: Manifest) -> list[Finding]:
    """A claim the pod used and no longer uses: Valkey starts on other (empty) data."""
    before, after = claims_of(old), claims_of(new)
    lost = [c for c in before if c not in after]
    if not lost:
        return []
    gained = [c for c in after if c not in before]
    instead = f"; it uses {_names(gained)} instead (empty unless it exists already)" if gained else ""
    return [
        Finding(
            Verdict.DATA_AT_RISK,
            f"the pod no longer uses {_names(lost)}{instead}: the data there is no longer served",
            "keep the claim names; to move the data, copy it into the new claim while Valkey is stopped",
        )
    ]


def added(ctx: Context, new: Manifest) -> list[Finding]:
    claims = claims_of(new)
    namespace = namespace_of(new)
    fresh = [
        c
        for c in claims
        if ctx.find("old", "PersistentVolumeClaim", namespace, c) is None
        and ctx.claim_template_origin("old", namespace, c) is None
    ]
    reason = f"new StatefulSet: Valkey starts on {_names(list(claims))}" if claims else "new StatefulSet"
    if fresh:
        reason += ", new in this rendering: an empty volume unless the claim exists in the cluster already"
    return [Finding(Verdict.SAFE, reason)]


def removed(ctx: Context, old: Manifest) -> list[Finding]:
    namespace = namespace_of(old)
    out = [
        Finding(Verdict.RESTARTS, f"no longer rendered: GitOps deletes it and its pod, Valkey `{name_of(old)}` stops")
    ]
    for claim in claims_of(old):
        users = ctx.statefulsets_mounting("new", namespace, claim)
        if users:
            by = ", ".join(f"`{u}`" for u in users)
            out.append(Finding(Verdict.SAFE, f"claim `{claim}` is used by StatefulSet {by} now"))
        else:
            out.append(
                Finding(
                    Verdict.DATA_AT_RISK,
                    f"no StatefulSet of the new rendering uses claim `{claim}`: its data is no longer served",
                    "if this is a rename, keep the old name (the claim name derives from it) or copy the data",
                )
            )
    policy = get(old, "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted") or _RETAIN
    if policy != _RETAIN and get(old, "spec", "volumeClaimTemplates"):
        out.append(
            Finding(
                Verdict.DATA_AT_RISK,
                f"persistentVolumeClaimRetentionPolicy.whenDeleted {policy}: its claims are deleted with it",
                "set `whenDeleted: Retain` and sync before removing the StatefulSet",
            )
        )
    return out


def _names(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return f"claim {quoted[0]}" if len(quoted) == 1 else "claims " + ", ".join(quoted)
