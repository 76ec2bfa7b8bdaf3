"""The four components of a score, each 0–100 points with the rules that gave them.

Fit (form completion, demographics) is who the lead is; engagement (traffic source,
on-site engagement) is what they did: how they arrived is behaviour, not identity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sitepulse.analyse.scoring.inputs import Activity, FieldValue, LeadFacts
from sitepulse.analyse.scoring.result import CapApplied, ComponentScore, Group, RuleHit
from sitepulse.config.scoring import (
    DemographicRules,
    EngagementRules,
    FormRules,
    TrafficSourceRules,
)

DAY_MS = 86_400_000
# Rounding tolerance: 0.3 * 85 is 25.499999999999996 in binary and should round as 25.5.
_EPS = 1e-9


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


_Part = tuple[ComponentScore, float]  # a component (contribution 0) and its raw contribution


class _Tally:
    """Hits and caps of one component while it is being scored."""

    def __init__(self) -> None:
        self.hits: list[RuleHit] = []
        self.caps: list[CapApplied] = []
        self.points = 0.0

    def fixed(self, rule: str, reason: str, points: float) -> None:
        self.hits.append(RuleHit(rule, f"{reason} {points:+g}", 1, points, 1.0, points))
        self.points += points

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


@dataclass(frozen=True, slots=True)
class _EngagementPlan:
    """The engagement rules as `_engagement` reads them, worked out once per model."""

    half_life_ms: float | None
    after: int  # page views that earn nothing
    # (rule, what, points each, cap) of reads, extra pages, downloads, return visits
    rules: tuple[tuple[str, str, float, float], ...]
    custom_points: Mapping[str, float]
    custom_cap: float
    weight: float

    @classmethod
    def of(cls, rules: EngagementRules, weight: float) -> _EngagementPlan:
        page, extra = rules.engaged_page, rules.extra_page
        download, visit = rules.download, rules.return_visit
        read = f"page read ≥{page.min_engaged_secs} s"
        more = f"page view after the first {extra.after_pages}"
        return cls(
            half_life_ms=None if rules.half_life_days is None else rules.half_life_days * DAY_MS,
            after=extra.after_pages,
            rules=(
                ("engaged_page", read, page.points, page.max_points),
                ("extra_page", more, extra.points, extra.max_points),
                ("download", "download", download.points, download.max_points),
                ("return_visit", "return visit", visit.points, visit.max_points),
            ),
            custom_points=rules.custom_event.points,
            custom_cap=rules.custom_event.max_points,
            weight=weight,
        )


def _engagement(plan: _EngagementPlan, facts: Activity, now_ms: int) -> _Part:
    """The engagement component: `_Tally.decayed` per rule, written out because it runs for
    every lead on every re-score."""
    half_life_ms = plan.half_life_ms
    exp2 = math.exp2

    def decays(times: Iterable[int]) -> list[float]:
        # 2^-(age / half-life); what is not older than `now_ms` is fresh
        if half_life_ms is None:
            return [1.0 for _ in times]
        return [exp2(-(now_ms - ts) / half_life_ms) if ts < now_ms else 1.0 for ts in times]

    after = plan.after
    pages, starts = facts.pageviews, facts.session_starts
    hits: list[RuleHit] = []
    caps: list[CapApplied] = []
    points = 0.0
    # The first pages of a visit are needed to get anywhere; only the ones after them count.
    observed = (
        facts.reads,
        sorted(pages)[after:] if len(pages) > after else (),
        facts.downloads,
        sorted(starts)[1:] if len(starts) > 1 else (),
    )
    for (rule, what, each, cap), times in zip(plan.rules, observed, strict=True):
        total = 0.0
        if times:
            total = _decayed_hit(hits, rule, what, decays(times), each)
        if total > cap:
            caps.append(CapApplied(rule, cap, total, cap, f"{rule} capped at {_num(cap)}"))
            total = cap
        points += total
    total = 0.0
    if facts.custom_names:
        custom = plan.custom_points
        by_name: dict[str, list[int]] = {}
        for ts, name in zip(facts.custom_ts, facts.custom_names, strict=True):
            if name in custom:
                by_name.setdefault(name, []).append(ts)
        for name, times in sorted(by_name.items()):
            each = custom[name]
            total += _decayed_hit(hits, f"custom_event:{name}", name, decays(times), each)
    if total > plan.custom_cap:
        cap = plan.custom_cap
        caps.append(
            CapApplied("custom_event", cap, total, cap, f"custom_event capped at {_num(cap)}")
        )
        total = cap
    points += total
    if points > 100:
        caps.append(CapApplied("engagement", 100, points, 100, "engagement capped at 100"))
        points = 100.0
    elif points < 0:
        caps.append(CapApplied("engagement", 0, points, 0, "engagement floored at 0"))
        points = 0.0
    if hits:
        raw = math.fsum([hit.points for hit in hits])
        base = math.fsum([hit.base_points for hit in hits])
        factor = raw / base if base else 1.0
    else:
        raw, factor = 0.0, 1.0
    weight = plan.weight
    score = ComponentScore(
        "engagement", "engagement", tuple(hits), raw, factor, tuple(caps), points, weight, 0.0
    )
    return score, weight * points


def _decayed_hit(
    hits: list[RuleHit], rule: str, what: str, factors: Sequence[float], each: float
) -> float:
    """Append the hit of a rule that fired once per decay factor; its points."""
    count = len(factors)
    base = each * count
    points = each * math.fsum(factors)
    factor = points / base if base else 1.0
    reason = f"{what} ×{count} {base:+g}"
    if f"{factor:.3f}" != "1.000":
        reason += f", decayed ×{factor:.3f} → {points:+.2f}"
    hits.append(RuleHit(rule, reason, count, base, factor, points))
    return points


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
    floor = math.floor
    target = floor(math.fsum(raw) * 10 + 0.5 + _EPS)  # _tenths, inlined: it runs per lead
    floors = [floor(part * 10 + _EPS) for part in raw]
    missing = target - sum(floors)
    if missing > 0:
        remainders = [part * 10 - low for part, low in zip(raw, floors, strict=True)]
        # Stable sort: equal remainders go to the earlier component.
        order = sorted(range(len(raw)), key=lambda i: -remainders[i])
        for i in order[:missing]:
            floors[i] += 1
    return [low / 10 for low in floors], target / 10


def _mean_of(first: float, second: float, weight: float) -> float:
    """A group's score: the weighted mean of its two components (weights adding to `weight`)."""
    if weight == 0:
        return 0.0
    return _tenths(math.fsum([first, second]) / weight) / 10
