"""Lead-scoring model: component rules and weights, tiers, follow-up policies, business hours.

The defaults are the seed's model. `ScoringConfig.fingerprint` identifies a model so leads
scored with another one can be found and re-scored.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from datetime import date, time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Part of the fingerprint: bump it when sitepulse.analyse.scoring changes how a model
# turns facts into a score, so every stored score is recognised as stale.
SCORING_ALGORITHM_VERSION = 1

Points = Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)]
MaxPoints = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Weight = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FollowUpPolicy = Literal[
    "within_minutes",
    "within_business_minutes",
    "end_of_business_day",
    "end_of_next_business_day",
    "none",
]
# Lead form fields that can earn form-completion points (see LeadFacts).
LEAD_FIELDS = (
    "email",
    "phone",
    "name",
    "company",
    "company_size",
    "industry",
    "country",
    "budget",
    "timeline",
    "message",
    "consent",
)
_TIER_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


class _Model(BaseModel):
    # Same conventions as config.models; not imported from there because models.py
    # imports this module for the root config's `scoring` section. Defaults are validated
    # too, so they are normalised (floats, sorted tiers) exactly like given values and a
    # model spelled out in full has the same fingerprint as the defaults.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _distinct_keys(table: Mapping[str, float]) -> Mapping[str, float]:
    """Table keys match lead values ignoring case and surrounding space, so must differ so."""
    seen: dict[str, str] = {}
    for key in table:
        norm = key.strip().casefold()
        if not norm:
            raise ValueError(f"empty key {key!r}")
        if norm in seen:
            raise ValueError(f"keys {seen[norm]!r} and {key!r} differ only in case or spaces")
        seen[norm] = key
    return table


class ComponentWeights(_Model):
    """How much each component counts towards the total; the weights sum to 1."""

    traffic_source: Weight = 0.30
    engagement: Weight = 0.25
    form_completion: Weight = 0.25
    demographics: Weight = 0.20

    @model_validator(mode="after")
    def _sum_to_one(self) -> ComponentWeights:
        weights = self.model_dump()
        total = math.fsum(weights.values())
        if abs(total - 1.0) > 1e-9:
            parts = ", ".join(f"{key}={value!r}" for key, value in weights.items())
            raise ValueError(f"weights must sum to 1.0, got {total!r} ({parts})")
        return self


def _class_points() -> dict[str, float]:
    return {
        "organic": 85,
        "ai_assistant": 80,
        "referral": 80,
        "direct": 75,
        "email": 75,
        "social": 65,
        "paid": 60,
        "affiliate": 60,
        "unknown": 50,
    }


def _channel_classes() -> dict[str, str]:
    # GA4 default channel group names as sitepulse.enrich.channel assigns them.
    return {
        "Organic Search": "organic",
        "Organic Video": "organic",
        "Organic Shopping": "organic",
        # Someone asked an assistant and it recommended the site: a third-party
        # recommendation with search-like intent.
        "AI Assistants": "ai_assistant",
        "Referral": "referral",
        "Direct": "direct",
        # Messages to people already on the site's own lists: warm, like direct.
        "Email": "email",
        "SMS": "email",
        "Mobile Push Notifications": "email",
        "Organic Social": "social",
        "Paid Search": "paid",
        "Paid Social": "paid",
        "Paid Video": "paid",
        "Paid Shopping": "paid",
        "Paid Other": "paid",
        "Display": "paid",
        "Cross-network": "paid",
        "Audio": "paid",
        # Bought clicks (paid per conversion): scored like paid media.
        "Affiliates": "affiliate",
        "Unassigned": "unknown",
    }


class TrafficSourceRules(_Model):
    """Points for how the lead arrived: channel → class → points."""

    class_points: dict[str, Points] = Field(default_factory=_class_points)
    channel_classes: dict[str, str] = Field(default_factory=_channel_classes)
    # Class for channels missing from channel_classes.
    unknown_class: str = "unknown"

    @field_validator("class_points", "channel_classes")
    @classmethod
    def _keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        _distinct_keys(value)
        return value

    @field_validator("channel_classes")
    @classmethod
    def _classes_exist(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        known = info.data.get("class_points")
        if known is not None:
            for channel, klass in value.items():
                if klass not in known:
                    raise ValueError(
                        f"channel {channel!r} maps to class {klass!r}, which is not in "
                        f"class_points ({', '.join(sorted(known))})"
                    )
        return value

    @field_validator("unknown_class")
    @classmethod
    def _unknown_exists(cls, value: str, info: ValidationInfo) -> str:
        known = info.data.get("class_points")
        if known is not None and value not in known:
            raise ValueError(f"class {value!r} is not in class_points ({', '.join(sorted(known))})")
        return value


class EngagedPageRule(_Model):
    """Points per page the visitor spent at least `min_engaged_secs` on."""

    min_engaged_secs: int = Field(default=120, ge=1)
    points: Points = 10
    max_points: MaxPoints = 30


class ExtraPageRule(_Model):
    """Points per page view beyond the first `after_pages` (the oldest ones)."""

    after_pages: int = Field(default=2, ge=0)
    points: Points = 5
    max_points: MaxPoints = 20


class CountRule(_Model):
    """Points per observation, capped."""

    points: Points
    max_points: MaxPoints


def _download_rule() -> CountRule:
    return CountRule(points=15, max_points=25)


def _return_visit_rule() -> CountRule:
    return CountRule(points=10, max_points=15)


def _custom_event_points() -> dict[str, float]:
    return {"cta_click": 5, "pricing_toggle": 5, "video_play": 5, "newsletter_signup": 5}


class CustomEventRule(_Model):
    """Points per custom event by name (exact match); events not listed earn nothing."""

    points: dict[str, Points] = Field(default_factory=_custom_event_points)
    max_points: MaxPoints = 10


class EngagementRules(_Model):
    """What the visitor did. Each observation's points decay with its age, before caps."""

    # None turns decay off.
    half_life_days: float | None = Field(default=30, gt=0, allow_inf_nan=False)
    engaged_page: EngagedPageRule = Field(default_factory=EngagedPageRule)
    extra_page: ExtraPageRule = Field(default_factory=ExtraPageRule)
    download: CountRule = Field(default_factory=_download_rule)
    # Every session after the visitor's first.
    return_visit: CountRule = Field(default_factory=_return_visit_rule)
    custom_event: CustomEventRule = Field(default_factory=CustomEventRule)


