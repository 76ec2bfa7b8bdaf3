"""Grafana provisioning from the dashboard definitions: a data source, a provider, two dashboards.

Layout of the export folder:

    provisioning/datasources/sitepulse.yaml   Prometheus data source with a fixed uid
    provisioning/dashboards/sitepulse.yaml    file provider reading DIR/dashboards
    dashboards/sitepulse-executive.json
    dashboards/sitepulse-marketing.json

Output is deterministic (sorted keys, ids by position), so exporting again writes the
same bytes and a diff shows only real changes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from sitepulse.export.dashboards import DASHBOARDS, SITE_VARIABLE_QUERY
from sitepulse.export.panels import Dashboard, GridPos, Panel, Query, Thresholds, layout

SCHEMA_VERSION: Final = 39
DEFAULT_DATASOURCE_UID: Final = "sitepulse-prometheus"
DEFAULT_PROMETHEUS_URL: Final = "http://localhost:9090"
DATASOURCE_NAME: Final = "Prometheus (sitepulse)"
DATASOURCE_VARIABLE: Final = "datasource"
# Prometheus' scrape interval as Grafana should assume it; $__rate_interval is 4x this.
SCRAPE_INTERVAL: Final = "15s"
_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_NEUTRAL = "blue"  # panels without a target: informational, as the seed's legend has it
_DS_REF: Final = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}
_REDUCE: Final = {"calcs": ["lastNotNull"], "fields": "", "values": False}
_LEGEND: Final = {"displayMode": "list", "placement": "bottom", "showLegend": True}
_TOOLTIP: Final = {"mode": "multi", "sort": "none"}


def _ref_id(index: int) -> str:
    return chr(ord("A") + index)


def _thresholds(thresholds: Thresholds | None) -> dict[str, Any]:
    if thresholds is None:
        return {"mode": "absolute", "steps": [{"color": _NEUTRAL, "value": None}]}
    steps = [{"color": color, "value": value} for color, value in thresholds.steps()]
    return {"mode": "absolute", "steps": steps}


def _instant(panel: Panel) -> bool:
    return panel.kind != "timeseries"


def _target(panel: Panel, index: int, query: Query) -> dict[str, Any]:
    instant = _instant(panel)
    return {
        "datasource": _DS_REF,
        "editorMode": "code",
        "expr": query.expr,
        "format": "table" if panel.kind in ("table", "barchart") else "time_series",
        "instant": instant,
        "legendFormat": query.legend,
        "range": not instant,
        "refId": _ref_id(index),
    }


def _value_column(panel: Panel, index: int) -> str:
    # Grafana names the value column of a table-format result "Value", or "Value #<refId>"
    # when the panel has several queries.
    return "Value" if len(panel.queries) == 1 else f"Value #{_ref_id(index)}"


def _overrides(panel: Panel) -> list[dict[str, Any]]:
    out = []
    for index, query in enumerate(panel.queries):
        properties: list[dict[str, Any]] = []
        if query.unit is not None:
            properties.append({"id": "unit", "value": query.unit})
        if query.decimals is not None:
            properties.append({"id": "decimals", "value": query.decimals})
        if query.thresholds is not None:
            properties.append({"id": "thresholds", "value": _thresholds(query.thresholds)})
            if panel.kind == "table":
                properties.append({"id": "custom.cellOptions", "value": {"type": "color-text"}})
        if not properties or len(panel.queries) == 1:
            continue
        # Tables are renamed by column (see _transformations); other panels keep frames.
        matcher = (
            {"id": "byName", "options": query.legend}
            if panel.kind == "table"
            else {"id": "byFrameRefID", "options": _ref_id(index)}
        )
        out.append({"matcher": matcher, "properties": properties})
    return out


def _defaults(panel: Panel) -> dict[str, Any]:
    only = panel.queries[0] if len(panel.queries) == 1 else None
    unit = only.unit if only is not None and only.unit is not None else panel.unit
    decimals = only.decimals if only is not None and only.decimals is not None else panel.decimals
    thresholds = only.thresholds if only is not None and only.thresholds else panel.thresholds
    by_status = panel.kind in ("stat", "gauge", "table")
    defaults: dict[str, Any] = {
        "color": {"mode": "thresholds" if by_status else "palette-classic"},
        "mappings": [
            {
                "type": "value",
                "options": {
                    f"{m.value:g}": {"color": "text", "index": i, "text": m.text}
                    for i, m in enumerate(panel.mappings)
                },
            }
        ]
        if panel.mappings
        else [],
        "thresholds": _thresholds(thresholds),
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if panel.kind == "timeseries":
        bars = panel.interval is not None
        defaults["custom"] = {
            "drawStyle": "bars" if bars else "line",
            "fillOpacity": 80 if bars else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if panel.stacked else "none"},
        }
    elif panel.kind == "barchart":
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 1}
    elif panel.kind == "table":
        cells = "color-text" if thresholds is not None else "auto"
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": cells}}
    return defaults


def _options(panel: Panel) -> dict[str, Any]:
    kind = panel.kind
    if kind == "stat":
        return {
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": _REDUCE,
            "showPercentChange": False,
            "textMode": "value_and_name" if len(panel.queries) > 1 else "value",
            "wideLayout": True,
        }
    if kind == "gauge":
        return {
            "orientation": "auto",
            "reduceOptions": _REDUCE,
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
        }
    if kind == "timeseries":
        return {"legend": _LEGEND, "tooltip": _TOOLTIP}
    if kind == "piechart":
        return {
            "displayLabels": ["percent"],
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "showLegend": True,
                "values": ["value", "percent"],
            },
            "pieType": "pie",
            "reduceOptions": _REDUCE,
            "tooltip": _TOOLTIP,
        }
    if kind == "barchart":
        options: dict[str, Any] = {
            "barWidth": 0.9,
            "groupWidth": 0.7,
            "legend": _LEGEND,
            "orientation": "horizontal",
            "showValue": "auto",
            "stacking": "normal" if panel.stacked else "none",
            "tooltip": _TOOLTIP,
            "xTickLabelRotation": 0,
        }
        if panel.rows is not None and panel.columns is None:
            options["xField"] = panel.rows
        return options
    if kind == "table":
        return {
            "cellHeight": "sm",
            "footer": {"fields": "", "reducer": ["sum"], "show": False},
            "showHeader": True,
        }
    return {"content": panel.text, "mode": "markdown"}


def _transformations(panel: Panel) -> list[dict[str, Any]]:
    if panel.kind not in ("table", "barchart"):
        return []
    if panel.columns is not None:
        # One row per `rows` value, one column per `columns` value: bars side by side.
        matrix = {
            "columnField": panel.columns,
            "emptyValue": "zero",
            "rowField": panel.rows,
            "valueField": "Value",
        }
        return [{"id": "groupingToMatrix", "options": matrix}]
    steps: list[dict[str, Any]] = []
    if len(panel.queries) > 1:
        steps.append({"id": "merge", "options": {}})
    hidden = {"Time": True}
    if panel.order_by is not None and panel.order_by != panel.rows:
        hidden[panel.order_by] = True
    if panel.order_by is not None:
        steps.append({"id": "sortBy", "options": {"sort": [{"field": panel.order_by}]}})
    renames = (
        {_value_column(panel, i): q.legend for i, q in enumerate(panel.queries)}
        if panel.kind == "table"
        else {}
    )
    steps.append(
        {
            "id": "organize",
            "options": {"excludeByName": hidden, "indexByName": {}, "renameByName": renames},
        }
    )
    return steps


def _panel(panel: Panel, panel_id: int, pos: GridPos) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": panel.description,
        "fieldConfig": {"defaults": _defaults(panel), "overrides": _overrides(panel)},
        "gridPos": {"h": pos.h, "w": pos.w, "x": pos.x, "y": pos.y},
        "id": panel_id,
        "options": _options(panel),
        "title": panel.title,
        "type": panel.kind,
    }
    if panel.kind != "text":
        out["datasource"] = _DS_REF
        out["targets"] = [_target(panel, i, q) for i, q in enumerate(panel.queries)]
        out["transformations"] = _transformations(panel)
    if panel.interval is not None:
        out["interval"] = panel.interval
    return out


def _templating(datasource_uid: str) -> dict[str, Any]:
    datasource = {
        "current": {"selected": False, "text": DATASOURCE_NAME, "value": datasource_uid},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": DATASOURCE_VARIABLE,
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }
    site = {
        "current": {},
        "datasource": _DS_REF,
        "definition": SITE_VARIABLE_QUERY,
        "hide": 0,
        "includeAll": False,
        "label": "Site",
        "multi": False,
        "name": "site",
        "options": [],
        "query": SITE_VARIABLE_QUERY,
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    return {"list": [datasource, site]}


def dashboard_json(dashboard: Dashboard, *, datasource_uid: str) -> dict[str, Any]:
    """The Grafana dashboard model of `dashboard` (schemaVersion 39)."""
    positions = layout(dashboard.panels)
    return {
        "annotations": {"list": []},
        "description": dashboard.description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "liveNow": False,
        "panels": [
            _panel(panel, i + 1, pos)
            for i, (panel, pos) in enumerate(zip(dashboard.panels, positions, strict=True))
        ],
        "refresh": dashboard.refresh,
        "schemaVersion": SCHEMA_VERSION,
        "tags": list(dashboard.tags),
        "templating": _templating(datasource_uid),
        "time": {"from": dashboard.time_from, "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": dashboard.title,
        "uid": dashboard.uid,
        "version": 1,
        "weekStart": "",
    }


def datasource_yaml(*, prometheus_url: str, datasource_uid: str) -> dict[str, Any]:
    """Grafana's data source provisioning for the Prometheus that scrapes sitepulse."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "access": "proxy",
                "editable": False,
                "isDefault": False,
                "jsonData": {"timeInterval": SCRAPE_INTERVAL},
                "name": DATASOURCE_NAME,
                "type": "prometheus",
                "uid": datasource_uid,
                "url": prometheus_url,
            }
        ],
    }


