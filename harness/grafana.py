"""Grafana dashboards in tests: validation against the Grafana 11.6 JSON schemas, and the
queries Grafana would send for a panel's targets.

The schemas are the unmodified grafana-foundation-sdk files in ``../shared/schemas/grafana-11.6``
(PROVENANCE.md beside them; set ``VALKEY_GRAFANA_SCHEMAS_DIR`` to use another directory):
``dashboard.jsonschema.json`` (strict draft-07) for the whole document, the panel kind's
``Options`` and ``FieldConfig`` for each panel's ``options`` and ``fieldConfig.defaults.custom``,
and ``prometheus.jsonschema.json`` for each target.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.paths import REPO

SCHEMAS = Path(os.environ.get("VALKEY_GRAFANA_SCHEMAS_DIR", REPO.parent / "shared" / "schemas" / "grafana-11.6"))
HOW_TO_GET_SCHEMAS = (
    "the Grafana 11.6 JSON schemas are not in {dir}: copy the folder jsonschema/ of the "
    "grafana-foundation-sdk branch v11.6.x+cog-v0.0.x into a directory and set VALKEY_GRAFANA_SCHEMAS_DIR to it"
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def schema_dir() -> Path:
    """The schema directory; skips the calling test, saying how to get the files, when it is absent."""
    if not (SCHEMAS / "dashboard.jsonschema.json").is_file():
        pytest.skip(HOW_TO_GET_SCHEMAS.format(dir=SCHEMAS))
    return SCHEMAS


@functools.cache
def _schema(directory: Path, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((directory / f"{name}.jsonschema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


def _errors(schema: dict[str, Any], instance: Any, where: str) -> list[str]:
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    lines = []
    for error in errors:
        # For a oneOf (a panel is a Panel or a RowPanel), the reasons of the closest branch.
        causes = [c for c in error.context or () if c.validator != "additionalProperties" or not c.path] or [error]
        for cause in causes:
            path = ".".join(str(part) for part in cause.absolute_path)
            lines.append(f"{where}{'.' + path if path else ''}: {cause.message[:300]}")
    return lines


def dashboard_errors(document: dict[str, Any]) -> list[str]:
    """Every schema violation of a dashboard, as 'path: message' lines (empty: valid)."""
    directory = schema_dir()
    errors = _errors(_schema(directory, "dashboard"), document, "dashboard")
    prometheus = _schema(directory, "prometheus")
    for index, panel in enumerate(document.get("panels", [])):
        if panel.get("type") == "row":
            continue
        where = f"panels.{index} ({panel.get('title')!r}, {panel.get('type')})"
        kind_file = directory / f"{panel['type']}.jsonschema.json"
        if not kind_file.is_file():
            errors.append(f"{where}: no schema for panel type {panel['type']!r} in {directory}")
            continue
        kind = _schema(directory, panel["type"])

        def definition(name: str, kind: dict[str, Any] = kind) -> dict[str, Any]:
            return {**kind, "$ref": f"#/definitions/{name}"}

        errors += _errors(definition("Options"), panel.get("options"), f"{where}.options")
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if "FieldConfig" in kind["definitions"]:
            errors += _errors(definition("FieldConfig"), custom or {}, f"{where}.fieldConfig.defaults.custom")
        elif custom is not None:
            errors.append(f"{where}.fieldConfig.defaults.custom: {panel['type']} panels have no custom field config")
        for number, target in enumerate(panel.get("targets", [])):
            errors += _errors(prometheus, target, f"{where}.targets.{number}")
    return errors


def panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels of a dashboard, rows left out."""
    return [panel for panel in document["panels"] if panel["type"] != "row"]


def seconds(duration: str) -> int:
    """Seconds of a Grafana/Prometheus duration with one unit: 30s, 2m, 3h."""
    match = re.fullmatch(r"(\d+)([smhd])", duration)
    assert match, f"not a duration: {duration!r}"
    return int(match.group(1)) * _UNITS[match.group(2)]


def grafana_expr(expr: str, *, min_step: str, time_from: str) -> str:
    """The PromQL Grafana sends for a target with minimum step ``min_step`` on a dashboard
    showing ``now-<time_from>``: ``$__rate_interval`` is max($__interval + min step, 4 x min step)
    and ``$__interval`` is never below the min step for the ranges we render, so it is
    4 x min step; ``$__range`` is the time range. Any other macro fails the test."""
    text = expr.replace("$__rate_interval", f"{4 * seconds(min_step)}s").replace(
        "$__range", f"{seconds(time_from.removeprefix('now-'))}s"
    )
    assert "$__" not in text, f"a Grafana macro this helper does not substitute: {text}"
    return text
