"""PrimaryEndpoint: the snapshot of the defaults, an assert on what each option renders, one test
per validation rule, the objects against the Kubernetes 1.28 schemas, the rendered haproxy.cfg
checked by the real haproxy, and the AUTH checks run for real against Valkey and a Sentinel with
a password. The failover drills are in tests/test_primary_endpoint_drills.py."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import cdk8s
import kubernetes_validate
import pytest
from cdk8s_plus_28 import k8s

from cdk8s_valkey import PrimaryEndpoint, PrimaryEndpointOptions, SentinelOptions, Valkey
from cdk8s_valkey.primary_endpoint import render_config
from harness.paths import require_binary
from harness.synth import find, new_chart, objects


def build(options: PrimaryEndpointOptions | bool = True, **props: Any) -> tuple[cdk8s.Chart, Valkey]:
    chart = new_chart()
    return chart, Valkey(chart, "valkey", sentinel=SentinelOptions(), primary_endpoint=options, **props)


def config(chart: cdk8s.Chart) -> str:
    return str(find(objects(chart), "ConfigMap", "valkey-endpoint")["data"]["haproxy.cfg"])


def pod_spec(chart: cdk8s.Chart) -> dict[str, Any]:
    return dict(find(objects(chart), "Deployment", "valkey-endpoint")["spec"]["template"]["spec"])


# -- snapshot and what the defaults render ---------------------------------------------------------


def test_defaults_snapshot(yaml_snapshot: Any) -> None:
    chart, valkey = build()
    assert isinstance(valkey.primary_endpoint, PrimaryEndpoint)
    endpoint_objects = [o for o in objects(chart) if o["metadata"]["name"].startswith("valkey-endpoint")]
    assert [o["kind"] for o in endpoint_objects] == ["ConfigMap", "Deployment", "PodDisruptionBudget"]
    assert cdk8s.Yaml.stringify(*endpoint_objects) == yaml_snapshot


def test_client_service_selects_the_haproxy_pods() -> None:
    chart, _valkey = build()
    objs = objects(chart)
    service = find(objs, "Service", "valkey")
    deployment = find(objs, "Deployment", "valkey-endpoint")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"][0]["targetPort"] == "valkey"
    assert "valkey" in [p["name"] for p in pod_spec(chart)["containers"][0]["ports"]]
    assert "through HAProxy" in service["metadata"]["annotations"]["cdk8s-valkey/clients"]
    # The Valkey pods' selectors never pick the HAProxy pods (StatefulSet, headless and Sentinel Services).
    sts = find(objs, "StatefulSet")
    for selector in (
        sts["spec"]["selector"]["matchLabels"],
        find(objs, "Service", "valkey-sentinel")["spec"]["selector"],
    ):
        assert not all(labels.get(k) == v for k, v in selector.items()), selector


def test_hardened_pod_without_serviceaccount_token() -> None:
    chart, _ = build()
    spec = pod_spec(chart)
    (ctr,) = spec["containers"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {
        "runAsUser": 99,
        "runAsGroup": 99,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert ctr["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert ctr["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}}
    assert ctr["image"] == "haproxy:3.2.4"
    assert "env" not in ctr  # no AUTH: nothing to read
    assert not [o for o in objects(chart) if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")]


def test_config_routes_on_role_and_a_quorum_of_sentinels() -> None:
    chart, _ = build()
    text = config(chart)
    for i in range(3):
        host = f"valkey-{i}.valkey-headless.apps.svc"
        rule = f"{{ srv_is_up(primary/node{i}) }} {{ nbsrv(sentinels-name-node{i}) ge 2 }}"
        assert f"    use-server node{i} if {rule}\n" in text
        assert f"    server node{i} {host}.cluster.local:6379 weight 0 track node{i}-is-primary/valkey " in text
        assert f"    tcp-check expect min-recv {len(host) + 2} string {host}\\r\\n\n" in text
        # Its own check: role:master, then its own pod's Sentinel (the same address, port 26379).
        own = text.split(f"backend node{i}-is-primary\n")[1].split("\n\n")[0]
        assert "string role:master" in own and "tcp-check connect port 26379" in own
        assert own.endswith(f"    server valkey {host}.cluster.local:6379 " + own.rsplit(":6379 ", 1)[1])
        assert f"    server sentinel{i} {host}.cluster.local:26379 " in text
    assert "tcp-check send SENTINEL\\ get-master-addr-by-name\\ valkey\\r\\n" in text
    assert "string role:master" in text
    assert "send-lf" not in text and "VALKEY_PASSWORD" not in text


def test_options() -> None:
    chart, _valkey = build(
        PrimaryEndpointOptions(
            replicas=1,
            image="haproxy:2.6.12",
            max_connections=500,
            memory_limit=cdk8s.Size.mebibytes(64),
            cluster_domain="k8s.example",
        )
    )
    objs = objects(chart)
    assert find(objs, "Deployment", "valkey-endpoint")["spec"]["replicas"] == 1
    assert not [o for o in objs if o["kind"] == "PodDisruptionBudget"]  # one pod: a budget would block drains
    (ctr,) = pod_spec(chart)["containers"]
    assert ctr["image"] == "haproxy:2.6.12"
    assert ctr["resources"]["limits"]["memory"] == "64Mi"
    text = config(chart)
    assert "    maxconn 500\n" in text
    assert "valkey-0.valkey-headless.apps.svc.k8s.example:6379" in text


def test_quorum_follows_the_sentinels() -> None:
    chart = new_chart()
    Valkey(chart, "valkey", sentinel=SentinelOptions(replicas=4))
    text = config(chart)
    assert "nbsrv(sentinels-name-node4) ge 3" in text
    assert text.count("    server sentinel") == 5 * 5


def test_switched_off() -> None:
    chart, valkey = build(False)
    objs = objects(chart)
    assert valkey.primary_endpoint is None
    assert not [o for o in objs if o["metadata"]["name"].startswith("valkey-endpoint")]
    assert "selector" not in find(objs, "Service", "valkey")["spec"]


def test_single_replica_renders_no_endpoint() -> None:
    chart = new_chart()
    assert Valkey(chart, "valkey").primary_endpoint is None
    assert not [o for o in objects(chart) if o["kind"] == "Deployment"]


def test_network_policies() -> None:
    api = k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels={"app": "api"}))
    chart, valkey = build(network_policy=True, allowed_clients=[api])
    objs = objects(chart)
    own = find(objs, "NetworkPolicy", "valkey-endpoint")["spec"]
    assert own["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "valkey-endpoint"
    assert own["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 6379, "protocol": "TCP"}]}
    ]
    to_valkey, dns = own["egress"]
    assert to_valkey["to"] == [{"podSelector": {"matchLabels": valkey.server.match_labels}}]
    assert [p["port"] for p in to_valkey["ports"]] == [6379, 26379]
    assert [p["port"] for p in dns["ports"]] == [53, 53]
    into_valkey = find(objs, "NetworkPolicy", "valkey-endpoint-ingress")["spec"]
    assert into_valkey["podSelector"] == {"matchLabels": valkey.server.match_labels}
    assert into_valkey["ingress"][0]["from"] == [{"podSelector": {"matchLabels": own["podSelector"]["matchLabels"]}}]
    assert [p["port"] for p in into_valkey["ingress"][0]["ports"]] == [6379, 26379]
    for obj in objs:
        if obj["kind"] == "NetworkPolicy":
            kubernetes_validate.validate(obj, "1.28", strict=True)


def test_objects_validate_strictly() -> None:
    chart, _ = build(network_policy=True)
    for obj in objects(chart):
        if obj["metadata"]["name"].startswith("valkey-endpoint") or obj["kind"] == "Service":
            kubernetes_validate.validate(obj, "1.28", strict=True)


def test_config_checksum_rolls_the_pods() -> None:
    one = build()[0]
    two = build(PrimaryEndpointOptions(max_connections=100))[0]
    digest = [pod_spec_annotations(c)["checksum/config"] for c in (one, two)]
    assert digest[0] != digest[1]


def pod_spec_annotations(chart: cdk8s.Chart) -> dict[str, str]:
    return dict(find(objects(chart), "Deployment", "valkey-endpoint")["spec"]["template"]["metadata"]["annotations"])


# -- validation: one test per rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"replicas": 0}, "replicas: 0 is not allowed; use a whole number from 1 to 10"),
        ({"replicas": True}, "replicas: True is not allowed; use a whole number from 1 to 10"),
        ({"max_connections": 0}, "max_connections: 0 is not allowed; use a whole number from 1 to 100000"),
        ({"image": "haproxy:3.2"}, "image: 'haproxy:3.2' uses the moving tag '3.2'"),
        ({"image": "haproxy"}, "image: 'haproxy' has no tag"),
        (
            {"memory_limit": cdk8s.Size.mebibytes(16)},
            "memory_limit: 16Mi is too small to run HAProxy; use at least 32Mi",
        ),
        ({"cluster_domain": "Not A Domain"}, "cluster_domain: 'Not A Domain'"),
    ],
)
def test_options_are_validated(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        PrimaryEndpointOptions(**options)


def test_refused_without_sentinel() -> None:
    with pytest.raises(ValueError, match=r"^primary_endpoint: it follows the primary of a Sentinel topology"):
        Valkey(new_chart(), "valkey", primary_endpoint=PrimaryEndpointOptions())


def test_refused_when_not_options() -> None:
    with pytest.raises(ValueError, match=r"^primary_endpoint: "):
        Valkey(new_chart(), "valkey", sentinel=SentinelOptions(), primary_endpoint="yes")  # type: ignore[arg-type]


# -- the rendered configuration, checked by the real haproxy ------------------------------------------


@pytest.mark.real
@pytest.mark.parametrize("auth", [False, True])
def test_haproxy_accepts_the_rendered_config(tmp_path: Path, auth: bool) -> None:
    haproxy = require_binary("haproxy")
    hosts = tuple(f"valkey-{i}.valkey-headless.apps.svc" for i in range(3))
    text = render_config(
        master_name="valkey",
        announced_hosts=hosts,
        node_hosts=tuple(f"{h}.cluster.local" for h in hosts),
        valkey_port=6379,
        sentinel_port=26379,
        quorum=2,
        auth=auth,
        max_connections=2000,
    )
    path = tmp_path / "haproxy.cfg"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr
    # Only the names that do not resolve on this machine are warned about.
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "[WARNING]" in line]
    assert all("could not resolve address" in line for line in warnings), warnings


# -- AUTH: the checks authenticate for real, the password read from the environment ------------------

PASSWORD = 's3cret with spaces, "quotes" and $dollars'


def _routes_within(endpoint: Any, seconds: float) -> bool:
    from bench.endpoint import routes

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if routes(endpoint, PASSWORD):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.real
@pytest.mark.parametrize("sentinel_password", [False, True], ids=["sentinel-open", "sentinel-requirepass"])
def test_auth_checks_route_with_the_password_from_the_environment(tmp_path: Path, sentinel_password: bool) -> None:
    from bench.endpoint import loopback_endpoint

    require_binary("haproxy")
    with loopback_endpoint(tmp_path, password=PASSWORD, sentinel_password=sentinel_password) as endpoint:
        assert _routes_within(endpoint, 15), endpoint.haproxy_log.read_text()
    config_text = (tmp_path / "haproxy.cfg").read_text()
    assert "%[env(VALKEY_PASSWORD)]" in config_text
    assert PASSWORD not in config_text and "s3cret" not in config_text


@pytest.mark.real
def test_auth_checks_with_a_wrong_password_route_nowhere(tmp_path: Path) -> None:
    from bench.endpoint import loopback_endpoint

    require_binary("haproxy")
    with loopback_endpoint(tmp_path, password=PASSWORD, haproxy_password="wrong") as endpoint:
        # Checks run every 500 ms while down: 5 s is ten chances to be wrongly let through.
        assert not _routes_within(endpoint, 5)
        assert (
            "primary/node0 is DOWN" in endpoint.haproxy_log.read_text()
            or "WRONGPASS" in endpoint.haproxy_log.read_text()
        )
