"""Lead scoring: a 0–100 score with its breakdown, a tier and a follow-up deadline.

Pure: facts, the model and `now` come in as parameters. Components are scored 0–100 and
weighted. The total is rounded half up to one decimal and the weighted contributions are
rounded to tenths by largest remainder, so the breakdown adds up to exactly the total
shown; the tier is chosen from that rounded total. Fit (form completion, demographics) is
who the lead is; engagement (traffic source, on-site engagement) is what they did: how they
arrived is behaviour, not identity. Each sub-score is its components' weighted mean, 0–100.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sitepulse.config.scoring import (
    WEEKDAYS,
    BusinessHoursConfig,
    DemographicRules,
    EngagementRules,
    FormRules,
    ScoringConfig,
    TierConfig,
    TrafficSourceRules,
)

DAY_MS = 86_400_000
# Rounding tolerance: 0.3 * 85 is 25.499999999999996 in binary and should round as 25.5.
_EPS = 1e-9

Group = Literal["fit", "engagement"]
FieldValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """The submitted lead and the GA4 channel it arrived by; `ts` is epoch ms (UTC).

    `country` is what the demographics table is keyed by (ISO alpha-2 by default): the
    form's value, or the geo country when the form has none.
    """

    ts: int
    channel: str
    email: str = ""
    phone: str = ""
    name: str = ""
    company: str = ""
    company_size: str = ""
    industry: str = ""
    country: str = ""
    budget: str = ""
    timeline: str = ""
    message: str = ""
    consent: bool = False
    fields: Mapping[str, FieldValue] = field(default_factory=dict)
    is_test: bool = False


@dataclass(frozen=True, slots=True)
class Session:
    """A session of the lead's visitor; `ts` is its first event (events.session_id)."""

    ts: int


@dataclass(frozen=True, slots=True)
class PageView:
    """A `pageview` event."""

    ts: int
    path: str = ""


@dataclass(frozen=True, slots=True)
class EngagedTime:
    """One page's engaged time: the largest `engagement`/`engaged_time` value for its
    pageview_id (the browser sends running totals), stamped with that event's ts."""

    ts: int
    engaged_ms: float
    path: str = ""


@dataclass(frozen=True, slots=True)
class Download:
    """A `click` event named `download`."""

    ts: int
    url: str = ""


@dataclass(frozen=True, slots=True)
class CustomEvent:
    """A `custom` event by name."""

    ts: int
    name: str


