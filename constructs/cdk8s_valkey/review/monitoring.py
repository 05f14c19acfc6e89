"""ServiceMonitor and PrometheusRule (prometheus-operator CRDs): no restart of Valkey.

Custom resources have no update validation beyond their OpenAPI schema (kubernetes
``staging/src/k8s.io/apiextensions-apiserver/pkg/registry/customresource/validator.go``),
and prometheus-operator reloads Prometheus itself when they change.
"""

from __future__ import annotations

from typing import Any

from . import generic
from ._context import Context
from ._diff import by_name, get, leaves
from ._model import Finding, Manifest, Verdict


def _alerts(rule: Manifest) -> dict[str, Any]:
    alerts: dict[str, Any] = {}
    for group in get(rule, "spec", "groups") or []:
        for item in group.get("rules") or []:
            name = item.get("alert") or item.get("record")
            alerts[f"{group.get('name')}/{name}"] = item
    return alerts


def changed(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    del ctx
    out = generic.metadata_findings(old, new)
    if new.get("kind") != "PrometheusRule":
        out += [
            Finding(Verdict.SAFE, f"{line}: Prometheus picks it up, no restart")
            for line in generic.body_leaves(old, new)
        ]
        return out
    olds, news = _alerts(old), _alerts(new)
    for key in [*olds, *(k for k in news if k not in olds)]:
        name = key.split("/", 1)[1]
        if key not in news:
            out.append(Finding(Verdict.SAFE, f"alert `{name}` removed"))
        elif key not in olds:
            out.append(Finding(Verdict.SAFE, f"alert `{name}` added"))
        elif olds[key] != news[key]:
            fields = sorted({leaf.path.split(".")[0] for leaf in leaves(olds[key], news[key])})
            out.append(Finding(Verdict.SAFE, f"alert `{name}` changed ({', '.join(fields)})"))
    groups_old = by_name(get(old, "spec", "groups"))
    groups_new = by_name(get(new, "spec", "groups"))
    for leaf in leaves(
        {k: {f: v for f, v in g.items() if f != "rules"} for k, g in groups_old.items()},
        {k: {f: v for f, v in g.items() if f != "rules"} for k, g in groups_new.items()},
        "spec.groups",
    ):
        out.append(Finding(Verdict.SAFE, leaf.describe()))
    if len(out) == 0:
        out.append(Finding(Verdict.SAFE, "rules reordered"))
    return out


def added(ctx: Context, new: Manifest) -> list[Finding]:
    return generic.added(ctx, new)


def removed(ctx: Context, old: Manifest) -> list[Finding]:
    return generic.removed(ctx, old)