def _field_points() -> dict[str, float]:
    return {
        "email": 10,
        "name": 10,
        "phone": 15,
        "company": 10,
        "company_size": 5,
        "industry": 5,
        "budget": 20,
        "timeline": 15,
        "message": 10,
    }


class FormRules(_Model):
    """Points per form field the lead filled in (non-blank; consent: ticked)."""

    field_points: dict[str, Points] = Field(default_factory=_field_points)
    # Keys of the form's custom fields (the lead's `fields`).
    custom_field_points: dict[str, Points] = Field(default_factory=dict)
    # A shorter message ("hi") does not count as provided.
    min_message_chars: int = Field(default=20, ge=0)

    @field_validator("field_points")
    @classmethod
    def _known_fields(cls, value: dict[str, float]) -> dict[str, float]:
        for key in value:
            if key not in LEAD_FIELDS:
                raise ValueError(f"unknown lead field {key!r} (known: {', '.join(LEAD_FIELDS)})")
        return value


def _company_size_points() -> dict[str, float]:
    return {"1-10": 10, "11-50": 25, "51-200": 40, "201-1000": 40, "1000+": 35}


def _industry_points() -> dict[str, float]:
    return {
        "Software & SaaS": 30,
        "Financial services": 30,
        "Healthcare": 30,
        "Manufacturing": 30,
        "Logistics & transport": 30,
        "Retail & e-commerce": 30,
    }


def _country_points() -> dict[str, float]:
    return {"US": 30, "GB": 30, "DE": 30, "NL": 30, "IE": 30, "CA": 30}


class DemographicRules(_Model):
    """Points for who the lead is. Values match ignoring case; a blank value earns nothing."""

    company_size_points: dict[str, Points] = Field(default_factory=_company_size_points)
    other_company_size_points: Points = 0
    industry_points: dict[str, Points] = Field(default_factory=_industry_points)
    other_industry_points: Points = 15
    # Keyed by what the lead's country holds: ISO 3166 alpha-2 codes by default.
    country_points: dict[str, Points] = Field(default_factory=_country_points)
    other_country_points: Points = 10

    @field_validator("company_size_points", "industry_points", "country_points")
    @classmethod
    def _keys(cls, value: dict[str, float]) -> dict[str, float]:
        _distinct_keys(value)
        return value


class TierConfig(_Model):
    """A score band from `min_score` up to the next tier, and how fast sales follows up."""

    name: str = Field(pattern=_TIER_NAME)
    min_score: float = Field(ge=0, le=100, allow_inf_nan=False)
    action: str = ""
    follow_up: FollowUpPolicy = "none"
    # For within_minutes (wall clock) and within_business_minutes.
    follow_up_minutes: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _minutes(self) -> TierConfig:
        needs = self.follow_up in ("within_minutes", "within_business_minutes")
        if needs and self.follow_up_minutes is None:
            raise ValueError(f"follow_up {self.follow_up!r} needs follow_up_minutes")
        if not needs and self.follow_up_minutes is not None:
            raise ValueError(
                f"follow_up_minutes={self.follow_up_minutes} does nothing with "
                f"follow_up {self.follow_up!r}"
            )
        return self