def provider_yaml(dashboards_dir: Path) -> dict[str, Any]:
    """Grafana's dashboard provisioning: a file provider reading `dashboards_dir`."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "allowUiUpdates": False,
                "disableDeletion": False,
                "folder": "sitepulse",
                "name": "sitepulse",
                "options": {"foldersFromFilesStructure": False, "path": str(dashboards_dir)},
                "orgId": 1,
                "type": "file",
                "updateIntervalSeconds": 30,
            }
        ],
    }


_HEADER = "# Written by `sitepulse export grafana`; export again rather than edit.\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _yaml(data: dict[str, Any]) -> str:
    body = yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True)
    return _HEADER + body


def export_grafana(
    out_dir: Path,
    *,
    prometheus_url: str = DEFAULT_PROMETHEUS_URL,
    datasource_uid: str = DEFAULT_DATASOURCE_UID,
    dashboards: Sequence[Dashboard] = DASHBOARDS,
) -> list[Path]:
    """Write Grafana provisioning and dashboards under `out_dir`; returns the files written."""
    if not prometheus_url.startswith(("http://", "https://")):
        raise ValueError(f"prometheus_url must be an http(s) URL (got {prometheus_url!r})")
    if not _UID.match(datasource_uid):
        raise ValueError(f"datasource_uid must be 1-40 of A-Z a-z 0-9 _ - (got {datasource_uid!r})")
    # Grafana reads the provider's path from its own working directory: make it absolute,
    # from the folder as the user named it (no symlinks resolved).
    root = Path(os.path.abspath(out_dir))
    if root.exists() and not root.is_dir():
        raise ValueError(f"{out_dir} exists and is not a folder")
    board_dir = root / "dashboards"
    provisioning = root / "provisioning"
    source = datasource_yaml(prometheus_url=prometheus_url, datasource_uid=datasource_uid)
    written = [
        _write(provisioning / "datasources" / "sitepulse.yaml", _yaml(source)),
        _write(provisioning / "dashboards" / "sitepulse.yaml", _yaml(provider_yaml(board_dir))),
    ]
    for dashboard in dashboards:
        model = dashboard_json(dashboard, datasource_uid=datasource_uid)
        text = json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        written.append(_write(board_dir / f"{dashboard.uid}.json", text))
    return written
