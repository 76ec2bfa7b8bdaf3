"""`score_lead` and `LeadScorer`: the components weighted into a total, a tier, a deadline.

Speed: re-scoring every stored lead runs this thousands of times, so `LeadScorer` keeps what
depends on the model alone (ranked tiers, the fingerprint, zones) and memoises the components
that depend on a few lead fields only (traffic source by channel, form completion by which
fields are filled, demographics by the three values): the same inputs give the same frozen
component, so the scores are those `score_lead` computes, only sooner.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from sitepulse.analyse.scoring.components import (
    _apportion,
    _demographics,
    _engagement,
    _EngagementPlan,
    _filled,
    _form,
    _mean_of,
    _Part,
    _traffic_source,
)
from sitepulse.analyse.scoring.follow_up import (
    _hours_of,
    _local,
    _next_business_day,
    _ranked,
    _tier_in,
    follow_up_deadline,
    is_business_day,
)
from sitepulse.analyse.scoring.inputs import Activity, EngagementFacts, LeadFacts
from sitepulse.analyse.scoring.result import ComponentScore, FollowUp, Score
from sitepulse.config.scoring import ScoringConfig, TierConfig

_replace = msgspec.structs.replace

# The memoised components (traffic source, form completion, demographics) with their
# contributions, and the fit score.
_Fixed = tuple[ComponentScore, ComponentScore, ComponentScore, float]


class LeadScorer:
    """`score_lead` for many leads under one model: what depends on the model alone is
    worked out once, and components that depend on a few lead fields only are memoised."""

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        self._fingerprint = config.fingerprint
        self._weights = config.weights
        self._tiers = _ranked(config.tiers)
        self._zones: dict[str, ZoneInfo] = {}
        self._traffic: dict[str, _Part] = {}
        self._form: dict[tuple[bool, ...], _Part] = {}
        self._demographics: dict[tuple[str, str, str], _Part] = {}
        rules = config.form_completion
        # The form's text fields (all but consent) apart: their blankness is checked in C.
        texts = tuple(name for name in rules.field_points if name != "consent")
        self._form_texts = _values_of(texts)
        self._form_others = _values_of(tuple(n for n in rules.field_points if n not in texts))
        self._message_at = texts.index("message") if "message" in texts else None
        self._min_message_chars = rules.min_message_chars
        self._custom_fields = tuple(rules.custom_field_points)
        weights = self._weights
        self._fit_weight = math.fsum([weights.form_completion, weights.demographics])
        self._engagement_weight = math.fsum([weights.traffic_source, weights.engagement])
        self._idle: _Part | None = None  # the engagement of a visitor who did nothing
        self._tier_of: dict[float, TierConfig] = {}  # by total (in tenths: a thousand at most)
        # closing times by (zone, local day): (day's close if a business day, next close)
        self._closes: dict[tuple[ZoneInfo, date], tuple[int | None, int]] = {}
        self._follow_ups: dict[tuple[str, int | None, ZoneInfo], FollowUp] = {}
        # keyed by id(): the components are kept alive by the memo tables above
        self._fixed: dict[tuple[int, int, int, float, float, float], _Fixed] = {}
        self._engagement_rules = config.engagement
        self._engagement_plan = _EngagementPlan.of(config.engagement, config.weights.engagement)

    def _deadline(self, tier: TierConfig, submitted_ms: int, zone: ZoneInfo) -> int | None:
        """`follow_up_deadline`, remembering each day's closing times."""
        policy = tier.follow_up
        if policy not in ("end_of_business_day", "end_of_next_business_day"):
            return follow_up_deadline(tier, submitted_ms, self.config.business_hours, zone)
        day = _local(submitted_ms, zone).date()
        key = (zone, day)
        closes = self._closes.get(key)
        if closes is None:
            hours = self.config.business_hours
            today = _hours_of(day, hours, zone)[1] if is_business_day(day, hours) else None
            closes = (today, _hours_of(_next_business_day(day, hours), hours, zone)[1])
            self._closes[key] = closes
        today, following = closes
        if policy == "end_of_business_day" and today is not None and submitted_ms < today:
            return today
        return following

    def _zone(self, zone: ZoneInfo | str) -> ZoneInfo:
        if isinstance(zone, ZoneInfo):
            return zone
        found = self._zones.get(zone)
        if found is None:
            found = self._zones[zone] = ZoneInfo(zone)
        return found

    def _traffic_part(self, channel: str) -> _Part:
        part = self._traffic.get(channel)
        if part is None:
            tally = _traffic_source(self.config.traffic_source, channel)
            part = tally.component("traffic_source", "engagement", self._weights.traffic_source)
            self._traffic[channel] = part
        return part

    def _form_part(self, lead: LeadFacts) -> _Part:
        # Which fields count as filled is all that form completion looks at (see `_filled`):
        # text fields when not blank (and the message when long enough), the rest when set.
        texts = self._form_texts(lead)
        try:
            key = tuple(map(bool, map(str.strip, texts)))  # in C: it runs for every lead
        except TypeError:  # a text field holding something else
            key = tuple(map(_filled, texts))
        if self._message_at is not None and key[self._message_at]:
            key += (len(lead.message.strip()) >= self._min_message_chars,)
        key += tuple(map(_filled, self._form_others(lead)))
        if self._custom_fields:
            fields = lead.fields
            key += tuple([_filled(fields.get(name)) for name in self._custom_fields])
        part = self._form.get(key)
        if part is None:
            tally = _form(self.config.form_completion, lead)
            part = tally.component("form_completion", "fit", self._weights.form_completion)
            self._form[key] = part
        return part

    def _demographics_part(self, lead: LeadFacts) -> _Part:
        key = (lead.company_size, lead.industry, lead.country)
        part = self._demographics.get(key)
        if part is None:
            tally = _demographics(self.config.demographics, lead)
            part = tally.component("demographics", "fit", self._weights.demographics)
            self._demographics[key] = part
        return part

    def score(
        self,
        lead: LeadFacts,
        engagement: EngagementFacts | Activity,
        *,
        now_ms: int,
        zone: ZoneInfo | str,
    ) -> Score:
        """Score `lead` as of `now_ms`; deadlines use business hours in the site's `zone`."""
        tz = self._zone(zone)
        if isinstance(engagement, Activity):
            activity = engagement
        else:
            activity = Activity.of(engagement, self._engagement_rules.engaged_page.min_engaged_secs)
        traffic = self._traffic.get(lead.channel) or self._traffic_part(lead.channel)
        engaged = self._engagement_part(activity, now_ms)
        form = self._form_part(lead)
        demographics = self._demographics_part(lead)
        shares, total = _apportion((traffic[1], engaged[1], form[1], demographics[1]))
        fixed = self._fit_and_shares(traffic, form, demographics, shares)
        tier = self._tier_of.get(total) or self._tier_for(total)
        return Score(
            total=total,
            fit_score=fixed[3],
            engagement_score=_mean_of(traffic[1], engaged[1], self._engagement_weight),
            tier=tier.name,
            action=tier.action,
            follow_up=self._follow_up(tier, lead.ts, tz),
            components=(fixed[0], _replace(engaged[0], contribution=shares[1]), fixed[1], fixed[2]),
            is_test=lead.is_test,
            model_fingerprint=self._fingerprint,
            as_of_ms=now_ms,
        )

    def _tier_for(self, total: float) -> TierConfig:
        tier = self._tier_of[total] = _tier_in(self._tiers, total)
        return tier

    def _follow_up(self, tier: TierConfig, submitted_ms: int, zone: ZoneInfo) -> FollowUp:
        deadline = self._deadline(tier, submitted_ms, zone)
        key = (tier.follow_up, deadline, zone)
        follow_up = self._follow_ups.get(key)
        if follow_up is None:
            local = None if deadline is None else _local(deadline, zone).isoformat()
            follow_up = self._follow_ups[key] = FollowUp(tier.follow_up, deadline, local)
        return follow_up

    def _fit_and_shares(
        self, traffic: _Part, form: _Part, demographics: _Part, shares: list[float]
    ) -> _Fixed:
        """The memoised components with their contributions, and the fit score they give."""
        key = (id(traffic[0]), id(form[0]), id(demographics[0]), shares[0], shares[2], shares[3])
        found = self._fixed.get(key)
        if found is None:
            found = self._fixed[key] = (
                _with_contribution(traffic[0], shares[0]),
                _with_contribution(form[0], shares[2]),
                _with_contribution(demographics[0], shares[3]),
                _mean_of(form[1], demographics[1], self._fit_weight),
            )
        return found

    def _engagement_part(self, activity: Activity, now_ms: int) -> _Part:
        plan = self._engagement_plan
        if activity.pageviews or activity.session_starts or activity.reads:
            return _engagement(plan, activity, now_ms)
        if activity.downloads or activity.custom_ts:
            return _engagement(plan, activity, now_ms)
        # Nothing observed: nothing decays, so the answer does not depend on `now_ms`.
        if self._idle is None:
            self._idle = _engagement(plan, activity, now_ms)
        return self._idle


def _values_of(names: tuple[str, ...]) -> Callable[[LeadFacts], tuple[Any, ...]]:
    """A function giving the lead's values of `names`, in order (attrgetter does it in C)."""
    if not names:
        return lambda lead: ()
    get: Callable[[LeadFacts], Any] = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda lead: (get(lead),)
    return get


def _with_contribution(component: ComponentScore, share: float) -> ComponentScore:
    return _replace(component, contribution=share)


def score_lead(
    config: ScoringConfig,
    lead: LeadFacts,
    engagement: EngagementFacts | Activity,
    *,
    now_ms: int,
    zone: ZoneInfo | str,
) -> Score:
    """Score `lead` as of `now_ms`; deadlines use business hours in the site's `zone`."""
    return LeadScorer(config).score(lead, engagement, now_ms=now_ms, zone=zone)
