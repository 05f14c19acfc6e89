"""Why a pod template change restarts Valkey, in user terms.

Any change under a StatefulSet's ``spec.template`` makes a new controller revision, and the
controller replaces the pod (kubernetes ``pkg/controller/statefulset``: the pod's
``controller-revision-hash`` no longer matches ``updateRevision``). With one replica that is
a restart of Valkey, checksum annotation or not. These functions name what changed.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from . import _quantity, valkey_conf
from ._context import Context, claims_of, mounted_configmaps, namespace_of
from ._diff import MISSING, by_name, get, leaves, show, summarize
from ._model import Finding, Manifest, Verdict

RESTARTS = Verdict.RESTARTS
# The entrypoint's environment (constructs/cdk8s_valkey/scripts/entrypoint.sh).
PERCENT_ENV = "VALKEY_MAXMEMORY_PERCENT"
FALLBACK_ENV = "VALKEY_MAXMEMORY_FALLBACK_BYTES"
# requirepass.sh's password (valkey_statefulset.PASSWORD_ENV): set, Valkey refuses clients without it.
PASSWORD_ENV = "VALKEY_PASSWORD"
VALKEY_CONTAINER = "valkey"
# docs/operations.md: the snapshot a one-way upgrade needs for its rollback.
UPGRADE_SNAPSHOT_STEP = 'docs/operations.md, "Upgrading Valkey", step 4 ("Take a snapshot, then apply")'
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")
_PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
_CONTAINER_HANDLED = {"name", "image", "resources", "env", "command", "args", *_PROBES}
_POD_HANDLED = {"containers", "initContainers", "volumes"}
# Kubernetes defaults of a probe (pkg/apis/core/v1/defaults.go SetDefaults_Probe).
_PROBE_PERIOD_DEFAULT = 10
_PROBE_FAILURES_DEFAULT = 3


def template_findings(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    """Findings for a changed ``spec.template`` of a StatefulSet (empty when unchanged)."""
    old_t = get(old, "spec", "template") or {}
    new_t = get(new, "spec", "template") or {}
    if old_t == new_t:
        return []
    out: list[Finding] = []
    for field, label in (("initContainers", "init container"), ("containers", "container")):
        out += _containers(get(old_t, "spec", field), get(new_t, "spec", field), label)
    old_valkey = by_name(get(old_t, "spec", "containers")).get(VALKEY_CONTAINER)
    new_valkey = by_name(get(new_t, "spec", "containers")).get(VALKEY_CONTAINER)
    if old_valkey is not None and new_valkey is not None:
        out += _auth(namespace_of(new), old_valkey, new_valkey)
        out += _version(old_valkey.get("image"), new_valkey.get("image"))
    config = _configmaps(ctx, old, new)
    out += config
    out += _volumes(old, new)
    out += _template_metadata(old_t, new_t, config_explained=bool(config))
    rest_old = {k: v for k, v in (get(old_t, "spec") or {}).items() if k not in _POD_HANDLED}
    rest_new = {k: v for k, v in (get(new_t, "spec") or {}).items() if k not in _POD_HANDLED}
    out += [Finding(RESTARTS, f"pod {line}") for line in summarize(leaves(rest_old, rest_new))]
    if not out:
        out.append(Finding(RESTARTS, "the pod template changed (order of entries only)"))
    if get(new, "spec", "updateStrategy", "type") == "OnDelete":
        out.append(
            Finding(
                RESTARTS,
                "updateStrategy `OnDelete`: the running pod keeps the old template; the restart "
                "happens when the pod is next deleted",
            )
        )
    return out


def _secret_ref(container: Manifest, name: str) -> tuple[str, str] | None:
    ref = get(by_name(container.get("env")).get(name), "valueFrom", "secretKeyRef")
    return (str(ref.get("name")), str(ref.get("key"))) if isinstance(ref, dict) else None


def _auth(namespace: str, old: Manifest, new: Manifest) -> list[Finding]:
    """A password turned on, or taken from another Secret: Valkey runs, but its clients are
    refused (NOAUTH, WRONGPASS) until they send the new password."""
    before, after = _secret_ref(old, PASSWORD_ENV), _secret_ref(new, PASSWORD_ENV)
    if after is None or before == after:
        return []
    secret, key = after
    kubectl = f"kubectl -n {namespace}" if namespace else "kubectl"
    if before is None:
        what = f"auth turned on (`{PASSWORD_ENV}` from Secret `{secret}` key `{key}`): from the restart on, "
        what += "every client that does not send this password is refused (NOAUTH) until it is redeployed with it"
    else:
        what = f"the password now comes from Secret `{secret}` key `{key}` (was Secret `{before[0]}` key "
        what += f"`{before[1]}`): clients that send the old one are refused (WRONGPASS) until they have the new one"
    return [
        Finding(
            Verdict.CLIENT_OUTAGE,
            f"{what}; the pod does not start while that Secret or key is missing",
            f"first create Secret `{secret}` with key `{key}` in namespace `{namespace}` "
            f"(`{kubectl} get secret {secret} -o jsonpath='{{.data.{key}}}'` prints it), then redeploy every "
            "client with the password (ioredis, under BullMQ, sends it and only warns while Valkey has none), "
            "then merge this",
        )
    ]


def _version(old_image: object, new_image: object) -> list[Finding]:
    """A change of Valkey's major or minor version: one-way once the new version rewrites the AOF."""
    before, after = _image_version(old_image), _image_version(new_image)
    if before is None or after is None or before == after:
        return []
    old_v, new_v = ".".join(map(str, before)), ".".join(map(str, after))
    if after > before:
        reason = (
            f"Valkey {old_v} -> {new_v} is one-way: once {new_v} rewrites the AOF (at its next rewrite), "
            f"{old_v} cannot read it (9.x writes RDB format 80: `Can't handle RDB format version 80`), so a "
            f"rollback to {old_v} needs a snapshot taken before the upgrade"
        )
        procedure = f"take the pre-upgrade snapshot first, staging first: {UPGRADE_SNAPSHOT_STEP}"
    else:
        reason = (
            f"Valkey {old_v} -> {new_v} is a downgrade: if {old_v} has rewritten the AOF, {new_v} cannot read it "
            "and does not start"
        )
        procedure = f"roll back by restoring the pre-upgrade snapshot instead: {UPGRADE_SNAPSHOT_STEP} and step 5"
    return [Finding(Verdict.DATA_AT_RISK, reason, procedure)]


