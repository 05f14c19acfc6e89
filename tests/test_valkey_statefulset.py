"""ValkeyStatefulSet: snapshots of the defaults and of meaningful prop combinations,
an assert on the field each combination is about, and one test per validation rule."""

from __future__ import annotations

import re
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
import kubernetes_validate
import pytest
import yaml
from cdk8s_plus_28 import k8s

from cdk8s_valkey import ExporterSidecar, PodOptions, Sentinel, Topology, ValkeyStatefulSet
from harness.synth import container, find, new_chart, objects, to_yaml

EXPECTED_KINDS = ["ConfigMap", "ConfigMap", "Service", "Service", "PersistentVolumeClaim", "StatefulSet"]


def _conf(objs: list[dict[str, Any]]) -> str:
    return str(find(objs, "ConfigMap", "valkey-config")["data"]["valkey.conf"])


def _directives(conf: str) -> dict[str, str]:
    pairs = (line.split(" ", 1) for line in conf.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


# -- snapshots -------------------------------------------------------------------------


def test_defaults_snapshot(yaml_snapshot: Any) -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey")
    objs = objects(chart)
    assert [o["kind"] for o in objs] == EXPECTED_KINDS
    assert to_yaml(chart) == yaml_snapshot


def test_large_instance_snapshot(yaml_snapshot: Any) -> None:
    """A bigger instance with a digest-pinned image and extra directives."""
    chart = new_chart()
    ValkeyStatefulSet(
        chart,
        "queues",
        image="valkey/valkey:8.1.11@sha256:" + "a" * 64,
        memory_limit=cdk8s.Size.gibibytes(4),
        maxmemory_ratio=0.75,
        storage_size=cdk8s.Size.gibibytes(20),
        storage_class="longhorn-ssd",
        startup_budget=cdk8s.Duration.minutes(15),
        cpu_request=kplus.Cpu.millis(500),
        extra_config={"maxclients": "2000", "save": "3600 1"},
    )
    objs = objects(chart)
    valkey = container(objs)
    assert valkey["resources"]["limits"]["memory"] == "4Gi"
    assert valkey["startupProbe"]["failureThreshold"] * valkey["startupProbe"]["periodSeconds"] == 900
    assert to_yaml(chart) == yaml_snapshot


def test_no_namespace_snapshot(yaml_snapshot: Any) -> None:
    """Inside a chart without a namespace: objects land in the namespace kubectl uses."""
    chart = new_chart(namespace=None)
    ValkeyStatefulSet(chart, "sessions", memory_limit=cdk8s.Size.mebibytes(256))
    objs = objects(chart)
    assert all("namespace" not in o["metadata"] for o in objs)
    assert to_yaml(chart) == yaml_snapshot


# -- what each object must say ---------------------------------------------------------


def test_names_are_stable_and_readable() -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey")
    names = sorted(o["metadata"]["name"] for o in objects(chart))
    assert names == ["data-valkey-0", "valkey", "valkey", "valkey-config", "valkey-headless", "valkey-scripts"]


def test_name_defaults_to_id_and_can_be_set() -> None:
    chart = new_chart()
    cache = ValkeyStatefulSet(chart, "Cache", name="sessions")
    assert cache.name == "sessions"
    assert find(objects(chart), "StatefulSet")["metadata"]["name"] == "sessions"


def test_statefulset_shape() -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey")
    sts = find(objects(chart), "StatefulSet")
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] == "valkey-headless"
    # The claim is its own object (it can grow; templates are frozen), mounted by name.
    assert "volumeClaimTemplates" not in spec
    assert "persistentVolumeClaimRetentionPolicy" not in spec
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "data-valkey-0"}}
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "valkey",
        "app.kubernetes.io/instance": "valkey",
    }
    mounts = {m["mountPath"]: m for m in container(objects(chart))["volumeMounts"]}
    assert mounts["/data"]["name"] == "data"
    assert mounts["/etc/valkey"]["readOnly"] is True


