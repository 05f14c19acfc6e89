"""The README and the props reference.

docs/reference.md is generated whole from the public names' signatures and docstrings (this
module is its generator); the test fails when it drifts. Regenerate with
`UPDATE_REFERENCE=1 .venv/bin/python -m pytest tests/test_readme.py` and review the diff.
The README stays small (at most 12 KB), its contents line lists its sections, and its table of
the objects in dist/ is dist/."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
import yaml

import cdk8s_valkey
from harness.paths import REPO

README = REPO / "README.md"
REFERENCE = REPO / "docs" / "reference.md"
README_MAX_BYTES = 12 * 1024
# The reference's order: the one call first, then each construct beside its options; names not
# listed here follow alphabetically, so a new export is never left out.
ORDER = (
    "Valkey",
    "ValkeyStatefulSet",
    "PodOptions",
    "Topology",
    "PodModel",
    "ContainerModel",
    "ExporterOptions",
    "ExporterSidecar",
    "AlertOptions",
    "Alerts",
    "DashboardOptions",
    "Dashboard",
    "BackupOptions",
    "RecurringJobSchedule",
    "Backups",
    "SmokeCheckOptions",
    "SmokeCheck",
    "SentinelOptions",
    "Sentinel",
    "SentinelAlertOptions",
    "SentinelAlerts",
    "PrimaryEndpointOptions",
    "PrimaryEndpoint",
    "SecretKeyRef",
    "ValkeyChart",
)
_PARAM = re.compile(r":param (\w+):(.*?)(?=\n\s*:param |\Z)", re.S)


_VAR = object()  # the "default" of a **keywords parameter: none of them given


def _default(value: Any) -> str:
    if value is _VAR:
        return "none"
    if value is inspect.Parameter.empty or value is dataclasses.MISSING:
        return "required"
    if isinstance(value, cdk8s.Size):
        from cdk8s_valkey._validation import quantity

        return f"`{quantity(value)}`"
    if isinstance(value, cdk8s.Duration):
        return f"`{value.to_human_string()}`"
    if isinstance(value, kplus.Cpu):
        return f"`{value.amount}`"
    return f"`{value!r}`"


def _type(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return "`" + text.replace("|", "\\|") + "`"


def props_table(cls: type) -> str:
    """Options dataclasses: their fields, documented in the class docstring. Constructs: their
    keyword parameters (and a documented ``**keywords``), documented in ``__init__``."""
    rows = ["| prop | type | default | what it renders |", "|---|---|---|---|"]
    if dataclasses.is_dataclass(cls):
        docs = _docs(inspect.getdoc(cls) or "") | _docs(inspect.getdoc(cls.__init__) or "")
        params = [(f.name, f.type, f.default) for f in dataclasses.fields(cls)]
    else:
        docs = _docs(inspect.getdoc(cls.__init__) or "")  # type: ignore[misc]
        params = [
            (
                f"**{name}" if p.kind is inspect.Parameter.VAR_KEYWORD else name,
                p.annotation,
                _VAR if p.kind is inspect.Parameter.VAR_KEYWORD else p.default,
            )
            for name, p in inspect.signature(cls.__init__).parameters.items()  # type: ignore[misc]
            if p.kind is inspect.Parameter.KEYWORD_ONLY or (p.kind is inspect.Parameter.VAR_KEYWORD and name in docs)
        ]
    for name, annotation, default in params:
        key = name.lstrip("*")
        assert key in docs, f"{cls.__name__}.{key} has no ':param {key}:' in its docstring"
        text = re.sub(r":(?:class|meth):`(\w+)`", r"`\1`", docs[key]).replace("``", "`").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type(annotation)} | {_default(default)} | {text} |")
    return "\n".join(rows)


def _docs(doc: str) -> dict[str, str]:
    return {name: " ".join(text.split()) for name, text in _PARAM.findall(doc)}


def _documented() -> list[str]:
    """Public names with a props table: everything but the TypedDict of keyword names."""
    return sorted(name for name in cdk8s_valkey.__all__ if name != "ValkeyProps")


def _summary(cls: type) -> str:
    """The first paragraph of the class docstring, on one line."""
    doc = inspect.getdoc(cls) or ""
    first = doc.split("\n\n", 1)[0]
    return re.sub(r":(?:class|meth|attr):`~?([\w.]+)`", r"`\1`", " ".join(first.split())).replace("``", "`")


def reference() -> str:
    """docs/reference.md, whole."""
    names = _documented()
    ordered = [n for n in ORDER if n in names] + sorted(set(names) - set(ORDER))
    parts = [
        "# Props reference\n\n"
        "Generated from the code by `tests/test_readme.py`: do not edit; regenerate with\n"
        "`UPDATE_REFERENCE=1 .venv/bin/python -m pytest tests/test_readme.py`. Everything below is\n"
        "importable from the package root: `from cdk8s_valkey import Valkey, ...`.\n\n"
        + " · ".join(f"[{n}](#{n.lower()})" for n in ordered)
        + "\n"
    ]
    for name in ordered:
        cls = getattr(cdk8s_valkey, name)
        module = cls.__module__.removeprefix("cdk8s_valkey.")
        parts.append(f"\n## {name}\n\n`{module}`: {_summary(cls)}\n\n{props_table(cls)}\n")
    return "".join(parts)


def test_reference_is_current() -> None:
    text = reference()
    if os.environ.get("UPDATE_REFERENCE") == "1":
        REFERENCE.write_text(text)
    assert REFERENCE.exists() and REFERENCE.read_text() == text, (
        "docs/reference.md is stale: UPDATE_REFERENCE=1 .venv/bin/python -m pytest tests/test_readme.py"
    )


def test_readme_is_small_with_its_contents() -> None:
    text = README.read_text()
    assert len(text.encode()) <= README_MAX_BYTES, f"README.md is {len(text.encode())} bytes: move detail into docs/"
    headings = re.findall(r"^## (.+)$", text, re.M)
    contents = re.search(r"^\*\*Contents:\*\*(.*?)\n\n", text, re.M | re.S)
    assert contents, "README.md has no **Contents:** line"
    listed = re.findall(r"\[([^\]]+)\]\(#([^)]+)\)", contents.group(1))
    assert [title for title, _ in listed] == headings, "the contents line lists the ## headings, in order"
    for title, anchor in listed:
        assert anchor == re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-"), (title, anchor)


def test_every_public_construct_is_exported() -> None:
    assert set(cdk8s_valkey.__all__) >= {"ValkeyStatefulSet"}
    for name in cdk8s_valkey.__all__:
        assert getattr(cdk8s_valkey, name).__module__.startswith("cdk8s_valkey.")


def test_readme_objects_table_is_dist() -> None:
    """The README's table of the objects in dist/ lists exactly the objects of each file."""
    import main

    files = {"staging": main.STAGING.chart_id, "production": main.PRODUCTION.chart_id}
    match = re.search(r"<!-- objects -->\n(.*?)<!-- /objects -->", README.read_text(), re.S)
    assert match, "README.md lacks the <!-- objects --> table"
    listed: dict[str, set[tuple[str, str]]] = {env: set() for env in files}
    for row in match.group(1).splitlines()[2:]:
        kind, name, where = (cell.strip().strip("`") for cell in row.strip("|").split("|")[:3])
        for env in where.split(", "):
            listed[env].add((kind, name))
    for env, chart_id in files.items():
        path = REPO / "dist" / f"{chart_id}.k8s.yaml"
        rendered = {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(path.read_text())}
        assert listed[env] == rendered, f"README objects table vs {path.name}: {listed[env] ^ rendered}"
