"""Checks shared by the constructs that attach to a Valkey: the wiring objects fit together."""

from __future__ import annotations

from typing import TYPE_CHECKING

from constructs import Construct

from . import _registry

if TYPE_CHECKING:  # both modules import this one
    from .exporter_sidecar import ExporterSidecar
    from .valkey_statefulset import ValkeyStatefulSet


def check_same_namespace(construct: str, scope: Construct, valkey: ValkeyStatefulSet, why: str) -> None:
    """``scope`` renders into the Valkey's namespace; ``why`` says what needs it."""
    chart_namespace = _registry.namespace_of(scope)
    if chart_namespace != valkey.namespace:
        raise ValueError(
            f"valkey: {valkey.name!r} renders into namespace {valkey.namespace!r} but this chart "
            f"renders into {chart_namespace!r}; define the {construct} in a chart of the Valkey's "
            f"namespace, {why}"
        )


def check_exporter_of(exporter: ExporterSidecar, valkey: ValkeyStatefulSet) -> None:
    """``exporter`` is the ExporterSidecar of ``valkey``."""
    if exporter.valkey is not valkey:
        raise ValueError(
            f"exporter: it watches Valkey {exporter.valkey.name!r}, not {valkey.name!r}; "
            "pass the ExporterSidecar created with valkey=<this Valkey>"
        )
