"""One object per kind, namespace and name in an app: the second one is refused at synth.

Two constructs can render the same name without either being wrong alone (a Valkey
``sessions`` with its exporter, and a Valkey ``sessions-metrics``, both render
``Service/sessions-metrics``); the API server would then keep only the last one applied."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
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
        self.owners: dict[_Key, Construct] = {}


@dataclass(frozen=True)
class _ChartNames:
    namespace: str | None
    owners: dict[_Key, Construct]


# Per chart: its namespace (fixed at creation) and its app's registry. Finding them is six jsii
# round trips, which every Valkey would pay three times; cached, it is one (Chart.of).
_CHARTS: weakref.WeakKeyDictionary[cdk8s.Chart, _ChartNames] = weakref.WeakKeyDictionary()


def _chart_names(scope: Construct) -> _ChartNames:
    chart = cdk8s.Chart.of(scope)
    names = _CHARTS.get(chart)
    if names is None:
        root = chart.node.root
        holder = root.node.try_find_child(_HOLDER_ID)
        owners = (holder if isinstance(holder, _Names) else _Names(cast(Construct, root))).owners
        names = _CHARTS[chart] = _ChartNames(chart.namespace, owners)
    return names


def namespace_of(scope: Construct) -> str | None:
    """The namespace of the chart that ``scope`` renders into (``cdk8s.Chart.of(scope).namespace``)."""
    return _chart_names(scope).namespace


def register(construct: Construct, objects: Iterable[tuple[str, str]], *, namespace: str | None = None) -> None:
    """Record the ``(kind, name)`` objects ``construct`` renders into ``namespace`` (default: its
    chart's).

    Raises before anything is recorded when one of them is already rendered by another
    construct of the same app."""
    names = _chart_names(construct)
    owners = names.owners
    namespace = namespace if namespace is not None else names.namespace
    keys = [(kind, namespace, name) for kind, name in objects]
    for key in keys:
        if key in owners:
            kind, _, name = key
            where = f"in namespace {namespace!r}" if namespace else "without a namespace"
            raise ValueError(
                f"{kind} {name!r} {where} would be rendered twice, by {owners[key].node.path} and by "
                f"{construct.node.path}; the second would overwrite the first when applied. Give one of them "
                "another name (the name prop, or the construct id it defaults to)"
            )
    owners.update(dict.fromkeys(keys, construct))
