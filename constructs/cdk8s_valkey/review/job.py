"""Job: most of its spec is frozen once created.

Ported from kubernetes ``pkg/apis/batch/validation/validation.go`` ``ValidateJobSpecUpdate``:
``selector``, ``template`` (``validatePodTemplateUpdate``; scheduling directives may change
only while a suspended Job has not started), ``completions`` (of a non-indexed Job),
``completionMode``, ``podFailurePolicy``, ``backoffLimitPerIndex``, ``managedBy`` and
``successPolicy`` are immutable. ``parallelism``, ``activeDeadlineSeconds``, ``backoffLimit``,
``ttlSecondsAfterFinished`` and ``suspend`` may change.

A hook Job (Argo CD ``argocd.argoproj.io/hook``) is never updated: Argo CD deletes and creates
it at each sync (hook-delete-policy, ``BeforeHookCreation`` by default), so any change is safe
there. Flux recreates objects whose immutable fields change when they carry
``kustomize.toolkit.fluxcd.io/force: enabled``.
"""

from __future__ import annotations

from . import generic
from ._context import Context, kubectl, name_of
from ._diff import get, leaves
from ._model import Finding, Manifest, Verdict

ARGO_HOOK = "argocd.argoproj.io/hook"
HELM_HOOK = "helm.sh/hook"
FLUX_FORCE = "kustomize.toolkit.fluxcd.io/force"
IMMUTABLE_SPEC = (
    "selector",
    "template",
    "completions",
    "completionMode",
    "podFailurePolicy",
    "backoffLimitPerIndex",
    "managedBy",
    "successPolicy",
)


def _annotations(job: Manifest) -> dict[str, str]:
    return dict(get(job, "metadata", "annotations") or {})


def changed(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    del ctx
    out = generic.metadata_findings(old, new)
    annotations = _annotations(new)
    frozen = []
    mutable = []
    for field in sorted(set(old.get("spec") or {}) | set(new.get("spec") or {})):
        changes = leaves(get(old, "spec", field), get(new, "spec", field), f"spec.{field}")
        if not changes:
            continue
        if field == "completions" and get(new, "spec", "completionMode") == "Indexed":
            # validateCompletions: an Indexed Job may change completions together with parallelism.
            mutable += changes
        elif field in IMMUTABLE_SPEC:
            frozen += changes
        else:
            mutable += changes
    out += [Finding(Verdict.SAFE, f"{leaf.describe()}: changed in place") for leaf in mutable]
    if not frozen:
        return out
    fields = ", ".join(sorted({f"`{'.'.join(leaf.path.split('.')[:2])}`" for leaf in frozen}))
    if ARGO_HOOK in annotations or HELM_HOOK in annotations:
        out.append(
            Finding(
                Verdict.SAFE,
                f"{fields} changed on a hook Job: it is created anew at each sync, never updated"
                + (
                    ""
                    if annotations.get(FLUX_FORCE) == "enabled"
                    else f" (Flux applies it as a plain Job and needs `{FLUX_FORCE}: enabled` to recreate it)"
                ),
            )
        )
    elif annotations.get(FLUX_FORCE) == "enabled":
        out.append(Finding(Verdict.SAFE, f"{fields} changed: Flux recreates the Job (`{FLUX_FORCE}: enabled`)"))
    else:
        out.append(
            Finding(
                Verdict.REJECTED,
                f"{fields} changed: immutable once the Job exists (ValidateJobSpecUpdate)",
                f"`{kubectl(new)} delete job {name_of(new)}`, then sync: the Job runs again",
            )
        )
    return out


def added(ctx: Context, new: Manifest) -> list[Finding]:
    del ctx
    when = _annotations(new).get(ARGO_HOOK)
    reason = f"new Job: runs as an Argo CD {when} hook" if when else "new Job: runs once when created"
    return [Finding(Verdict.SAFE, reason)]


def removed(ctx: Context, old: Manifest) -> list[Finding]:
    return generic.removed(ctx, old)
