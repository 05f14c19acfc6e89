"""The README's props tables are generated from the constructs' signatures and docstrings;
this test fails when they drift. Regenerate with `UPDATE_README=1 make test` (or run this
module alone with that variable) and review the diff."""

from __future__ import annotations

import inspect
import os
import re
from typing import Any

import cdk8s
import cdk8s_plus_28 as kplus
import pytest
from conftest import REPO

import cdk8s_valkey

README = REPO / "README.md"
_PARAM = re.compile(r":param (\w+):(.*?)(?=\n\s*:param |\Z)", re.S)


def _default(value: Any) -> str:
    if value is inspect.Parameter.empty:
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
    doc = inspect.getdoc(cls.__init__) or ""  # type: ignore[misc]
    docs = {name: " ".join(text.split()) for name, text in _PARAM.findall(doc)}
    rows = ["| prop | type | default | what it renders |", "|---|---|---|---|"]
    for name, param in inspect.signature(cls.__init__).parameters.items():  # type: ignore[misc]
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        assert name in docs, f"{cls.__name__}.{name} has no ':param {name}:' in its docstring"
        text = docs[name].replace("``", "`").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type(param.annotation)} | {_default(param.default)} | {text} |")
    return "\n".join(rows)


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- props:{name} -->)(.*?)(<!-- /props -->)", re.S)


@pytest.mark.parametrize("name", sorted(cdk8s_valkey.__all__))
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
