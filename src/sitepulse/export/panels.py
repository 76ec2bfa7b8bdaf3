"""The panel model of the exported dashboards: panels, queries, colour bands and layout.

export/dashboards.py defines the executive and marketing dashboards with it;
export/grafana.py renders them to Grafana JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from sitepulse.analyse.kpis import YELLOW_BAND, Target
from sitepulse.analyse.vitals import THRESHOLDS

Kind = Literal["stat", "timeseries", "barchart", "table", "gauge", "piechart", "text"]
KINDS: Final[tuple[Kind, ...]] = (
    "stat",
    "timeseries",
    "barchart",
    "table",
    "gauge",
    "piechart",
    "text",
)
Status = Literal["green", "yellow", "red"]
GRID_COLUMNS: Final = 24


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Green / yellow / red bands of a value.

    Higher is better: green from `green` up (only above it when `strict`), yellow from
    `yellow` up to there, red below. Lower is better: green up to `green`, yellow up to
    `yellow`, red above; a value on an edge gets the better colour, as Google rates vitals.
    """

    better: Literal["higher", "lower"]
    green: float
    yellow: float
    strict: bool = False

    def status(self, value: float) -> Status:
        """The colour of `value`."""
        if self.better == "higher":
            if value > self.green or (value == self.green and not self.strict):
                return "green"
            return "yellow" if value >= self.yellow else "red"
        if value <= self.green:
            return "green"
        return "yellow" if value <= self.yellow else "red"

    def steps(self) -> tuple[tuple[Status, float | None], ...]:
        """As Grafana applies them: each colour from its value (inclusive) upwards."""
        up = math.inf
        if self.better == "higher":
            edge = math.nextafter(self.green, up) if self.strict else self.green
            return (("red", None), ("yellow", self.yellow), ("green", edge))
        return (
            ("green", None),
            ("yellow", math.nextafter(self.green, up)),
            ("red", math.nextafter(self.yellow, up)),
        )


def target_bands(target: Target, band: float = YELLOW_BAND) -> Thresholds:
    """A KPI target's status rule (analyse/kpis.py) as colour bands."""
    # Rounded so 3 % x 0.8 reads 0.024, not 0.023999999999999997; kpis.py allows that slack.
    yellow = float(f"{target.value * (1 - band):.12g}")
    return Thresholds("higher", target.value, yellow, strict=target.strict)


def rating_bands(metric: str) -> Thresholds:
    """Google's good / needs improvement / poor for a Web Vital, in its histogram's unit."""
    threshold = THRESHOLDS[metric]
    scale = 1.0 if metric == "CLS" else 1000.0  # thresholds in ms, histograms in seconds
    return Thresholds("lower", threshold.good / scale, threshold.poor / scale)


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL expression; unit, decimals and thresholds override the panel's for it."""

    expr: str
    legend: str
    unit: str | None = None
    decimals: int | None = None
    thresholds: Thresholds | None = None


@dataclass(frozen=True, slots=True)
class ValueText:
    """Show `text` instead of the number `value`."""

    value: float
    text: str


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel; `builtin` is the id of the built-in UI panel it mirrors.

    For bar charts and tables, `rows` is the label naming a row (a bar), `columns` a label
    whose values become side-by-side columns, and `order_by` the label rows are sorted by.
    `interval` is the smallest step (e.g. "1d" for daily bars). Grafana's units: percentunit
    (0-1 shown as %), s, none.
    """

    builtin: str
    title: str
    kind: Kind
    description: str
    queries: tuple[Query, ...] = ()
    unit: str = "none"
    decimals: int | None = None
    thresholds: Thresholds | None = None
    mappings: tuple[ValueText, ...] = ()
    width: int = 6
    height: int = 5
    rows: str | None = None
    columns: str | None = None
    order_by: str | None = None
    stacked: bool = False
    interval: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A dashboard: its panels in reading order (see `layout`)."""

    uid: str
    title: str
    description: str
    tags: tuple[str, ...]
    panels: tuple[Panel, ...]
    time_from: str = "now-7d"
    refresh: str = "1m"


@dataclass(frozen=True, slots=True)
class GridPos:
    """Where a panel sits: column x of 24, row y, width w, height h (grid units)."""

    x: int
    y: int
    w: int
    h: int


def layout(panels: Sequence[Panel]) -> tuple[GridPos, ...]:
    """Rows filled left to right; a panel that does not fit starts a new row below the tallest."""
    out: list[GridPos] = []
    x = y = row_height = 0
    for panel in panels:
        if not 0 < panel.width <= GRID_COLUMNS:
            raise ValueError(f"panel {panel.builtin!r}: width {panel.width} is not 1..24")
        if x + panel.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        out.append(GridPos(x, y, panel.width, panel.height))
        x += panel.width
        row_height = max(row_height, panel.height)
    return tuple(out)
