"""The app.kubernetes.io label set shared by every object a Valkey renders."""

from __future__ import annotations

MANAGED_BY = "cdk8s"
VERSION = "app.kubernetes.io/version"


def match_labels(instance: str) -> dict[str, str]:
    """Selector labels: stable for the life of the StatefulSet (selectors are immutable)."""
    return {"app.kubernetes.io/name": "valkey", "app.kubernetes.io/instance": instance}


def common_labels(instance: str, version: str | None, component: str) -> dict[str, str]:
    """Labels for metadata: the selector labels plus version (when the image has a tag),
    component and manager."""
    labels = match_labels(instance)
    if version:
        labels[VERSION] = version
    labels["app.kubernetes.io/component"] = component
    labels["app.kubernetes.io/managed-by"] = MANAGED_BY
    return labels
