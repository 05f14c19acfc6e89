"""ValkeyChart: a chart holding one :class:`Valkey`, for apps with one Valkey per file."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Unpack

import cdk8s
from constructs import Construct

from ._options import REMOVED_IN
from .alerts import AlertOptions
from .exporter_sidecar import ExporterOptions
from .valkey import Valkey, ValkeyProps

# 0.1 flat props of the exporter whose option field has another name.
_EXPORTER_RENAMED = {
    "exporter_image": "image",
    "exporter_memory_limit": "memory_limit",
    "exporter_cpu_request": "cpu_request",
}


class ValkeyChart(cdk8s.Chart):
    """A chart, written to ``<id>.k8s.yaml``, holding one :class:`Valkey` with the chart's id.

    It takes exactly :class:`Valkey`'s props plus ``namespace``. The 0.1 flat exporter and
    alert props (``bullmq_queues=``, ``rule_labels=``, ``exporter_image=``, ...) still work
    until 0.3.0, with a DeprecationWarning; pass ``exporter=ExporterOptions(...)`` and
    ``alerts=AlertOptions(...)`` instead. The parts are reachable as ``valkey`` (the
    ValkeyStatefulSet), ``exporter`` and ``alerts``, and the whole as ``instance``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        namespace: str | None = None,
        exporter: ExporterOptions | None = None,
        alerts: AlertOptions | None = None,
        **server: Unpack[ValkeyProps],
    ) -> None:
        """
        :param namespace: Namespace of every object. Required in practice: the exporter and
            alerts refuse a Valkey without one. Default: none.
        :param exporter: :class:`Valkey` ``exporter``. Default: ``ExporterOptions()``.
        :param alerts: :class:`Valkey` ``alerts``. Default: ``AlertOptions()``.
        :param server: :class:`Valkey`'s keywords (the ValkeyStatefulSet props).
        """
        props: dict[str, Any] = dict(server)
        exporter = _fold_legacy(props, exporter or ExporterOptions(), _EXPORTER_RENAMED)
        alerts = _fold_legacy(props, alerts or AlertOptions(), {})
        super().__init__(scope, id, namespace=namespace)
        self.instance = Valkey(self, id, exporter=exporter, alerts=alerts, **props)
        self.valkey = self.instance.server
        self.exporter = self.instance.exporter
        self.alerts = self.instance.alerts


def _fold_legacy(props: dict[str, Any], options: Any, renamed: dict[str, str]) -> Any:
    """Move the 0.1 flat props that belong to ``options`` out of ``props`` and into it."""
    fields = {field.name for field in dataclasses.fields(options)}
    names = {
        key: renamed.get(key, key)
        for key in props
        if renamed.get(key, key) in fields and key not in ValkeyProps.__annotations__
    }
    if not names:
        return options
    warnings.warn(
        f"ValkeyChart: {sorted(names)} as keywords are deprecated and stop working in {REMOVED_IN}; "
        f"pass {'exporter' if renamed else 'alerts'}={type(options).__name__}(...)",
        DeprecationWarning,
        stacklevel=3,
    )
    return dataclasses.replace(options, **{field: props.pop(key) for key, field in names.items()})
