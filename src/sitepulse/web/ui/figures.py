"""Plotly figure specs for the dashboards' panels, built from the dashboards' JSON.

A spec is `{"data": [...], "layout": {...}}` (or `{"data": [], "empty": "why"}`) that
static/charts.js hands to `Plotly.react`. Only SVG trace types (bar, scatter, funnel,
indicator): no WebGL, so the page needs no `unsafe-eval`.

Plotly reads a small HTML subset in text (`<b>`, `<a href>`, entities), so every label
that came from visitors (page groups, paths, experiment and variant names) goes through
`plot_text`, which makes it plain text.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sitepulse.analyse.vitals import THRESHOLDS

Spec = dict[str, Any]

STATUS_COLOURS: Final = {"green": "#2a9d5b", "yellow": "#d79a00", "red": "#c8372d", None: "#8a94a3"}
RATING_COLOURS: Final = {"good": "#2a9d5b", "needs-improvement": "#d79a00", "poor": "#c8372d"}
CURRENT: Final = "#1f5fbf"
PREVIOUS: Final = "#a9b8cf"
TARGET_LINE: Final = {"color": "#1c2430", "width": 1.5, "dash": "dash"}


def plot_text(value: object, limit: int = 40) -> str:
    """Visitor text as Plotly plain text (its markup characters escaped), cut to `limit`
    characters so one long label cannot squeeze a chart; tables show the whole text."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _empty(why: str = "No data in this period.") -> Spec:
    return {"data": [], "empty": why}


def _hline(y: float, label: str) -> dict[str, Any]:
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": y,
        "y1": y,
        "line": TARGET_LINE,
        "label": {"text": label, "textposition": "end", "font": {"size": 11}},
    }


def leads_trend(panel: Mapping[str, Any]) -> Spec:
    """Leads per day as bars; the previous period's days as a line, aligned by position."""
    days = panel["days"]
    if not days:
        return _empty()
    dates = [d["date"] for d in days]
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": "Leads",
            "x": dates,
            "y": [d["leads"] for d in days],
            "marker": {"color": CURRENT},
            "hovertemplate": "%{x}: %{y} leads<extra></extra>",
        }
    ]
    previous = panel.get("previous")
    if previous:
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Previous period",
                "x": dates[: len(previous)],
                "y": [d["leads"] for d in previous],
                "customdata": [d["date"] for d in previous],
                "line": {"color": PREVIOUS, "width": 2},
                "hovertemplate": "%{customdata}: %{y} leads<extra>previous</extra>",
            }
        )
    layout = {
        "showlegend": bool(previous),
        "xaxis": {"type": "date", "tickformat": "%d %b"},
        "yaxis": {"rangemode": "tozero", "title": {"text": "leads"}},
        "bargap": 0.2,
    }
    return {"data": data, "layout": layout}


def gauge(value: float | None, target: float, top: float, status: str | None, pct: bool) -> Spec:
    """A bullet gauge of `value` against `target` on [0, top]."""
    if value is None:
        return _empty("No data yet.")
    scale = 100 if pct else 1
    return {
        "data": [
            {
                "type": "indicator",
                "mode": "gauge",
                "value": value * scale,
                "gauge": {
                    "shape": "bullet",
                    "axis": {
                        "range": [0, max(top, value) * scale],
                        "ticksuffix": "%" if pct else "",
                    },
                    "bar": {"color": STATUS_COLOURS.get(status, CURRENT), "thickness": 0.6},
                    "threshold": {
                        "line": {"color": "#1c2430", "width": 2},
                        "thickness": 0.9,
                        "value": target * scale,
                    },
                    "bgcolor": "#eef0f3",
                    "borderwidth": 0,
                },
            }
        ],
        "layout": {"margin": {"l": 12, "r": 16, "t": 4, "b": 24}},
    }


