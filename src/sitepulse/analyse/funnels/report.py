"""What a funnel answers: per step, the units reaching it, conversions, drop-offs, times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sitepulse.analyse.base import Period
from sitepulse.analyse.funnels.definition import Breakdown, FunnelDefinition


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of a funnel (or of one segment of it)."""

    step: int  # 1-based
    name: str
    units: int
    conversion_from_first: float | None
    conversion_from_previous: float | None
    drop_off: int  # units that reached the previous step but not this one; 0 for step 1
    drop_off_rate: float | None
    median_ms_from_previous: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FunnelSegment:
    """The funnel for the units with one breakdown value (or for all of them)."""

    value: str
    steps: tuple[StepResult, ...]
    median_time_to_convert_ms: float | None

    @property
    def entered(self) -> int:
        return self.steps[0].units

    @property
    def converted(self) -> int:
        return self.steps[-1].units

    @property
    def conversion_rate(self) -> float | None:
        return _ratio(self.converted, self.entered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "entered": self.entered,
            "converted": self.converted,
            "conversion_rate": self.conversion_rate,
            "median_time_to_convert_ms": self.median_time_to_convert_ms,
            "steps": [step.to_dict() for step in self.steps],
        }


def _segment(
    value: str,
    names: Sequence[str],
    counts: Sequence[int],
    gaps: Sequence[float | None],
    to_convert: float | None,
) -> FunnelSegment:
    steps = []
    for i, (name, units) in enumerate(zip(names, counts, strict=True)):
        previous = counts[i - 1] if i else units
        steps.append(
            StepResult(
                step=i + 1,
                name=name,
                units=units,
                conversion_from_first=_ratio(units, counts[0]),
                conversion_from_previous=_ratio(units, previous),
                drop_off=previous - units,
                drop_off_rate=_ratio(previous - units, previous),
                median_ms_from_previous=gaps[i - 1] if i else None,
            )
        )
    return FunnelSegment(value, tuple(steps), to_convert)


@dataclass(frozen=True, slots=True)
class FunnelReport:
    """A funnel over one period: the totals, and segments when broken down."""

    definition: FunnelDefinition
    period: Period
    total: FunnelSegment
    breakdown: Breakdown | None = None
    experiment: str | None = None
    segments: tuple[FunnelSegment, ...] = field(default=())

    @property
    def steps(self) -> tuple[StepResult, ...]:
        return self.total.steps

    @property
    def median_time_to_convert_ms(self) -> float | None:
        return self.total.median_time_to_convert_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "funnel": self.definition.to_dict(),
            "site": self.period.site,
            "start_ms": self.period.start_ms,
            "end_ms": self.period.end_ms,
            "breakdown": None if self.breakdown is None else self.breakdown.value,
            "experiment": self.experiment,
            **self.total.to_dict(),
            "segments": [segment.to_dict() for segment in self.segments],
        }
