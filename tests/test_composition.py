"""The composition matrix: every option with every topology.

Topology {single, sentinel} x auth {off, a Secret} x NetworkPolicy {off, on} x the opt-ins
{dashboard, backups, smoke check}: all three on, each alone, and none, for every combination of
the first three (40 combinations). Each is ``Valkey(...)`` as a team writes it, in a chart of its
own namespace, and each:

- synthesizes: no combination is refused (none is forbidden by anything real, so a refusal
  is a failure here, with the construct's reason in the message);
- passes the collision check: the synth's own (one object per kind, namespace and name,
  ``_registry``) and, independently, no two rendered objects share kind, namespace and name;
- validates strictly: Kubernetes kinds against the 1.28 schemas (unknown fields fail), the
  prometheus-operator and Longhorn kinds against their CRDs;
- renders what each option says (the pods, the claims labelled, the policies' ports, the smoke
  Job's mode);
- meets Pod Security "restricted" (v1.28) in every pod template, checked field by field below;
- passes checkov: one run over every combination's YAML. checkov's graph checks join objects
  across the files of a run whatever their namespace (a NetworkPolicy of one combination covered
  the pods of another), so there each combination's Valkey has a name of its own
  (``valkey-c<n>``: its own selector labels), and object names are read back as ``valkey...``.
  Every finding must be one that security/checkov-exceptions.yaml accepts with a reason, and
  CKV2_K8S_6 (no NetworkPolicy) must fire exactly where NetworkPolicy is off.

A representative set boots for real (the last tests): the rendered StatefulSet's pods in
network namespaces (tests/podnet.py), and the smoke Job's rendered script, command and env run
in a pod sandbox of their own against them (podnet runs StatefulSets, not Jobs).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cdk8s
import kubernetes_validate
import pytest
import yaml
from test_checkov import CHECKOV_ENV, _objects_by_line, checkov_binary, load_exceptions
from test_security_auth import resolve_secret_refs
from test_smoke_script import Rendered as SmokeRendered
from test_smoke_script import job_argv_and_env

from cdk8s_valkey import (
    BackupOptions,
    DashboardOptions,
    ExporterOptions,
    SecretKeyRef,
    SentinelOptions,
    SmokeCheckOptions,
    Valkey,
)
from harness.crd_schema import validate_crd_object
from harness.podnet import NetStatefulSet, PodNetwork, make_bin_dir
from harness.podrunner import parse_quantity

# The module runs checkov and boots pods (root, marked on those tests). Its
# synth-only tests synthesize 80 charts, about 40 s on this machine, more than the whole fast tier
# may take (< 30 s): they run with the real tier, not on every edit.
pytestmark = pytest.mark.real

TOPOLOGIES = ("single", "sentinel")
OPT_INS = ("dashboard", "backups", "smoke_check")
# The third axis: all three on, each alone, none.
OPT_IN_SETS: tuple[tuple[str, ...], ...] = (OPT_INS, *((o,) for o in OPT_INS), ())
AUTH_SECRET = SecretKeyRef(name="valkey-auth", key="password")
CRD_GROUPS = ("monitoring.coreos.com/", "longhorn.io/")
POD_TEMPLATE_KINDS = ("StatefulSet", "Deployment", "DaemonSet", "Job", "CronJob")
CHECKOV_FLAGS = ("--output", "json", "--skip-download", "--quiet")


@dataclass(frozen=True)
class Combo:
    topology: str
    auth: bool
    network_policy: bool
    opt_ins: tuple[str, ...]

    @property
    def id(self) -> str:
        opt = "all" if self.opt_ins == OPT_INS else "-".join(o.split("_")[0] for o in self.opt_ins) or "none"
        return f"{self.topology}-{'auth' if self.auth else 'open'}-{'np' if self.network_policy else 'nonp'}-{opt}"

    @property
    def namespace(self) -> str:
        """A namespace per combination: checkov joins objects of one namespace only, and the
        Backups group (``<namespace>-<name>``, at most 33 characters) stays unique."""
        short = {"single": "one", "sentinel": "sen", "dashboard": "dash", "backups": "back", "smoke_check": "smoke"}
        opt = "all" if self.opt_ins == OPT_INS else "-".join(short[o] for o in self.opt_ins) or "none"
        return (
            f"{short[self.topology]}-{'auth' if self.auth else 'open'}-{'np' if self.network_policy else 'nonp'}-{opt}"
        )


COMBOS = tuple(
    Combo(topology, auth, network_policy, opt_ins)
    for topology in TOPOLOGIES
    for auth in (False, True)
    for network_policy in (False, True)
    for opt_ins in OPT_IN_SETS
)


def build(combo: Combo, app: cdk8s.App | None = None, name: str = "valkey") -> Valkey:
    """The combination as a team writes it: one ``Valkey(...)`` in a chart of its namespace."""
    chart = cdk8s.Chart(app or cdk8s.Testing.app(), combo.id, namespace=combo.namespace)
    return Valkey(
        chart,
        name,
        auth_secret=AUTH_SECRET if combo.auth else None,
        network_policy=combo.network_policy,
        sentinel=SentinelOptions() if combo.topology == "sentinel" else None,
        exporter=ExporterOptions(bullmq_queues=["emails"], service_monitor_labels={"release": "kube-prometheus-stack"}),
        dashboard=DashboardOptions() if "dashboard" in combo.opt_ins else None,
        backups=BackupOptions() if "backups" in combo.opt_ins else None,
        smoke_check=SmokeCheckOptions() if "smoke_check" in combo.opt_ins else None,
    )


@dataclass
class Rendered:
    valkey: Valkey | None
    objects: list[dict[str, Any]]
    error: str | None  # why the combination was refused, if it was


def _render(combo: Combo) -> Rendered:
    try:
        valkey = build(combo)
        return Rendered(valkey, [dict(o) for o in cdk8s.Testing.synth(cdk8s.Chart.of(valkey))], None)
    except (ValueError, RuntimeError) as error:  # a refusal at construction, or a synth validation
        return Rendered(None, [], f"{type(error).__name__}: {error}")


_RENDERED: dict[Combo, Rendered] = {}


def rendered(combo: Combo) -> Rendered:
    """Each combination synthesized once per session; a refusal is kept as its reason."""
    if combo not in _RENDERED:
        _RENDERED[combo] = _render(combo)
    return _RENDERED[combo]


def synthesized(combo: Combo) -> list[dict[str, Any]]:
    result = rendered(combo)
    assert result.error is None, f"{combo.id} is refused: {result.error}"
    return result.objects


def _key(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def _ids(combos: tuple[Combo, ...]) -> list[str]:
    return [c.id for c in combos]


# -- synth, collisions, schemas ---------------------------------------------------------------


def test_the_matrix_covers_every_combination() -> None:
    assert len(COMBOS) == len({c.id for c in COMBOS}) == len({c.namespace for c in COMBOS}) == 2 * 2 * 2 * 5
    assert all(len(f"{c.namespace}-valkey") <= 33 for c in COMBOS), "the Backups group fits Longhorn's names"


@pytest.mark.parametrize("combo", COMBOS, ids=_ids(COMBOS))
def test_synthesizes_without_refusal(combo: Combo) -> None:
    result = rendered(combo)
    assert result.error is None, f"refused, but nothing real forbids {combo.id}: {result.error}"
    assert result.objects


@pytest.mark.parametrize("combo", COMBOS, ids=_ids(COMBOS))
def test_no_two_objects_share_kind_namespace_and_name(combo: Combo) -> None:
    keys = [_key(o) for o in synthesized(combo)]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


@pytest.mark.parametrize("combo", COMBOS, ids=_ids(COMBOS))
def test_validates_strictly(combo: Combo) -> None:
    for obj in synthesized(combo):
        if obj["apiVersion"].startswith(CRD_GROUPS):
            validate_crd_object(obj)
        else:
            kubernetes_validate.validate(obj, "1.28", strict=True)


def test_every_combination_in_one_app_collides_nowhere() -> None:
    """All 40 side by side in one app (one registry): each its own namespace, and the Backups'
    RecurringJobs, which all land in longhorn-system, named apart by their groups."""
    app = cdk8s.Testing.app()
    for combo in COMBOS:
        build(combo, app)
    keys = [_key(dict(o)) for chart in app.charts for o in cdk8s.Testing.synth(chart)]
    assert len(keys) == len(set(keys))
    jobs = [k for k in keys if k[0] == "RecurringJob"]
    assert len(jobs) == 2 * sum("backups" in c.opt_ins for c in COMBOS)


# -- each option renders what it says ---------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS, ids=_ids(COMBOS))
def test_each_option_renders_what_it_says(combo: Combo) -> None:
    objs = synthesized(combo)
    valkey = rendered(combo).valkey
    assert valkey is not None
    by_key = {_key(o): o for o in objs}
    ns = combo.namespace
    sts = by_key[("StatefulSet", ns, "valkey")]
    pods = 3 if combo.topology == "sentinel" else 1
    assert sts["spec"].get("replicas", 1) == pods
    claims = [o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"]
    assert claims == list(valkey.server.claim_names) == [f"data-valkey-{i}" for i in range(pods)]
    containers = {c["name"]: c for c in sts["spec"]["template"]["spec"]["containers"]}
    secret_env = {
        (name, var["name"])
        for name, ctr in containers.items()
        for var in ctr.get("env", [])
        if "secretKeyRef" in var.get("valueFrom", {})
    }
    assert bool(secret_env) is combo.auth, secret_env
    policies = {o["metadata"]["name"]: o for o in objs if o["kind"] == "NetworkPolicy"}
    assert bool(policies) is combo.network_policy

    has_dashboard = any(o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"] for o in objs)
    assert has_dashboard is ("dashboard" in combo.opt_ins)

    jobs = [o for o in objs if o["kind"] == "RecurringJob"]
    assert bool(jobs) is ("backups" in combo.opt_ins)
    if jobs:
        group = f"recurring-job-group.longhorn.io/{ns}-valkey"
        for name in claims:  # every claim of the topology joins the group
            assert by_key[("PersistentVolumeClaim", ns, name)]["metadata"]["labels"].get(group) == "enabled", name

    smoke = by_key.get(("Job", ns, "valkey-smoke"))
    assert (smoke is not None) is ("smoke_check" in combo.opt_ins)
    if smoke is not None:
        (ctr,) = smoke["spec"]["template"]["spec"]["containers"]
        env = {var["name"]: var for var in ctr["env"]}
        script = "smoke-sentinel.sh" if combo.topology == "sentinel" else "smoke.sh"
        assert ctr["command"] == ["sh", f"/scripts/{script}"]
        assert ("REDISCLI_AUTH" in env) is combo.auth
        assert ("SENTINEL_AUTH" in env) is (combo.auth and combo.topology == "sentinel")
        if combo.network_policy:
            ports = [6379, 26379] if combo.topology == "sentinel" else [6379]
            egress = policies["valkey-smoke-job"]["spec"]["egress"][0]["ports"]
            ingress = policies["valkey-smoke"]["spec"]["ingress"][0]["ports"]
            assert [p["port"] for p in egress] == [p["port"] for p in ingress] == ports


# -- Pod Security "restricted" (Kubernetes 1.28) ----------------------------------------------

# kubernetes/pod-security-admission policy/check_*.go, v1.28: what "restricted" allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t"}


def pod_templates(objs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(Kind/name, pod template) of every workload."""
    for obj in objs:
        if obj["kind"] == "CronJob":
            yield f"CronJob/{obj['metadata']['name']}", obj["spec"]["jobTemplate"]["spec"]["template"]
        elif obj["kind"] in POD_TEMPLATE_KINDS:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]


