"""SmokeCheck: the rendered ConfigMap, Job and NetworkPolicies, and the validation rules, for one
Valkey and under Sentinel.

The script itself runs against real servers in tests/test_smoke_script.py."""

from __future__ import annotations

import hashlib
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
import kubernetes_validate
import pytest
from cdk8s_plus_28 import k8s
from test_network_policy import POD_LABELS, Peer, ingress_allowed

from cdk8s_valkey import ExporterSidecar, Sentinel, SentinelOptions, Valkey, ValkeyStatefulSet
from cdk8s_valkey.smoke_check import SmokeCheck, SmokeCheckOptions, expected_maxmemory_bytes
from harness.hardened import AUTH_SECRET, build_hardened, hardening_gaps
from harness.paths import REPO
from harness.synth import find, new_chart, objects

SCRIPT = REPO / "constructs/cdk8s_valkey/scripts/smoke.sh"
SMOKE_POD = Peer(
    "apps",
    (
        ("app.kubernetes.io/name", "valkey-smoke-check"),
        ("app.kubernetes.io/instance", "valkey"),
        ("app.kubernetes.io/component", "smoke-check"),
    ),
)


def build(
    *, options: SmokeCheckOptions | None = None, exporter: bool = False, **valkey_props: Any
) -> tuple[cdk8s.Chart, SmokeCheck]:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey", **valkey_props)
    if exporter:
        ExporterSidecar(chart, "exporter", valkey=valkey)
    return chart, SmokeCheck(chart, "smoke", valkey=valkey, options=options)


def smoke_objects(chart: cdk8s.Chart) -> list[dict[str, Any]]:
    """The objects the SmokeCheck renders, in output order."""
    return [o for o in objects(chart) if o["metadata"]["labels"].get("app.kubernetes.io/component") == "smoke-check"]


def job(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objs, "Job", "valkey-smoke")


def pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(job(objs)["spec"]["template"]["spec"])


def env(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (ctr,) = pod(objs)["containers"]
    return {var["name"]: var.get("value", var.get("valueFrom")) for var in ctr["env"]}


# -- snapshots ---------------------------------------------------------------------------


def test_defaults_snapshot(yaml_snapshot: Any) -> None:
    chart, _ = build()
    objs = smoke_objects(chart)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ConfigMap", "valkey-smoke"),
        ("Job", "valkey-smoke"),
    ]
    assert cdk8s.Yaml.stringify(*objs) == yaml_snapshot


def test_with_auth_snapshot(yaml_snapshot: Any) -> None:
    chart, _ = build(auth_secret=AUTH_SECRET)
    objs = smoke_objects(chart)
    assert env(objs)["REDISCLI_AUTH"] == {"secretKeyRef": {"name": "valkey-auth", "key": "password"}}
    assert cdk8s.Yaml.stringify(job(objs)) == yaml_snapshot


def test_with_network_policy_snapshot(yaml_snapshot: Any) -> None:
    chart, smoke = build(network_policy=True)
    pols = [o for o in smoke_objects(chart) if o["kind"] == "NetworkPolicy"]
    assert [p["metadata"]["name"] for p in pols] == ["valkey-smoke", "valkey-smoke-job"]
    assert (smoke.network_policy_name, smoke.job_network_policy_name) == ("valkey-smoke", "valkey-smoke-job")
    assert cdk8s.Yaml.stringify(*pols) == yaml_snapshot


# -- the Job -----------------------------------------------------------------------------


def test_configmap_holds_the_package_script() -> None:
    chart, _ = build()
    objs = smoke_objects(chart)
    assert find(objs, "ConfigMap", "valkey-smoke")["data"] == {"smoke.sh": SCRIPT.read_text()}
    (ctr,) = pod(objs)["containers"]
    assert ctr["command"] == ["sh", "/scripts/smoke.sh"]
    assert ctr["volumeMounts"] == [{"name": "scripts", "mountPath": "/scripts", "readOnly": True}]
    assert pod(objs)["volumes"] == [{"name": "scripts", "configMap": {"name": "valkey-smoke"}}]


