"""Sentinel: the snapshot of the defaults, an assert on what each option renders, the hooks it
uses on ValkeyStatefulSet, one test per validation rule, and the objects against the Kubernetes
1.28 schemas and the CRDs. The scripts run for real in tests/test_sentinel_scripts.py."""

from __future__ import annotations

from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
import kubernetes_validate
import pytest
from cdk8s_plus_28 import k8s

from cdk8s_valkey import (
    ExporterSidecar,
    SecretKeyRef,
    Sentinel,
    SentinelOptions,
    Topology,
    Valkey,
    ValkeyStatefulSet,
)
from cdk8s_valkey.review import guard_claims
from cdk8s_valkey.valkey_statefulset import CLAIM_TEMPLATE_STORAGE
from harness.crd_schema import validate_crd_object
from harness.paths import REPO
from harness.synth import container, find, load_all, new_chart, objects, to_yaml

HOSTS = tuple(f"valkey-{i}.valkey-headless.apps.svc" for i in range(3))


def build(
    options: SentinelOptions | None = None, *, exporter: bool = True, **props: Any
) -> tuple[cdk8s.Chart, Sentinel]:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey", **props)
    metrics = ExporterSidecar(chart, "metrics", valkey=valkey) if exporter else None
    return chart, Sentinel(chart, "sentinel", valkey=valkey, exporter=metrics, options=options)


def statefulset(chart: cdk8s.Chart) -> dict[str, Any]:
    return find(objects(chart), "StatefulSet")


def template_lines(chart: cdk8s.Chart) -> list[str]:
    text = find(objects(chart), "ConfigMap", "valkey-sentinel")["data"]["sentinel.conf"]
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def env(ctr: dict[str, Any]) -> dict[str, str]:
    return {var["name"]: var.get("value", str(var.get("valueFrom"))) for var in ctr["env"]}


# -- snapshot and what the defaults render ---------------------------------------------------------


def test_defaults_snapshot(yaml_snapshot: Any) -> None:
    chart, _ = build()
    assert to_yaml(chart) == yaml_snapshot


def test_objects_and_order() -> None:
    """Claims before the StatefulSet (kubectl apply creates them first, so the StatefulSet adopts
    them); the Sentinel's ConfigMap, Services and ServiceMonitor beside the exporter's."""
    chart, _ = build()
    assert [(o["kind"], o["metadata"]["name"]) for o in objects(chart)] == [
        ("ConfigMap", "valkey-config"),
        ("ConfigMap", "valkey-scripts"),
        ("Service", "valkey-headless"),
        ("Service", "valkey"),
        ("PersistentVolumeClaim", "data-valkey-0"),
        ("PersistentVolumeClaim", "data-valkey-1"),
        ("PersistentVolumeClaim", "data-valkey-2"),
        ("StatefulSet", "valkey"),
        ("Service", "valkey-metrics"),
        ("ServiceMonitor", "valkey"),
        ("ConfigMap", "valkey-sentinel"),
        ("Service", "valkey-sentinel"),
        ("Service", "valkey-sentinel-metrics"),
        ("ServiceMonitor", "valkey-sentinel"),
    ]