def test_image_is_pinned_and_pulled_only_when_missing() -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey")
    valkey = container(objects(chart))
    assert valkey["image"] == "valkey/valkey:8.1.11"
    assert valkey["imagePullPolicy"] == "IfNotPresent"


def test_services() -> None:
    chart = new_chart()
    cache = ValkeyStatefulSet(chart, "valkey")
    objs = objects(chart)
    headless = find(objs, "Service", "valkey-headless")
    client = find(objs, "Service", "valkey")
    assert headless["spec"]["clusterIP"] == "None"
    assert client["spec"]["ports"] == [{"name": "valkey", "port": 6379, "protocol": "TCP", "targetPort": "valkey"}]
    assert client["spec"]["selector"] == cache.match_labels == headless["spec"]["selector"]
    assert cache.url == "redis://valkey.apps.svc:6379"


def test_config_carries_the_guardrails() -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey")
    directives = _directives(_conf(objects(chart)))
    assert directives["appendonly"] == "yes"
    assert directives["appendfsync"] == "everysec"
    assert directives["aof-use-rdb-preamble"] == "yes"
    assert directives["maxmemory-policy"] == "noeviction"
    assert directives["dir"] == "/data"
    assert directives["protected-mode"] == "no"
    assert "maxmemory" not in directives  # the entrypoint sets it from the cgroup


