"""A structural diff of two manifests, as leaf changes with readable paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class Leaf:
    """One changed value: ``path`` such as ``spec.ports[valkey].port``, old and new value
    (``MISSING`` when absent on that side)."""

    path: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"`{self.path}` {show(self.old)} -> {show(self.new)}"


def get(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...``, or None when any step is missing."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or step >= len(obj):
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[step] if isinstance(step, int) else obj.get(step)
    return obj


def by_name(items: Any) -> dict[str, Any]:
    """A list of named items (containers, env, volumes, ports) as a dict by name."""
    if not isinstance(items, list):
        return {}
    return {str(item.get("name")): item for item in items if isinstance(item, dict) and "name" in item}


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def leaves(old: Any, new: Any, path: str = "") -> list[Leaf]:
    """Every changed leaf between ``old`` and ``new``. Lists of named items are matched by
    name (``containers[valkey]``), other lists by position when their lengths agree."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Leaf] = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            out += leaves(old.get(key, MISSING), new.get(key, MISSING), sub)
        return out
    if isinstance(old, list) and isinstance(new, list):
        if _named(old) and _named(new):
            return _named_leaves(old, new, path)
        if len(old) == len(new) and any(isinstance(i, dict | list) for i in old + new):
            out = []
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                out += leaves(a, b, f"{path}[{index}]")
            return out
    return [Leaf(path, old, new)]


def _named_leaves(old: list[Any], new: list[Any], path: str) -> list[Leaf]:
    olds, news = by_name(old), by_name(new)
    out: list[Leaf] = []
    for name in [*olds, *(n for n in news if n not in olds)]:
        out += leaves(olds.get(name, MISSING), news.get(name, MISSING), f"{path}[{name}]")
    if not out and [i["name"] for i in old] != [i["name"] for i in new]:
        out.append(Leaf(f"{path} order", [i["name"] for i in old], [i["name"] for i in new]))
    return out


def show(value: Any, limit: int = 60) -> str:
    """A value as a short Markdown code span; long or multi-line values are summarised."""
    if value is MISSING or value is None:
        return "(unset)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    if "\n" in text:
        return f"({text.count(chr(10)) + 1} lines)"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if text == "":
        return '`""`'
    return f"`{text}`"


def summarize(items: list[Leaf], limit: int = 6) -> list[str]:
    """At most ``limit`` described leaves, then a count of the rest."""
    lines = [leaf.describe() for leaf in items[:limit]]
    if len(items) > limit:
        lines.append(f"and {len(items) - limit} more changed fields")
    return lines
