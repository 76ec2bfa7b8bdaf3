"""When visits happen: a B2B diurnal and weekly curve, and who comes back."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from sitepulse.demo.catalog import DEFAULT_HOST
from sitepulse.demo.visits import DAY_MS, Visit, Visitor, moved, new_visitor, plan_visit

# Relative traffic per local hour on a weekday: dead at night, a late-morning peak,
# a lunch dip and a second mid-afternoon peak.
HOURLY = (
    0.18,
    0.12,
    0.09,
    0.08,
    0.08,
    0.12,
    0.25,
    0.50,
    0.90,
    1.35,
    1.60,
    1.70,
    1.50,
    1.55,
    1.70,
    1.60,
    1.40,
    1.15,
    0.90,
    0.75,
    0.65,
    0.55,
    0.42,
    0.28,
)
WEEKDAY = (1.05, 1.12, 1.10, 1.05, 0.90, 0.42, 0.45)  # Monday first
_MEAN = sum(HOURLY) * sum(WEEKDAY) / (24 * 7)
PEAK_WEIGHT = max(HOURLY) * max(WEEKDAY) / _MEAN


def diurnal_weight(ts_ms: int, tz: dt.tzinfo) -> float:
    """Traffic intensity at `ts_ms` relative to the weekly mean (which is 1.0)."""
    local = dt.datetime.fromtimestamp(ts_ms / 1000, tz)
    return HOURLY[local.hour] * WEEKDAY[local.weekday()] / _MEAN


def next_arrival(
    rng: random.Random, after_ms: int, per_minute: float, tz: dt.tzinfo, *, strength: float = 1.0
) -> int:
    """The next visit start after `after_ms` for a mean rate of `per_minute` visits.

    A Poisson process thinned by the diurnal curve, so busy hours are busy and nights
    quiet, yet arrivals stay random. `strength` 0 flattens the curve, 1 applies it fully.
    """
    peak = 1.0 + strength * (PEAK_WEIGHT - 1.0)
    t = float(after_ms)
    while True:
        t += rng.expovariate(per_minute * peak / 60_000)
        weight = 1.0 + strength * (diurnal_weight(int(t), tz) - 1.0)
        if rng.random() * peak <= weight:
            return int(t)


class VisitorPool:
    """People who may come back: same address and browser the same day, or by consented id."""

    def __init__(
        self, rng: random.Random, *, return_share: float = 0.2, max_visitors: int = 5_000
    ) -> None:
        self._rng = rng
        self._return_share = return_share
        self._max = max_visitors
        self._seen: list[tuple[Visitor, int]] = []

    def visitor_for(self, start_ms: int) -> tuple[Visitor, bool]:
        """The visitor of a visit starting at `start_ms`, and whether they are returning."""
        rng = self._rng
        if self._seen and rng.random() < self._return_share:
            # Recent visitors are the likeliest to return.
            back = min(int(rng.expovariate(1 / 150)), len(self._seen) - 1)
            index = len(self._seen) - 1 - back
            visitor, last_ms = self._seen[index]
            same_day = last_ms // DAY_MS == start_ms // DAY_MS
            if visitor.consented or same_day:
                if not same_day:
                    visitor = moved(rng, visitor)
                self._seen[index] = (visitor, start_ms)
                return visitor, True
        visitor = new_visitor(rng)
        if not visitor.bot:
            self._seen.append((visitor, start_ms))
            if len(self._seen) > self._max:
                del self._seen[: self._max // 5]
        return visitor, False


def plan_traffic(
    rng: random.Random,
    start_ms: int,
    end_ms: int,
    *,
    visits_per_day: float,
    timezone: str,
    host: str = DEFAULT_HOST,
    pool: VisitorPool | None = None,
) -> Iterator[Visit]:
    """Every visit starting in [start_ms, end_ms), in start order."""
    tz = ZoneInfo(timezone)
    pool = pool or VisitorPool(rng)
    per_minute = visits_per_day / 1440
    t = next_arrival(rng, start_ms, per_minute, tz)
    while t < end_ms:
        visitor, returning = pool.visitor_for(t)
        yield plan_visit(rng, t, visitor=visitor, returning=returning, host=host)
        t = next_arrival(rng, t, per_minute, tz)