def restricted_violations(template: dict[str, Any]) -> list[str]:
    """What a pod template breaks of Pod Security "restricted" (baseline included), as the
    admission controller of 1.28 checks it; empty when it passes."""
    spec = template["spec"]
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    found: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"{field}: true")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']}: type {sorted(kinds - RESTRICTED_VOLUME_TYPES)}")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl['name']}")
    for key, value in annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            found.append(f"AppArmor {key}: {value}")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("pod hostProcess")
    found += _selinux_violations("pod", pod_sc)
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in ("RuntimeDefault", "Localhost"):
        found.append(f"pod seccompProfile {pod_seccomp}")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    containers = [*spec.get("initContainers", []), *spec["containers"], *spec.get("ephemeralContainers", [])]
    for ctr in containers:
        name, sc = ctr["name"], ctr.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"{name}: hostProcess")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount {sc['procMount']}")
        found += _selinux_violations(name, sc)
        for port in ctr.get("ports", []):
            if port.get("hostPort"):
                found.append(f"{name}: hostPort {port['hostPort']}")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {capabilities['add']}")
        if sc.get("runAsNonRoot") is False or (
            sc.get("runAsNonRoot") is None and pod_sc.get("runAsNonRoot") is not True
        ):
            found.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile {seccomp}")
    return found


