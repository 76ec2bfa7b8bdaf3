"""Tiers and follow-up deadlines: business days and hours in the site's time zone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sitepulse.config.scoring import WEEKDAYS, BusinessHoursConfig, TierConfig


def _ranked(tiers: Sequence[TierConfig]) -> list[TierConfig]:
    return sorted(tiers, key=lambda tier: -tier.min_score)


def _tier_in(ranked: Sequence[TierConfig], total: float) -> TierConfig:
    for tier in ranked:
        if total >= tier.min_score:
            return tier
    return ranked[-1]


def tier_for(tiers: Sequence[TierConfig], total: float) -> TierConfig:
    """The tier whose band holds `total`: the highest `min_score` not above it."""
    return _tier_in(_ranked(tiers), total)


def _local(ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, zone)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def is_business_day(day: date, hours: BusinessHoursConfig) -> bool:
    """True when `day` is a working weekday and not a holiday."""
    return WEEKDAYS[day.weekday()] in hours.weekdays and day not in hours.holidays


def _hours_of(day: date, hours: BusinessHoursConfig, zone: ZoneInfo) -> tuple[int, int]:
    # Wall-clock times on that date: zoneinfo gives the offset in force then, so a DST
    # change moves the UTC instants, not the office hours.
    opens = datetime.combine(day, hours.opens_at, tzinfo=zone)
    closes = datetime.combine(day, hours.closes_at, tzinfo=zone)
    return _ms(opens), _ms(closes)


def _next_business_day(day: date, hours: BusinessHoursConfig) -> date:
    # Terminates: weekdays is non-empty and holidays finite.
    day += timedelta(days=1)
    while not is_business_day(day, hours):
        day += timedelta(days=1)
    return day


def follow_up_deadline(
    tier: TierConfig, submitted_ms: int, hours: BusinessHoursConfig, zone: ZoneInfo
) -> int | None:
    """Epoch ms by which a lead of `tier` submitted at `submitted_ms` should be answered.

    within_minutes counts wall-clock time; end_of_business_day is today's closing time if
    the office is still to close today, else the next business day's; end_of_next_business_day
    is the closing time of the first business day after the submission's local date.
    """
    if tier.follow_up == "none":
        return None
    if tier.follow_up == "within_minutes":
        assert tier.follow_up_minutes is not None
        return submitted_ms + tier.follow_up_minutes * 60_000
    day = _local(submitted_ms, zone).date()
    if tier.follow_up == "end_of_business_day":
        if is_business_day(day, hours) and submitted_ms < _hours_of(day, hours, zone)[1]:
            return _hours_of(day, hours, zone)[1]
        return _hours_of(_next_business_day(day, hours), hours, zone)[1]
    if tier.follow_up == "end_of_next_business_day":
        return _hours_of(_next_business_day(day, hours), hours, zone)[1]
    assert tier.follow_up_minutes is not None
    return add_business_minutes(submitted_ms, tier.follow_up_minutes, hours, zone)


def add_business_minutes(
    start_ms: int, minutes: int, hours: BusinessHoursConfig, zone: ZoneInfo
) -> int:
    """The instant `minutes` of business time after `start_ms`."""
    remaining = minutes * 60_000
    day = _local(start_ms, zone).date()
    if not is_business_day(day, hours):
        day = _next_business_day(day, hours)
    while True:
        opens, closes = _hours_of(day, hours, zone)
        begin = max(opens, start_ms)
        if begin < closes:
            if begin + remaining <= closes:
                return begin + remaining
            remaining -= closes - begin
        day = _next_business_day(day, hours)