def _image_version(image: object) -> tuple[int, int] | None:
    """(major, minor) of an image's tag: ``valkey/valkey:8.1.11@sha256:...`` gives (8, 1)."""
    if not isinstance(image, str):
        return None
    name = image.partition("@")[0]
    tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
    match = _VERSION.match(tag)
    return (int(match.group(1)), int(match.group(2))) if match else None


def maxmemory(limit: object, percent: object, fallback: object) -> int | None:
    """The bytes the entrypoint gives ``--maxmemory``: ``percent`` of the cgroup limit (the
    container's memory limit), floored; the fallback without a limit."""
    limit_bytes = _quantity.whole(limit)
    if limit_bytes is not None and percent is not None:
        pct = _quantity.whole(percent)
        return None if pct is None else limit_bytes * pct // 100
    return _quantity.whole(fallback) if limit is None else None


def _env_values(container: Manifest) -> dict[str, Any]:
    return {name: var.get("value", MISSING) for name, var in by_name(container.get("env")).items()}


def _containers(old_list: Any, new_list: Any, label: str) -> list[Finding]:
    olds, news = by_name(old_list), by_name(new_list)
    out: list[Finding] = []
    for name in [*olds, *(n for n in news if n not in olds)]:
        where = f"{label} `{name}`"
        if name not in olds:
            out.append(Finding(RESTARTS, f"{where} added (image `{news[name].get('image')}`)"))
        elif name not in news:
            out.append(Finding(RESTARTS, f"{where} removed"))
        elif olds[name] != news[name]:
            out += [Finding(RESTARTS, f"{where}: {line}") for line in _container_changes(olds[name], news[name])]
    return out


