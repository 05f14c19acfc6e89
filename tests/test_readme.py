"""The README's props tables are generated from the constructs' signatures and docstrings;
this test fails when they drift. Regenerate with `UPDATE_README=1 make test` (or run this
module alone with that variable) and review the diff."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
import pytest
import yaml

import cdk8s_valkey
from harness.paths import REPO

README = REPO / "README.md"
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


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- props:{name} -->)(.*?)(<!-- /props -->)", re.S)


@pytest.mark.parametrize("name", _documented())
def test_readme_props_table_is_current(name: str) -> None:
    cls = getattr(cdk8s_valkey, name)
    text = README.read_text()
    table = f"\n{props_table(cls)}\n"
    block = _block(name)
    if os.environ.get("UPDATE_README") == "1":
        assert block.search(text), f"README.md lacks the markers <!-- props:{name} --> ... <!-- /props -->"
        README.write_text(block.sub(lambda m: m.group(1) + table + m.group(3), text))
        text = README.read_text()
    match = block.search(text)
    assert match, f"README.md lacks the markers <!-- props:{name} --> ... <!-- /props -->"
    assert match.group(2) == table, f"README props of {name} are stale: run with UPDATE_README=1"


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
