"""The four components of a score, each 0–100 points with the rules that gave them.

Fit (form completion, demographics) is who the lead is; engagement (traffic source,
on-site engagement) is what they did: how they arrived is behaviour, not identity.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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


# (rule, what is counted, points each, cap, the cap's reason)
_Rule = tuple[str, str, float, float, str]
_points = operator.attrgetter("points")
_base_points = operator.attrgetter("base_points")


@dataclass(frozen=True, slots=True)
class _EngagementPlan:
    """The engagement rules as `_engagement` reads them, worked out once per model."""

    half_life_ms: float | None
    after: int  # page views that earn nothing
    rules: tuple[_Rule, ...]  # reads, extra pages, downloads, return visits
    custom: Mapping[str, _Rule]  # by event name; capped together, not one by one
    custom_cap: float
    weight: float
    # A hit's reason up to its decay, by (what, points each, count): formatting numbers is
    # a good part of scoring a lead, and these repeat.
    reasons: dict[tuple[str, float, int], str] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, rules: EngagementRules, weight: float) -> _EngagementPlan:
        page, extra = rules.engaged_page, rules.extra_page
        download, visit = rules.download, rules.return_visit
        read = f"page read ≥{page.min_engaged_secs} s"
        more = f"page view after the first {extra.after_pages}"
        each = (
            ("engaged_page", read, page.points, page.max_points),
            ("extra_page", more, extra.points, extra.max_points),
            ("download", "download", download.points, download.max_points),
            ("return_visit", "return visit", visit.points, visit.max_points),
        )
        return cls(
            half_life_ms=None if rules.half_life_days is None else rules.half_life_days * DAY_MS,
            after=extra.after_pages,
            rules=tuple((*rule, f"{rule[0]} capped at {_num(rule[3])}") for rule in each),
            custom={
                name: (f"custom_event:{name}", name, points, math.inf, "")
                for name, points in rules.custom_event.points.items()
            },
            custom_cap=rules.custom_event.max_points,
            weight=weight,
        )

    def hit(
        self,
        hits: list[RuleHit],
        caps: list[CapApplied],
        rule: _Rule,
        times: Sequence[int],
        now_ms: int,
    ) -> float:
        """Append the hit of `rule`, fired once per time in `times`, and its cap if it bit;
        its points. Each time's points decay by 2^-(age / half-life); what is not older than
        `now_ms` is fresh. Decay applies before caps."""
        name, what, each, cap, capped = rule
        count = len(times)
        base = each * count
        half_life_ms = self.half_life_ms
        if half_life_ms is None:
            points = base  # each * fsum([1.0] * count)
        elif count == 1:  # (most rules fire once: the sum of one is itself)
            ts = times[0]
            points = each * (math.exp2(-(now_ms - ts) / half_life_ms) if ts < now_ms else 1.0)
        else:
            exp2 = math.exp2
            points = each * math.fsum(
                [exp2(-(now_ms - ts) / half_life_ms) if ts < now_ms else 1.0 for ts in times]
            )
        factor = points / base if base else 1.0
        key = (what, each, count)
        reason = self.reasons.get(key)
        if reason is None:
            reason = self.reasons[key] = f"{what} ×{count} {base:+g}"
        shown = f"{factor:.3f}"
        if shown != "1.000":
            reason = f"{reason}, decayed ×{shown} → {points:+.2f}"
        hits.append(RuleHit(name, reason, count, base, factor, points))
        if points > cap:
            caps.append(CapApplied(name, cap, points, cap, capped))
            return cap
        return points


def _engagement(plan: _EngagementPlan, facts: Activity, now_ms: int) -> _Part:
    """The engagement component: each rule's decayed points, capped. It runs for every lead
    on every re-score, so the rules are written out rather than tallied (see `_Tally`)."""
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
    for rule, times in zip(plan.rules, observed, strict=True):
        if times:  # (no times, no points: caps are never negative)
            points += plan.hit(hits, caps, rule, times, now_ms)
    if facts.custom_names:
        custom = plan.custom
        by_name: dict[str, list[int]] = {}
        for ts, name in zip(facts.custom_ts, facts.custom_names, strict=True):
            if name in custom:
                by_name.setdefault(name, []).append(ts)
        total = 0.0
        for name, times in sorted(by_name.items()):
            total += plan.hit(hits, caps, custom[name], times, now_ms)
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
        raw = math.fsum(map(_points, hits))
        base = math.fsum(map(_base_points, hits))
        factor = raw / base if base else 1.0
    else:
        raw, factor = 0.0, 1.0
    weight = plan.weight
    score = ComponentScore(
        "engagement", "engagement", tuple(hits), raw, factor, tuple(caps), points, weight, 0.0
    )
    return score, weight * points


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


def _apportion(raw: tuple[float, float, float, float]) -> tuple[list[float], float]:
    """Round the sum half up to tenths, and the parts by largest remainder to match it.

    Written out for the four components: it runs for every lead.
    """
    floor, eps = math.floor, _EPS
    target = floor(math.fsum(raw) * 10 + 0.5 + eps)
    a, b, c, d = raw
    ta, tb, tc, td = (
        floor(a * 10 + eps),
        floor(b * 10 + eps),
        floor(c * 10 + eps),
        floor(d * 10 + eps),
    )
    missing = target - (ta + tb + tc + td)
    if missing <= 0:
        return [ta / 10, tb / 10, tc / 10, td / 10], target / 10
    tens = [ta, tb, tc, td]
    left = [a * 10 - ta, b * 10 - tb, c * 10 - tc, d * 10 - td]
    for _ in range(missing):
        # the largest remainder left; of equal ones, the earlier component's
        i = left.index(max(left))
        tens[i] += 1
        left[i] = -math.inf
    return [tens[0] / 10, tens[1] / 10, tens[2] / 10, tens[3] / 10], target / 10


def _mean_of(first: float, second: float, weight: float) -> float:
    """A group's score: the weighted mean of its two components (weights adding to `weight`)."""
    if weight == 0:
        return 0.0
    # in tenths, rounded half up
    return math.floor(math.fsum((first, second)) / weight * 10 + 0.5 + _EPS) / 10
