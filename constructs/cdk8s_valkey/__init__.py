"""cdk8s constructs for ADR 0005: Valkey on Kubernetes as plain, reviewable YAML."""

from .alerts import Alerts
from .exporter_sidecar import ExporterSidecar
from .valkey_chart import ValkeyChart
from .valkey_statefulset import SecretKeyRef, ValkeyStatefulSet

__all__ = ["Alerts", "ExporterSidecar", "SecretKeyRef", "ValkeyChart", "ValkeyStatefulSet"]
__version__ = "0.1.0"