def test_script_change_changes_the_pod_template() -> None:
    """Under Flux a changed template is what makes the forced Job run again."""
    chart, _ = build()
    annotations = job(objects(chart))["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"checksum/script": hashlib.sha256(SCRIPT.read_bytes()).hexdigest()}


def test_argo_cd_post_sync_hook_and_flux_force() -> None:
    chart, _ = build()
    assert job(objects(chart))["metadata"]["annotations"] == {
        "argocd.argoproj.io/hook": "PostSync",
        "argocd.argoproj.io/hook-delete-policy": "HookSucceeded,BeforeHookCreation",
        "kustomize.toolkit.fluxcd.io/force": "enabled",
    }
    # Only the Job is a hook: the ConfigMap it mounts is synced before PostSync runs.
    config_map = find(objects(chart), "ConfigMap", "valkey-smoke")
    assert "annotations" not in config_map["metadata"]


def test_job_is_bounded() -> None:
    chart, smoke = build()
    spec = job(objects(chart))["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 60 + 120 == smoke.active_deadline.to_seconds()
    assert spec["ttlSecondsAfterFinished"] == 24 * 3600
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    # A failed check (exit 1) or bad env (64) ends the Job at once; a disrupted pod is retried.
    assert spec["podFailurePolicy"]["rules"] == [
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "smoke", "operator": "In", "values": [1, 64]},
            "onPodConditions": [],
        },
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]


def test_script_environment() -> None:
    chart, smoke = build()
    assert env(objects(chart)) == {
        "VALKEY_HOST": "valkey",
        "VALKEY_PORT": "6379",
        "SMOKE_EXPECTED_MAXMEMORY_BYTES": "375809638",
        "SMOKE_WAIT_SECONDS": "60",
        "SMOKE_TIMEOUT_SECONDS": "5",
    }
    assert smoke.expected_maxmemory_bytes == 512 * 2**20 * 70 // 100


