"""Grafana panels as data and their rendering: a dashboard's rows are :class:`RowSpec` values
holding :class:`PanelSpec` values, and :func:`render_rows` turns them into grafana-foundation-sdk
panels (Grafana 11.6 types) laid out row by row; :func:`encode` writes the dashboard JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, gauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models.prometheus import QueryEditorMode

DATASOURCE_VARIABLE = "datasource"
JSON_WIDTH = 100  # columns of the ConfigMap's JSON, before YAML indents it

# Grafana units (https://grafana.com/docs/grafana/latest/panels-visualizations/configure-standard-options/).
BYTES = "bytes"
BYTES_PER_SECOND = "Bps"
SECONDS = "s"
RATIO = "percentunit"
PER_SECOND = "ops"
COUNT = "short"

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"


@dataclass(frozen=True)
class Target:
    """One query of a panel: PromQL and the legend of its series."""

    expr: str
    legend: str


@dataclass(frozen=True, kw_only=True)
class PanelSpec:
    """One panel as data; :func:`render_panel` turns it into the Grafana panel.

    ``kind`` is ``stat`` (a big number, instant query), ``gauge`` (a ratio 0-1 on a dial,
    instant), ``bargauge`` (horizontal bars, instant) or ``timeseries`` (lines, range queries).
    ``grid`` is ``(x, y, w, h)`` with ``y`` counted from the top of the panel's row.
    ``thresholds`` are (value, colour) steps above ``base_color``; ``mappings`` (value, text,
    colour); ``colors`` and ``dashed`` style a timeseries' series by legend."""

    key: str
    id: int
    kind: str
    title: str
    description: str
    targets: tuple[Target, ...]
    grid: tuple[int, int, int, int]
    unit: str = COUNT
    thresholds: tuple[tuple[float, str], ...] = ()
    base_color: str = GREEN
    mappings: tuple[tuple[str, str, str], ...] = ()
    text_mode: common.BigValueTextMode = common.BigValueTextMode.AUTO
    display_name: str | None = None
    no_value: str | None = None
    colors: tuple[tuple[str, str], ...] = ()
    dashed: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowSpec:
    """A row (Grafana's collapsible header) and the panels under it."""

    id: int
    title: str
    panels: tuple[PanelSpec, ...]


_DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")

_Builder = stat.Panel | gauge.Panel | bargauge.Panel | timeseries.Panel


def render_panel(spec: PanelSpec, row_y: int, min_step: str, pods: Sequence[str]) -> _Builder:
    """The Grafana panel of a :class:`PanelSpec` whose row starts at ``row_y``."""
    x, y, w, h = spec.grid
    instant = spec.kind != "timeseries"
    queries = [
        _query(chr(ord("A") + i), t.expr, t.legend, min_step, instant=instant) for i, t in enumerate(spec.targets)
    ]
    reduce = common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
    panel: _Builder
    if spec.kind == "stat":
        panel = (
            stat.Panel()
            .unit(spec.unit)
            .thresholds(_thresholds(spec.base_color, spec.thresholds))
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .graph_mode(common.BigValueGraphMode.NONE)
            .text_mode(spec.text_mode)
            .reduce_options(reduce)
        )
        if spec.mappings:
            panel = panel.mappings(_value_map(spec.mappings))
        if spec.display_name is not None:
            panel = panel.display_name(spec.display_name)
        if spec.no_value is not None:
            panel = panel.no_value(spec.no_value)
    elif spec.kind == "gauge":
        panel = (
            gauge.Panel()
            .unit(RATIO)
            .min(0)
            .max(1)
            .thresholds(_thresholds(GREEN, spec.thresholds))
            .show_threshold_markers(True)
            .show_threshold_labels(False)
            .reduce_options(reduce)
        )
    elif spec.kind == "bargauge":
        panel = (
            bargauge.Panel()
            .unit(spec.unit)
            .min(0)
            .thresholds(_thresholds(GREEN, spec.thresholds))
            .display_mode(common.BarGaugeDisplayMode.BASIC)
            .orientation(common.VizOrientation.HORIZONTAL)
            .reduce_options(reduce)
        )
    else:
        panel = _timeseries(spec, pods)
    panel = panel.id(spec.id).title(spec.title).description(spec.description).datasource(_DATASOURCE)
    panel = panel.grid_pos(_grid(x, row_y + y, w, h))
    for query in queries:
        panel = panel.with_target(query)
    return panel