@dataclass(frozen=True, slots=True)
class EngagementFacts:
    """What the lead's visitor did, one row per observation, in any order.

    The caller chooses the window (e.g. all of the visitor's events up to `now`);
    observations stamped after `now` count as fresh (no decay).
    """

    sessions: tuple[Session, ...] = ()
    pageviews: tuple[PageView, ...] = ()
    engaged: tuple[EngagedTime, ...] = ()
    downloads: tuple[Download, ...] = ()
    custom_events: tuple[CustomEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule that fired: `base_points` before decay, `points` after (before caps)."""

    rule: str
    reason: str
    count: int
    base_points: float
    decay_factor: float
    points: float


@dataclass(frozen=True, slots=True)
class CapApplied:
    """A cap (or the component's 0–100 clamp) that changed the points."""

    applies_to: str
    limit: float
    points_before: float
    points_after: float
    reason: str


@dataclass(frozen=True, slots=True)
class ComponentScore:
    """One component: raw points (sum of hits), caps, final 0–100 points, weighted share."""

    name: str
    group: Group
    hits: tuple[RuleHit, ...]
    raw_points: float
    decay_factor: float
    caps: tuple[CapApplied, ...]
    points: float
    weight: float
    contribution: float


@dataclass(frozen=True, slots=True)
class FollowUp:
    """When sales should have answered; None for tiers without a deadline."""

    policy: str
    deadline_ms: int | None
    deadline_local: str | None


@dataclass(frozen=True, slots=True)
class Score:
    """A lead's score as of `as_of_ms` under the model `model_fingerprint`."""

    total: float
    fit_score: float
    engagement_score: float
    tier: str
    action: str
    follow_up: FollowUp
    components: tuple[ComponentScore, ...]
    is_test: bool
    model_fingerprint: str
    as_of_ms: int

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict (tuples become lists)."""
        plain = _plain(dataclasses.asdict(self))
        assert isinstance(plain, dict)
        return plain


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _tenths(value: float) -> int:
    """`value` in tenths, rounded half up."""
    return math.floor(value * 10 + 0.5 + _EPS)


def _norm(text: str) -> str:
    return text.strip().casefold()


def _lookup(table: Mapping[str, float], value: str) -> float | None:
    wanted = _norm(value)
    for key, points in table.items():
        if _norm(key) == wanted:
            return points
    return None


class _Tally:
    """Hits and caps of one component while it is being scored."""

    def __init__(self) -> None:
        self.hits: list[RuleHit] = []
        self.caps: list[CapApplied] = []
        self.points = 0.0

    def fixed(self, rule: str, reason: str, points: float) -> None:
        self.hits.append(RuleHit(rule, f"{reason} {points:+g}", 1, points, 1.0, points))
        self.points += points

    def decayed(
        self, group: str, cap: float, rules: Iterable[tuple[str, str, Sequence[float], float]]
    ) -> None:
        """A capped group of rules: (rule, what, decay factor per observation, points each)."""
        total = 0.0
        for rule, what, factors, each in rules:
            if not factors:
                continue
            base = each * len(factors)
            points = each * math.fsum(factors)
            factor = points / base if base else 1.0
            reason = f"{what} ×{len(factors)} {base:+g}"
            if f"{factor:.3f}" != "1.000":
                reason += f", decayed ×{factor:.3f} → {points:+.2f}"
            self.hits.append(RuleHit(rule, reason, len(factors), base, factor, points))
            total += points
        if total > cap:
            self.caps.append(CapApplied(group, cap, total, cap, f"{group} capped at {_num(cap)}"))
            total = cap
        self.points += total

    def component(self, name: str, group: Group, weight: float) -> tuple[ComponentScore, float]:
        """The finished component (contribution still 0) and its unrounded contribution."""
        points = self.points
        if points > 100:
            self.caps.append(CapApplied(name, 100, points, 100, f"{name} capped at 100"))
            points = 100.0
        elif points < 0:
            self.caps.append(CapApplied(name, 0, points, 0, f"{name} floored at 0"))
            points = 0.0
        raw = math.fsum(hit.points for hit in self.hits)
        base = math.fsum(hit.base_points for hit in self.hits)
        factor = raw / base if base else 1.0
        score = ComponentScore(
            name, group, tuple(self.hits), raw, factor, tuple(self.caps), points, weight, 0.0
        )
        return score, weight * points


def _traffic_source(rules: TrafficSourceRules, channel: str) -> _Tally:
    tally = _Tally()
    klass = rules.unknown_class
    for name, mapped in rules.channel_classes.items():
        if _norm(name) == _norm(channel):
            klass = mapped
            break
    tally.fixed("channel", f"channel {channel or '(none)'!r} is {klass}", rules.class_points[klass])
    return tally


def _engagement(rules: EngagementRules, facts: EngagementFacts, now_ms: int) -> _Tally:
    half_life_ms = None if rules.half_life_days is None else rules.half_life_days * DAY_MS

    def decay(ts: int) -> float:
        if half_life_ms is None:
            return 1.0
        return math.exp2(-max(0, now_ms - ts) / half_life_ms)

    page, extra, custom = rules.engaged_page, rules.extra_page, rules.custom_event
    download, visit = rules.download, rules.return_visit
    secs, after = page.min_engaged_secs, extra.after_pages
    reads = [decay(e.ts) for e in facts.engaged if e.engaged_ms >= secs * 1000]
    # The first pages of a visit are needed to get anywhere; only the ones after them count.
    beyond = [decay(ts) for ts in sorted(v.ts for v in facts.pageviews)[after:]]
    more = f"page view after the first {after}"
    downloads = [decay(d.ts) for d in facts.downloads]
    returns = [decay(ts) for ts in sorted(s.ts for s in facts.sessions)[1:]]
    tally = _Tally()
    for rule, what, factors, each, cap in (
        ("engaged_page", f"page read ≥{secs} s", reads, page.points, page.max_points),
        ("extra_page", more, beyond, extra.points, extra.max_points),
        ("download", "download", downloads, download.points, download.max_points),
        ("return_visit", "return visit", returns, visit.points, visit.max_points),
    ):
        tally.decayed(rule, cap, [(rule, what, factors, each)])
    by_name: dict[str, list[float]] = {}
    for event in facts.custom_events:
        if event.name in custom.points:
            by_name.setdefault(event.name, []).append(decay(event.ts))
    named = [(f"custom_event:{n}", n, fs, custom.points[n]) for n, fs in sorted(by_name.items())]
    tally.decayed("custom_event", custom.max_points, named)
    return tally


def _filled(value: FieldValue) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None and value is not False


def _form(rules: FormRules, lead: LeadFacts) -> _Tally:
    tally = _Tally()
    for name, points in rules.field_points.items():
        value: FieldValue = getattr(lead, name)
        if name == "message" and len(lead.message.strip()) < rules.min_message_chars:
            continue
        if _filled(value):
            tally.fixed(name, f"{name.replace('_', ' ')} provided", points)
    for name, points in rules.custom_field_points.items():
        if _filled(lead.fields.get(name)):
            tally.fixed(f"field:{name}", f"custom field {name} provided", points)
    return tally


def _demographics(rules: DemographicRules, lead: LeadFacts) -> _Tally:
    tally = _Tally()
    tables = (
        ("company_size", "company size", lead.company_size, rules.company_size_points,
         rules.other_company_size_points),
        ("industry", "industry", lead.industry, rules.industry_points,
         rules.other_industry_points),
        ("country", "country", lead.country, rules.country_points, rules.other_country_points),
    )  # fmt: skip
    for rule, label, value, table, other in tables:
        if not value.strip():
            continue
        points = _lookup(table, value)
        if points is None:
            tally.fixed(rule, f"{label} {value.strip()!r} (not listed)", other)
        else:
            tally.fixed(rule, f"{label} {value.strip()!r}", points)
    return tally


def _apportion(raw: Sequence[float]) -> tuple[list[float], float]:
    """Round the sum half up to tenths, and the parts by largest remainder to match it."""
    target = _tenths(math.fsum(raw))
    floors = [math.floor(part * 10 + _EPS) for part in raw]
    remainders = [part * 10 - low for part, low in zip(raw, floors, strict=True)]
    # Stable sort: equal remainders go to the earlier component.
    order = sorted(range(len(raw)), key=lambda i: -remainders[i])
    for i in order[: max(0, target - sum(floors))]:
        floors[i] += 1
    return [low / 10 for low in floors], target / 10


def _group_mean(parts: Sequence[tuple[ComponentScore, float]], group: Group) -> float:
    weight = math.fsum(score.weight for score, _ in parts if score.group == group)
    if weight == 0:
        return 0.0
    return _tenths(math.fsum(raw for score, raw in parts if score.group == group) / weight) / 10


def score_lead(
    config: ScoringConfig,
    lead: LeadFacts,
    engagement: EngagementFacts,
    *,
    now_ms: int,
    zone: ZoneInfo | str,
) -> Score:
    """Score `lead` as of `now_ms`; deadlines use business hours in the site's `zone`."""
    tz = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    weights = config.weights
    parts = [
        _traffic_source(config.traffic_source, lead.channel).component(
            "traffic_source", "engagement", weights.traffic_source
        ),
        _engagement(config.engagement, engagement, now_ms).component(
            "engagement", "engagement", weights.engagement
        ),
        _form(config.form_completion, lead).component(
            "form_completion", "fit", weights.form_completion
        ),
        _demographics(config.demographics, lead).component(
            "demographics", "fit", weights.demographics
        ),
    ]
    contributions, total = _apportion([raw for _, raw in parts])
    components = tuple(
        dataclasses.replace(score, contribution=share)
        for (score, _), share in zip(parts, contributions, strict=True)
    )
    tier = tier_for(config.tiers, total)
    deadline = follow_up_deadline(tier, lead.ts, config.business_hours, tz)
    local = None if deadline is None else _local(deadline, tz).isoformat()
    return Score(
        total=total,
        fit_score=_group_mean(parts, "fit"),
        engagement_score=_group_mean(parts, "engagement"),
        tier=tier.name,
        action=tier.action,
        follow_up=FollowUp(tier.follow_up, deadline, local),
        components=components,
        is_test=lead.is_test,
        model_fingerprint=config.fingerprint,
        as_of_ms=now_ms,
    )


def tier_for(tiers: Sequence[TierConfig], total: float) -> TierConfig:
    """The tier whose band holds `total`: the highest `min_score` not above it."""
    ranked = sorted(tiers, key=lambda tier: -tier.min_score)
    for tier in ranked:
        if total >= tier.min_score:
            return tier
    return ranked[-1]


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
