"""cdk8s constructs for ADR 0005: Valkey on Kubernetes as plain, reviewable YAML."""

from .valkey_statefulset import ValkeyStatefulSet

__all__ = ["ValkeyStatefulSet"]
__version__ = "0.1.0"
