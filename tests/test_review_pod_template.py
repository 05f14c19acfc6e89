"""review/pod_template.py: every change under spec.template restarts the single replica; the
reasons name it in user terms, maxmemory computed as entrypoint.sh does."""

from __future__ import annotations

from typing import Any

import pytest

from cdk8s_valkey.review import Verdict, review
from cdk8s_valkey.review.pod_template import maxmemory
from harness.review import edited, findings_for, only, pod_container, rendering, review_edit


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


def test_maxmemory_percent_alone_warns_when_maxmemory_goes_down() -> None:
    """A lower ceiling keeps a dataset above it but refuses every write (noeviction): the reason
    says which used_memory to check before applying; a higher one (above) has no such line."""
    assert reasons(lambda s: _env(s, "VALKEY_MAXMEMORY_PERCENT", "70")) == [
        "container `valkey`: VALKEY_MAXMEMORY_PERCENT 80 -> 70: maxmemory 858993459 -> 751619276 bytes",
        "container `valkey`: maxmemory goes down: if `used_memory` (INFO memory) is above 751619276 bytes, every "
        "write is refused with OOM after the restart (noeviction) until data is deleted; check it first",
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


# --- what clients feel: versions and auth ----------------------------------------------


def _image(image: str) -> Any:
    return lambda sts: pod_container(sts).update(image=image)


@pytest.mark.parametrize(
    ("image", "one_way"),
    [
        ("valkey/valkey:9.0.1", "Valkey 8.1 -> 9.0 is one-way"),
        ("valkey/valkey:8.2.0@sha256:" + "0" * 64, "Valkey 8.1 -> 8.2 is one-way"),
        ("registry.example.com:5000/valkey/valkey:9.1", "Valkey 8.1 -> 9.1 is one-way"),
    ],
)
def test_a_major_or_minor_upgrade_is_one_way_and_points_to_the_snapshot_step(image: str, one_way: str) -> None:
    finding = only(review_edit("StatefulSet", None, _image(image)), "StatefulSet", Verdict.DATA_AT_RISK)
    assert finding.reason.startswith(one_way)
    assert "`Can't handle RDB format version 80`" in finding.reason
    assert finding.procedure == (
        'take the pre-upgrade snapshot first, staging first: docs/operations.md, "Upgrading Valkey", step 4 '
        '("Take a snapshot, then apply")'
    )


def test_a_downgrade_is_flagged_and_a_patch_release_only_restarts() -> None:
    upgraded = edited(rendering(), "StatefulSet", None, _image("valkey/valkey:9.0.1"))
    down = review(upgraded, rendering())
    assert only(down, "StatefulSet", Verdict.DATA_AT_RISK).reason.startswith("Valkey 9.0 -> 8.1 is a downgrade")
    patch = review_edit("StatefulSet", None, _image("valkey/valkey:8.1.99"))
    assert patch.verdict is Verdict.RESTARTS


def _password(secret: str, key: str = "password") -> Any:
    def edit(sts: dict[str, Any]) -> None:
        env = pod_container(sts).setdefault("env", [])
        env[:] = [e for e in env if e["name"] != "VALKEY_PASSWORD"]
        env.append({"name": "VALKEY_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})

    return edit


def test_auth_on_is_a_client_outage_naming_the_secret_that_must_exist_first() -> None:
    finding = only(review_edit("StatefulSet", None, _password("valkey-auth")), "StatefulSet", Verdict.CLIENT_OUTAGE)
    assert finding.reason.startswith(
        "auth turned on (`VALKEY_PASSWORD` from Secret `valkey-auth` key `password`): from the restart on, every "
        "client that does not send this password is refused (NOAUTH)"
    )
    assert finding.procedure is not None
    assert finding.procedure.startswith("first create Secret `valkey-auth` with key `password` in namespace `apps`")


def test_a_password_from_another_secret_cuts_off_clients_with_the_old_one() -> None:
    old = edited(rendering(), "StatefulSet", None, _password("valkey-auth"))
    report = review(old, edited(old, "StatefulSet", None, _password("valkey-auth-2", "pw")))
    finding = only(report, "StatefulSet", Verdict.CLIENT_OUTAGE)
    assert "Secret `valkey-auth-2` key `pw` (was Secret `valkey-auth` key `password`)" in finding.reason
    # Turning auth off: clients that send a password keep working (ioredis warns), a restart only.
    assert review(old, rendering()).verdict is Verdict.RESTARTS


def test_tls_port_in_valkey_conf_is_a_client_outage() -> None:
    def edit(config: dict[str, Any]) -> None:
        config["data"]["valkey.conf"] += "tls-port 6380\n"

    # Applied at the next restart, this one or a later one: clients without TLS are refused from then on.
    report = review_edit("ConfigMap", "valkey-config", edit)
    finding = only(report, "ConfigMap", Verdict.CLIENT_OUTAGE, "valkey-config")
    assert "`tls-port` added (`6380`)" in finding.reason and "clients must connect with TLS" in finding.reason
