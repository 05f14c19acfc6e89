"""Service: what may change in place.

Ported from kubernetes ``pkg/apis/core/validation/validation.go`` ``ValidateServiceUpdate``
and its helpers: ``validateUpgradeDowngradeClusterIPs`` (``spec.clusterIPs[0]`` "may not
change once set", unless both sides are headless or either is ExternalName),
``validateUpgradeDowngradeIPFamilies`` (the primary ``ipFamilies[0]`` may not change) and
``validateLoadBalancerClassField`` (``loadBalancerClass`` of a LoadBalancer may not change).
A manifest that leaves ``clusterIP`` out keeps the allocated one: the registry copies it from
the old object before validating (``pkg/registry/core/service/storage`` ``patchAllocatedValues``).
Selector, ports, type and annotations change in place.
"""

from __future__ import annotations

from . import generic
from ._context import Context, kubectl, name_of, namespace_of
from ._diff import MISSING, get, leaves, show
from ._model import Finding, Manifest, Verdict

EXTERNAL_NAME = "ExternalName"
HEADLESS = "None"


def _cluster_ip(svc: Manifest) -> str | None:
    ips = get(svc, "spec", "clusterIPs")
    if isinstance(ips, list) and ips:
        return str(ips[0])
    value = get(svc, "spec", "clusterIP")
    return None if value is None else str(value)


def recreate_procedure(svc: Manifest) -> str:
    return (
        f"`{kubectl(svc)} delete service {name_of(svc)}`, then sync: the Service is created anew; "
        "clients cannot resolve or reach it for those seconds"
    )


def update_findings(old: Manifest, new: Manifest) -> list[Finding]:
    out: list[Finding] = []
    old_type = get(old, "spec", "type") or "ClusterIP"
    new_type = get(new, "spec", "type") or "ClusterIP"
    if EXTERNAL_NAME not in (old_type, new_type):
        before, after = _cluster_ip(old), _cluster_ip(new)
        if after is None:
            if before == HEADLESS:
                out.append(Finding(Verdict.SAFE, "`clusterIP: None` no longer rendered: the Service stays headless"))
        elif before != after and not (before == HEADLESS and after == HEADLESS):
            out.append(
                Finding(
                    Verdict.REJECTED,
                    f"`spec.clusterIP` {show(before)} -> {show(after)} may not change once set "
                    "(ValidateServiceUpdate); headless and not headless are different Services",
                    recreate_procedure(new),
                )
            )
    old_families = get(old, "spec", "ipFamilies") or []
    new_families = get(new, "spec", "ipFamilies") or []
    if old_families and new_families and old_families[0] != new_families[0]:
        out.append(
            Finding(
                Verdict.REJECTED,
                f"`spec.ipFamilies[0]` {show(old_families[0])} -> {show(new_families[0])}: the primary IP family "
                "may not change once set (validateUpgradeDowngradeIPFamilies)",
                recreate_procedure(new),
            )
        )
    if old_type == new_type == "LoadBalancer":
        old_class, new_class = get(old, "spec", "loadBalancerClass"), get(new, "spec", "loadBalancerClass")
        if old_class != new_class:
            out.append(
                Finding(
                    Verdict.REJECTED,
                    f"`spec.loadBalancerClass` {show(old_class)} -> {show(new_class)} may not change once set "
                    "(validateLoadBalancerClassField)",
                    recreate_procedure(new),
                )
            )
    return out


def changed(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    out = generic.metadata_findings(old, new)
    out += update_findings(old, new)
    frozen = ("spec.clusterIP", "spec.clusterIPs", "spec.ipFamilies", "spec.loadBalancerClass")
    for leaf in leaves(old.get("spec") or {}, new.get("spec") or {}, "spec"):
        if leaf.path.startswith(frozen):
            continue
        if leaf.path == "spec.selector" and leaf.new is MISSING:
            # No selector: no endpoints unless someone manages them (the Sentinel topology's client Service).
            out.append(
                Finding(
                    Verdict.CLIENT_OUTAGE,
                    f"{leaf.describe()}: the Service has no endpoints any more: {_cut_off(new)}",
                    _SWITCH_TO_SENTINEL if _sentinel_beside(ctx, new) else _MOVE_CLIENTS_FIRST,
                )
            )
        elif leaf.path.startswith("spec.selector"):
            out.append(Finding(Verdict.SAFE, f"{leaf.describe()}: traffic goes to the pods the new selector matches"))
        else:
            out.append(Finding(Verdict.SAFE, f"{leaf.describe()}: changed in place"))
    return out


def added(ctx: Context, new: Manifest) -> list[Finding]:
    return generic.added(ctx, new)


_MOVE_CLIENTS_FIRST = "move every client to its new address first, then merge this"
_SWITCH_TO_SENTINEL = (
    "switch the clients to the Sentinels in the same window, as the migration says (docs/operations.md, "
    '"Migrating to replicas and Sentinel", step 4): they cannot use the Sentinels before this sync creates them'
)


def _sentinel_beside(ctx: Context, svc: Manifest) -> bool:
    """The Sentinel topology (sentinel.py) removes the selector on purpose, next to ``<name>-sentinel``."""
    return ctx.find("new", "Service", namespace_of(svc), f"{name_of(svc)}-sentinel") is not None


def _cut_off(svc: Manifest) -> str:
    namespace = namespace_of(svc)
    address = f"{name_of(svc)}.{namespace}.svc" if namespace else name_of(svc)
    return f"clients of `{address}` get connection errors until they connect another way (Valkey keeps running)"


def _metrics_only(svc: Manifest) -> bool:
    """A Service whose every port is named ``metrics``: Prometheus scrapes it, no client uses it."""
    ports = get(svc, "spec", "ports") or []
    return bool(ports) and all(isinstance(p, dict) and p.get("name") == "metrics" for p in ports)


def removed(ctx: Context, old: Manifest) -> list[Finding]:
    """Graded as the removal of its selector: either way its clients are cut off."""
    if _metrics_only(old):
        return [
            Finding(Verdict.SAFE, "metrics Service no longer rendered: GitOps deletes it; Prometheus stops scraping it")
        ]
    return [
        Finding(Verdict.CLIENT_OUTAGE, f"no longer rendered: GitOps deletes it; {_cut_off(old)}", _MOVE_CLIENTS_FIRST)
    ]
