"""``python -m cdk8s_valkey runbook restore MANIFEST``: a runbook's commands with the names of a
rendered manifest, so that what an operator pastes matches what is deployed.

The restore runbook of docs/operations.md is ``data/runbook-restore.sh`` rendered for
``dist/valkey.k8s.yaml``; a test keeps the two equal, block by block. Namespace, StatefulSet,
pod, claim, storage class, the claim's Longhorn labels, the Valkey image and the pod's user come
from the manifest. The claim's size is read from the live claim when the runbook runs (it may have
grown past the manifest), never written out.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

RUNBOOKS = ("restore",)
_LONGHORN_LABELS = ("recurring-job.longhorn.io/", "recurring-job-group.longhorn.io/")


class _Template(string.Template):
    delimiter = "@"


@dataclass(frozen=True)
class Step:
    """One block of a runbook: what it does, and the commands to paste."""

    title: str
    commands: str


def _one(objects: Sequence[Mapping[str, Any]], kind: str, name: str | None) -> Mapping[str, Any]:
    found = [o for o in objects if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]
    if len(found) != 1:
        names = sorted(o["metadata"]["name"] for o in objects if o.get("kind") == kind)
        wanted = f" named {name!r}" if name else ""
        raise ValueError(f"the manifest has {len(found)} {kind}{wanted}, not one (there: {names}): give --name")
    return found[0]


def values(objects: Sequence[Mapping[str, Any]], name: str | None = None) -> dict[str, str]:
    """The names a runbook uses, read from the objects of one rendered manifest."""
    sts = _one(objects, "StatefulSet", name)
    sts_name = sts["metadata"]["name"]
    ns = sts["metadata"].get("namespace", "default")
    pod_spec = sts["spec"]["template"]["spec"]
    claim = _one(objects, "PersistentVolumeClaim", f"data-{sts_name}-0")
    (valkey,) = [c for c in pod_spec["containers"] if c["name"] == "valkey"]
    security = pod_spec.get("securityContext", {})
    labels = {k: v for k, v in claim["metadata"].get("labels", {}).items() if k.startswith(_LONGHORN_LABELS)}
    claim_labels = "".join(f"\n    {k}: {v}" for k, v in sorted(labels.items(), reverse=True))
    return {
        "ns": ns,
        "sts": sts_name,
        "pod": f"{sts_name}-0",
        "claim": claim["metadata"]["name"],
        "class": claim["spec"].get("storageClassName", ""),
        "claim_labels": "\n  labels:" + claim_labels if claim_labels else "",
        "restored": f"{ns}-{sts_name}-restored",
        "repair": f"{sts_name}-aof-repair",
        "image": valkey["image"],
        "uid": str(security.get("runAsUser", 999)),
        "gid": str(security.get("runAsGroup", 999)),
        "fsgroup": str(security.get("fsGroup", 999)),
    }


def steps(runbook: str, objects: Sequence[Mapping[str, Any]], name: str | None = None) -> list[Step]:
    """The blocks of ``runbook`` for the Valkey of ``objects``."""
    if runbook not in RUNBOOKS:
        raise ValueError(f"runbook {runbook!r}: allowed are {', '.join(RUNBOOKS)}")
    text = resources.files(__package__).joinpath("data", f"runbook-{runbook}.sh").read_text(encoding="utf-8")
    rendered = _Template(text).substitute(values(objects, name))
    blocks = rendered.split("\n## ")[1:]
    return [Step(*block.split("\n", 1)) for block in blocks]


def text(runbook: str, objects: Sequence[Mapping[str, Any]], name: str | None = None) -> str:
    """The runbook as the CLI prints it: each step's title as a comment, then its block."""
    return "\n".join(f"# -- {s.title}\n{s.commands.rstrip()}\n" for s in steps(runbook, objects, name))
