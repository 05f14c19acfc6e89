"""review/service.py: ValidateServiceUpdate (kubernetes pkg/apis/core/validation/validation.go)
ported: clusterIP, the primary IP family and loadBalancerClass are frozen; the rest is not."""

from __future__ import annotations

from typing import Any

import pytest

from cdk8s_valkey.review import Verdict, review
from harness.review import only, rendering, review_edit, verdicts
from harness.synth import find

SVC = "Service"
RECREATE = (
    "`kubectl -n apps delete service valkey`, then sync: the Service is created anew; clients cannot resolve "
    "or reach it for those seconds"
)


def _spec(**fields: Any) -> Any:
    return lambda svc: svc["spec"].update(fields)


# validateUpgradeDowngradeClusterIPs: "may not change once set"
@pytest.mark.parametrize("value", ["None", "10.96.0.10"])
def test_cluster_ip_set_on_an_allocated_service_is_rejected(value: str) -> None:
    finding = only(review_edit(SVC, "valkey", _spec(clusterIP=value)), SVC, Verdict.REJECTED)
    assert finding.reason.startswith(f"`spec.clusterIP` (unset) -> `{value}` may not change once set")
    assert finding.procedure == RECREATE


def test_headless_service_stays_headless_when_cluster_ip_is_left_out() -> None:
    report = review_edit(SVC, "valkey-headless", lambda s: s["spec"].pop("clusterIP"))
    assert verdicts(report, SVC) == {Verdict.SAFE}


def test_external_name_is_exempt() -> None:
    old = rendering()
    find(old, SVC, "valkey")["spec"].update(type="ExternalName", externalName="a.example.com")
    report = review_edit(SVC, "valkey", _spec(type="ExternalName", externalName="b.example.com", clusterIP="None"), old)
    assert Verdict.REJECTED not in verdicts(report, SVC)


# validateUpgradeDowngradeIPFamilies: the primary family is frozen, a secondary may come and go.
def test_primary_ip_family_is_frozen_secondary_is_not() -> None:
    old = rendering()
    find(old, SVC, "valkey")["spec"]["ipFamilies"] = ["IPv4"]
    swapped = review_edit(SVC, "valkey", _spec(ipFamilies=["IPv6"]), old)
    assert only(swapped, SVC, Verdict.REJECTED).reason.startswith("`spec.ipFamilies[0]` `IPv4` -> `IPv6`")
    dual = review_edit(SVC, "valkey", _spec(ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="PreferDualStack"), old)
    assert verdicts(dual, SVC) == {Verdict.SAFE}


# validateLoadBalancerClassField
def test_load_balancer_class_is_frozen() -> None:
    old = rendering()
    find(old, SVC, "valkey")["spec"].update(type="LoadBalancer", loadBalancerClass="a")
    report = review_edit(SVC, "valkey", _spec(loadBalancerClass="b"), old)
    assert verdicts(report, SVC) == {Verdict.REJECTED}


def test_selector_ports_type_and_annotations_change_in_place() -> None:
    def edit(svc: dict[str, Any]) -> None:
        svc["spec"]["selector"]["tier"] = "cache"
        svc["spec"]["ports"][0]["port"] = 6380
        svc["spec"]["type"] = "NodePort"
        svc["metadata"]["annotations"] = {"a": "b"}

    assert verdicts(review_edit(SVC, "valkey", edit), SVC) == {Verdict.SAFE}


def test_removing_the_client_service_is_graded_as_removing_its_selector() -> None:
    # Either way its clients are cut off while Valkey runs: one verdict, one wording.
    old = rendering()
    removed = review(old, [o for o in old if not (o["kind"] == SVC and o["metadata"]["name"] == "valkey")])
    no_selector = review_edit(SVC, "valkey", lambda s: s["spec"].pop("selector"))
    for report in (removed, no_selector):
        finding = only(report, SVC, Verdict.CLIENT_OUTAGE)
        assert finding.reason.endswith(
            "clients of `valkey.apps.svc` get connection errors until they connect another way (Valkey keeps running)"
        )
        assert finding.procedure == "move every client to its new address first, then merge this"
        assert report.verdict is Verdict.CLIENT_OUTAGE and report.exit_code == 2


def test_removing_a_metrics_service_is_safe() -> None:
    old = rendering()
    names = {o["metadata"]["name"] for o in old if o["kind"] == SVC}
    assert "valkey-metrics" in names
    report = review(old, [o for o in old if not (o["kind"] == SVC and o["metadata"]["name"] == "valkey-metrics")])
    assert only(report, SVC, Verdict.SAFE, "valkey-metrics").reason == (
        "metrics Service no longer rendered: GitOps deletes it; Prometheus stops scraping it"
    )
