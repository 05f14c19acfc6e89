"""review/valkey_conf.py: valkey.conf directives compared; guardrails flagged."""

from __future__ import annotations

from cdk8s_valkey import _config
from cdk8s_valkey.review import Verdict
from cdk8s_valkey.review.valkey_conf import DATA_GUARDRAILS, DirectiveChange, diff, findings, parse


def test_parse_skips_comments_and_joins_repeated_directives() -> None:
    text = '# comment\n\nsave 900 1\nsave 300 10\nAppendOnly\tyes\nlogfile ""\n'
    assert parse(text) == {"save": "900 1; 300 10", "appendonly": "yes", "logfile": '""'}


def test_diff_in_file_order() -> None:
    assert diff("timeout 0\nloglevel notice\n", "loglevel warning\nmaxclients 2000\n") == [
        DirectiveChange("timeout", "0", None),
        DirectiveChange("loglevel", "notice", "warning"),
        DirectiveChange("maxclients", None, "2000"),
    ]


def test_findings_guardrail_or_the_given_verdict() -> None:
    changes = [DirectiveChange("appendfsync", "everysec", "always"), DirectiveChange("maxclients", None, "2000")]
    out = findings(changes, ": applied at restart", Verdict.RESTARTS)
    assert [(f.verdict, f.reason) for f in out] == [
        (
            Verdict.DATA_AT_RISK,
            "valkey.conf `appendfsync` `everysec` -> `always`: a guardrail, the 1 s durability window of ADR 0005 "
            "(`everysec`)",
        ),
        (Verdict.RESTARTS, "valkey.conf `maxclients` added (`2000`): applied at restart"),
    ]


def test_data_guardrails_are_directives_the_library_refuses_in_extra_config() -> None:
    assert set(DATA_GUARDRAILS) <= set(_config.GUARDED_DIRECTIVES)
