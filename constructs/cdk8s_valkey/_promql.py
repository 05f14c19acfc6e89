"""PromQL shared by the monitoring layer (alerts, dashboard) and the ServiceMonitors: literals,
durations and the selectors of one Valkey's series. Plain functions of strings and numbers; the
constructs are imported for their types only, so that any construct can import this module."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # exporter_sidecar.py imports this module
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


def series(prefix: str, metric: str, *matchers: str) -> str:
    """A series selector of the exporter: ``<prefix>_<metric>{<matchers>}``."""
    return f"{prefix}_{metric}{{{','.join(matchers)}}}"


def prometheus_duration(seconds: int) -> str:
    """A Prometheus duration as people write it: 90s -> 1m30s, 3600 -> 1h, 86400 -> 1d."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def re_escape(text: str) -> str:
    """``text`` as a literal in an RE2 regular expression (Prometheus' regex dialect)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def promql_string(text: str) -> str:
    """A PromQL double-quoted string literal (Go escaping, which JSON's is a subset of)."""
    return json.dumps(text, ensure_ascii=False)


def one_of(label: str, names: Sequence[str]) -> str:
    """A matcher of ``label`` equal to one of ``names``: ``pod="valkey-0"`` for one name,
    ``pod=~"valkey-0|valkey-1"`` (each name a regex literal) for several."""
    if len(names) == 1:
        return f'{label}="{names[0]}"'
    return f'{label}=~"{"|".join(re_escape(n) for n in names)}"'


def bullmq_keys(prefix: str, queues: Sequence[str], states: Sequence[str]) -> str:
    """The ``key`` matcher of the BullMQ keys of ``queues`` in ``states``, queue names and the
    prefix matched literally: ``key=~"bull:(?:emails|reports):(?:wait|paused)"``."""
    names = "|".join(re_escape(queue) for queue in queues)
    alternatives = "|".join(states)
    return f"key=~{promql_string(f'{re_escape(prefix)}:(?:{names}):(?:{alternatives})')}"