def test_statefulset_runs_three_pods_each_on_its_claim() -> None:
    chart, sentinel = build()
    sts = statefulset(chart)
    spec = sts["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"] == [
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": CLAIM_TEMPLATE_STORAGE}},
                "storageClassName": "longhorn",
            },
        }
    ]
    # The template's claims replace the pod volume that named data-valkey-0 for every pod.
    volumes = spec["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["config", "scripts", "sentinel"]
    assert volumes[2] == {"configMap": {"name": "valkey-sentinel"}, "name": "sentinel"}
    assert sentinel.valkey.pod_names == ("valkey-0", "valkey-1", "valkey-2")
    assert sentinel.valkey.claim_names == ("data-valkey-0", "data-valkey-1", "data-valkey-2")
    objs = objects(chart)
    claim0 = find(objs, "PersistentVolumeClaim", "data-valkey-0")
    for name in ("data-valkey-1", "data-valkey-2"):
        claim = find(objs, "PersistentVolumeClaim", name)
        assert claim["spec"] == claim0["spec"]
        assert claim["metadata"]["annotations"] == claim0["metadata"]["annotations"]
        assert claim["metadata"]["labels"] == claim0["metadata"]["labels"]


def test_claim_template_does_not_follow_storage_size() -> None:
    """Kubernetes refuses any change to a claim template: it stays the same whatever the size,
    and only the claims grow."""
    small, _ = build()
    large, _ = build(storage_size=cdk8s.Size.gibibytes(50))
    assert statefulset(small)["spec"]["volumeClaimTemplates"] == statefulset(large)["spec"]["volumeClaimTemplates"]
    assert find(objects(large), "PersistentVolumeClaim", "data-valkey-2")["spec"]["resources"] == {
        "requests": {"storage": "50Gi"}
    }


def test_valkey_container() -> None:
    chart, _ = build()
    objs = objects(chart)
    ctr = container(objs)
    assert ctr["command"] == ["sh", "/sentinel/valkey-role.sh", "sh", "/scripts/entrypoint.sh"]
    assert ctr["args"] == [
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "2",
        "--repl-diskless-sync-delay",
        "0",
    ]
    assert env(ctr) == {
        "VALKEY_CONFIG_FILE": "/etc/valkey/valkey.conf",
        "VALKEY_DATA_DIR": "/data",
        "VALKEY_MAXMEMORY_PERCENT": "70",
        "VALKEY_MAXMEMORY_FALLBACK_BYTES": "375809638",
        "VALKEY_MIN_MAXMEMORY_BYTES": "16777216",
        "POD_NAME": "{'fieldRef': {'fieldPath': 'metadata.name'}}",
        "VALKEY_POD_DOMAIN": "valkey-headless.apps.svc",
        "VALKEY_MASTER_NAME": "valkey",
        "VALKEY_SENTINELS": " ".join(f"{host}:26379" for host in HOSTS),
        "VALKEY_BOOTSTRAP_PRIMARY": f"{HOSTS[0]}:6379",
        "VALKEY_SENTINEL_STATE": "/data/sentinel/sentinel.conf",
        "VALKEY_SENTINEL_WAIT_SECONDS": "20",
    }
    assert ctr["readinessProbe"]["exec"]["command"] == [
        "sh",
        "/sentinel/replica-probe.sh",
        "sh",
        "/scripts/probe.sh",
        "ready",
    ]
    assert ctr["lifecycle"] == {"preStop": {"exec": {"command": ["sh", "/sentinel/handover.sh"]}}}
    # Startup and liveness stay probe.sh's: PONG to start, LOADING tolerated to stay alive.
    assert ctr["startupProbe"]["exec"]["command"] == ["sh", "/scripts/probe.sh", "ready"]
    assert ctr["livenessProbe"]["exec"]["command"] == ["sh", "/scripts/probe.sh", "alive"]
    assert {"mountPath": "/sentinel", "name": "sentinel", "readOnly": True} in ctr["volumeMounts"]


def test_sentinel_container() -> None:
    chart, _ = build()
    ctr = container(objects(chart), "sentinel")
    assert ctr["image"] == "valkey/valkey:8.1.11"
    assert ctr["command"] == ["sh", "/sentinel/sentinel-start.sh"]
    assert ctr["ports"] == [{"containerPort": 26379, "name": "sentinel", "protocol": "TCP"}]
    assert env(ctr)["VALKEY_PORT"] == "26379"
    assert env(ctr)["VALKEY_SENTINEL_TEMPLATE"] == "/sentinel/sentinel.conf"
    assert ctr["resources"] == {"limits": {"memory": "64Mi"}, "requests": {"cpu": "10m", "memory": "64Mi"}}
    assert ctr["securityContext"] == container(objects(chart))["securityContext"]
    assert ctr["volumeMounts"] == [
        {"mountPath": "/data", "name": "data"},
        {"mountPath": "/sentinel", "name": "sentinel", "readOnly": True},
        {"mountPath": "/scripts", "name": "scripts", "readOnly": True},
    ]
    assert [ctr[p]["exec"]["command"][-1] for p in ("startupProbe", "readinessProbe", "livenessProbe")] == [
        "ready",
        "ready",
        "alive",
    ]


def test_sentinel_template() -> None:
    chart, sentinel = build()
    assert template_lines(chart) == [
        "port 26379",
        "bind * -::*",
        "protected-mode no",
        "dir /data/sentinel",
        'logfile ""',
        "sentinel resolve-hostnames yes",
        "sentinel announce-hostnames yes",
        f"sentinel monitor valkey {HOSTS[0]} 6379 2",
        "sentinel down-after-milliseconds valkey 5000",
        "sentinel failover-timeout valkey 60000",
        "sentinel parallel-syncs valkey 1",
    ]
    assert sentinel.quorum == 2


def test_pod_rolls_when_the_sentinel_configmap_changes() -> None:
    default, _ = build()
    slower, _ = build(SentinelOptions(down_after=cdk8s.Duration.seconds(10)))
    annotations = [statefulset(c)["spec"]["template"]["metadata"]["annotations"] for c in (default, slower)]
    assert annotations[0]["checksum/config"] == annotations[1]["checksum/config"]
    assert annotations[0]["checksum/sentinel"] != annotations[1]["checksum/sentinel"]


def test_services() -> None:
    chart, _ = build()
    objs = objects(chart)
    assert find(objs, "Service", "valkey-headless")["spec"]["publishNotReadyAddresses"] is True
    client = find(objs, "Service", "valkey")
    assert "selector" not in client["spec"]
    assert client["metadata"]["annotations"] == {
        "cdk8s-valkey/clients": (
            "no endpoints: connect through the Sentinels (valkey-sentinel.apps.svc:26379, master name valkey)"
        )
    }
    service = find(objs, "Service", "valkey-sentinel")
    assert service["spec"] == {
        "ports": [{"name": "sentinel", "port": 26379, "protocol": "TCP", "targetPort": "sentinel"}],
        "publishNotReadyAddresses": True,
        "selector": {"app.kubernetes.io/instance": "valkey", "app.kubernetes.io/name": "valkey"},
        "type": "ClusterIP",
    }
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "sentinel"


def test_sentinel_exporter() -> None:
    chart, sentinel = build()
    objs = objects(chart)
    ctr = container(objs, "sentinel-exporter")
    exporter = container(objs, "exporter")
    assert ctr["args"] == [
        "--redis.addr=redis://localhost:26379",
        "--namespace=valkey",
        "--web.listen-address=:9355",
        "--web.telemetry-path=/metrics",
        "--connection-timeout=5s",
        "--redis-only-metrics",
    ]
    assert ctr["ports"] == [{"containerPort": 9355, "name": "sentinel-exp", "protocol": "TCP"}]
    assert ctr["securityContext"] == exporter["securityContext"]
    assert ctr["resources"] == exporter["resources"]
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/health", "port": "sentinel-exp"}
    service = find(objs, "Service", "valkey-sentinel-metrics")
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "sentinel-metrics"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9355, "protocol": "TCP", "targetPort": "sentinel-exp"}
    ]
    monitor = find(objs, "ServiceMonitor", "valkey-sentinel")
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "sentinel-metrics"
    assert monitor["spec"]["endpoints"] == [
        {"interval": "30s", "path": "/metrics", "port": "metrics", "scrapeTimeout": "10s"}
    ]
    # The exporter's own ServiceMonitor selects component=metrics only: no Sentinel series under its service.
    own = find(objs, "ServiceMonitor", "valkey")
    assert own["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
    assert sentinel.metrics_service_name == "valkey-sentinel-metrics"


def test_without_exporter_no_sentinel_metrics() -> None:
    chart, sentinel = build(exporter=False)
    objs = objects(chart)
    assert [c["name"] for c in statefulset(chart)["spec"]["template"]["spec"]["containers"]] == ["valkey", "sentinel"]
    assert not [o for o in objs if o["kind"] == "ServiceMonitor"]
    assert sentinel.metrics_service_name is None


def test_wiring_points() -> None:
    _, sentinel = build()
    assert sentinel.sentinel_hosts == HOSTS
    assert sentinel.sentinel_port == 26379
    assert sentinel.master_name == "valkey"
    assert sentinel.service_host == "valkey-sentinel.apps.svc"
    assert sentinel.ioredis_options == {
        "sentinels": [{"host": host, "port": 26379} for host in HOSTS],
        "name": "valkey",
        "failoverDetector": True,
        "disconnectTimeout": 100,
        "connectTimeout": 1000,
        "sentinelCommandTimeout": 1000,
    }


# -- options ----------------------------------------------------------------------------------------


def test_options() -> None:
    chart, sentinel = build(
        SentinelOptions(
            replicas=4,
            master_name="queues",
            down_after=cdk8s.Duration.millis(8500),
            failover_timeout=cdk8s.Duration.minutes(3),
            min_replicas_to_write=2,
            min_replicas_max_lag=cdk8s.Duration.seconds(5),
            role_wait=cdk8s.Duration.seconds(30),
            memory_limit=cdk8s.Size.mebibytes(48),
            cpu_request=kplus.Cpu.millis(20),
        )
    )
    assert statefulset(chart)["spec"]["replicas"] == 5
    assert sentinel.quorum == 3
    assert template_lines(chart)[-4:] == [
        "sentinel monitor queues valkey-0.valkey-headless.apps.svc 6379 3",
        "sentinel down-after-milliseconds queues 8500",
        "sentinel failover-timeout queues 180000",
        "sentinel parallel-syncs queues 1",
    ]
    objs = objects(chart)
    ctr = container(objs)
    assert ctr["args"][:4] == ["--min-replicas-to-write", "2", "--min-replicas-max-lag", "5"]
    assert env(ctr)["VALKEY_SENTINEL_WAIT_SECONDS"] == "30"
    assert env(ctr)["VALKEY_MASTER_NAME"] == "queues"
    assert len(env(ctr)["VALKEY_SENTINELS"].split()) == 5
    assert container(objs, "sentinel")["resources"] == {
        "limits": {"memory": "48Mi"},
        "requests": {"cpu": "20m", "memory": "48Mi"},
    }
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"] == [
        f"data-valkey-{i}" for i in range(5)
    ]
    assert sentinel.ioredis_options["name"] == "queues"


