"""This team's app: ADR 0005's Valkey, rendered to dist/valkey.k8s.yaml.

Everything the team decides is named here, once. `cdk8s synth` runs this file.
"""

from __future__ import annotations

import cdk8s
from cdk8s_valkey import ValkeyStatefulSet

NAMESPACE = "apps"
MEMORY_LIMIT = cdk8s.Size.gibibytes(1)
STORAGE_SIZE = cdk8s.Size.gibibytes(10)
STORAGE_CLASS = "longhorn"


def build(app: cdk8s.App) -> cdk8s.Chart:
    """The one chart of this app, with id ``valkey`` (so the file is valkey.k8s.yaml)."""
    chart = cdk8s.Chart(app, "valkey", namespace=NAMESPACE)
    ValkeyStatefulSet(
        chart,
        "valkey",
        memory_limit=MEMORY_LIMIT,
        storage_size=STORAGE_SIZE,
        storage_class=STORAGE_CLASS,
    )
    return chart


if __name__ == "__main__":
    app = cdk8s.App()  # writes to $CDK8S_OUTDIR, or dist/
    build(app)
    app.synth()