def _container_changes(old: Manifest, new: Manifest) -> list[str]:
    lines: list[str] = []
    if old.get("image") != new.get("image"):
        lines.append(f"image `{old.get('image')}` -> `{new.get('image')}`")
    lines += _memory(old, new)
    lines += _env(old, new)
    for field in ("command", "args"):
        lines += _argv(field, old.get(field), new.get(field))
    for probe in _PROBES:
        lines += _probe(probe, old.get(probe), new.get(probe))
    rest_old = {k: v for k, v in old.items() if k not in _CONTAINER_HANDLED}
    rest_new = {k: v for k, v in new.items() if k not in _CONTAINER_HANDLED}
    lines += summarize(leaves(rest_old, rest_new))
    if not lines:
        lines.append("order of entries changed")
    return lines


def _memory(old: Manifest, new: Manifest) -> list[str]:
    """Memory limit and request, with maxmemory for a container run by our entrypoint."""
    old_env, new_env = _env_values(old), _env_values(new)
    old_limit, new_limit = get(old, "resources", "limits", "memory"), get(new, "resources", "limits", "memory")
    old_req, new_req = get(old, "resources", "requests", "memory"), get(new, "resources", "requests", "memory")
    old_pct, new_pct = old_env.get(PERCENT_ENV), new_env.get(PERCENT_ENV)
    causes = []
    if old_limit != new_limit:
        both = old_req == old_limit and new_req == new_limit
        causes.append(f"memory {'limit and request' if both else 'limit'} {_plain(old_limit)} -> {_plain(new_limit)}")
    if old_pct != new_pct:
        causes.append(f"{PERCENT_ENV} {_plain(old_pct)} -> {_plain(new_pct)}")
    lines = []
    if causes and (old_pct is not None or new_pct is not None):
        before = maxmemory(old_limit, _real(old_pct), old_env.get(FALLBACK_ENV))
        after = maxmemory(new_limit, _real(new_pct), new_env.get(FALLBACK_ENV))
        lines.append(f"{'; '.join(causes)}: maxmemory {_plain(before)} -> {_plain(after)} bytes")
        if isinstance(before, int) and isinstance(after, int) and after < before:
            # noeviction: a dataset already above the new ceiling is kept, but no write fits.
            lines.append(
                f"maxmemory goes down: if `used_memory` (INFO memory) is above {after} bytes, every write "
                "is refused with OOM after the restart (noeviction) until data is deleted; check it first"
            )
    elif causes:
        lines.append("; ".join(causes))
    if old_req != new_req and not (old_req == old_limit and new_req == new_limit):
        lines.append(f"memory request {_plain(old_req)} -> {_plain(new_req)} (what the scheduler reserves)")
    other = leaves(_without_memory(old.get("resources")), _without_memory(new.get("resources")), "resources")
    lines += summarize(other)
    if old_env.get(FALLBACK_ENV) != new_env.get(FALLBACK_ENV):
        lines.append(
            f"maxmemory without a readable cgroup limit ({FALLBACK_ENV}) "
            f"{_plain(old_env.get(FALLBACK_ENV))} -> {_plain(new_env.get(FALLBACK_ENV))} bytes"
        )
    return lines