def test_min_replicas_max_lag_follows_down_after() -> None:
    assert SentinelOptions().min_replicas_max_lag is not None
    for down_after, lag in ((4000, "1"), (5000, "2"), (4999, "1"), (30_000, "27")):
        chart, _ = build(SentinelOptions(down_after=cdk8s.Duration.millis(down_after)))
        assert container(objects(chart))["args"][2:4] == ["--min-replicas-max-lag", lag]


def test_min_replicas_to_write_zero_turns_it_off() -> None:
    chart, _ = build(SentinelOptions(min_replicas_to_write=0))
    assert container(objects(chart))["args"][:2] == ["--min-replicas-to-write", "0"]


def test_quorum_is_the_majority() -> None:
    assert [build(SentinelOptions(replicas=r))[1].quorum for r in range(2, 7)] == [2, 3, 3, 4, 4]


def test_composite() -> None:
    chart = new_chart()
    valkey = Valkey(chart, "valkey", sentinel=SentinelOptions())
    assert valkey.sentinel is not None
    assert valkey.sentinel_hosts == HOSTS
    assert (valkey.sentinel_port, valkey.master_name) == (26379, "valkey")
    objs = objects(chart)
    assert statefulset(chart)["spec"]["replicas"] == 3
    assert find(objs, "ServiceMonitor", "valkey-sentinel")
    plain = Valkey(new_chart(), "valkey")
    assert (plain.sentinel, plain.sentinel_hosts, plain.sentinel_port, plain.master_name) == (None, (), None, None)


