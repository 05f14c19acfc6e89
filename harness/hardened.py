"""The hardened variant of this team's app: main.py's Valkey and exporter with every security
opt-in on (AUTH from a Secret, NetworkPolicies), plus the smoke-check Job. The scanner test scans
it and the auth tests run it, so what is scanned is what is run."""

from __future__ import annotations

from typing import Any

import cdk8s

import main
from cdk8s_valkey import ExporterOptions, ExporterSidecar, SecretKeyRef, SmokeCheck, ValkeyStatefulSet

AUTH_SECRET = SecretKeyRef(name="valkey-auth", key="password")


def build_hardened(app: cdk8s.App, chart_id: str = "hardened") -> cdk8s.Chart:
    """main.py's production sizes, namespace and queues, with ``auth_secret`` and ``network_policy``."""
    env = main.PRODUCTION
    chart = cdk8s.Chart(app, chart_id, namespace=env.namespace)
    valkey = ValkeyStatefulSet(
        chart,
        "valkey",
        memory_limit=env.memory_limit,
        storage_size=env.storage_size,
        storage_class=main.STORAGE_CLASS,
        auth_secret=AUTH_SECRET,
        network_policy=True,
    )
    ExporterSidecar(
        chart,
        "exporter",
        valkey=valkey,
        options=ExporterOptions(bullmq_queues=main.BULLMQ_QUEUES, service_monitor_labels=main.PROMETHEUS_LABELS),
    )
    SmokeCheck(chart, "smoke", valkey=valkey)
    return chart


def hardening_gaps(pod_spec: dict[str, Any]) -> list[str]:
    """What a rendered pod spec lacks of the project's hardening (empty when hardened): no
    service account token, non-root uid/gid set, seccomp RuntimeDefault, and in every container
    no privilege escalation, a read-only root filesystem, ALL capabilities dropped, and a memory
    request and limit."""
    gaps: list[str] = []
    pod_sc = pod_spec.get("securityContext") or {}
    if pod_spec.get("automountServiceAccountToken") is not False:
        gaps.append("automountServiceAccountToken is not false")
    if pod_sc.get("runAsNonRoot") is not True:
        gaps.append("pod runAsNonRoot is not true")
    for key in ("runAsUser", "runAsGroup"):
        if not isinstance(pod_sc.get(key), int) or pod_sc[key] == 0:
            gaps.append(f"pod {key} is not a non-root id")
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        gaps.append("pod seccompProfile is not RuntimeDefault")
    for ctr in pod_spec["containers"]:
        name, sc = ctr["name"], ctr.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            gaps.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            gaps.append(f"{name}: readOnlyRootFilesystem is not true")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            gaps.append(f"{name}: capabilities do not drop ALL")
        if sc.get("privileged"):
            gaps.append(f"{name}: privileged")
        resources = ctr.get("resources") or {}
        if "memory" not in (resources.get("requests") or {}) or "memory" not in (resources.get("limits") or {}):
            gaps.append(f"{name}: no memory request and limit")
    return gaps
