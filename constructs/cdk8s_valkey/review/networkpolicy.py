"""NetworkPolicy: every field may change in place.

kubernetes ``pkg/apis/networking/validation/validation.go`` ``ValidateNetworkPolicyUpdate``
validates only the new object's metadata update and spec: nothing is frozen. Policies take
effect at once, without a restart, and add up: a connection is allowed when any policy
selecting the pod allows it.
"""

from __future__ import annotations

from . import generic
from ._context import Context
from ._model import Finding, Manifest, Verdict


def changed(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    out = generic.metadata_findings(old, new)
    out += [
        Finding(Verdict.SAFE, f"{line}: takes effect at once, no restart") for line in generic.body_leaves(old, new)
    ]
    del ctx
    return out


def added(ctx: Context, new: Manifest) -> list[Finding]:
    del ctx, new
    return [
        Finding(
            Verdict.SAFE,
            "new policy, no restart: from the sync on, the pods it selects accept only the connections "
            "that some policy allows (needs a CNI that enforces NetworkPolicy)",
        )
    ]


def removed(ctx: Context, old: Manifest) -> list[Finding]:
    del ctx, old
    return [Finding(Verdict.SAFE, "policy removed, no restart: the connections it allowed or blocked change at once")]