# -- schemas ---------------------------------------------------------------------------------------


def test_objects_validate_against_kubernetes_and_the_crds() -> None:
    chart, _ = build(SentinelOptions(replicas=3))
    composite = new_chart(chart_id="composite")
    Valkey(composite, "cache", sentinel=SentinelOptions())
    for obj in objects(chart) + objects(composite):
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            validate_crd_object(obj)
        else:
            kubernetes_validate.validate(obj, "1.28", strict=True)


# -- validation: one test per rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"replicas": 1},
            "replicas: 1 is not allowed; use a whole number from 2 to 6 (with fewer than 2, losing one pod "
            "loses the quorum)",
        ),
        (
            {"replicas": 7},
            "replicas: 7 is not allowed; use a whole number from 2 to 6 (with fewer than 2, losing one pod "
            "loses the quorum)",
        ),
        (
            {"master_name": "my master"},
            "master_name: 'my master' is not allowed; use at most 63 letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
        ),
        (
            {"down_after": cdk8s.Duration.millis(3500)},
            "down_after: 3500ms is not allowed; use from 4000ms to 60000ms (shorter leaves an isolated old "
            "primary taking writes after the failover, longer leaves clients without a primary)",
        ),
        (
            {"failover_timeout": cdk8s.Duration.seconds(5)},
            "failover_timeout: 5000ms is not allowed; use at least 10000ms, the time a failover needs to "
            "promote a replica and re-point the others",
        ),
        (
            {"min_replicas_to_write": 3},
            "min_replicas_to_write: 3 is not allowed; use a whole number from 0 (off) to replicas (2): more "
            "would refuse every write",
        ),
        (
            {"min_replicas_max_lag": cdk8s.Duration.millis(1500)},
            "min_replicas_max_lag: 1500ms is not allowed with down_after 5000ms; use whole seconds from 1s to 2s "
            "(down_after - 3s), so that an isolated old primary stops taking writes before a replica is promoted",
        ),
        (
            {"min_replicas_max_lag": cdk8s.Duration.seconds(10)},
            "min_replicas_max_lag: 10s is not allowed with down_after 5000ms; use whole seconds from 1s to 2s "
            "(down_after - 3s), so that an isolated old primary stops taking writes before a replica is promoted",
        ),
        ({"role_wait": cdk8s.Duration.seconds(2)}, "role_wait: 2s is not allowed; use whole seconds, from 5s to 300s"),
        (
            {"memory_limit": cdk8s.Size.mebibytes(16)},
            "memory_limit: 16Mi is too small to run Sentinel; use at least 32Mi",
        ),
        (
            {"down_after": 5000},
            "down_after: 5000 is a int; pass a cdk8s.Duration such as cdk8s.Duration.minutes(5)",
        ),
    ],
)
def test_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        SentinelOptions(**options)
    assert str(error.value) == message


