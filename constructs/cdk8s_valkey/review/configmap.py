"""ConfigMap and Secret: immutable objects, and the valkey.conf the pod reads at start.

Ported from kubernetes ``pkg/apis/core/validation/validation.go``: ``ValidateConfigMapUpdate``
(when the old object has ``immutable: true``, ``immutable``, ``data`` and ``binaryData`` may
not change) and ``ValidateSecretUpdate`` (``type`` is immutable; with ``immutable: true``,
``immutable`` and ``data`` may not change). Otherwise the content changes in place: files
mounted from it are refreshed by the kubelet, but Valkey reads valkey.conf and the scripts only
when it starts, so a change takes effect with the pod restart its checksum triggers.
"""

from __future__ import annotations

from . import generic, pod_template, valkey_conf
from ._context import Context, kubectl, name_of, namespace_of
from ._diff import get, leaves, show, summarize
from ._model import Finding, Manifest, Verdict


def _recreate(obj: Manifest) -> str:
    kind = str(obj.get("kind", "")).lower()
    return (
        f"`{kubectl(obj)} delete {kind} {name_of(obj)}`, then sync (pods that mount it see the new "
        "content only when they restart); or give the new content a new name"
    )


def immutable_findings(old: Manifest, new: Manifest) -> list[Finding]:
    out: list[Finding] = []
    rule = "ValidateSecretUpdate" if old.get("kind") == "Secret" else "ValidateConfigMapUpdate"
    if old.get("kind") == "Secret" and (old.get("type") or "Opaque") != (new.get("type") or "Opaque"):
        out.append(
            Finding(
                Verdict.REJECTED,
                f"`type` {show(old.get('type'))} -> {show(new.get('type'))} is immutable ({rule})",
                _recreate(new),
            )
        )
    if old.get("immutable") is True:
        fields = [f for f in ("immutable", "data", "binaryData", "stringData") if old.get(f) != new.get(f)]
        if fields:
            out.append(
                Finding(
                    Verdict.REJECTED,
                    f"{', '.join(f'`{f}`' for f in fields)} changed on an object with `immutable: true`: "
                    f'"field is immutable when `immutable` is set" ({rule})',
                    _recreate(new),
                )
            )
    return out


def changed(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    out = generic.metadata_findings(old, new)
    out += immutable_findings(old, new)
    if old.get("kind") == "Secret":
        # Values are never printed: only which keys changed.
        keys = [leaf.path for leaf in leaves(old.get("data") or {}, new.get("data") or {})]
        if keys:
            out.append(Finding(Verdict.SAFE, f"Secret keys changed: {', '.join(f'`{k}`' for k in keys)}"))
        return out
    namespace = namespace_of(new)
    users = ctx.configmap_users("new", namespace, name_of(new))
    restarting = [
        name_of(sts)
        for sts in users
        if (before := ctx.find("old", "StatefulSet", namespace, name_of(sts))) is not None
        and get(before, "spec", "template") != get(sts, "spec", "template")
    ]
    if restarting:
        applied, verdict = f": read at start, applied by the restart of StatefulSet `{restarting[0]}`", Verdict.RESTARTS
    elif users:
        applied = (
            f": read at start, and the pod template of StatefulSet `{name_of(users[0])}` did not change, "
            "so it applies only at the next restart"
        )
        verdict = Verdict.SAFE
    else:
        applied, verdict = "", Verdict.SAFE
    old_data, new_data = old.get("data") or {}, new.get("data") or {}
    for key in [*old_data, *(k for k in new_data if k not in old_data)]:
        a, b = old_data.get(key), new_data.get(key)
        if a == b:
            continue
        if users and key.endswith(".conf") and a is not None and b is not None:
            out += valkey_conf.findings(valkey_conf.diff(a, b), applied, verdict, key)
        elif users:
            out.append(Finding(verdict, f"{pod_template.file_change(key, a, b)}{applied}"))
        else:
            out.append(
                Finding(Verdict.SAFE, f"key `{key}` {'added' if a is None else 'removed' if b is None else 'changed'}")
            )
    rest = leaves(
        {k: v for k, v in old.items() if k not in ("data", "metadata", "apiVersion", "kind")},
        {k: v for k, v in new.items() if k not in ("data", "metadata", "apiVersion", "kind")},
    )
    out += [Finding(Verdict.SAFE, line) for line in summarize(rest) if not old.get("immutable")]
    return out


def added(ctx: Context, new: Manifest) -> list[Finding]:
    return generic.added(ctx, new)


def removed(ctx: Context, old: Manifest) -> list[Finding]:
    users = ctx.configmap_users("new", namespace_of(old), name_of(old))
    if users:
        return [
            Finding(
                Verdict.DATA_AT_RISK,
                f"no longer rendered, but StatefulSet `{name_of(users[0])}` still mounts it: its pod cannot start "
                "once it restarts",
                "keep the object, or remove the volume that mounts it in the same change",
            )
        ]
    return generic.removed(ctx, old)
