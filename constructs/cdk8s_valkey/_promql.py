"""PromQL shared by the constructs that query one Valkey's exporter series."""

from __future__ import annotations

from .exporter_sidecar import ExporterSidecar
from .valkey_statefulset import ValkeyStatefulSet


def scope_matchers(valkey: ValkeyStatefulSet, exporter: ExporterSidecar) -> str:
    """The label matchers that select this Valkey's exporter series and no other Valkey's:
    ``namespace`` and ``service`` (the metrics Service), the labels a
    ServiceMonitor attaches to every series, e.g. ``namespace="apps",service="valkey-metrics"``.

    The same matchers as :attr:`Alerts.selector`, so that a dashboard panel shows exactly the
    series an alert fires on."""
    # ExporterSidecar refuses a Valkey without a namespace, so both labels are always there.
    return f'namespace="{valkey.namespace}",service="{exporter.metrics_service_name}"'