def test_valkey_without_namespace_is_refused() -> None:
    chart = new_chart(namespace=None)
    valkey = ValkeyStatefulSet(chart, "valkey")
    with pytest.raises(ValueError) as error:
        Sentinel(chart, "sentinel", valkey=valkey)
    assert str(error.value) == (
        "valkey: 'valkey' renders into a chart without a namespace, but the Sentinels find the pods by host "
        "names that hold it; set namespace= on its cdk8s.Chart"
    )


def test_chart_of_another_namespace_is_refused() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    other = cdk8s.Chart(chart.node.scope, "other", namespace="elsewhere")  # type: ignore[arg-type]
    with pytest.raises(ValueError) as error:
        Sentinel(other, "sentinel", valkey=valkey)
    assert str(error.value) == (
        "valkey: 'valkey' renders into namespace 'apps' but this chart renders into 'elsewhere'; define the "
        "Sentinel in a chart of the Valkey's namespace"
    )


def test_second_sentinel_is_refused() -> None:
    chart, sentinel = build()
    with pytest.raises(ValueError) as error:
        Sentinel(chart, "again", valkey=sentinel.valkey)
    assert str(error.value) == "valkey: 'valkey' already runs 3 pods; one Sentinel per Valkey"


AUTH = SecretKeyRef(name="valkey-auth", key="password")
SECRET_REF = str({"secretKeyRef": {"key": "password", "name": "valkey-auth"}})