def test_entrypoint_env_carries_ratio_and_fallback() -> None:
    chart = new_chart()
    ValkeyStatefulSet(
        chart,
        "valkey",
        memory_limit=cdk8s.Size.gibibytes(2),
        storage_size=cdk8s.Size.gibibytes(6),
        maxmemory_ratio=0.7,
    )
    env = {e["name"]: e["value"] for e in container(objects(chart))["env"]}
    assert env["VALKEY_MAXMEMORY_PERCENT"] == "70"
    assert env["VALKEY_MAXMEMORY_FALLBACK_BYTES"] == str(2 * 1024**3 * 70 // 100)


def test_explicit_fallback() -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey", maxmemory_fallback=cdk8s.Size.mebibytes(300))
    env = {e["name"]: e["value"] for e in container(objects(chart))["env"]}
    assert env["VALKEY_MAXMEMORY_FALLBACK_BYTES"] == str(300 * 1024**2)


def test_probes() -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey", startup_budget=cdk8s.Duration.minutes(2))
    valkey = container(objects(chart))
    assert valkey["readinessProbe"]["exec"]["command"] == ["sh", "/scripts/probe.sh", "ready"]
    assert valkey["livenessProbe"]["exec"]["command"] == ["sh", "/scripts/probe.sh", "alive"]
    assert valkey["startupProbe"]["exec"]["command"] == ["sh", "/scripts/probe.sh", "ready"]
    assert valkey["startupProbe"]["periodSeconds"] * valkey["startupProbe"]["failureThreshold"] == 120
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert 0 < valkey[kind]["timeoutSeconds"] < valkey[kind]["periodSeconds"]


def test_pod_is_hardened() -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey")
    pod = find(objects(chart), "StatefulSet")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert pod["securityContext"] == {
        "fsGroup": 999,
        "fsGroupChangePolicy": "OnRootMismatch",
        "runAsGroup": 999,
        "runAsNonRoot": True,
        "runAsUser": 999,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    valkey = pod["containers"][0]
    assert valkey["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert valkey["resources"]["requests"]["memory"] == valkey["resources"]["limits"]["memory"] == "512Mi"
    assert "cpu" not in valkey["resources"]["limits"]


def test_scripts_are_embedded_verbatim() -> None:
    from importlib import resources

    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey")
    data = find(objects(chart), "ConfigMap", "valkey-scripts")["data"]
    scripts = resources.files("cdk8s_valkey").joinpath("scripts")
    for name in ("entrypoint.sh", "probe.sh"):
        assert data[name] == scripts.joinpath(name).read_text()


def _checksum(**props: Any) -> str:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey", **props)
    sts = find(objects(chart), "StatefulSet")
    return str(sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def test_checksum_rolls_the_pod_when_config_changes() -> None:
    base = _checksum()
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert _checksum() == base
    assert _checksum(extra_config={"maxclients": "500"}) != base


def test_extra_config_appends_and_replaces_tunables() -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey", extra_config={"maxclients": "2000", "save": "900 1"})
    conf = _conf(objects(chart))
    assert conf.count("\nsave ") == 1
    assert _directives(conf)["save"] == "900 1"
    assert _directives(conf)["maxclients"] == "2000"


def test_add_container_and_volume_refuse_duplicates() -> None:
    chart = new_chart()
    cache = ValkeyStatefulSet(chart, "valkey")
    cache.add_container(k8s.Container(name="helper", image="busybox:1.36.1"))
    cache.add_volume(k8s.Volume(name="scratch", empty_dir=k8s.EmptyDirVolumeSource()))
    pod = find(objects(chart), "StatefulSet")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["valkey", "helper"]
    assert [v["name"] for v in pod["volumes"]][-1] == "scratch"
    with pytest.raises(ValueError, match="container name 'helper' is already used in the valkey pod"):
        cache.add_container(k8s.Container(name="helper", image="busybox:1.36.1"))
    with pytest.raises(ValueError, match="volume name 'data' is already used in the valkey pod"):
        cache.add_volume(k8s.Volume(name="data", empty_dir=k8s.EmptyDirVolumeSource()))


def test_typed_sidecars_render_as_in_a_typed_pod_spec() -> None:
    """The pod template is plain JSON; typed sidecars are converted by cdk8s-plus' own
    serializer, quantities and int-or-string ports included."""
    chart = new_chart()
    cache = ValkeyStatefulSet(chart, "valkey")
    cache.add_container(
        k8s.Container(
            name="helper",
            image="busybox:1.36.1",
            resources=k8s.ResourceRequirements(limits={"memory": k8s.Quantity.from_string("32Mi")}),
            liveness_probe=k8s.Probe(http_get=k8s.HttpGetAction(path="/", port=k8s.IntOrString.from_number(8080))),
        )
    )
    cache.add_volume(
        k8s.Volume(name="scratch", empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("1Gi")))
    )
    objs = objects(chart)
    assert container(objs, "helper") == {
        "image": "busybox:1.36.1",
        "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
        "name": "helper",
        "resources": {"limits": {"memory": "32Mi"}},
    }
    volumes = find(objs, "StatefulSet")["spec"]["template"]["spec"]["volumes"]
    assert volumes[-1] == {"emptyDir": {"sizeLimit": "1Gi"}, "name": "scratch"}


def test_match_labels_is_a_copy() -> None:
    cache = ValkeyStatefulSet(new_chart(), "valkey")
    cache.match_labels["app.kubernetes.io/name"] = "changed"
    assert cache.match_labels["app.kubernetes.io/name"] == "valkey"


# -- validation: one exact message per rule --------------------------------------------

BAD_PROPS = [
    pytest.param(
        {"maxmemory_ratio": 1.0},
        "maxmemory_ratio: 1.0 is not allowed; use a whole percentage strictly between 0 and 1, "
        "from 0.01 to 0.99 (for example 0.8)",
        id="ratio-one",
    ),
    pytest.param(
        {"maxmemory_ratio": 0.0},
        "maxmemory_ratio: 0.0 is not allowed; use a whole percentage strictly between 0 and 1, "
        "from 0.01 to 0.99 (for example 0.8)",
        id="ratio-zero",
    ),
    pytest.param(
        {"maxmemory_ratio": 0.825},
        "maxmemory_ratio: 0.825 is not allowed; use a whole percentage strictly between 0 and 1, "
        "from 0.01 to 0.99 (for example 0.8)",
        id="ratio-fraction-of-percent",
    ),
    pytest.param(
        {"image": "valkey/valkey"},
        "image: 'valkey/valkey' has no tag, so every pull may get another version; pin an exact "
        "version tag such as 'valkey/valkey:8.1.11', optionally with '@sha256:<digest>'",
        id="image-untagged",
    ),
    pytest.param(
        {"image": "valkey/valkey:latest"},
        "image: 'valkey/valkey:latest' uses the moving tag 'latest'; pin an exact version tag such as "
        "'valkey/valkey:8.1.11', optionally with '@sha256:<digest>'",
        id="image-latest",
    ),
    pytest.param(
        {"image": "registry.local:5000/valkey/valkey:8.1"},
        "image: 'registry.local:5000/valkey/valkey:8.1' uses the moving tag '8.1'; pin an exact version "
        "tag such as 'valkey/valkey:8.1.11', optionally with '@sha256:<digest>'",
        id="image-moving-minor",
    ),
    pytest.param(
        {"image": "valkey/valkey:8.1.11@sha256:abc"},
        "image: 'valkey/valkey:8.1.11@sha256:abc' has a malformed digest 'sha256:abc'; pin an exact "
        "version tag such as 'valkey/valkey:8.1.11', optionally with '@sha256:<digest>'",
        id="image-bad-digest",
    ),
    pytest.param(
        {"memory_limit": cdk8s.Size.mebibytes(32)},
        "memory_limit: 32Mi is too small to run Valkey; use at least 64Mi",
        id="memory-too-small",
    ),
    pytest.param(
        {"memory_limit": cdk8s.Size.gibibytes(4), "storage_size": cdk8s.Size.gibibytes(10)},
        "storage_size: 10Gi cannot hold the AOF and its rewrite side by side for memory_limit 4Gi; "
        "use at least 12Gi (3 x memory_limit), or leave storage_size out for that; on a live install the "
        "claim can grow but never shrink",
        id="storage-too-small",
    ),
    pytest.param(
        {"storage_class": "Longhorn_SSD"},
        "storage_class: 'Longhorn_SSD' is not a valid Kubernetes name; use at most 253 lower-case letters, "
        "digits, '-' and '.', starting and ending with a letter or digit",
        id="storage-class-invalid",
    ),
    pytest.param(
        {"name": "Valkey"},
        "name: 'Valkey' is not a valid name; use at most 52 lower-case letters, digits and '-', "
        "starting with a letter and ending with a letter or digit",
        id="name-uppercase",
    ),
    pytest.param(
        {"name": "v" * 53},
        f"name: '{'v' * 53}' is not a valid name; use at most 52 lower-case letters, digits and '-', "
        "starting with a letter and ending with a letter or digit",
        id="name-too-long",
    ),
    pytest.param(
        {"maxmemory_fallback": cdk8s.Size.gibibytes(1)},
        "maxmemory_fallback: 1Gi must be at least 16Mi and below memory_limit (512Mi)",
        id="fallback-above-limit",
    ),
    pytest.param(
        {"startup_budget": cdk8s.Duration.seconds(5)},
        "startup_budget: 5s leaves no time to load the AOF; use at least 10s",
        id="startup-budget-too-short",
    ),
    pytest.param(
        {"extra_config": {"maxmemory-policy": "allkeys-lru"}},
        "extra_config: 'maxmemory-policy' is set by ValkeyStatefulSet to keep noeviction, which BullMQ "
        "requires (ADR 0005); remove it from extra_config (any other directive is allowed)",
        id="extra-config-guardrail",
    ),
    pytest.param(
        {"extra_config": {"appendfsync": "always"}},
        "extra_config: 'appendfsync' is set by ValkeyStatefulSet to keep the 1 s durability window "
        "(ADR 0005); remove it from extra_config (any other directive is allowed)",
        id="extra-config-appendfsync",
    ),
    pytest.param(
        {"extra_config": {"Max Clients": "10"}},
        "extra_config: 'Max Clients' is not a valkey.conf directive name; use lower-case letters, digits "
        "and '-' (for example 'maxclients')",
        id="extra-config-bad-key",
    ),
    pytest.param(
        {"extra_config": {"maxclients": "10\nrequirepass x"}},
        "extra_config: 'maxclients' has value '10\\nrequirepass x'; use a single non-empty line",
        id="extra-config-injection",
    ),
]


@pytest.mark.parametrize(("props", "message"), BAD_PROPS)
def test_bad_props_raise_at_synth_time(props: dict[str, Any], message: str) -> None:
    chart = new_chart()
    with pytest.raises(ValueError) as excinfo:
        ValkeyStatefulSet(chart, "valkey", **props)
    assert str(excinfo.value) == message
    (construct,) = chart.node.children
    assert construct.node.children == [], "validation must run before any child is defined"


# -- the data claim (day 2: it grows, it is never pruned) ------------------------------


def test_claim_is_a_protected_object_with_the_0_1_claim_name() -> None:
    chart = new_chart()
    cache = ValkeyStatefulSet(chart, "valkey")
    claim = find(objects(chart), "PersistentVolumeClaim")
    # StatefulSets name template claims <template>-<statefulset>-<ordinal>: installs of 0.1 keep theirs.
    assert claim["metadata"]["name"] == cache.claim_name == "data-valkey-0"
    assert claim["metadata"]["annotations"] == {
        "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
        "kustomize.toolkit.fluxcd.io/prune": "disabled",
    }
    assert "app.kubernetes.io/version" not in claim["metadata"]["labels"], "an image bump must not touch the claim"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "longhorn",
    }


@pytest.mark.parametrize(
    ("memory", "storage"),
    [
        (cdk8s.Size.mebibytes(512), "5Gi"),
        (cdk8s.Size.gibibytes(2), "6Gi"),
        (cdk8s.Size.gibibytes(4), "12Gi"),
        (cdk8s.Size.mebibytes(2560), "8Gi"),
    ],
)
def test_storage_default_follows_the_memory_limit(memory: cdk8s.Size, storage: str) -> None:
    chart = new_chart()
    ValkeyStatefulSet(chart, "valkey", memory_limit=memory)
    assert find(objects(chart), "PersistentVolumeClaim")["spec"]["resources"]["requests"]["storage"] == storage


def test_claim_grows_in_place_when_storage_size_grows() -> None:
    """2Gi -> 4Gi memory with storage 6Gi -> 12Gi changes only the claim's request and the pod."""
    before, after = new_chart(), new_chart()
    ValkeyStatefulSet(before, "valkey", memory_limit=cdk8s.Size.gibibytes(2), storage_size=cdk8s.Size.gibibytes(6))
    ValkeyStatefulSet(after, "valkey", memory_limit=cdk8s.Size.gibibytes(4), storage_size=cdk8s.Size.gibibytes(12))
    old, new = find(objects(before), "PersistentVolumeClaim"), find(objects(after), "PersistentVolumeClaim")
    assert old["metadata"] == new["metadata"]
    assert new["spec"]["resources"]["requests"]["storage"] == "12Gi"
    assert {k: v for k, v in old["spec"].items() if k != "resources"} == {
        k: v for k, v in new["spec"].items() if k != "resources"
    }


# -- wiring points -----------------------------------------------------------------------


def test_host_and_port_for_clients_that_take_them_apart() -> None:
    chart = new_chart()
    cache = ValkeyStatefulSet(chart, "sessions")
    assert (cache.host, cache.port) == ("sessions.apps.svc", 6379)
    assert cache.url == f"redis://{cache.host}:{cache.port}"


# -- placement and metadata --------------------------------------------------------------


def test_pod_options_render_into_the_pod_template(yaml_snapshot: Any) -> None:
    chart = new_chart()
    ValkeyStatefulSet(
        chart,
        "valkey",
        pod=PodOptions(
            node_selector={"node-role.example.com/data": "true"},
            tolerations=[k8s.Toleration(key="dedicated", operator="Equal", value="data", effect="NoSchedule")],
            affinity=k8s.Affinity(
                node_affinity=k8s.NodeAffinity(
                    required_during_scheduling_ignored_during_execution=k8s.NodeSelector(
                        node_selector_terms=[
                            k8s.NodeSelectorTerm(
                                match_expressions=[
                                    k8s.NodeSelectorRequirement(
                                        key="topology.kubernetes.io/zone", operator="In", values=["fsn1"]
                                    )
                                ]
                            )
                        ]
                    )
                )
            ),
            priority_class_name="data-critical",
            labels={"team": "platform"},
            annotations={"sidecar.istio.io/inject": "false"},
            image_pull_secrets=["registry-mirror"],
        ),
        service_annotations={"service.kubernetes.io/topology-mode": "Auto"},
    )
    objs = objects(chart)
    template = find(objs, "StatefulSet")["spec"]["template"]
    spec = template["spec"]
    assert spec["nodeSelector"] == {"node-role.example.com/data": "true"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert spec["priorityClassName"] == "data-critical"
    assert spec["imagePullSecrets"] == [{"name": "registry-mirror"}]
    assert template["metadata"]["labels"]["team"] == "platform"
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert "checksum/config" in template["metadata"]["annotations"]
    selector = find(objs, "StatefulSet")["spec"]["selector"]["matchLabels"]
    assert "team" not in selector, "extra pod labels must stay out of the (immutable) selector"
    assert find(objs, "Service", "valkey")["metadata"]["annotations"] == {"service.kubernetes.io/topology-mode": "Auto"}
    assert "annotations" not in find(objs, "Service", "valkey-headless")["metadata"]
    for obj in objs:
        kubernetes_validate.validate(obj, "1.28", strict=True)
    assert to_yaml(chart) == yaml_snapshot


BAD_POD_OPTIONS = [
    pytest.param(
        {"labels": {"app.kubernetes.io/name": "x"}},
        "PodOptions.labels: 'app.kubernetes.io/name' is set by the library (selectors depend on it); use a key "
        "outside the app.kubernetes.io/ prefix",
        id="reserved-label",
    ),
    pytest.param(
        {"annotations": {"checksum/config": "x"}},
        "PodOptions.annotations: 'checksum/config' is set by the library to mark config changes; use another key",
        id="reserved-annotation",
    ),
    pytest.param(
        {"annotations": {"prometheus.io/scrape": True}},
        "PodOptions.annotations: 'prometheus.io/scrape' has value True; use a string (quote numbers and booleans)",
        id="annotation-not-string",
    ),
    pytest.param(
        {"image_pull_secrets": "mirror"},
        "PodOptions.image_pull_secrets: 'mirror' is a single string; pass a list of Secret names such as ['mirror']",
        id="pull-secrets-string",
    ),
    pytest.param(
        {"priority_class_name": "High"},
        "PodOptions.priority_class_name: 'High' is not a valid Kubernetes name; use at most 253 lower-case "
        "letters, digits, '-' and '.', starting and ending with a letter or digit",
        id="priority-class",
    ),
    pytest.param(
        {"tolerations": [{"key": "dedicated"}]},
        "PodOptions.tolerations[0]: {'key': 'dedicated'} is a dict; pass a k8s.Toleration(...)",
        id="toleration-dict",
    ),
    pytest.param(
        {"node_selector": {"disk": "fast ssd"}},
        "PodOptions.node_selector: label 'disk' has value 'fast ssd'; use at most 63 letters, digits, '-', '_' "
        "and '.', starting and ending with a letter or digit",
        id="node-selector-value",
    ),
]


@pytest.mark.parametrize(("props", "message"), BAD_POD_OPTIONS)
def test_bad_pod_options_raise(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        PodOptions(**props)
    assert str(excinfo.value) == message


WRONG_TYPES = [
    pytest.param(
        {"memory_limit": "2Gi"},
        "memory_limit: '2Gi' is a str; pass a cdk8s.Size such as cdk8s.Size.gibibytes(2)",
        id="memory-str",
    ),
    pytest.param(
        {"storage_size": "10Gi"},
        "storage_size: '10Gi' is a str; pass a cdk8s.Size such as cdk8s.Size.gibibytes(2)",
        id="storage-str",
    ),
    pytest.param(
        {"startup_budget": "5m"},
        "startup_budget: '5m' is a str; pass a cdk8s.Duration such as cdk8s.Duration.minutes(5)",
        id="budget-str",
    ),
    pytest.param(
        {"cpu_request": "100m"},
        "cpu_request: '100m' is a str; pass a kplus.Cpu (import cdk8s_plus_28 as kplus) such as kplus.Cpu.millis(100)",
        id="cpu-str",
    ),
    pytest.param(
        {"service_annotations": {"a": 1}},
        "service_annotations: 'a' has value 1; use a string (quote numbers and booleans)",
        id="service-annotation-int",
    ),
    pytest.param(
        {"pod": {"node_selector": {}}},
        "pod: {'node_selector': {}} is a dict; pass a PodOptions(...)",
        id="pod-dict",
    ),
]


@pytest.mark.parametrize(("props", "message"), WRONG_TYPES)
def test_wrong_types_name_the_prop_and_the_fix(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        ValkeyStatefulSet(new_chart(), "valkey", **props)
    assert str(excinfo.value) == message


def test_a_pascal_case_id_says_the_name_came_from_the_id() -> None:
    with pytest.raises(ValueError) as excinfo:
        ValkeyStatefulSet(new_chart(), "SessionCache")
    assert str(excinfo.value) == (
        "name: not given, so it comes from the construct id 'SessionCache', which is not a valid Kubernetes "
        "name (name: 'SessionCache' is not a valid name; use at most 52 lower-case letters, digits and '-', "
        "starting with a letter and ending with a letter or digit); pass name='session-cache' or use a "
        "lower-case id"
    )


# -- the pod model: one owner, canonical order ------------------------------------------------------


def _build_in_order(order: tuple[str, ...]) -> list[str]:
    """The same app, its parts created in ``order``: each object's YAML, by kind and name (cdk8s
    writes a chart's objects in creation order, which is the only thing allowed to differ)."""
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey", network_policy=True)
    exporter: list[ExporterSidecar] = []
    steps = {
        "exporter": lambda: exporter.append(ExporterSidecar(chart, "metrics", valkey=valkey)),
        "sidecar": lambda: valkey.add_container(k8s.Container(name="helper", image="busybox:1.36.1")),
        "volume": lambda: valkey.add_volume(k8s.Volume(name="scratch", empty_dir=k8s.EmptyDirVolumeSource())),
        "annotation": lambda: valkey.add_pod_annotation("example.com/owner", "team-a"),
        "env": lambda: valkey.add_env("EXTRA", value="1"),
        "sentinel": lambda: Sentinel(chart, "sentinel", valkey=valkey, exporter=exporter[0]),
    }
    for step in order:
        steps[step]()
    docs = sorted(objects(chart), key=lambda o: (o["kind"], o["metadata"]["name"]))
    return [str(cdk8s.Yaml.stringify(doc)) for doc in docs]


def test_same_app_in_any_order_renders_the_same_yaml() -> None:
    """No construct edits another's rendered JSON: each contributes to the pod model, which
    renders once at synth in a declared order. Creating the parts in another order (the Sentinel
    needs its exporter first) gives the same objects, byte for byte."""
    orders = [
        ("exporter", "sidecar", "volume", "annotation", "env", "sentinel"),
        ("sidecar", "env", "exporter", "sentinel", "volume", "annotation"),
        ("annotation", "volume", "sidecar", "exporter", "env", "sentinel"),
        ("env", "exporter", "sentinel", "annotation", "sidecar", "volume"),
    ]
    first = _build_in_order(orders[0])
    for order in orders[1:]:
        assert _build_in_order(order) == first, order
    sts = yaml.safe_load(next(doc for doc in first if doc.startswith("apiVersion: apps/v1")))
    pod = sts["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["valkey", "exporter", "sentinel", "sentinel-exporter", "helper"]
    assert [v["name"] for v in pod["volumes"]] == ["config", "scripts", "sentinel", "scratch"]
    env = [var["name"] for var in pod["containers"][0]["env"]]
    assert env.index("VALKEY_SENTINEL_WAIT_SECONDS") < env.index("EXTRA")


def test_pod_model_renders_the_valkey_container_once_with_every_contribution() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    valkey.wrap_command("env", order=2000)
    valkey.wrap_command("nice", order=1500)
    valkey.add_args("--maxclients", "100")
    valkey.wrap_probe("readiness", "timeout", "2")
    valkey.set_pre_stop("sleep", "1")
    with pytest.raises(ValueError, match="already has a preStop hook"):
        valkey.set_pre_stop("sleep", "2")
    with pytest.raises(ValueError, match="container 'nope': the valkey pod has no such container"):
        valkey.pod_model.add_args("nope", "x", order=0)
    with pytest.raises(ValueError, match="annotation 'checksum/config' is already set on the valkey pod"):
        valkey.add_pod_annotation("checksum/config", "x")
    ctr = container(objects(chart))
    assert ctr["command"] == ["nice", "env", "sh", "/scripts/entrypoint.sh"]
    assert ctr["args"] == ["--maxclients", "100"]
    assert ctr["readinessProbe"]["exec"]["command"] == ["timeout", "2", "sh", "/scripts/probe.sh", "ready"]
    assert ctr["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "1"]}}}


def test_client_service_can_be_pointed_at_other_pods() -> None:
    """A primary endpoint (HAProxy) takes over the client Service <name>: once, with a note."""
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    valkey.set_client_service_selector({"app": "valkey-endpoint"}, note="through HAProxy")
    service = find(objects(chart), "Service", "valkey")
    assert service["spec"]["selector"] == {"app": "valkey-endpoint"}
    assert service["metadata"]["annotations"] == {"cdk8s-valkey/clients": "through HAProxy"}
    with pytest.raises(ValueError, match="was already pointed elsewhere"):
        valkey.set_client_service_selector(None)


def test_claim_labels_reach_every_claim() -> None:
    chart = new_chart()
    valkey = ValkeyStatefulSet(chart, "valkey")
    valkey.set_topology(Topology.sentinel("valkey", 3))
    valkey.add_claim_labels({"example.com/backup": "hourly"})
    claims = [o for o in objects(chart) if o["kind"] == "PersistentVolumeClaim"]
    assert [c["metadata"]["name"] for c in claims] == ["data-valkey-0", "data-valkey-1", "data-valkey-2"]
    assert all(c["metadata"]["labels"]["example.com/backup"] == "hourly" for c in claims)


def test_set_replicas_of_0_2_warns_and_renders_as_set_topology() -> None:
    """0.2's hook stays for one minor release (CHANGELOG policy): same objects as set_topology."""
    old_chart, new_chart_ = new_chart(), new_chart()
    with pytest.warns(DeprecationWarning, match=r"set_topology\(Topology.sentinel\(valkey.name, replicas\)\)"):
        ValkeyStatefulSet(old_chart, "valkey").set_replicas(3)
    valkey = ValkeyStatefulSet(new_chart_, "valkey")
    valkey.set_topology(Topology.sentinel("valkey", 3))
    assert to_yaml(old_chart) == to_yaml(new_chart_)
