"""valkey.conf directives: what changed between two renderings, and which changes touch a
data guardrail of ADR 0005."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._model import Finding, Verdict

# Directives whose change can lose data or stop serving it. The construct refuses them in
# extra_config; a diff that still changes them was edited by hand or by a new library version.
DATA_GUARDRAILS: dict[str, str] = {
    "appendonly": "AOF persistence (ADR 0005): without it, a restart loses every write since the last snapshot",
    "appendfsync": "the 1 s durability window of ADR 0005 (`everysec`)",
    "aof-use-rdb-preamble": "the RDB preamble that makes restarts load fast",
    "appenddirname": "where the AOF lives: under a new name Valkey starts from an empty AOF",
    "appendfilename": "where the AOF lives: under a new name Valkey starts from an empty AOF",
    "dir": "the data directory on the volume: anywhere else, Valkey starts empty",
    "maxmemory-policy": "`noeviction`, which BullMQ requires: any other policy deletes keys, jobs included",
    "maxmemory": "the ceiling the entrypoint computes from the memory limit (ADR 0005)",
}

# Directives whose change clients feel even though Valkey runs: they must connect differently.
CLIENT_FACING: dict[str, str] = {
    "port": "the port clients connect to: clients of the old port get connection refused",
    "tls-port": "TLS: clients must connect with TLS and trust its CA, or they are refused",
    "requirepass": "a password: clients that do not send it are refused (NOAUTH)",
}

_SPLIT = re.compile(r"\s+")


@dataclass(frozen=True)
class DirectiveChange:
    name: str
    old: str | None
    new: str | None

    def describe(self) -> str:
        if self.old is None:
            return f"`{self.name}` added (`{self.new}`)"
        if self.new is None:
            return f"`{self.name}` removed (was `{self.old}`)"
        return f"`{self.name}` `{self.old}` -> `{self.new}`"


def parse(text: str) -> dict[str, str]:
    """Directive name (lower case) to its value; repeated directives (``save``, ``bind``)
    are joined with ``; `` in file order."""
    values: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = _SPLIT.split(line, maxsplit=1)
        values.setdefault(parts[0].lower(), []).append(parts[1] if len(parts) > 1 else "")
    return {name: "; ".join(vals) for name, vals in values.items()}


def diff(old_text: str, new_text: str) -> list[DirectiveChange]:
    old, new = parse(old_text), parse(new_text)
    changes = []
    for name in [*old, *(n for n in new if n not in old)]:
        if old.get(name) != new.get(name):
            changes.append(DirectiveChange(name, old.get(name), new.get(name)))
    return changes


def findings(
    changes: list[DirectiveChange], applied: str, verdict: Verdict, file: str = "valkey.conf"
) -> list[Finding]:
    """A finding per changed directive of ``file``: data at risk for a guardrail, else
    ``verdict``; ``applied`` says when the change takes effect."""
    out = []
    for change in changes:
        guardrail = DATA_GUARDRAILS.get(change.name)
        if guardrail:
            out.append(
                Finding(
                    Verdict.DATA_AT_RISK,
                    f"{file} {change.describe()}: a guardrail, {guardrail}",
                    "revert it; the library refuses this directive in extra_config for that reason",
                )
            )
        elif change.name in CLIENT_FACING and change.new is not None:
            out.append(
                Finding(
                    Verdict.CLIENT_OUTAGE,
                    f"{file} {change.describe()}{applied}: {CLIENT_FACING[change.name]}",
                    "change the clients first (they must work with both settings), then merge this",
                )
            )
        else:
            out.append(Finding(verdict, f"{file} {change.describe()}{applied}"))
    return out