def test_auth_reaches_every_container_from_the_secret() -> None:
    """With auth_secret: every container that talks to Valkey or a Sentinel takes the password
    from the Secret (a reference, never the value); the Sentinel's own file lives in memory."""
    chart, sentinel = build(auth_secret=AUTH)
    objs = objects(chart)
    server = container(objs)
    assert server["command"] == ["sh", "/sentinel/valkey-role.sh", "sh", "/scripts/requirepass.sh"]
    assert env(server)["VALKEY_PASSWORD"] == env(server)["REDISCLI_AUTH"] == SECRET_REF
    sentinel_ctr = container(objs, "sentinel")
    assert env(sentinel_ctr)["VALKEY_PASSWORD"] == env(sentinel_ctr)["REDISCLI_AUTH"] == SECRET_REF
    assert env(sentinel_ctr)["VALKEY_SENTINEL_CONFIG"] == "/run/sentinel/sentinel.conf"
    assert {"mountPath": "/run/sentinel", "name": "sentinel-run"} in sentinel_ctr["volumeMounts"]
    volumes = statefulset(chart)["spec"]["template"]["spec"]["volumes"]
    assert {"emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}, "name": "sentinel-run"} in volumes
    for name in ("exporter", "sentinel-exporter"):
        assert env(container(objs, name)) == {"REDIS_PASSWORD": SECRET_REF}
    scripts = find(objs, "ConfigMap", "valkey-scripts")["data"]
    assert {"requirepass.sh", "auth-lib.sh"} <= set(scripts)
    template = find(objs, "ConfigMap", "valkey-sentinel")["data"]["sentinel.conf"]
    assert "AUTH: sentinel-start.sh adds requirepass" in template
    assert sentinel.ioredis_secret_options == {"password": AUTH, "sentinelPassword": AUTH}
    assert "password" not in sentinel.ioredis_options
    for obj in objs:
        if obj["kind"] in ("StatefulSet", "ConfigMap", "Service"):
            kubernetes_validate.validate(obj, "1.28", strict=True)


def test_without_auth_nothing_of_it_renders() -> None:
    chart, sentinel = build()
    objs = objects(chart)
    assert "sentinel-run" not in str(statefulset(chart))
    pod = statefulset(chart)["spec"]["template"]["spec"]
    assert not [var for c in pod["containers"] for var in c.get("env", []) if "secretKeyRef" in str(var)]
    assert "auth-lib.sh" not in find(objs, "ConfigMap", "valkey-scripts")["data"]
    assert sentinel.ioredis_secret_options == {}


def test_network_policy() -> None:
    """Policies add up: the Valkey's own (6379 from its clients, no egress) and the exporter's stay
    as they are; <name>-sentinel opens the pods to each other, DNS, and the Sentinels to clients."""
    chart, sentinel = build(network_policy=True)
    objs = objects(chart)
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "NetworkPolicy"] == [
        "valkey",
        "valkey-metrics",
        "valkey-sentinel",
    ]
    assert find(objs, "NetworkPolicy", "valkey")["spec"]["egress"] == []
    pods = [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "valkey", "app.kubernetes.io/name": "valkey"}}}
    ]
    between = [{"port": 6379, "protocol": "TCP"}, {"port": 26379, "protocol": "TCP"}]
    assert find(objs, "NetworkPolicy", "valkey-sentinel")["spec"] == {
        "podSelector": pods[0]["podSelector"],
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": pods, "ports": between},
            {"from": [{"podSelector": {}}], "ports": [{"port": 26379, "protocol": "TCP"}]},
            {
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                "ports": [{"port": 9355, "protocol": "TCP"}],
            },
        ],
        "egress": [
            {"to": pods, "ports": between},
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        ],
    }
    assert sentinel.network_policy_name == "valkey-sentinel"
    for obj in objs:
        if obj["kind"] == "NetworkPolicy":
            kubernetes_validate.validate(obj, "1.28", strict=True)


