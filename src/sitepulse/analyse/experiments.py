"""Experiment readouts from stored exposures: counts by SQL, statistics by experiment_stats.

A visitor's variant is the one of their first exposure to the experiment; a
conversion is a (non-test) lead — or the configured event — after that first
exposure. Daily cumulative counts feed the sequential test, so the readout is
the one a marketer who had looked every day would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sitepulse.analyse.base import LEAD_FILTER, PERIOD_FILTER, Period, Reader
from sitepulse.analyse.experiment_stats import ExperimentReadout, VariantCounts, read_experiment
from sitepulse.config.analysis import ExperimentSettings

_EXPOSED = f"""
SELECT visitor_id, arg_min(props->>'variant', ts) AS variant, min(ts) AS first_ts
FROM events
WHERE {PERIOD_FILTER} AND type = 'exposure' AND name = ? AND visitor_id <> 0
GROUP BY visitor_id
"""
_LEAD_CONVERSIONS = f"""
SELECT visitor_id, ts FROM leads WHERE {LEAD_FILTER} AND visitor_id <> 0
"""
_EVENT_CONVERSIONS = f"""
SELECT visitor_id, ts FROM events
WHERE {PERIOD_FILTER} AND type = ? AND name = ? AND visitor_id <> 0
"""
# Per variant and day of first exposure: visitors, and those who converted after exposure.
_COUNTS = """
WITH exposed AS ({exposed}),
converted AS (
    SELECT x.visitor_id FROM exposed x JOIN ({conversions}) c
    ON c.visitor_id = x.visitor_id AND c.ts >= x.first_ts
    GROUP BY x.visitor_id
)
SELECT coalesce(variant, '(none)'), epoch_ms(date_trunc('day', first_ts)),
       count(*), count(c.visitor_id)
FROM exposed LEFT JOIN converted c USING (visitor_id)
GROUP BY ALL ORDER BY 2, 1
"""


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    """One experiment's readout over a period, with the settings it was read with."""

    name: str
    metric: str
    configured: bool
    readout: ExperimentReadout | None
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "configured": self.configured,
            "readout": self.readout.to_dict() if self.readout is not None else None,
            "problem": self.problem,
        }


def exposure_counts(
    reader: Reader, period: Period, settings: ExperimentSettings
) -> list[tuple[str, int, int, int]]:
    """Per variant and day of first exposure: (variant, day ms, visitors, converted); the
    readout and the daily looks both count from these rows."""
    if settings.metric == "lead":
        conversions, extra = _LEAD_CONVERSIONS, period.params
    else:
        kind, _, name = settings.metric.partition(":")
        conversions, extra = _EVENT_CONVERSIONS, [*period.params, kind, name]
    sql = _COUNTS.format(exposed=_EXPOSED, conversions=conversions)
    rows = reader.query(sql, [*period.params, settings.name, *extra])
    return [(str(v), int(day), int(n), int(c)) for v, day, n, c in rows]


def _history(
    rows: Sequence[tuple[str, int, int, int]],
) -> tuple[list[VariantCounts], list[list[VariantCounts]]]:
    names = sorted({row[0] for row in rows})
    days = sorted({row[1] for row in rows})
    totals = dict.fromkeys(names, (0, 0))
    by_day: dict[int, list[tuple[str, int, int]]] = {}
    for variant, day, n, c in rows:
        by_day.setdefault(day, []).append((variant, n, c))
    looks: list[list[VariantCounts]] = []
    for day in days:
        for variant, n, c in by_day[day]:
            seen, won = totals[variant]
            totals[variant] = (seen + n, won + c)
        looks.append([VariantCounts(v, totals[v][0], totals[v][1]) for v in names])
    final = looks.pop() if looks else []
    return final, looks


def experiment_report(
    reader: Reader, period: Period, settings: ExperimentSettings, *, configured: bool = True
) -> ExperimentReport:
    """Read one experiment; a problem (e.g. no control arm yet) is reported, not raised."""
    rows = exposure_counts(reader, period, settings)
    final, looks = _history(rows)
    names = [arm.name for arm in final]
    problem = None
    if len(final) < 2:
        problem = f"needs exposures to at least two variants (seen: {names or 'none'})"
    elif settings.control not in names:
        problem = f"no exposures to the control variant {settings.control!r} (seen: {names})"
    elif settings.split and set(names) - set(settings.split):
        problem = f"variants {sorted(set(names) - set(settings.split))} are not in the split"
    if problem is not None:
        return ExperimentReport(settings.name, settings.metric, configured, None, problem)
    weights = {name: settings.split[name] for name in names} if settings.split else None
    readout = read_experiment(
        final,
        control=settings.control,
        weights=weights,
        history=looks,
        alpha=settings.alpha,
        mde_relative=settings.mde_relative,
        baseline_rate=settings.baseline_rate,
    )
    return ExperimentReport(settings.name, settings.metric, configured, readout, None)


def experiments_report(
    reader: Reader, period: Period, configured: Sequence[ExperimentSettings]
) -> list[ExperimentReport]:
    """Every configured experiment plus any other with exposures (read with defaults, most
    exposed first).

    An unconfigured experiment's control is its "control" variant if there is one,
    else the first variant name in alphabetical order.
    """
    known = {e.name: e for e in configured}
    out = [experiment_report(reader, period, e) for e in configured]
    # Every exposed experiment's variants from one scan, rather than a scan per experiment.
    arms: dict[str, list[str]] = {}
    exposures: dict[str, int] = {}
    for name, variant, n in reader.query(
        f"SELECT name, props->>'variant', count(*) FROM events WHERE {PERIOD_FILTER}"
        " AND type = 'exposure' GROUP BY ALL ORDER BY 1, 2",
        period.params,
    ):
        found = arms.setdefault(str(name), [])
        exposures[str(name)] = exposures.get(str(name), 0) + int(n)
        if variant is not None:
            found.append(str(variant))
    # Most exposed first.
    for name in sorted(arms, key=lambda n: (-exposures[n], n)):
        variants = arms[name]
        if name in known:
            continue
        control = "control" if "control" in variants else (variants[0] if variants else "control")
        try:
            settings = ExperimentSettings(name=name, control=control)
        except ValueError:
            continue  # a name config could never hold; it still shows in the raw events
        out.append(experiment_report(reader, period, settings, configured=False))
    return out
