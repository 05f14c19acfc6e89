"""Synthesize charts in tests exactly as `cdk8s synth` writes them."""

from __future__ import annotations

from typing import Any

import cdk8s
import yaml
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode


def new_chart(namespace: str | None = "apps", chart_id: str = "test") -> cdk8s.Chart:
    """A fresh app and chart, so that no test sees another's objects."""
    return cdk8s.Chart(cdk8s.Testing.app(), chart_id, namespace=namespace)


def objects(chart: cdk8s.Chart) -> list[dict[str, Any]]:
    """The chart's manifests as dicts, in output order."""
    return [dict(obj) for obj in cdk8s.Testing.synth(chart)]


def to_yaml(chart: cdk8s.Chart) -> str:
    """The chart as the multi-document YAML that lands in dist/."""
    return str(cdk8s.Yaml.stringify(*objects(chart)))


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of a kind (and name); fails loudly when absent or ambiguous."""
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in hits]}"
    return hits[0]


def container(objs: list[dict[str, Any]], name: str = "valkey") -> dict[str, Any]:
    sts = find(objs, "StatefulSet")
    (hit,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return dict(hit)


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


class YamlSnapshot(SingleFileSnapshotExtension):
    """One readable .yaml file per snapshot, so a pull request shows a manifest diff."""

    file_extension = "yaml"
    _write_mode = WriteMode.TEXT
