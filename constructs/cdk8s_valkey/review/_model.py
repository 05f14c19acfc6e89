"""What a review produces: verdicts, findings per object, and the report as Markdown."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Manifest = dict[str, Any]
Change = Literal["added", "removed", "changed"]


class Verdict(enum.IntEnum):
    """Verdicts ordered by severity: an object's verdict is the worst of its findings."""

    SAFE = 0
    RESTARTS = 1
    REJECTED = 2
    DATA_AT_RISK = 3

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def exit_code(self) -> int:
        """0 safe, 1 restarts, 2 rejected or data at risk (the CLI's exit status)."""
        return min(int(self), 2)

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_LABELS = {
    Verdict.SAFE: "safe",
    Verdict.RESTARTS: "restarts",
    Verdict.REJECTED: "rejected",
    Verdict.DATA_AT_RISK: "data at risk",
}
_MEANINGS = {
    Verdict.SAFE: "applied in place; Valkey keeps running.",
    Verdict.RESTARTS: (
        "Valkey's single pod is replaced: clients are cut off for a few seconds, then the AOF is replayed."
    ),
    Verdict.REJECTED: (
        "the API server refuses the update, so the GitOps sync fails until the procedure given is done."
    ),
    Verdict.DATA_AT_RISK: "the change can lose data or stop serving it: stop and check before merging.",
}


@dataclass(frozen=True)
class Finding:
    """One consequence of a change: its verdict, why (in user terms), and what to do instead."""

    verdict: Verdict
    reason: str
    procedure: str | None = None


@dataclass(frozen=True, order=True)
class ObjectKey:
    """How objects of two renderings are matched: API group (not version: an apiVersion
    bump of the same group is the same object on the server), kind, namespace, name."""

    kind: str
    namespace: str
    name: str
    group: str = ""

    @classmethod
    def of(cls, manifest: Manifest) -> ObjectKey:
        api_version = str(manifest.get("apiVersion", ""))
        group = api_version.rpartition("/")[0]
        meta = manifest.get("metadata") or {}
        return cls(
            kind=str(manifest.get("kind", "")),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name", "")),
            group=group,
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} `{where}`"


@dataclass(frozen=True)
class ObjectReview:
    """The findings for one added, removed or changed object."""

    key: ObjectKey
    change: Change
    findings: tuple[Finding, ...]

    @property
    def verdict(self) -> Verdict:
        return max((f.verdict for f in self.findings), default=Verdict.SAFE)

    def sorted_findings(self) -> list[Finding]:
        # Worst first; the order of discovery otherwise, which follows the manifest.
        return sorted(self.findings, key=lambda f: -f.verdict)


@dataclass(frozen=True)
class Report:
    """The review of one rendering against another."""

    objects: tuple[ObjectReview, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> Verdict:
        return max((o.verdict for o in self.objects), default=Verdict.SAFE)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def ordered(self) -> list[ObjectReview]:
        return sorted(self.objects, key=lambda o: (-o.verdict, o.key))

    def markdown(self) -> str:
        """The report as a pull-request comment: overall verdict, a table, then each object."""
        if not self.objects:
            return "## dist/ review: safe\n\nNo object changed.\n"
        counts = Counter(o.verdict for o in self.objects)
        summary = ", ".join(f"{v.label} {counts[v]}" for v in sorted(counts, reverse=True))
        noun = "object" if len(self.objects) == 1 else "objects"
        lines = [
            f"## dist/ review: {self.verdict.label}",
            "",
            f"{len(self.objects)} {noun} added, removed or changed ({summary}).",
            "",
        ]
        lines += [f"- **{v.label}**: {v.meaning}" for v in sorted(counts, reverse=True)]
        lines += ["", "| object | change | verdict |", "|---|---|---|"]
        lines += [f"| {o.key} | {o.change} | {o.verdict.label} |" for o in self.ordered()]
        for review in self.ordered():
            lines += ["", f"### {review.key}: {review.verdict.label}", ""]
            for finding in review.sorted_findings():
                lines.append(f"- **{finding.verdict.label}**: {finding.reason}")
                if finding.procedure:
                    lines.append(f"  - Do instead: {finding.procedure}")
        return "\n".join(lines) + "\n"