def test_network_policy_with_allowed_clients_and_without_exporter() -> None:
    api = k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels={"app": "api"}))
    chart, _ = build(exporter=False, network_policy=True, allowed_clients=[api])
    ingress = find(objects(chart), "NetworkPolicy", "valkey-sentinel")["spec"]["ingress"]
    assert ingress[1:] == [
        {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 26379, "protocol": "TCP"}]}
    ]
    no_policy, sentinel = build()
    assert not [o for o in objects(no_policy) if o["kind"] == "NetworkPolicy"]
    assert sentinel.network_policy_name is None


def test_owned_directives_in_extra_config_are_refused() -> None:
    with pytest.raises(ValueError) as error:
        build(extra_config={"min-replicas-to-write": "2", "replica-announce-ip": "x"})
    assert str(error.value) == (
        "valkey: extra_config sets ['min-replicas-to-write', 'replica-announce-ip'], which the Sentinel topology "
        "sets on every node; remove them from extra_config (min_replicas_to_write and min_replicas_max_lag are "
        "SentinelOptions)"
    )


def test_exporter_of_another_valkey_is_refused() -> None:
    chart = new_chart()
    one = ValkeyStatefulSet(chart, "one")
    two = ValkeyStatefulSet(chart, "two")
    with pytest.raises(ValueError) as error:
        Sentinel(chart, "sentinel", valkey=one, exporter=ExporterSidecar(chart, "metrics", valkey=two))
    assert str(error.value) == (
        "exporter: it watches Valkey 'two', not 'one'; pass the ExporterSidecar created with valkey=<this Valkey>"
    )


def test_wrong_types_are_refused() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    with pytest.raises(ValueError) as error:
        Sentinel(chart, "sentinel", valkey=valkey, options={"replicas": 2})  # type: ignore[arg-type]
    assert str(error.value) == "options: {'replicas': 2} is a dict; pass a SentinelOptions(...)"
    with pytest.raises(ValueError) as error:
        Sentinel(chart, "sentinel2", valkey="valkey")  # type: ignore[arg-type]
    assert str(error.value) == "valkey: 'valkey' is a str; pass the ValkeyStatefulSet to replicate"


def test_composite_checks_the_sentinel_options_type() -> None:
    with pytest.raises(ValueError) as error:
        Valkey(new_chart(), "valkey", sentinel={"replicas": 2})  # type: ignore[arg-type]
    assert str(error.value) == "sentinel: {'replicas': 2} is a dict; pass a SentinelOptions(...)"


# -- the ValkeyStatefulSet hooks ----------------------------------------------------------------------


def test_set_topology_rules() -> None:
    valkey = ValkeyStatefulSet(new_chart(), "valkey")
    with pytest.raises(ValueError) as error:
        Topology.sentinel("valkey", 1)
    assert str(error.value) == (
        "replicas: 1 does not fit kind 'sentinel'; a single topology has 1 pod, a replicated one at least 2"
    )
    with pytest.raises(ValueError) as error:
        valkey.set_topology(Topology.sentinel("other", 3))
    assert str(error.value) == "topology: it names 'other', not this Valkey 'valkey'"
    with pytest.raises(ValueError) as error:
        valkey.set_topology(Topology.sentinel("valkey", 8))
    assert str(error.value) == "replicas: 8 is not allowed; use a whole number from 2 to 7"
    valkey.set_topology(Topology.sentinel("valkey", 2))
    with pytest.raises(ValueError) as error:
        valkey.set_topology(Topology.sentinel("valkey", 3))
    assert str(error.value) == "replicas: 'valkey' already runs 2 pods; set them once"


def test_topology_is_fixed_once_an_option_read_it() -> None:
    """An option that rendered for one pod would be wrong for three: setting the topology after
    it was read fails, naming what read it."""
    valkey = ValkeyStatefulSet(new_chart(), "valkey")
    assert valkey.claim_names == ("data-valkey-0",)
    with pytest.raises(ValueError) as error:
        valkey.set_topology(Topology.sentinel("valkey", 3))
    assert str(error.value) == (
        "topology: claim_names of 'valkey' was already read for a single pod; set the topology "
        "(create the Sentinel) before the options that render for it"
    )


