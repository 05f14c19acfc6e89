"""review/pod_template.py: every change under spec.template restarts the single replica; the
reasons name it in user terms, maxmemory computed as entrypoint.sh does."""

from __future__ import annotations

from typing import Any

import pytest

from cdk8s_valkey.review import Verdict
from cdk8s_valkey.review.pod_template import maxmemory
from harness.review import findings_for, pod_container, review_edit


def _valkey(sts: dict[str, Any]) -> dict[str, Any]:
    return pod_container(sts)


def _env(sts: dict[str, Any], name: str, value: str) -> None:
    (var,) = [v for v in _valkey(sts)["env"] if v["name"] == name]
    var["value"] = value


def reasons(edit: Any) -> list[str]:
    report = review_edit("StatefulSet", None, edit)
    found = findings_for(report, "StatefulSet")
    assert {f.verdict for f in found} == {Verdict.RESTARTS}
    return [f.reason for f in found]


@pytest.mark.parametrize(
    ("limit", "percent", "fallback", "expected"),
    [
        ("1Gi", "80", None, 858993459),  # the README's example, floor(1073741824 * 80 / 100)
        ("2Gi", "80", None, 1717986918),
        ("1536Mi", "75", None, 1207959552),
        (None, "80", "858993459", 858993459),  # no limit: the fallback
        ("1Gi", None, None, None),
    ],
)
def test_maxmemory_is_the_entrypoints(
    limit: str | None, percent: str | None, fallback: str | None, expected: int | None
) -> None:
    assert maxmemory(limit, percent, fallback) == expected


def test_memory_limit_names_the_new_maxmemory() -> None:
    def grow(sts: dict[str, Any]) -> None:
        resources = _valkey(sts)["resources"]
        resources["limits"]["memory"] = resources["requests"]["memory"] = "2Gi"

    assert reasons(grow) == [
        "container `valkey`: memory limit and request 1Gi -> 2Gi: maxmemory 858993459 -> 1717986918 bytes"
    ]


def test_maxmemory_percent_alone() -> None:
    assert reasons(lambda s: _env(s, "VALKEY_MAXMEMORY_PERCENT", "70")) == [
        "container `valkey`: VALKEY_MAXMEMORY_PERCENT 80 -> 70: maxmemory 858993459 -> 751619276 bytes"
    ]


def test_sidecar_memory_has_no_maxmemory() -> None:
    def grow(sts: dict[str, Any]) -> None:
        pod_container(sts, "exporter")["resources"]["limits"]["memory"] = "128Mi"

    assert reasons(grow) == ["container `exporter`: memory limit 64Mi -> 128Mi"]


def test_image_env_command_and_probes() -> None:
    def edit(sts: dict[str, Any]) -> None:
        valkey = _valkey(sts)
        valkey["image"] = "valkey/valkey:8.1.12"
        valkey["env"].append({"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})
        valkey["command"] = ["sh", "/scripts/requirepass.sh"]
        valkey["livenessProbe"]["failureThreshold"] = 9
        valkey["startupProbe"]["failureThreshold"] = 24

    assert reasons(edit) == [
        "container `valkey`: image `valkey/valkey:8.1.11` -> `valkey/valkey:8.1.12`",
        "container `valkey`: env `X` added (from Secret `s` key `k`)",
        "container `valkey`: command `sh /scripts/entrypoint.sh` -> `sh /scripts/requirepass.sh`",
        "container `valkey`: startupProbe `failureThreshold` `12` -> `24`: Valkey may take 60s -> 120s to start "
        "(the AOF replay after a crash)",
        "container `valkey`: livenessProbe `failureThreshold` `6` -> `9`",
    ]


def test_checksum_without_a_configmap_change_says_so() -> None:
    def edit(sts: dict[str, Any]) -> None:
        sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"] = "0" * 64

    assert reasons(edit) == [
        "pod annotation `checksum/config` changed, but no mounted ConfigMap changed in this diff (the checksum "
        "also covers the auth Secret reference)"
    ]


def test_sidecar_added_and_removed() -> None:
    def edit(sts: dict[str, Any]) -> None:
        containers = sts["spec"]["template"]["spec"]["containers"]
        containers[:] = [c for c in containers if c["name"] != "exporter"]
        containers.append({"name": "proxy", "image": "envoy:1.30.0"})

    assert reasons(edit) == ["container `exporter` removed", "container `proxy` added (image `envoy:1.30.0`)"]


def test_on_delete_strategy_says_when_the_restart_happens() -> None:
    def edit(sts: dict[str, Any]) -> None:
        sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
        sts["spec"]["template"]["metadata"]["labels"]["team"] = "platform"

    report = review_edit("StatefulSet", None, edit)
    assert [f.reason for f in findings_for(report, "StatefulSet") if f.verdict is Verdict.RESTARTS] == [
        "pod labels: `team` (unset) -> `platform`",
        "updateStrategy `OnDelete`: the running pod keeps the old template; the restart happens when the pod is "
        "next deleted",
    ]
