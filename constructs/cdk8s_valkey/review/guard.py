"""The one check that blocks synth: a data claim must never shrink or change class.

Everything else the review tool reports in the pull request; these two would make GitOps
fail on a claim the API server refuses to change (ValidatePersistentVolumeClaimUpdate), or
leave the data behind on the old volume, so they stop ``cdk8s synth`` with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import _quantity
from ._context import name_of, namespace_of, template_claim_names
from ._diff import get
from ._load import ManifestError, load_path


def _claims(objects: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(namespace, claim name) -> claim spec: standalone claims and the claims that
    StatefulSet claim templates create. A standalone claim wins over a template's claim of the same
    name: the StatefulSet adopts the existing claim, and its template only shapes missing ones."""
    claims: dict[tuple[str, str], Mapping[str, Any]] = {}
    templated: dict[tuple[str, str], Mapping[str, Any]] = {}
    for obj in objects:
        manifest = dict(obj)
        namespace = namespace_of(manifest)
        if obj.get("kind") == "PersistentVolumeClaim":
            claims[(namespace, name_of(manifest))] = manifest.get("spec") or {}
        elif obj.get("kind") == "StatefulSet":
            for template in get(manifest, "spec", "volumeClaimTemplates") or []:
                for claim in template_claim_names(manifest, template):
                    templated[(namespace, claim)] = template.get("spec") or {}
    return {**templated, **claims}


def guard_claims(old_dir: str | os.PathLike[str], new_manifests: Iterable[Mapping[str, Any]]) -> None:
    """Raise ValueError when a claim of ``new_manifests`` is smaller than, or of another
    storage class than, the same claim in the ``*.k8s.yaml`` files of ``old_dir`` (the previous
    ``dist/``). A missing ``old_dir`` (a first synth) passes.

    Call it before ``app.synth()`` overwrites ``old_dir``::

        guard_claims(app.outdir, [m for chart in app.charts for m in chart.to_json()])
    """
    path = Path(old_dir)
    if not path.is_dir():
        return
    try:
        old = _claims(load_path(path))
    except ManifestError:
        # An unreadable previous dist/ is the review's business, not a reason to block synth.
        return
    for key, spec in _claims(new_manifests).items():
        before = old.get(key)
        if before is None:
            continue
        where = f"{key[0]}/{key[1]}" if key[0] else key[1]
        old_raw = get(before, "resources", "requests", "storage")
        new_raw = get(spec, "resources", "requests", "storage")
        old_size, new_size = _quantity.parse(old_raw), _quantity.parse(new_raw)
        if old_size is not None and new_size is not None and new_size < old_size:
            raise ValueError(
                f"storage_size: the claim {where} would shrink from {old_raw} to {new_raw} (the previous "
                f"{path.name}/ has {old_raw}); keep storage_size at {old_raw} or more; claims can only grow"
            )
        old_class, new_class = before.get("storageClassName"), spec.get("storageClassName")
        if old_class is not None and new_class != old_class:
            raise ValueError(
                f"storage_class: the claim {where} has storage class {old_class!r} in the previous {path.name}/ "
                f"and would get {new_class!r}; a claim's class is fixed when it is created: keep "
                f"storage_class={old_class!r}, or restore the data into a new claim of the new class"
            )