def _without_memory(resources: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part, values in (resources or {}).items():
        if isinstance(values, dict):
            out[part] = {k: v for k, v in values.items() if k != "memory"}
        else:
            out[part] = values
    return out


def _env(old: Manifest, new: Manifest) -> list[str]:
    olds, news = by_name(old.get("env")), by_name(new.get("env"))
    lines = []
    for name in [*olds, *(n for n in news if n not in olds)]:
        if name in (PERCENT_ENV, FALLBACK_ENV) or olds.get(name) == news.get(name):
            continue
        if name not in olds:
            lines.append(f"env `{name}` added ({_env_source(news[name])})")
        elif name not in news:
            lines.append(f"env `{name}` removed (was {_env_source(olds[name])})")
        else:
            lines.append(f"env `{name}` {_env_source(olds[name])} -> {_env_source(news[name])}")
    return lines


def _env_source(var: Manifest) -> str:
    source = var.get("valueFrom")
    if not isinstance(source, dict):
        return show(var.get("value", ""))
    secret = source.get("secretKeyRef")
    if isinstance(secret, dict):
        return f"from Secret `{secret.get('name')}` key `{secret.get('key')}`"
    config = source.get("configMapKeyRef")
    if isinstance(config, dict):
        return f"from ConfigMap `{config.get('name')}` key `{config.get('key')}`"
    return f"from {show(source)}"


def _argv(field: str, old: Any, new: Any) -> list[str]:
    if old == new:
        return []
    old_flags, new_flags = _flags(old), _flags(new)
    if old_flags is None or new_flags is None:
        return [f"{field} {_joined(old)} -> {_joined(new)}"]
    lines = []
    for flag in [*old_flags, *(f for f in new_flags if f not in old_flags)]:
        if flag not in new_flags:
            lines.append(f"{field}: `{flag}` removed")
        elif flag not in old_flags:
            lines.append(f"{field}: `{flag}` added ({show(new_flags[flag])})")
        elif old_flags[flag] != new_flags[flag]:
            lines.append(f"{field}: `{flag}` {_list_change(old_flags[flag], new_flags[flag])}")
    return lines or [f"{field} reordered"]


def _list_change(old: str, new: str) -> str:
    """A flag value change; comma-separated lists (``--check-single-keys``) by item."""
    if "," not in old + new:
        return f"{show(old)} -> {show(new)}"
    olds, news = old.split(","), new.split(",")
    parts = []
    for verb, items in (("added", [i for i in news if i not in olds]), ("removed", [i for i in olds if i not in news])):
        if items:
            shown = ", ".join(f"`{i}`" for i in items[:3])
            parts.append(f"{verb} {shown}" + (f" and {len(items) - 3} more" if len(items) > 3 else ""))
    return "; ".join(parts) or "items reordered"


def _flags(argv: Any) -> dict[str, str] | None:
    """``--name=value`` arguments as a dict; None when the list is not made of such flags."""
    if not isinstance(argv, list) or not all(isinstance(a, str) and a.startswith("--") for a in argv):
        return None
    return {a.partition("=")[0]: a.partition("=")[2] for a in argv}


def _joined(argv: Any) -> str:
    return show(" ".join(str(a) for a in argv) if isinstance(argv, list) else argv)


def _probe(kind: str, old: Any, new: Any) -> list[str]:
    if old == new:
        return []
    if old is None:
        return [f"{kind} added"]
    if new is None:
        return [f"{kind} removed"]
    changes = summarize(leaves(old, new))
    if kind == "startupProbe" and _probe_window(old) != _probe_window(new):
        return [
            f"{kind} {', '.join(changes)}: Valkey may take {_probe_window(old)}s -> {_probe_window(new)}s to start "
            "(the AOF replay after a crash)"
        ]
    return [f"{kind} {line}" for line in changes]


def _probe_window(probe: Manifest) -> int:
    period = probe.get("periodSeconds", _PROBE_PERIOD_DEFAULT)
    failures = probe.get("failureThreshold", _PROBE_FAILURES_DEFAULT)
    return int(period) * int(failures)


def _configmaps(ctx: Context, old: Manifest, new: Manifest) -> list[Finding]:
    """What changed in the ConfigMaps the pod mounts: the restart loads them anew."""
    namespace = namespace_of(new)
    names = sorted(
        set(mounted_configmaps(get(old, "spec", "template"))) & set(mounted_configmaps(get(new, "spec", "template")))
    )
    out = []
    for name in names:
        before = ctx.find("old", "ConfigMap", namespace, name)
        after = ctx.find("new", "ConfigMap", namespace, name)
        if before is None or after is None:
            continue
        old_data, new_data = before.get("data") or {}, after.get("data") or {}
        for key in [*old_data, *(k for k in new_data if k not in old_data)]:
            a, b = old_data.get(key), new_data.get(key)
            if a == b:
                continue
            if key.endswith(".conf") and a is not None and b is not None:
                out += [
                    Finding(RESTARTS, f"{key} {change.describe()} (ConfigMap `{name}`)")
                    for change in valkey_conf.diff(a, b)
                ]
            else:
                out.append(Finding(RESTARTS, f"{file_change(key, a, b)} (ConfigMap `{name}`)"))
    return out


def file_change(key: str, old: str | None, new: str | None) -> str:
    what = "script" if key.endswith(".sh") else "file"
    if old is None:
        return f"{what} `{key}` added"
    if new is None:
        return f"{what} `{key}` removed"
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0))
    added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
    return f"{what} `{key}` changed (+{added} -{removed} lines)"


