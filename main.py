"""This team's app: ADR 0005's Valkey in staging and production, one file each under dist/.

Everything the team decides is named here, once: what both environments share in
``build``, and what differs in ``ENVIRONMENTS``. `cdk8s synth` runs this file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import cdk8s

from cdk8s_valkey import (
    AlertOptions,
    BackupOptions,
    DashboardOptions,
    ExporterOptions,
    SmokeCheckOptions,
    Valkey,
    ValkeyProps,
)
from cdk8s_valkey.review import ClaimGuardError, guarded_synth

STORAGE_CLASS = "longhorn"
# BullMQ queues whose depth is exported and alerted on.
BULLMQ_QUEUES = ("emails", "webhooks")
# kube-prometheus-stack selects ServiceMonitors and PrometheusRules by its Helm release.
PROMETHEUS_LABELS = {"release": "kube-prometheus-stack"}


@dataclass(frozen=True)
class Environment:
    """What differs between staging and production: nothing else may."""

    chart_id: str  # the file: dist/<chart_id>.k8s.yaml, one GitOps application each
    namespace: str
    memory_limit: cdk8s.Size
    storage_size: cdk8s.Size
    # Staging rehearses the NetworkPolicy before production turns it on.
    network_policy: bool
    # Longhorn schedules for the data claim; staging's data is disposable.
    backups: BackupOptions | None
    # None: the library's default (0.7 since 0.3). Production keeps 0.8 until staging has run the
    # new default: the change restarts Valkey, and a dataset already above 70 % of the limit would
    # then have its writes refused (noeviction). Check `used_memory` before promoting it.
    maxmemory_ratio: float | None = None


# Production keeps the chart id of 0.1 (dist/valkey.k8s.yaml), so its GitOps application
# keeps pointing at the same file.
STAGING = Environment(
    "valkey-staging", "apps-staging", cdk8s.Size.mebibytes(512), cdk8s.Size.gibibytes(5), True, backups=None
)
PRODUCTION = Environment(
    "valkey",
    "apps",
    cdk8s.Size.gibibytes(1),
    cdk8s.Size.gibibytes(10),
    False,
    # Hourly snapshots on the cluster's own disks. The off-cluster backup schedule needs a
    # Longhorn backup target (docs/operations.md); set backup= here once it exists.
    backups=BackupOptions(backup=None),
    maxmemory_ratio=0.8,
)
ENVIRONMENTS = (STAGING, PRODUCTION)


def build(app: cdk8s.App, env: Environment) -> cdk8s.Chart:
    """One environment: a chart ``env.chart_id`` holding the Valkey ``valkey``."""
    chart = cdk8s.Chart(app, env.chart_id, namespace=env.namespace)
    server: ValkeyProps = {
        "memory_limit": env.memory_limit,
        "storage_size": env.storage_size,
        "storage_class": STORAGE_CLASS,
        "network_policy": env.network_policy,
    }
    if env.maxmemory_ratio is not None:
        server["maxmemory_ratio"] = env.maxmemory_ratio
    Valkey(
        chart,
        "valkey",
        **server,
        exporter=ExporterOptions(bullmq_queues=BULLMQ_QUEUES, service_monitor_labels=PROMETHEUS_LABELS),
        alerts=AlertOptions(rule_labels=PROMETHEUS_LABELS),
        dashboard=DashboardOptions(),
        backups=env.backups,
        # ADR 0005: smoke tests before promoting; the Job runs after every sync of each file.
        smoke_check=SmokeCheckOptions(),
    )
    return chart


if __name__ == "__main__":
    app = cdk8s.App()  # writes to $CDK8S_OUTDIR, or dist/
    for environment in ENVIRONMENTS:
        build(app, environment)
    # A data claim may not shrink or change class (Kubernetes refuses both): compared with the
    # previous dist/ and with dist/ as committed, since `cdk8s synth` deletes dist/ first.
    try:
        guarded_synth(app)
    except ClaimGuardError as error:
        sys.exit(f"synth refused: {error}")