def test_auth_comes_from_the_valkey_secret_key() -> None:
    chart, _ = build(auth_secret=AUTH_SECRET)
    objs = objects(chart)
    (valkey_ctr,) = find(objs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    valkey_ref = {v["name"]: v for v in valkey_ctr["env"]}["REDISCLI_AUTH"]
    (smoke_ctr,) = pod(objs)["containers"]
    assert smoke_ctr["env"][-1] == valkey_ref


def test_wait_defaults_to_the_startup_budget() -> None:
    """A larger Valkey may take longer to load its AOF: the check waits as long as its startup probe."""
    chart, smoke = build(memory_limit=cdk8s.Size.gibibytes(4), storage_size=cdk8s.Size.gibibytes(12))
    budget = smoke.valkey.startup_budget.to_seconds()
    assert budget == 100
    assert env(objects(chart))["SMOKE_WAIT_SECONDS"] == "100"
    assert job(objects(chart))["spec"]["activeDeadlineSeconds"] == 100 + 120


def test_options_render() -> None:
    options = SmokeCheckOptions(
        wait_timeout=cdk8s.Duration.seconds(30),
        ttl_after_finished=cdk8s.Duration.hours(1),
        memory_limit=cdk8s.Size.mebibytes(64),
        cpu_request=kplus.Cpu.millis(50),
    )
    chart, _ = build(options=options)
    objs = objects(chart)
    assert env(objs)["SMOKE_WAIT_SECONDS"] == "30"
    assert job(objs)["spec"]["activeDeadlineSeconds"] == 150
    assert job(objs)["spec"]["ttlSecondsAfterFinished"] == 3600
    (ctr,) = pod(objs)["containers"]
    assert ctr["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "64Mi"}}


def test_uses_the_valkey_image() -> None:
    image = "valkey/valkey:8.1.11@sha256:" + "a" * 64
    chart, _ = build(image=image)
    (ctr,) = pod(objects(chart))["containers"]
    assert (ctr["image"], ctr["imagePullPolicy"]) == (image, "IfNotPresent")


@pytest.mark.parametrize(
    ("memory_limit", "ratio", "expected"),
    [
        pytest.param(cdk8s.Size.mebibytes(512), 0.8, 429496729, id="512Mi-80"),
        pytest.param(cdk8s.Size.gibibytes(1), 0.5, 536870912, id="1Gi-50"),
        pytest.param(cdk8s.Size.mebibytes(64), 0.99, 66437775, id="64Mi-99"),
        # 65Mi + 1Ki: the cgroup keeps 16640 whole pages, and 80 % of that is what the pod gets.
        pytest.param(cdk8s.Size.kibibytes(65 * 1024 + 1), 0.8, 16640 * 4096 * 80 // 100, id="not-page-aligned"),
    ],
)
def test_expected_maxmemory(memory_limit: cdk8s.Size, ratio: float, expected: int) -> None:
    valkey = ValkeyStatefulSet(new_chart(), "valkey", memory_limit=memory_limit, maxmemory_ratio=ratio)
    assert expected_maxmemory_bytes(valkey) == expected


def test_wiring_attributes() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey", name="sessions")
    smoke = SmokeCheck(chart, "smoke", valkey=valkey)
    assert (smoke.name, smoke.job_name, smoke.config_map_name) == ("sessions-smoke",) * 3
    assert (smoke.network_policy_name, smoke.job_network_policy_name) == (None, None)
    assert smoke.peer_labels == {
        "app.kubernetes.io/name": "valkey-smoke-check",
        "app.kubernetes.io/instance": "sessions",
    }
    smoke.peer_labels["x"] = "y"
    assert "x" not in smoke.peer_labels


# -- hardened pod --------------------------------------------------------------------------


def test_pod_is_hardened() -> None:
    chart, _ = build()
    spec = pod(objects(chart))
    assert hardening_gaps(spec) == []
    assert spec["securityContext"] == {
        "runAsUser": 999,
        "runAsGroup": 999,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (ctr,) = spec["containers"]
    assert ctr["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert ctr["resources"] == {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}}
    assert spec["enableServiceLinks"] is False
    assert ctr["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_hardened_app_runs_a_hardened_smoke_job() -> None:
    """harness/hardened.py (scanned by checkov) includes the SmokeCheck."""
    objs = objects(build_hardened(cdk8s.Testing.app()))
    assert hardening_gaps(pod(objs)) == []
    assert {p["metadata"]["name"] for p in objs if p["kind"] == "NetworkPolicy"} >= {"valkey-smoke", "valkey-smoke-job"}


# -- labels and NetworkPolicies -------------------------------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_the_valkey_selectors_never_select_the_smoke_pod() -> None:
    """With the Valkey's labels the Job's pod would receive the Services' clients, and the
    Valkey's policy (no egress) would cut it off from the server it checks."""
    chart, _ = build(network_policy=True, exporter=True)
    objs = objects(chart)
    pod_labels = job(objs)["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/instance"] == "valkey"
    for service in (o for o in objs if o["kind"] == "Service"):
        assert not _selects(service["spec"]["selector"], pod_labels), service["metadata"]["name"]
    for policy in (o for o in objs if o["kind"] == "NetworkPolicy"):
        selects = _selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
        assert selects is (policy["metadata"]["name"] == "valkey-smoke-job"), policy["metadata"]["name"]


def test_policy_lets_the_job_in_when_clients_are_narrowed() -> None:
    api = k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels={"app": "api"}))
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey", network_policy=True, allowed_clients=[api])
    ExporterSidecar(chart, "exporter", valkey=valkey)
    without = [o for o in objects(chart) if o["kind"] == "NetworkPolicy"]
    assert not ingress_allowed(without, SMOKE_POD, 6379, POD_LABELS)
    SmokeCheck(chart, "smoke", valkey=valkey)
    pols = [o for o in objects(chart) if o["kind"] == "NetworkPolicy"]
    assert ingress_allowed(pols, SMOKE_POD, 6379, POD_LABELS)
    assert not ingress_allowed(pols, SMOKE_POD, 9121, POD_LABELS), "the metrics port stays closed to it"
    assert not ingress_allowed(pols, Peer("apps", (("app", "cron"),)), 6379, POD_LABELS)


def test_policies_exact_rules() -> None:
    chart, _ = build(network_policy=True)
    objs = objects(chart)
    peer = {"app.kubernetes.io/name": "valkey-smoke-check", "app.kubernetes.io/instance": "valkey"}
    assert find(objs, "NetworkPolicy", "valkey-smoke")["spec"] == {
        "podSelector": {"matchLabels": POD_LABELS},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": peer}}], "ports": [{"port": 6379, "protocol": "TCP"}]}],
    }
    # The Job's own pod: nothing in, out only to the Valkey port and to DNS.
    assert find(objs, "NetworkPolicy", "valkey-smoke-job")["spec"] == {
        "podSelector": {"matchLabels": peer},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [
            {"to": [{"podSelector": {"matchLabels": POD_LABELS}}], "ports": [{"port": 6379, "protocol": "TCP"}]},
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        ],
    }


def test_no_policy_without_the_valkeys() -> None:
    chart, _ = build()
    assert [o for o in objects(chart) if o["kind"] == "NetworkPolicy"] == []


@pytest.mark.parametrize(
    "valkey_props",
    [pytest.param({}, id="defaults"), pytest.param({"auth_secret": AUTH_SECRET, "network_policy": True}, id="all-on")],
)
def test_objects_validate_strictly(valkey_props: dict[str, Any]) -> None:
    chart, _ = build(**valkey_props)
    for obj in smoke_objects(chart):
        kubernetes_validate.validate(obj, "1.28", strict=True)


# -- validation: one exact message per rule --------------------------------------------------


@pytest.mark.parametrize(
    ("props", "message"),
    [
        pytest.param(
            {"wait_timeout": cdk8s.Duration.seconds(4)},
            "SmokeCheckOptions.wait_timeout: 4s is not allowed; use whole seconds from 5s to 1h",
            id="wait-too-short",
        ),
        pytest.param(
            {"wait_timeout": cdk8s.Duration.minutes(61)},
            "SmokeCheckOptions.wait_timeout: 3660s is not allowed; use whole seconds from 5s to 1h",
            id="wait-too-long",
        ),
        pytest.param(
            {"wait_timeout": cdk8s.Duration.millis(5500)},
            "SmokeCheckOptions.wait_timeout: 5500ms is not allowed; use whole seconds from 5s to 1h",
            id="wait-not-whole",
        ),
        pytest.param(
            {"wait_timeout": "60s"},
            "SmokeCheckOptions.wait_timeout: '60s' is a str; pass a cdk8s.Duration such as cdk8s.Duration.minutes(5)",
            id="wait-str",
        ),
        pytest.param(
            {"ttl_after_finished": cdk8s.Duration.seconds(60)},
            "SmokeCheckOptions.ttl_after_finished: 60s is not allowed; use whole seconds, at least 5 minutes, "
            "so that Argo CD sees the Job finish before Kubernetes deletes it",
            id="ttl-too-short",
        ),
        pytest.param(
            {"ttl_after_finished": 3600},
            "SmokeCheckOptions.ttl_after_finished: 3600 is a int; pass a cdk8s.Duration such as "
            "cdk8s.Duration.minutes(5)",
            id="ttl-int",
        ),
        pytest.param(
            {"memory_limit": cdk8s.Size.mebibytes(8)},
            "SmokeCheckOptions.memory_limit: 8Mi is too small to run sh and valkey-cli; use at least 16Mi",
            id="memory-too-small",
        ),
        pytest.param(
            {"memory_limit": "32Mi"},
            "SmokeCheckOptions.memory_limit: '32Mi' is a str; pass a cdk8s.Size such as cdk8s.Size.mebibytes(32)",
            id="memory-str",
        ),
        pytest.param(
            {"cpu_request": "10m"},
            "SmokeCheckOptions.cpu_request: '10m' is a str; pass a kplus.Cpu (import cdk8s_plus_28 as kplus) "
            "such as kplus.Cpu.millis(10)",
            id="cpu-str",
        ),
    ],
)
def test_bad_options_raise(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        SmokeCheckOptions(**props)
    assert str(raised.value) == message


def test_other_namespace_is_refused_before_any_child() -> None:
    valkey = ValkeyStatefulSet(new_chart("apps"), "valkey")
    other = new_chart("jobs")
    with pytest.raises(ValueError) as raised:
        SmokeCheck(other, "smoke", valkey=valkey)
    assert str(raised.value) == (
        "valkey: 'valkey' renders into namespace 'apps' but this chart renders into 'jobs'; define the "
        "SmokeCheck in a chart of the Valkey's namespace, where the Job reaches the Service by its name"
    )
    assert other.node.try_find_child("smoke") is None


def test_another_chart_of_the_same_namespace_is_fine() -> None:
    """Flux users put the Job in a file of its own: a chart of its own, same namespace."""
    app = cdk8s.Testing.app()
    valkey = ValkeyStatefulSet(cdk8s.Chart(app, "valkey", namespace="apps"), "valkey")
    smoke = SmokeCheck(cdk8s.Chart(app, "smoke", namespace="apps"), "smoke", valkey=valkey)
    assert smoke.job_name == "valkey-smoke"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        pytest.param(
            {"valkey": "valkey"},
            "valkey: 'valkey' is not a ValkeyStatefulSet; pass the Valkey construct itself",
            id="valkey-name",
        ),
        pytest.param(
            {"options": {"wait_timeout": 30}},
            "options: {'wait_timeout': 30} is not a SmokeCheckOptions; pass SmokeCheckOptions(...)",
            id="options-dict",
        ),
    ],
)
def test_bad_props_raise_before_any_child(props: dict[str, Any], message: str) -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    with pytest.raises(ValueError) as raised:
        SmokeCheck(chart, "smoke", **{"valkey": valkey, **props})
    assert str(raised.value) == message
    assert chart.node.try_find_child("smoke") is None


# -- Sentinel: the topology instead of the client Service ------------------------------------

SENTINEL_SCRIPT = REPO / "constructs/cdk8s_valkey/scripts/smoke-sentinel.sh"
HOSTS = tuple(f"valkey-{i}.valkey-headless.apps.svc" for i in range(3))


def build_sentinel(**valkey_props: Any) -> tuple[cdk8s.Chart, SmokeCheck]:
    chart = new_chart()
    valkey = Valkey(chart, "valkey", sentinel=SentinelOptions(), smoke_check=SmokeCheckOptions(), **valkey_props)
    assert valkey.smoke_check is not None and valkey.smoke_check.sentinel is valkey.sentinel
    return chart, valkey.smoke_check


def test_sentinel_snapshot(yaml_snapshot: Any) -> None:
    chart, _ = build_sentinel(network_policy=True)
    objs = smoke_objects(chart)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ConfigMap", "valkey-smoke"),
        ("Job", "valkey-smoke"),
        ("NetworkPolicy", "valkey-smoke"),
        ("NetworkPolicy", "valkey-smoke-job"),
    ]
    assert cdk8s.Yaml.stringify(*objs) == yaml_snapshot


def test_sentinel_job_runs_the_topology_script_beside_smoke_sh() -> None:
    chart, smoke = build_sentinel()
    objs = smoke_objects(chart)
    data = find(objs, "ConfigMap", "valkey-smoke")["data"]
    assert data == {"smoke.sh": SCRIPT.read_text(), "smoke-sentinel.sh": SENTINEL_SCRIPT.read_text()}
    (ctr,) = pod(objs)["containers"]
    assert ctr["command"] == smoke.command == ["sh", "/scripts/smoke-sentinel.sh"]
    digest = hashlib.sha256((data["smoke.sh"] + data["smoke-sentinel.sh"]).encode()).hexdigest()
    assert job(objs)["spec"]["template"]["metadata"]["annotations"] == {"checksum/script": digest}


def test_sentinel_environment_names_every_pod_and_sentinel() -> None:
    chart, smoke = build_sentinel()
    assert env(smoke_objects(chart)) == {
        "VALKEY_SENTINELS": " ".join(f"{host}:26379" for host in HOSTS),
        "VALKEY_MASTER_NAME": "valkey",
        "VALKEY_NODES": " ".join(f"{host}:6379" for host in HOSTS),
        "SMOKE_MAX_LAG_BYTES": str(1 << 20),
        # min_replicas_max_lag: a replica acknowledged later no longer counts for writes.
        "SMOKE_MAX_LAG_SECONDS": "2",
        "SMOKE_EXPECTED_MAXMEMORY_BYTES": str(smoke.expected_maxmemory_bytes),
        "SMOKE_WAIT_SECONDS": "60",
        "SMOKE_TIMEOUT_SECONDS": "5",
    }
    assert smoke.ports == (6379, 26379)


def test_sentinel_lag_follows_min_replicas_max_lag() -> None:
    chart = new_chart()
    options = SentinelOptions(down_after=cdk8s.Duration.seconds(10), min_replicas_max_lag=cdk8s.Duration.seconds(6))
    Valkey(chart, "valkey", sentinel=options, smoke_check=SmokeCheckOptions())
    assert env(smoke_objects(chart))["SMOKE_MAX_LAG_SECONDS"] == "6"


def test_sentinel_with_auth_asks_the_sentinels_with_the_same_secret_key() -> None:
    chart, _ = build_sentinel(auth_secret=AUTH_SECRET)
    ref = {"secretKeyRef": {"name": "valkey-auth", "key": "password"}}
    assert {k: v for k, v in env(smoke_objects(chart)).items() if k.endswith("AUTH")} == {
        "REDISCLI_AUTH": ref,
        "SENTINEL_AUTH": ref,
    }


def test_sentinel_policies_open_both_ports_to_the_job() -> None:
    chart, _ = build_sentinel(network_policy=True)
    objs = objects(chart)
    pols = [o for o in objs if o["kind"] == "NetworkPolicy"]
    for port in (6379, 26379):
        assert ingress_allowed(pols, SMOKE_POD, port, POD_LABELS), port
    assert not ingress_allowed(pols, SMOKE_POD, 9121, POD_LABELS), "the metrics port stays closed to it"
    ports = [{"port": 6379, "protocol": "TCP"}, {"port": 26379, "protocol": "TCP"}]
    egress = find(objs, "NetworkPolicy", "valkey-smoke-job")["spec"]["egress"]
    assert egress[0] == {"to": [{"podSelector": {"matchLabels": POD_LABELS}}], "ports": ports}


def test_sentinel_of_another_valkey_is_refused() -> None:
    chart = new_chart()
    other = ValkeyStatefulSet(chart, "other")
    sentinel = Sentinel(chart, "sentinel", valkey=other)
    valkey = ValkeyStatefulSet(chart, "valkey")
    with pytest.raises(ValueError) as raised:
        SmokeCheck(chart, "smoke", valkey=valkey, sentinel=sentinel)
    assert str(raised.value) == (
        "sentinel: it runs Valkey 'other', not 'valkey'; pass the Sentinel created with valkey=<this Valkey>"
    )
    with pytest.raises(ValueError) as raised:
        SmokeCheck(chart, "smoke2", valkey=valkey, sentinel="sentinel")  # type: ignore[arg-type]
    assert str(raised.value) == "sentinel: 'sentinel' is a str; pass the Sentinel of that Valkey, or None"
    assert chart.node.try_find_child("smoke") is None and chart.node.try_find_child("smoke2") is None


@pytest.mark.parametrize("auth", [False, True], ids=["no-auth", "auth"])
def test_sentinel_objects_validate_strictly(auth: bool) -> None:
    chart, _ = build_sentinel(network_policy=True, auth_secret=AUTH_SECRET if auth else None)
    for obj in smoke_objects(chart):
        kubernetes_validate.validate(obj, "1.28", strict=True)