def _volumes(old: Manifest, new: Manifest) -> list[Finding]:
    olds = by_name(get(old, "spec", "template", "spec", "volumes"))
    news = by_name(get(new, "spec", "template", "spec", "volumes"))
    old_claims = claims_of(old)
    claim_templates: dict[str, list[str]] = {}
    for claim, volume in claims_of(new).items():
        claim_templates.setdefault(volume, []).append(claim)
    out = []
    for name in [*olds, *(n for n in news if n not in olds)]:
        a, b = olds.get(name), news.get(name)
        if a == b:
            continue
        claim = get(b, "persistentVolumeClaim", "claimName")
        if a is None and claim and claim in old_claims:
            out.append(
                Finding(
                    RESTARTS,
                    f"volume `{name}` now mounts claim `{claim}` by name, the claim that the claim template "
                    f"`{old_claims[claim]}` created: same volume, same data",
                )
            )
        elif a is None:
            out.append(Finding(RESTARTS, f"volume `{name}` added ({show(b)})"))
        elif b is None and claim_templates.get(name):
            out.append(
                Finding(
                    RESTARTS,
                    f"volume `{name}` now comes from the claim template `{name}`: each pod mounts "
                    f"{', '.join(f'`{c}`' for c in claim_templates[name])}, its own",
                )
            )
        elif b is None:
            out.append(Finding(RESTARTS, f"volume `{name}` removed"))
        else:
            out += [Finding(RESTARTS, f"volume `{name}`: {line}") for line in summarize(leaves(a, b))]
    return out


def _template_metadata(old_t: Manifest, new_t: Manifest, *, config_explained: bool) -> list[Finding]:
    out = []
    labels = leaves(get(old_t, "metadata", "labels") or {}, get(new_t, "metadata", "labels") or {})
    if labels:
        out.append(Finding(RESTARTS, "pod labels: " + ", ".join(summarize(labels))))
    old_ann = get(old_t, "metadata", "annotations") or {}
    new_ann = get(new_t, "metadata", "annotations") or {}
    for leaf in leaves(old_ann, new_ann):
        if leaf.path.startswith("checksum/") and leaf.old is MISSING:
            out.append(Finding(RESTARTS, f"pod annotation {leaf.describe()}"))
        elif leaf.path.startswith("checksum/"):
            if not config_explained:
                out.append(
                    Finding(
                        RESTARTS,
                        f"pod annotation `{leaf.path}` changed, but no mounted ConfigMap changed in this diff "
                        "(the checksum also covers the auth Secret reference)",
                    )
                )
        else:
            out.append(Finding(RESTARTS, f"pod annotation {leaf.describe()}"))
    return out


def _plain(value: Any) -> str:
    return "(unset)" if value is None or value is MISSING else str(value)


def _real(value: Any) -> Any:
    return None if value is MISSING else value
