"""Rules every kind shares, and the fallback for kinds without rules of their own.

kubernetes ``pkg/apis/core/validation/validation.go`` ``ValidateObjectMetaUpdate``: name,
namespace, uid and creationTimestamp are frozen; labels and annotations may change. Name and
namespace are part of how this tool matches objects, so a changed name is a removal plus an
addition here, as it is for the API server.
"""

from __future__ import annotations

from ._context import Context
from ._diff import leaves, summarize
from ._model import Finding, Manifest, Verdict

_OUTSIDE_SPEC = {"apiVersion", "kind", "metadata", "status"}


def metadata_findings(old: Manifest, new: Manifest) -> list[Finding]:
    """Labels and annotations outside any pod template: changed in place, no restart."""
    out = []
    for part in ("labels", "annotations"):
        changed = leaves((old.get("metadata") or {}).get(part) or {}, (new.get("metadata") or {}).get(part) or {})
        if changed:
            out.append(Finding(Verdict.SAFE, f"{part}: " + ", ".join(summarize(changed)), labels_only=part == "labels"))
    if old.get("apiVersion") != new.get("apiVersion"):
        out.append(
            Finding(Verdict.SAFE, f"apiVersion `{old.get('apiVersion')}` -> `{new.get('apiVersion')}`: same object")
        )
    return out


def body_leaves(old: Manifest, new: Manifest) -> list[str]:
    """Described changes of everything but apiVersion, kind, metadata and status."""
    return summarize(
        leaves(
            {k: v for k, v in old.items() if k not in _OUTSIDE_SPEC},
            {k: v for k, v in new.items() if k not in _OUTSIDE_SPEC},
        )
    )


def changed(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    """A kind without update rules here: its fields are taken as changed in place."""
    del ctx
    out = metadata_findings(old, new)
    out += [Finding(Verdict.SAFE, f"{line}: changed in place") for line in body_leaves(old, new)]
    return out


def added(ctx: Context, new: Manifest) -> list[Finding]:
    del ctx
    return [Finding(Verdict.SAFE, f"new {new.get('kind')}: created at the next sync")]


def removed(ctx: Context, old: Manifest) -> list[Finding]:
    del ctx
    return [Finding(Verdict.SAFE, f"{old.get('kind')} no longer rendered: GitOps prunes (deletes) it")]
