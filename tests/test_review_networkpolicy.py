"""review/networkpolicy.py: ValidateNetworkPolicyUpdate freezes nothing."""

from __future__ import annotations

from cdk8s_valkey.review import Verdict, review
from harness.review import findings_for, rendering, review_edit
from harness.synth import find


def _with_policy() -> list[dict[str, object]]:
    return rendering("safe-network-policy-on", "new")


def test_any_spec_change_takes_effect_at_once() -> None:
    report = review_edit("NetworkPolicy", "valkey", lambda p: p["spec"].update(policyTypes=["Ingress"]), _with_policy())
    assert {f.verdict for f in findings_for(report, "NetworkPolicy")} == {Verdict.SAFE}


def test_added_and_removed() -> None:
    new = _with_policy()
    old = [o for o in new if o is not find(new, "NetworkPolicy", "valkey")]
    assert {f.verdict for f in findings_for(review(old, new), "NetworkPolicy")} == {Verdict.SAFE}
    assert {f.verdict for f in findings_for(review(new, old), "NetworkPolicy")} == {Verdict.SAFE}
