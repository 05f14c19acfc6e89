"""cdk8s constructs for ADR 0005: Valkey on Kubernetes as plain, reviewable YAML."""

from .exporter_sidecar import ExporterSidecar
from .valkey_statefulset import SecretKeyRef, ValkeyStatefulSet

__all__ = ["ExporterSidecar", "SecretKeyRef", "ValkeyStatefulSet"]
__version__ = "0.1.0"