def test_topology_of_sentinel() -> None:
    _, sentinel = build()
    topology = sentinel.valkey.topology
    assert topology.kind == "sentinel"
    assert topology.replicas == 3
    assert topology.client_endpoint == "sentinel"
    assert topology.writable_pod_names == ("valkey-0", "valkey-1", "valkey-2")
    assert topology.claim_names == ("data-valkey-0", "data-valkey-1", "data-valkey-2")


def test_hooks_refuse_what_they_cannot_render() -> None:
    valkey = ValkeyStatefulSet(new_chart(), "valkey")
    with pytest.raises(ValueError) as error:
        valkey.add_env("VALKEY_DATA_DIR", value="/elsewhere")
    assert str(error.value) == "env 'VALKEY_DATA_DIR': give a new name and exactly one of value and field_path"
    with pytest.raises(ValueError) as error:
        valkey.wrap_probe("ready", "sh")
    assert str(error.value) == "kind: 'ready' is not a probe; use 'startup', 'readiness' or 'liveness'"


def test_hooks_leave_the_default_alone() -> None:
    """Without a Sentinel nothing changes (dist/ and every snapshot stay byte for byte)."""
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    assert valkey.pod_names == ("valkey-0",)
    assert valkey.claim_names == ("data-valkey-0",)
    assert statefulset(chart)["spec"]["replicas"] == 1
    assert "volumeClaimTemplates" not in statefulset(chart)["spec"]


def test_hooks_keep_sidecars_added_before() -> None:
    """The valkey container is rendered again in place: a sidecar added earlier stays."""
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    valkey.add_container(k8s.Container(name="side", image="busybox:1.36.1"))
    valkey.add_env("EXTRA", value="1")
    valkey.wrap_command("env")
    names = [c["name"] for c in statefulset(chart)["spec"]["template"]["spec"]["containers"]]
    assert names == ["valkey", "side"]
    assert container(objects(chart))["command"] == ["env", "sh", "/scripts/entrypoint.sh"]


# -- the migration from the single replica ----------------------------------------------------------

MIGRATION = REPO / "tests" / "review_cases" / "rejected-migration-to-sentinel"


def test_synth_guard_accepts_the_migration() -> None:
    """The claim template (192Mi) does not count as a shrink of data-valkey-0 (10Gi): the
    StatefulSet adopts the standalone claim, the template only shapes missing ones."""
    new = load_all((MIGRATION / "new" / "valkey.k8s.yaml").read_text())
    guard_claims(MIGRATION / "old", new)
    shrunk = [
        {**o, "spec": {**o["spec"], "resources": {"requests": {"storage": "5Gi"}}}}
        if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "data-valkey-0"
        else o
        for o in new
    ]
    with pytest.raises(ValueError, match="would shrink from 10Gi to 5Gi"):
        guard_claims(MIGRATION / "old", shrunk)


def test_review_case_is_this_rendering() -> None:
    """The golden case's new side is what the library renders for main.py's production Valkey with
    sentinel (without the smoke check, which the old side predates)."""
    import main

    chart = new_chart(chart_id="valkey")
    env = main.PRODUCTION
    Valkey(
        chart,
        "valkey",
        memory_limit=env.memory_limit,
        storage_size=env.storage_size,
        storage_class=main.STORAGE_CLASS,
        network_policy=env.network_policy,
        exporter=main.ExporterOptions(bullmq_queues=main.BULLMQ_QUEUES, service_monitor_labels=main.PROMETHEUS_LABELS),
        alerts=main.AlertOptions(rule_labels=main.PROMETHEUS_LABELS),
        dashboard=main.DashboardOptions(),
        backups=env.backups,
        sentinel=SentinelOptions(),
    )
    expected = load_all((MIGRATION / "new" / "valkey.k8s.yaml").read_text())
    assert objects(chart) == expected
