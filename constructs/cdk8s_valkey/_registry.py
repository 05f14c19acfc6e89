"""One object per kind, namespace and name in an app: the second one is refused at synth.

Two constructs can render the same name without either being wrong alone (a Valkey
``sessions`` with its exporter, and a Valkey ``sessions-metrics``, both render
``Service/sessions-metrics``); the API server would then keep only the last one applied."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import cdk8s
from constructs import Construct

_Key = tuple[str, str | None, str]
_HOLDER_ID = "cdk8s-valkey-object-names"


class _Names(Construct):
    """Renders nothing: holds the app's registry as a child of the app (jsii hands back this
    same Python object from ``try_find_child``, so the dict lives as long as the app)."""

    def __init__(self, app: Construct) -> None:
        super().__init__(app, _HOLDER_ID)
        self.owners: dict[_Key, str] = {}


def register(construct: Construct, objects: Iterable[tuple[str, str]], *, namespace: str | None = None) -> None:
    """Record the ``(kind, name)`` objects ``construct`` renders into ``namespace`` (default: its
    chart's).

    Raises before anything is recorded when one of them is already rendered by another
    construct of the same app."""
    node = construct.node
    root = node.root
    holder = root.node.try_find_child(_HOLDER_ID)
    owners = (holder if isinstance(holder, _Names) else _Names(cast(Construct, root))).owners
    namespace = namespace if namespace is not None else cdk8s.Chart.of(construct).namespace
    keys = [(kind, namespace, name) for kind, name in objects]
    for key in keys:
        if key in owners:
            kind, _, name = key
            where = f"in namespace {namespace!r}" if namespace else "without a namespace"
            raise ValueError(
                f"{kind} {name!r} {where} would be rendered twice, by {owners[key]} and by {node.path}; "
                "the second would overwrite the first when applied. Give one of them another name "
                "(the name prop, or the construct id it defaults to)"
            )
    owners.update(dict.fromkeys(keys, node.path))