def _selinux_violations(where: str, sc: dict[str, Any]) -> list[str]:
    options = sc.get("seLinuxOptions") or {}
    found = []
    if options.get("type", "") not in SELINUX_TYPES:
        found.append(f"{where}: seLinuxOptions.type {options['type']}")
    for field in ("user", "role"):
        if options.get(field):
            found.append(f"{where}: seLinuxOptions.{field}")
    return found


@pytest.mark.parametrize("combo", COMBOS, ids=_ids(COMBOS))
def test_pod_security_restricted(combo: Combo) -> None:
    templates = list(pod_templates(synthesized(combo)))
    assert [name for name, _ in templates] == [
        "StatefulSet/valkey",
        # Under Sentinel, the primary endpoint (HAProxy) for clients without Sentinel, by default.
        *(["Deployment/valkey-endpoint"] if combo.topology == "sentinel" else []),
        *(["Job/valkey-smoke"] if "smoke_check" in combo.opt_ins else []),
    ]
    for name, template in templates:
        assert restricted_violations(template) == [], name


def test_the_restricted_check_catches_what_it_must() -> None:
    """Each rule of the checker fires on a pod that breaks it (so a pass above means something)."""
    (_, template) = next(pod_templates(synthesized(COMBOS[0])))
    good = yaml.safe_load(yaml.safe_dump(template))
    assert restricted_violations(good) == []
    spec = good["spec"]
    ctr = spec["containers"][0]
    name = ctr["name"]
    cases = [
        (lambda: spec.__setitem__("hostNetwork", True), "hostNetwork: true"),
        (lambda: spec["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "volume h: type ['hostPath']"),
        (
            lambda: ctr["securityContext"].__setitem__("allowPrivilegeEscalation", True),
            f"{name}: allowPrivilegeEscalation is not false",
        ),
        (
            lambda: ctr["securityContext"]["capabilities"].__setitem__("drop", []),
            f"{name}: capabilities do not drop ALL",
        ),
        (
            lambda: ctr["securityContext"]["capabilities"].__setitem__("add", ["NET_ADMIN"]),
            f"{name}: adds capabilities ['NET_ADMIN']",
        ),
        (lambda: ctr["securityContext"].__setitem__("runAsNonRoot", False), f"{name}: runAsNonRoot is not true"),
        (lambda: spec["securityContext"].pop("seccompProfile"), f"{name}: seccompProfile None"),
        (lambda: ctr.setdefault("ports", []).append({"containerPort": 1, "hostPort": 1}), f"{name}: hostPort 1"),
    ]
    for make, expected in cases:
        broken = yaml.safe_load(yaml.safe_dump(template))
        spec, ctr = broken["spec"], broken["spec"]["containers"][0]
        make()
        assert expected in restricted_violations(broken), expected


# -- checkov, one run over every combination --------------------------------------------------


@dataclass
class ComboScan:
    files: dict[str, Combo]  # file name -> combination
    findings: dict[str, list[tuple[str, str]]]  # combination id -> [(check, Kind/name)]
    passed: int


@pytest.fixture(scope="module")
def checkov_scan(tmp_path_factory: pytest.TempPathFactory) -> ComboScan:
    root = tmp_path_factory.mktemp("composition-checkov")
    files: dict[str, Combo] = {}
    names: dict[str, str] = {}
    for index, combo in enumerate(COMBOS):
        if rendered(combo).error is not None:
            continue  # its own tests fail with the reason; the others are still scanned
        name = names[combo.id] = f"valkey-c{index}"
        objs = cdk8s.Testing.synth(cdk8s.Chart.of(build(combo, name=name)))
        path = root / f"{combo.id}.k8s.yaml"
        path.write_text(str(cdk8s.Yaml.stringify(*objs)))
        files[path.name] = combo
    result = subprocess.run(
        [checkov_binary(), "--directory", str(root), "--framework", "kubernetes", *CHECKOV_FLAGS],
        env={**os.environ, **CHECKOV_ENV},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode in (0, 1), f"checkov failed ({result.returncode}):\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    (report,) = report if isinstance(report, list) else [report]
    summary = report["summary"]
    assert (summary["parsing_errors"], summary["skipped"]) == (0, 0), summary
    spans = {name: _objects_by_line(root / name) for name in files}
    findings: dict[str, list[tuple[str, str]]] = {combo.id: [] for combo in files.values()}
    for check in report["results"]["failed_checks"]:
        name = Path(check["file_path"]).name
        first = check["file_line_range"][0]
        (resource,) = [res for lo, hi, res in spans[name] if lo <= first <= hi]
        combo = files[name]
        kind, _, object_name = resource.partition("/")
        object_name = object_name.replace(names[combo.id], "valkey", 1)
        findings[combo.id].append((check["check_id"], f"{kind}/{object_name}"))
    assert sum(map(len, findings.values())) == summary["failed"]
    print(f"\ncheckov over {len(files)} combinations: passed {summary['passed']}, failed {summary['failed']}")
    return ComboScan(files, findings, int(summary["passed"]))


def accepted_findings() -> set[tuple[str, str]]:
    """(check, Kind/name) that security/checkov-exceptions.yaml accepts with a reason, whatever
    the output it was seen in: the reason is about the object, not the output."""
    return {(entry["check"], resource) for entry in load_exceptions()["exceptions"] for resource in entry["resources"]}


@pytest.mark.parametrize("combo", COMBOS, ids=_ids(COMBOS))
def test_checkov_finds_only_accepted_findings(checkov_scan: ComboScan, combo: Combo) -> None:
    assert combo.id in checkov_scan.findings, f"not scanned: {rendered(combo).error}"
    findings = checkov_scan.findings[combo.id]
    unaccepted = [f for f in findings if f not in accepted_findings()]
    assert unaccepted == [], "fix these, or add them with a reason to security/checkov-exceptions.yaml"
    no_policy = sorted(resource for check, resource in findings if check == "CKV2_K8S_6")
    if combo.network_policy:
        assert no_policy == [], "NetworkPolicy on must cover every pod"
    else:
        # Without NetworkPolicy, every workload is flagged: the scan joined no other combination's policy.
        assert no_policy == sorted(name for name, _ in pod_templates(synthesized(combo)))


def test_checkov_scanned_every_combination(checkov_scan: ComboScan) -> None:
    assert len(checkov_scan.files) == len(COMBOS)
    assert checkov_scan.passed > 0


def test_no_stale_composition_exception(checkov_scan: ComboScan) -> None:
    """The exceptions for objects only the matrix renders (output ``composition``) still fail
    somewhere in it."""
    found = {finding for findings in checkov_scan.findings.values() for finding in findings}
    listed = {
        (entry["check"], resource)
        for entry in load_exceptions()["exceptions"]
        if "composition" in entry["outputs"]
        for resource in entry["resources"]
    }
    assert listed, "the matrix's own objects have entries"
    assert sorted(listed - found) == [], "no longer failing: remove from security/checkov-exceptions.yaml"


# -- a representative set boots for real ------------------------------------------------------

PASSWORD = "composition-password"
BOOTED = (
    Combo("single", True, True, OPT_INS),
    Combo("sentinel", True, True, OPT_INS),
    Combo("sentinel", False, False, ("smoke_check",)),
)
PAGE_BYTES = 4096


@pytest.fixture(scope="module")
def boot_root() -> Iterator[Path]:
    """Pods' and the Job's files, in a directory the pod user (uid 999) can traverse. Not under
    pytest's base temp dir: every pytest session that starts on the machine resets it to 0700,
    which locked the pod user out of valkey-server in a run in progress."""
    with tempfile.TemporaryDirectory(prefix="composition-") as name:
        root = Path(name)
        root.chmod(0o711)
        yield root


@pytest.fixture(scope="module")
def boot_bin_dir(boot_root: Path, valkey_bin_dir: Path) -> Path:
    """valkey-server, valkey-cli and the multi-call valkey-sentinel, under ``boot_root``."""
    return make_bin_dir(valkey_bin_dir, boot_root / "bin")


@pytest.mark.root
@pytest.mark.parametrize("combo", BOOTED, ids=_ids(BOOTED))
def test_boots_and_the_smoke_job_passes(combo: Combo, boot_root: Path, boot_bin_dir: Path) -> None:
    """The rendered StatefulSet's pods (every container with a command: valkey, and sentinel
    under Sentinel; the exporters' image has no shell and is not run) in network namespaces,
    with the Secret resolved and the rendered memory limit as the cgroup limit the entrypoint
    reads; then the rendered smoke Job (ConfigMap scripts, command, env, the pod user) in a pod
    sandbox of its own, which reaches the pods by their Service and host names."""
    objs = synthesized(combo)
    valkey = rendered(combo).valkey
    assert valkey is not None and valkey.smoke_check is not None
    secrets = {(AUTH_SECRET.name, AUTH_SECRET.key): PASSWORD}
    resolved = resolve_secret_refs(objs, secrets)
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    (server,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "valkey"]
    root = boot_root / combo.id
    root.mkdir()
    limit_file = root / "memory.max"  # what the kernel keeps: the limit in whole pages
    limit_file.write_text(f"{parse_quantity(server['resources']['limits']['memory']) // PAGE_BYTES * PAGE_BYTES}\n")
    limit_file.chmod(0o644)
    cgroup_env = {"VALKEY_CGROUP_V2_FILE": str(limit_file), "VALKEY_CGROUP_V1_FILE": str(root / "missing")}
    argv, env = job_argv_and_env(SmokeRendered(objs, valkey.smoke_check), root / "job", boot_bin_dir, secrets)
    with PodNetwork() as network:
        pods = NetStatefulSet(
            resolved, network=network, root=root / "pods", bin_dir=boot_bin_dir, extra_env={"valkey": cgroup_env}
        )
        try:
            pods.start(ready_timeout=120)
            job = network.add_sandbox("smoke-job")
            result = job.run(argv, env=env, capture_output=True, text=True, timeout=180)
        finally:
            pods.close()
    print(f"\n{combo.id}:\n{result.stdout}")
    lines = result.stdout.splitlines()
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    assert PASSWORD not in result.stdout
    if combo.topology == "sentinel":
        primary = "valkey-0.valkey-headless.apps.svc:6379".replace("apps", combo.namespace)
        assert lines[-1] == f"smoke: all checks passed on {primary}, the primary of valkey, and its 2 replicas"
        assert lines[0].startswith("smoke: ok sentinels: 3 of 3 name ")
    else:
        assert lines[-1] == "smoke: all checks passed on valkey:6379"
    expected = f"smoke: ok maxmemory: {valkey.smoke_check.expected_maxmemory_bytes} bytes"
    assert expected in lines, "maxmemory from the rendered limit, as the entrypoint applies it"
    if combo.auth:
        assert "smoke: ok auth: a client without the password is refused" in lines
