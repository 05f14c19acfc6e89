"""review/configmap.py: ValidateConfigMapUpdate and ValidateSecretUpdate (kubernetes
pkg/apis/core/validation/validation.go) ported, and valkey.conf changes with their effect."""

from __future__ import annotations

import copy
from typing import Any

from cdk8s_valkey.review import Verdict, review
from harness.review import findings_for, only, rendering, review_edit, verdicts
from harness.synth import find

CM = "ConfigMap"
CONFIG = "valkey-config"


def _conf(old: str, new: str) -> Any:
    def edit(cm: dict[str, Any]) -> None:
        assert old in cm["data"]["valkey.conf"]
        cm["data"]["valkey.conf"] = cm["data"]["valkey.conf"].replace(old, new)

    return edit


def _secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "auth", "namespace": "apps"}, **fields}


# ValidateConfigMapUpdate: "field is immutable when `immutable` is set"
def test_immutable_configmap_refuses_new_data_and_unsetting_immutable() -> None:
    old = rendering()
    find(old, CM, CONFIG)["immutable"] = True
    data = review_edit(CM, CONFIG, _conf("timeout 0", "timeout 5"), old)
    assert only(data, CM, Verdict.REJECTED).procedure == (
        "`kubectl -n apps delete configmap valkey-config`, then sync (pods that mount it see the new content only "
        "when they restart); or give the new content a new name"
    )
    unset = review_edit(CM, CONFIG, lambda cm: cm.update(immutable=False), old)
    assert only(unset, CM, Verdict.REJECTED).reason.startswith(
        "`immutable` changed on an object with `immutable: true`"
    )


def test_mutable_configmap_accepts_new_data() -> None:
    assert Verdict.REJECTED not in verdicts(review_edit(CM, CONFIG, _conf("timeout 0", "timeout 5")), CM)


# ValidateSecretUpdate: type is immutable; immutable data too. Values are never printed.
def test_secret_type_and_immutable_data() -> None:
    old = _secret(type="Opaque", data={"password": "YQ=="})
    assert verdicts(review([old], [_secret(type="kubernetes.io/basic-auth", data={"password": "YQ=="})]), "Secret") == {
        Verdict.REJECTED
    }
    changed = review([old], [_secret(type="Opaque", data={"password": "Yg=="})])
    assert [f.reason for f in findings_for(changed, "Secret")] == ["Secret keys changed: `password`"]
    frozen = _secret(type="Opaque", immutable=True, data={"password": "YQ=="})
    refused = review([frozen], [_secret(type="Opaque", immutable=True, data={"password": "Yg=="})])
    assert verdicts(refused, "Secret") == {Verdict.SAFE, Verdict.REJECTED}
    assert "Yg==" not in refused.markdown()


def test_guardrail_directive_puts_data_at_risk() -> None:
    report = review_edit(CM, CONFIG, _conf("appendonly yes", "appendonly no"))
    finding = only(report, CM, Verdict.DATA_AT_RISK)
    assert finding.reason == (
        "valkey.conf `appendonly` `yes` -> `no`: a guardrail, AOF persistence (ADR 0005): without it, a restart "
        "loses every write since the last snapshot"
    )


def test_directive_applied_by_the_restart_or_at_the_next_one() -> None:
    old = rendering()
    new = copy.deepcopy(old)
    edit = _conf("timeout 0", "timeout 5")
    config_only = review(old, [o if o["metadata"]["name"] != CONFIG else _edited(o, edit) for o in new])
    assert only(config_only, CM, Verdict.SAFE).reason == (
        "valkey.conf `timeout` `0` -> `5`: read at start, and the pod template of StatefulSet `valkey` did not "
        "change, so it applies only at the next restart"
    )
    sts = find(new, "StatefulSet")
    restarted = _edited(
        sts, lambda s: s["spec"]["template"]["metadata"]["annotations"].update({"checksum/config": "1"})
    )
    both = review(
        old, [_edited(o, edit) if o["metadata"]["name"] == CONFIG else restarted if o is sts else o for o in new]
    )
    assert only(both, CM, Verdict.RESTARTS).reason == (
        "valkey.conf `timeout` `0` -> `5`: read at start, applied by the restart of StatefulSet `valkey`"
    )
    assert [f.reason for f in findings_for(both, "StatefulSet")] == [
        "valkey.conf `timeout` `0` -> `5` (ConfigMap `valkey-config`)"
    ]


def test_configmap_nobody_mounts_is_safe() -> None:
    dashboard = {
        "apiVersion": "v1",
        "kind": CM,
        "metadata": {"name": "dash", "namespace": "apps"},
        "data": {"a.json": "{}"},
    }
    report = review([dashboard], [{**dashboard, "data": {"a.json": "{ }"}}])
    assert [f.reason for f in findings_for(report, CM)] == ["key `a.json` changed"]


def test_removed_configmap_still_mounted_stops_the_next_pod() -> None:
    old = rendering()
    report = review(old, [o for o in old if o["metadata"]["name"] != CONFIG])
    assert only(report, CM, Verdict.DATA_AT_RISK).reason.startswith(
        "no longer rendered, but StatefulSet `valkey` still mounts it"
    )


def _edited(obj: dict[str, Any], edit: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    edit(out)
    return out
