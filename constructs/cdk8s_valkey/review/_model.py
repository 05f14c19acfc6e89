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
    CLIENT_OUTAGE = 2
    REJECTED = 3
    DATA_AT_RISK = 4

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def exit_code(self) -> int:
        """0 safe, 1 restarts, 2 client outage, rejected or data at risk (the CLI's exit status)."""
        return min(int(self), 2)

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_LABELS = {
    Verdict.SAFE: "safe",
    Verdict.RESTARTS: "restarts",
    Verdict.CLIENT_OUTAGE: "client outage",
    Verdict.REJECTED: "rejected",
    Verdict.DATA_AT_RISK: "data at risk",
}
_MEANINGS = {
    Verdict.SAFE: "applied in place; Valkey keeps running.",
    Verdict.RESTARTS: (
        "Valkey's single pod is replaced: clients are cut off for a few seconds, then the AOF is replayed."
    ),
    Verdict.CLIENT_OUTAGE: (
        "Valkey keeps running, but clients are refused until they change (a credential, an address): "
        "prepare them first, as the reason says."
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
    # A change of metadata.labels only: safe objects made only of these fold into a count.
    labels_only: bool = False


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
    """The review of one rendering against another, with warnings about the change as a whole."""

    objects: tuple[ObjectReview, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> Verdict:
        return max((o.verdict for o in self.objects), default=Verdict.SAFE)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def ordered(self) -> list[ObjectReview]:
        return sorted(self.objects, key=lambda o: (-o.verdict, o.key))

    def markdown(self, against: str | None = None) -> str:
        """The report as a pull-request comment: the verdict, what it compares with (``against``),
        warnings, a section for each object that is not safe, then one line per safe object,
        objects changed in labels only counted."""
        compared = ["", f"Compared with {against}."] if against else []
        if not self.objects:
            return "\n".join(["## dist/ review: safe", *compared, "", "No object changed.", ""])
        counts = Counter(o.verdict for o in self.objects)
        summary = ", ".join(f"{v.label} {counts[v]}" for v in sorted(counts, reverse=True))
        noun = "object" if len(self.objects) == 1 else "objects"
        lines = [
            f"## dist/ review: {self.verdict.label}",
            *compared,
            "",
            f"{len(self.objects)} {noun} added, removed or changed ({summary}).",
            "",
        ]
        lines += [f"- **{v.label}**: {v.meaning}" for v in sorted(counts, reverse=True)]
        for warning in self.warnings:
            lines += ["", f"> **Warning**: {warning}"]
        safe = [o for o in self.ordered() if o.verdict is Verdict.SAFE]
        for review in self.ordered():
            if review.verdict is Verdict.SAFE:
                continue
            lines += ["", f"### {review.key}: {review.verdict.label}", ""]
            for finding in review.sorted_findings():
                lines.append(f"- **{finding.verdict.label}**: {finding.reason}")
                if finding.procedure:
                    lines.append(f"  - Do instead: {finding.procedure}")
        if safe:
            lines += ["", "### safe", ""]
            labelled: dict[str, list[ObjectReview]] = {}
            for review in safe:
                if all(f.labels_only for f in review.findings):
                    labelled.setdefault("; ".join(f.reason for f in review.findings), []).append(review)
                else:
                    reasons = "; ".join(f.reason for f in review.findings)
                    lines.append(f"- {review.key} {review.change}: {reasons}")
            for reason, reviews in labelled.items():
                noun = "object" if len(reviews) == 1 else "objects"
                lines.append(f"- {len(reviews)} {noun} changed in {reason}")
        return "\n".join(lines) + "\n"