def _timeseries(spec: PanelSpec, pods: Sequence[str]) -> timeseries.Panel:
    """Lines over time; ``colors`` and ``dashed`` fix the look of series by legend (limits as
    dashed lines, failures in red), of each of ``pods`` when the legends name them."""
    panel = (
        timeseries.Panel()
        .unit(spec.unit)
        .min(0)
        .fill_opacity(10)
        .line_width(1)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )
    styles: dict[str, list[dashboard.DynamicConfigValue]] = {}
    for legend, color in spec.colors:
        fixed = {"mode": "fixed", "fixedColor": color}
        styles.setdefault(legend, []).append(dashboard.DynamicConfigValue(id_val="color", value=fixed))
    for legend in spec.dashed:
        dash = {"fill": "dash", "dash": [10, 10]}
        styles.setdefault(legend, []).append(dashboard.DynamicConfigValue(id_val="custom.lineStyle", value=dash))
    for legend, properties in styles.items():
        # byNames, not byName: its options are an object, which the 11.6 schema demands. With
        # several pods a legend is "<pod> <legend>", one name per pod.
        names = [f"{pod} {legend}" for pod in pods] if pods else [legend]
        matcher = dashboard.MatcherConfig(id_val="byNames", options={"mode": "include", "names": names})
        panel = panel.with_override(matcher, properties)
    return panel


def _query(ref: str, expr: str, legend: str, min_step: str, *, instant: bool) -> prometheus.Dataquery:
    query = prometheus.Dataquery().ref_id(ref).expr(expr).legend_format(legend).editor_mode(QueryEditorMode.CODE)
    query = query.interval(min_step)
    return query.instant() if instant else query.range()


def encode(document: object) -> str:
    """The dashboard as JSON, keys sorted and indented, an object or list that fits in
    :data:`JSON_WIDTH` columns on one line: a change shows as a small diff, and the ConfigMap is
    about a fifth smaller than with one value per line."""
    plain = json.loads(JSONEncoder(sort_keys=True).encode(document))
    return _compact(plain, 0, 0) + "\n"


def _compact(value: Any, level: int, key_width: int) -> str:
    flat = json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or 2 * level + key_width + len(flat) <= JSON_WIDTH:
        return flat
    pad = "  " * (level + 1)
    if isinstance(value, dict):
        items = []
        for key, item in sorted(value.items()):
            prefix = json.dumps(key, ensure_ascii=False) + ": "
            items.append(pad + prefix + _compact(item, level + 1, len(prefix)))
    else:
        items = [pad + _compact(item, level + 1, 0) for item in value]
    brackets = "{}" if isinstance(value, dict) else "[]"
    return brackets[0] + "\n" + ",\n".join(items) + "\n" + "  " * level + brackets[1]


def render_rows(
    builder: dashboard_builders.Dashboard, rows: Sequence[RowSpec], min_step: str, pods: Sequence[str]
) -> dashboard_builders.Dashboard:
    """``builder`` with every row and its panels, each row below the tallest panel of the one
    before; ``min_step`` is every query's minimum step, ``pods`` the pods the legends name (none
    for one pod)."""
    y = 0
    for row in rows:
        builder = builder.with_row(dashboard_builders.Row(row.title).id(row.id).grid_pos(_grid(0, y, 24, 1)))
        y += 1
        for panel in row.panels:
            builder = builder.with_panel(render_panel(panel, y, min_step, pods))
        y += max(panel.grid[1] + panel.grid[3] for panel in row.panels)
    return builder


def _grid(x: int, y: int, w: int, h: int) -> dashboard.GridPos:
    return dashboard.GridPos(h=h, w=w, x=x, y=y)


def _thresholds(base_color: str, steps: Sequence[tuple[float, str]]) -> dashboard_builders.ThresholdsConfig:
    # Grafana always reads the first step as -Infinity (it saves it as null, which the strict
    # 11.6 schema refuses), so its value here is a placeholder below every other step.
    base = min([0.0, *(value for value, _ in steps)])
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps(
            [dashboard.Threshold(value=base, color=base_color)]
            + [dashboard.Threshold(value=value, color=color) for value, color in steps]
        )
    )


def _value_map(mappings: Sequence[tuple[str, str, str]]) -> list[dashboard.ValueMapping]:
    return [
        dashboard.ValueMap(
            options={
                value: dashboard.ValueMappingResult(text=text, color=color, index=index)
                for index, (value, text, color) in enumerate(mappings)
            }
        )
    ]