def channel_bars(rows: Sequence[Mapping[str, Any]], key: str, title: str, digits: int = 0) -> Spec:
    """Horizontal bars per channel (largest on top); previous values beside them if present."""
    if not rows:
        return _empty()
    ordered = list(reversed(rows))
    labels = [plot_text(r[key]) for r in ordered]
    fmt = f"%{{x:,.{digits}f}}"
    data: list[dict[str, Any]] = []
    if any(r.get("previous") is not None for r in rows):
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": "Previous period",
                "y": labels,
                "x": [r.get("previous") or 0 for r in ordered],
                "marker": {"color": PREVIOUS},
                "hovertemplate": f"%{{y}}: {fmt}<extra>previous</extra>",
            }
        )
    data.append(
        {
            "type": "bar",
            "orientation": "h",
            "name": "This period",
            "y": labels,
            "x": [r.get("value") or 0 for r in ordered],
            "marker": {"color": CURRENT},
            "hovertemplate": f"%{{y}}: {fmt}<extra></extra>",
        }
    )
    return {
        "data": data,
        "layout": {
            "barmode": "group",
            "showlegend": len(data) > 1,
            "xaxis": {"title": {"text": title}, "rangemode": "tozero"},
            "margin": {"l": 8},
            "height": max(180, 40 + 28 * len(rows) * len(data)),
        },
    }


def funnel(panel: Mapping[str, Any]) -> Spec:
    """The lead funnel: units per step, with the share of the first step."""
    steps = panel["steps"]
    if not steps or not steps[0]["units"]:
        return _empty()
    return {
        "data": [
            {
                "type": "funnel",
                "y": [plot_text(s["name"]) for s in steps],
                "x": [s["units"] for s in steps],
                "textinfo": "value+percent initial",
                "marker": {"color": CURRENT},
                "connector": {"fillcolor": "#e8f0fc"},
                "hovertemplate": "%{y}: %{x:,} (%{percentInitial:.1%} of entries)<extra></extra>",
            }
        ],
        "layout": {"margin": {"l": 8}},
    }


def attribution(panel: Mapping[str, Any]) -> Spec:
    """Leads credited to each channel under every model, side by side."""
    rows = panel["rows"]
    if not rows:
        return _empty()
    channels = [plot_text(r["key"]) for r in rows]
    data = [
        {
            "type": "bar",
            "name": model.replace("_", " "),
            "x": channels,
            "y": [r["leads"][model] for r in rows],
            "hovertemplate": "%{x}: %{y:.1f} leads<extra>" + model.replace("_", " ") + "</extra>",
        }
        for model in panel["models"]
    ]
    return {
        "data": data,
        "layout": {"barmode": "group", "yaxis": {"title": {"text": "leads credited"}}},
    }


def score_histogram(panel: Mapping[str, Any]) -> Spec:
    """Scored leads per 10-point score bin, stacked by channel."""
    rows = [r for r in panel["rows"] if r["scored"]]
    if not rows:
        return _empty("No scored leads in this period.")
    bins = panel["bins"]
    labels = [f"{lo}–{hi - 1 if hi < 100 else 100}" for lo, hi in itertools.pairwise(bins)]
    data = [
        {
            "type": "bar",
            "name": plot_text(r["channel"]),
            "x": labels,
            "y": r["histogram"],
            "hovertemplate": "score %{x}: %{y} leads<extra>%{fullData.name}</extra>",
        }
        for r in rows
    ]
    return {
        "data": data,
        "layout": {
            "barmode": "stack",
            "xaxis": {"title": {"text": "lead score"}, "type": "category"},
            "yaxis": {"title": {"text": "leads"}},
        },
    }