def _tiers() -> tuple[TierConfig, ...]:
    return (
        TierConfig(
            name="premium",
            min_score=90,
            action="immediate follow-up",
            follow_up="within_minutes",
            follow_up_minutes=60,
        ),
        TierConfig(
            name="high", min_score=70, action="same-day follow-up", follow_up="end_of_business_day"
        ),
        TierConfig(
            name="standard",
            min_score=50,
            action="next-business-day follow-up",
            follow_up="end_of_next_business_day",
        ),
        TierConfig(name="low", min_score=30, action="nurture"),
        TierConfig(name="poor", min_score=0, action="automated response"),
    )


class BusinessHoursConfig(_Model):
    """When sales works, as wall-clock times in the site's time zone."""

    weekdays: tuple[Weekday, ...] = Field(default=WEEKDAYS[:5], min_length=1)
    opens_at: time = time(9, 0)
    closes_at: time = time(17, 0)
    holidays: tuple[date, ...] = ()

    @field_validator("opens_at", "closes_at", mode="before")
    @classmethod
    def _clock_text(cls, value: object) -> object:
        # Unquoted 17:00 is YAML 1.1's base-60 number 1020, which pydantic would read as
        # 1020 seconds after midnight: refuse numbers rather than open at 00:17.
        if isinstance(value, int | float):
            minutes = int(value)
            hint = f"{minutes // 60}:{minutes % 60:02d}" if 0 <= minutes < 1440 else "17:00"
            raise ValueError(f"YAML read an unquoted time as a number; quote it: '{hint}'")
        return value

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _naive(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError(f"{value.isoformat()!r}: give a local time without an offset")
        return value

    @field_validator("closes_at")
    @classmethod
    def _after_open(cls, value: time, info: ValidationInfo) -> time:
        opens = info.data.get("opens_at")
        if opens is not None and value <= opens:
            raise ValueError(
                f"closes_at {value.isoformat('minutes')} is not after "
                f"opens_at {opens.isoformat('minutes')}"
            )
        return value

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        for day in value:
            if value.count(day) > 1:
                raise ValueError(f"weekday {day!r} listed twice")
        return tuple(sorted(value, key=WEEKDAYS.index))

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: tuple[date, ...]) -> tuple[date, ...]:
        return tuple(sorted(set(value)))


class ScoringConfig(_Model):
    """The lead-scoring model. Fit = form_completion + demographics; engagement = the rest."""

    weights: ComponentWeights = Field(default_factory=ComponentWeights)
    traffic_source: TrafficSourceRules = Field(default_factory=TrafficSourceRules)
    engagement: EngagementRules = Field(default_factory=EngagementRules)
    form_completion: FormRules = Field(default_factory=FormRules)
    demographics: DemographicRules = Field(default_factory=DemographicRules)
    # Any order; kept highest min_score first.
    tiers: tuple[TierConfig, ...] = Field(default_factory=_tiers)
    business_hours: BusinessHoursConfig = Field(default_factory=BusinessHoursConfig)

    _fingerprint: str = PrivateAttr(default="")

    @field_validator("tiers")
    @classmethod
    def _tier_bands(cls, value: tuple[TierConfig, ...]) -> tuple[TierConfig, ...]:
        if not value:
            raise ValueError("at least one tier is needed")
        ordered = tuple(sorted(value, key=lambda tier: -tier.min_score))
        for higher, lower in itertools.pairwise(ordered):
            if higher.min_score == lower.min_score:
                raise ValueError(
                    f"tiers {higher.name!r} and {lower.name!r} share min_score {lower.min_score:g}"
                )
        names = [tier.name for tier in ordered]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"tier name {name!r} used twice")
        if ordered[-1].min_score != 0:
            raise ValueError(
                f"lowest tier {ordered[-1].name!r} starts at {ordered[-1].min_score:g}, "
                "not 0: some scores would have no tier"
            )
        return ordered

    def model_post_init(self, context: Any, /) -> None:
        """Hash the canonical JSON of the model once; it is frozen."""
        payload = {"algorithm": SCORING_ALGORITHM_VERSION, "model": self.model_dump(mode="json")}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """Stable 16-hex-digit hash of the model (and the scoring algorithm's version)."""
        return self._fingerprint
