"""An experiment's daily looks: cumulative counts per variant and the running p-values.

The counts come from the same query as the readout (`experiments.exposure_counts`), so the last
look is the readout's numbers and each earlier one is what a reader saw that day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sitepulse.analyse.base import Period, Reader
from sitepulse.analyse.experiment_stats import VariantCounts
from sitepulse.analyse.experiments import exposure_counts
from sitepulse.analyse.sequential import always_valid_p_values
from sitepulse.config.analysis import ExperimentSettings


@dataclass(frozen=True, slots=True)
class Look:
    """The cumulative counts by the end of one day (its UTC midnight, epoch ms)."""

    day_ms: int
    arms: tuple[VariantCounts, ...]
    # Each variant against the control: the always-valid p-value up to this look
    # (before the Holm adjustment across variants that the verdict applies).
    p_values: Mapping[str, float]


def daily_looks(
    reader: Reader, period: Period, settings: ExperimentSettings, *, mixing_sd: float
) -> list[Look]:
    """One look per day with exposures, oldest first; empty without a control arm."""
    rows = exposure_counts(reader, period, settings)
    names = sorted({row[0] for row in rows})
    days = sorted({row[1] for row in rows})
    totals = dict.fromkeys(names, (0, 0))
    by_day: dict[int, list[tuple[str, int, int]]] = {}
    for variant, day, seen, won in rows:
        by_day.setdefault(day, []).append((variant, seen, won))
    snapshots: list[tuple[int, tuple[VariantCounts, ...]]] = []
    for day in days:
        for variant, seen, won in by_day[day]:
            total_seen, total_won = totals[variant]
            totals[variant] = (total_seen + seen, total_won + won)
        snapshots.append((day, tuple(VariantCounts(v, *totals[v]) for v in names)))
    control = settings.control
    if control not in names or not snapshots:
        return []
    index = names.index(control)
    running: dict[str, list[float]] = {}
    for i, name in enumerate(names):
        if name == control:
            continue
        p_values = always_valid_p_values(
            [arms[index].visitors for _, arms in snapshots],
            [arms[index].conversions for _, arms in snapshots],
            [arms[i].visitors for _, arms in snapshots],
            [arms[i].conversions for _, arms in snapshots],
            mixing_sd=mixing_sd,
        )
        running[name] = [float(p) for p in p_values]
    return [
        Look(day, arms, {name: ps[n] for name, ps in running.items()})
        for n, (day, arms) in enumerate(snapshots)
    ]