def experiments(panel: Mapping[str, Any]) -> Spec:
    """Conversion rate of every arm of every experiment that has a readout."""
    bars = [
        (f"{plot_text(e['name'], 24)} · {plot_text(a['name'], 24)}", a)
        for e in panel["experiments"]
        for a in e["arms"]
    ]
    if not bars:
        return _empty("No experiment has exposures to two variants yet.")
    bars.reverse()
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": [label for label, _ in bars],
                "x": [a["rate"] for _, a in bars],
                "customdata": [[a["conversions"], a["visitors"]] for _, a in bars],
                "marker": {"color": CURRENT},
                "hovertemplate": "%{y}: %{x:.2%} (%{customdata[0]} of %{customdata[1]})"
                "<extra></extra>",
            }
        ],
        "layout": {
            "xaxis": {"tickformat": ".1%", "title": {"text": "conversion rate"}},
            "margin": {"l": 8},
            "height": max(160, 40 + 26 * len(bars)),
        },
    }


def channel_conversion(panel: Mapping[str, Any], target: float) -> Spec:
    """Conversion rate per channel against the target, coloured by status."""
    rows = [r for r in panel["rows"] if r["conversion_rate"]["value"] is not None]
    if not rows:
        return _empty()
    return {
        "data": [
            {
                "type": "bar",
                "x": [plot_text(r["channel"]) for r in rows],
                "y": [r["conversion_rate"]["value"] for r in rows],
                "marker": {
                    "color": [STATUS_COLOURS.get(r["conversion_rate"]["status"]) for r in rows]
                },
                "hovertemplate": "%{x}: %{y:.2%}<extra></extra>",
            }
        ],
        "layout": {
            "yaxis": {"tickformat": ".1%", "rangemode": "tozero"},
            "shapes": [_hline(target, f"target {target:.0%}")],
        },
    }


def vitals_by_page(panel: Mapping[str, Any]) -> Spec:
    """LCP p75 per page group, coloured by its rating, with the good and poor thresholds."""
    rows = [r for r in panel["rows"] if r["metrics"]["LCP"]["p75"] is not None]
    if not rows:
        return _empty("No LCP measurements in this period.")
    lcp = panel["thresholds"]["LCP"]
    rows = rows[:15]
    return {
        "data": [
            {
                "type": "bar",
                "x": [plot_text(r["page_group"]) for r in rows],
                "y": [r["metrics"]["LCP"]["p75"] for r in rows],
                "marker": {
                    "color": [RATING_COLOURS.get(r["metrics"]["LCP"]["rating"]) for r in rows]
                },
                "hovertemplate": "%{x}: LCP p75 %{y:,.0f} ms<extra></extra>",
            }
        ],
        "layout": {
            "yaxis": {"title": {"text": "LCP p75 (ms)"}, "rangemode": "tozero"},
            "xaxis": {"type": "category"},
            "shapes": [_hline(lcp["good"], "good"), _hline(lcp["poor"], "poor")],
        },
    }


def conversion_by_lcp(panel: Mapping[str, Any]) -> Spec:
    """Conversion rate of sessions by their landing page's LCP range."""
    rows = [r for r in panel["by_range"] if r["sessions"]]
    if not rows:
        return _empty("No landing-page LCP measurements in this period.")
    lcp = THRESHOLDS["LCP"]
    colours = [
        RATING_COLOURS[lcp.rate(math.inf if r["upper_ms"] is None else r["upper_ms"])] for r in rows
    ]
    return {
        "data": [
            {
                "type": "bar",
                "x": [r["bucket"] for r in rows],
                "y": [r["conversion_rate"] for r in rows],
                "customdata": [[r["converting_sessions"], r["sessions"]] for r in rows],
                "marker": {"color": colours},
                "hovertemplate": "LCP %{x}: %{y:.2%} (%{customdata[0]} of %{customdata[1]}"
                " sessions)<extra></extra>",
            }
        ],
        "layout": {
            "xaxis": {"type": "category", "title": {"text": "landing page LCP"}},
            "yaxis": {"tickformat": ".1%", "rangemode": "tozero", "title": {"text": "conversion"}},
        },
    }
