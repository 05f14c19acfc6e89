"""The hardened variant of this team's app: main.py's Valkey and exporter with every security
opt-in on (AUTH from a Secret, NetworkPolicies). The scanner test scans it and the auth tests
run it, so what is scanned is what is run."""

from __future__ import annotations

import cdk8s

import main
from cdk8s_valkey import ExporterOptions, ExporterSidecar, SecretKeyRef, ValkeyStatefulSet

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
    return chart
