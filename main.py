"""This team's app: ADR 0005's Valkey, rendered to dist/valkey.k8s.yaml.

Everything the team decides is named here, once. `cdk8s synth` runs this file.
"""

from __future__ import annotations

import cdk8s

from cdk8s_valkey import ValkeyChart

NAMESPACE = "apps"
MEMORY_LIMIT = cdk8s.Size.gibibytes(1)
STORAGE_SIZE = cdk8s.Size.gibibytes(10)
STORAGE_CLASS = "longhorn"
# BullMQ queues whose depth is exported and alerted on.
BULLMQ_QUEUES = ("emails", "webhooks")
# kube-prometheus-stack selects ServiceMonitors and PrometheusRules by its Helm release.
PROMETHEUS_LABELS = {"release": "kube-prometheus-stack"}


def build(app: cdk8s.App) -> ValkeyChart:
    """The one chart of this app, with id ``valkey`` (so the file is valkey.k8s.yaml)."""
    return ValkeyChart(
        app,
        "valkey",
        namespace=NAMESPACE,
        memory_limit=MEMORY_LIMIT,
        storage_size=STORAGE_SIZE,
        storage_class=STORAGE_CLASS,
        bullmq_queues=BULLMQ_QUEUES,
        service_monitor_labels=PROMETHEUS_LABELS,
        rule_labels=PROMETHEUS_LABELS,
    )


if __name__ == "__main__":
    app = cdk8s.App()  # writes to $CDK8S_OUTDIR, or dist/
    build(app)
    app.synth()
