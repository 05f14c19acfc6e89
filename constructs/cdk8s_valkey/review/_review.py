"""Matching two renderings object by object and applying each kind's rules."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from . import configmap, generic, job, monitoring, networkpolicy, pvc, service, statefulset
from ._context import Context
from ._diff import leaves, summarize
from ._load import ManifestError
from ._model import Change, Finding, Manifest, ObjectKey, ObjectReview, Report, Verdict


class KindRules(Protocol):
    """A module of rules for one kind (statefulset.py, pvc.py, ...)."""

    def changed(self, ctx: Context, old: Manifest, new: Manifest) -> list[Finding]: ...
    def added(self, ctx: Context, new: Manifest) -> list[Finding]: ...
    def removed(self, ctx: Context, old: Manifest) -> list[Finding]: ...


# (API group, kind) -> the module holding its rules.
_RULES: dict[tuple[str, str], KindRules] = {
    ("apps", "StatefulSet"): statefulset,
    ("", "PersistentVolumeClaim"): pvc,
    ("", "Service"): service,
    ("", "ConfigMap"): configmap,
    ("", "Secret"): configmap,
    ("batch", "Job"): job,
    ("networking.k8s.io", "NetworkPolicy"): networkpolicy,
    ("monitoring.coreos.com", "ServiceMonitor"): monitoring,
    ("monitoring.coreos.com", "PrometheusRule"): monitoring,
}


def _index(objects: Iterable[Mapping[str, Any]], side: str) -> dict[ObjectKey, Manifest]:
    index: dict[ObjectKey, Manifest] = {}
    for obj in objects:
        manifest: Manifest = copy.deepcopy(dict(obj))
        key = ObjectKey.of(manifest)
        if not key.kind or not key.name:
            raise ManifestError(f"{side}: an object without kind or metadata.name: {str(manifest)[:80]}")
        if key in index:
            raise ManifestError(f"{side}: {key} appears twice")
        index[key] = manifest
    return index


def review(old_objects: Iterable[Mapping[str, Any]], new_objects: Iterable[Mapping[str, Any]]) -> Report:
    """Review the change from one rendering (a list of manifests) to another.

    Raises ManifestError when either side holds an object twice or one without kind and name.
    """
    ctx = Context(old=_index(old_objects, "old"), new=_index(new_objects, "new"))
    reviews = []
    for key in sorted(set(ctx.old) | set(ctx.new)):
        old, new = ctx.old.get(key), ctx.new.get(key)
        if old == new:
            continue
        rules = _RULES.get((key.group, key.kind), generic)
        change: Change
        if old is None and new is not None:
            findings = rules.added(ctx, new)
            change = "added"
        elif new is None and old is not None:
            findings = rules.removed(ctx, old)
            change = "removed"
        else:
            assert old is not None and new is not None
            findings = rules.changed(ctx, old, new)
            change = "changed"
            if not findings:
                findings = [Finding(Verdict.SAFE, line) for line in summarize(leaves(old, new))]
        reviews.append(ObjectReview(key=key, change=change, findings=tuple(findings)))
    return Report(objects=tuple(reviews), warnings=tuple(_staging_skipped(reviews)))


def _staging_skipped(reviews: list[ObjectReview]) -> list[str]:
    """One warning when the same object (kind and name) changes in two or more namespaces: each
    environment is a namespace of its own, so one change reaches them all, staging skipped."""
    namespaces: dict[tuple[str, str, str], dict[str, ObjectReview]] = {}
    for review in reviews:
        if review.key.namespace:
            namespaces.setdefault((review.key.group, review.key.kind, review.key.name), {})[review.key.namespace] = (
                review
            )
    shared = {key: by_ns for key, by_ns in namespaces.items() if len(by_ns) > 1}
    if not shared:
        return []
    envs = sorted({ns for by_ns in shared.values() for ns in by_ns})
    worst = max(r.verdict for by_ns in shared.values() for r in by_ns.values())
    names = [f"{kind} `{name}`" for (_, kind, name) in sorted(shared, key=lambda k: (k[1], k[2]))]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return [
        f"staging skipped: this one change reaches {len(envs)} environments at once (namespaces "
        f"{', '.join(f'`{ns}`' for ns in envs)}): {shown}, at worst **{worst.label}**. Production gets it "
        "before staging has run it. Split it: change staging only, merge, watch its sync and smoke check, then "
        'production (docs/review.md, "Staging first").'
    ]
