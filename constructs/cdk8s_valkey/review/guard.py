"""The one check that blocks synth: a data claim must never shrink or change class.

Everything else the review tool reports in the pull request; these two would make GitOps
fail on a claim the API server refuses to change (ValidatePersistentVolumeClaimUpdate), or
leave the data behind on the old volume, so they stop ``cdk8s synth`` with the fix.

The cdk8s CLI deletes its output directory before it runs the app, so "the previous dist/" is
read from two places: the directory itself when it is still there (``python main.py``, or the
Makefile, which synthesizes elsewhere and names dist/ in ``CDK8S_VALKEY_DIST``), and dist/ as
committed at ``HEAD`` when it is inside a git work tree (a bare ``npx cdk8s synth``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _quantity
from ._context import claims_of, name_of, namespace_of, template_claim_names
from ._diff import by_name, get
from ._load import MANIFEST_SUFFIX, ManifestError, NoRevisionError, committed_files, load_path, parse
from ._model import Manifest

if TYPE_CHECKING:
    import cdk8s

# The directory this synth replaces, when the app writes elsewhere first (the Makefile's synth).
DIST_ENV = "CDK8S_VALKEY_DIST"
# valkey_statefulset._storage_size: left out, storage_size is 3 x memory_limit in whole GiB, at least 5 GiB.
_STORAGE_TO_MEMORY = 3
_DEFAULT_STORAGE_MIN_GIB = 5
_GIB = 1 << 30


class ClaimGuardError(ValueError):
    """A data claim would shrink or change storage class: synth stops with the fix."""


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


def _memory_limit(objects: list[Manifest], namespace: str, claim: str) -> object:
    """The memory limit of the ``valkey`` container whose pod mounts the claim (None if none)."""
    for obj in objects:
        if obj.get("kind") == "StatefulSet" and namespace_of(obj) == namespace and claim in claims_of(obj):
            container = by_name(get(obj, "spec", "template", "spec", "containers")).get("valkey")
            return get(container, "resources", "limits", "memory")
    return None


def _follows_memory(new_size: object, memory_limit: object) -> bool:
    """Whether ``new_size`` is what storage_size defaults to for ``memory_limit``."""
    size, memory = _quantity.parse(new_size), _quantity.whole(memory_limit)
    if size is None or memory is None:
        return False
    gib = max(_DEFAULT_STORAGE_MIN_GIB, -(-_STORAGE_TO_MEMORY * memory // _GIB))
    return size == gib * _GIB


def _check(label: str, old_objects: list[Manifest], new_objects: list[Manifest]) -> None:
    old = _claims(old_objects)
    for key, spec in _claims(new_objects).items():
        before = old.get(key)
        if before is None:
            continue
        where = f"{key[0]}/{key[1]}" if key[0] else key[1]
        old_raw = get(before, "resources", "requests", "storage")
        new_raw = get(spec, "resources", "requests", "storage")
        old_size, new_size = _quantity.parse(old_raw), _quantity.parse(new_raw)
        if old_size is not None and new_size is not None and new_size < old_size:
            memory = _memory_limit(new_objects, *key)
            if _follows_memory(new_raw, memory):
                fix = (
                    f"storage_size follows memory_limit when it is left out ({_STORAGE_TO_MEMORY} x {memory}, "
                    f"at least {_DEFAULT_STORAGE_MIN_GIB}Gi): set storage_size explicitly to {old_raw}"
                )
            else:
                fix = f"keep storage_size at {old_raw} or more"
            raise ClaimGuardError(
                f"storage_size: the claim {where} would shrink from {old_raw} to {new_raw} ({label} has "
                f"{old_raw}); {fix}; claims can only grow"
            )
        old_class, new_class = before.get("storageClassName"), spec.get("storageClassName")
        if old_class is not None and new_class != old_class:
            raise ClaimGuardError(
                f"storage_class: the claim {where} has storage class {old_class!r} in {label} and would get "
                f"{new_class!r}; a claim's class is fixed when it is created: keep storage_class={old_class!r}, "
                "or restore the data into a new claim of the new class"
            )


def guard_claims(old_dir: str | os.PathLike[str], new_manifests: Iterable[Mapping[str, Any]]) -> None:
    """Raise ClaimGuardError (a ValueError) when a claim of ``new_manifests`` is smaller than,
    or of another storage class than, the same claim in the ``*.k8s.yaml`` files of
    ``old_dir``. A missing or unreadable ``old_dir`` passes (the review reports the rest).

    This compares with one directory only; :func:`guarded_synth` is what an app calls.
    """
    path = Path(old_dir)
    if not path.is_dir():
        return
    try:
        old = load_path(path)
    except ManifestError:
        return
    _check(f"the previous {path.name}/", old, [dict(m) for m in new_manifests])


def _has_manifests(path: Path) -> bool:
    return path.is_dir() and any(p.name.endswith(MANIFEST_SUFFIX) for p in path.iterdir())


def _committed(dist: Path) -> list[tuple[str, bytes]]:
    """dist/ as committed at HEAD: [] outside git, before the first commit, or if unreadable."""
    try:
        return committed_files("HEAD", dist, directory=True) or []
    except (NoRevisionError, ManifestError):
        return []


def guarded_synth(app: cdk8s.App, *, dist: str | os.PathLike[str] | None = None) -> None:
    """``app.synth()``, unless a data claim would shrink or change storage class: then raise
    ClaimGuardError with the fix, and leave ``dist`` as it was.

    ``dist`` is the directory this synth replaces: by default ``$CDK8S_VALKEY_DIST``, else
    ``app.outdir``. Its claims are compared with the ones of the app, from the directory when it
    holds manifests and from the files committed at git ``HEAD``. When the cdk8s CLI has
    already deleted ``dist`` and the guard refuses, the committed files are written back.

    Call it in place of ``app.synth()`` in the app's ``main.py``::

        try:
            guarded_synth(app)
        except ClaimGuardError as error:
            sys.exit(f"synth refused: {error}")
    """
    target = Path(dist if dist is not None else os.environ.get(DIST_ENV) or app.outdir)
    new = [dict(m) for chart in app.charts for m in chart.to_json()]
    on_disk = _has_manifests(target)
    committed = _committed(target)
    try:
        if on_disk:
            guard_claims(target, new)
        if committed:
            old = [obj for name, content in committed for obj in parse(content.decode("utf-8"), f"HEAD:{name}")]
            _check(f"{target.name}/ as committed at HEAD", old, new)
    except ClaimGuardError as error:
        if not on_disk and committed:
            target.mkdir(parents=True, exist_ok=True)
            for name, content in committed:
                (target / Path(name).name).write_bytes(content)
            raise ClaimGuardError(f"{error} ({target.name}/ restored from HEAD)") from None
        raise
    app.synth()
