"""Lead scoring: hand-computed scores of the seed's model, breakdowns, decay, tiers, deadlines."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sitepulse.analyse.scoring import (
    Activity,
    CustomEvent,
    Download,
    EngagedTime,
    EngagementFacts,
    LeadFacts,
    LeadScorer,
    PageView,
    Score,
    Session,
    follow_up_deadline,
    score_lead,
    tier_for,
)
from sitepulse.config.scoring import BusinessHoursConfig, ScoringConfig, TierConfig

NOW = 1_717_200_000_000  # 2024-06-01T00:00:00Z
DAY = 86_400_000
HALF_LIFE = 30 * DAY
DEFAULT = ScoringConfig()

FULL_FORM: dict[str, Any] = {
    "email": "ana@example.com",
    "name": "Ana Lima",
    "phone": "+1 212 555 0100",
    "company": "Cedar Labs Inc.",
    "budget": "50k+",
    "timeline": "asap",
    "message": "We want a second opinion on our data platform.",
}


def _n(make: type[Any], count: int, *args: Any) -> tuple[Any, ...]:
    return tuple(make(*args) for _ in range(count))


def _busy(ts: int) -> EngagementFacts:
    """Everything the engagement rules reward, past every cap, at `ts`."""
    return EngagementFacts(
        sessions=_n(Session, 3, ts),
        pageviews=_n(PageView, 7, ts),
        engaged=_n(EngagedTime, 3, ts, 130_000),
        downloads=_n(Download, 2, ts),
        custom_events=_n(CustomEvent, 2, ts, "cta_click"),
    )


@dataclass(frozen=True)
class Case:
    id: str
    lead: LeadFacts
    engagement: EngagementFacts
    total: float
    tier: str
    fit: float
    engagement_score: float
    contributions: tuple[float, float, float, float]  # traffic, engagement, form, demographics


# Expected numbers worked out by hand from the seed's model (see config.scoring defaults):
# total = .30 traffic + .25 engagement + .25 form + .20 demographics, each 0–100.
CASES = [
    # 85 → 25.5; engagement 30+20(25 capped)+25(30 capped)+15(20 capped)+10 = 100 → 25;
    # form 100 → 25; demographics 40+30+30 → 20. Fit 45/.45; engagement 50.5/.55.
    Case(
        "ideal-organic",
        LeadFacts(
            ts=NOW,
            channel="Organic Search",
            company_size="201-1000",
            industry="Software & SaaS",
            country="US",
            **FULL_FORM,
        ),
        _busy(NOW),
        95.5,
        "premium",
        100.0,
        91.8,
        (25.5, 25.0, 25.0, 20.0),
    ),
    # 60 → 18; engagement 2 extra pages 10 + 1 long read 10 → 5; form email+name+company
    # +company size+industry (message too short) 40 → 10; demographics 25 + 15 (other
    # industry) + 10 (other country) = 50 → 10. Fit 20/.45 = 44.44; engagement 23/.55.
    Case(
        "paid-partial",
        LeadFacts(
            ts=NOW,
            channel="Paid Search",
            email="bo@example.fr",
            name="Bo",
            company="Oak Works SAS",
            message="Call me",
            company_size="11-50",
            industry="Education",
            country="FR",
        ),
        EngagementFacts(
            pageviews=_n(PageView, 4, NOW),
            engaged=(EngagedTime(NOW, 150_000),),
        ),
        43.0,
        "low",
        44.4,
        41.8,
        (18.0, 5.0, 10.0, 10.0),
    ),
    # 80 → 24; engagement one half-life old: downloads 30×.5 = 15, long read 10×.5 = 5,
    # 1 extra page 5×.5 = 2.5; the return visit is two half-lives old: 10×.25 = 2.5;
    # total 25 → 6.25; form email 10 + phone 15 + size 5 + industry 5 + budget 20 +
    # timeline 15 = 70 → 17.5; demographics 100 → 20.
    # 67.75 rounds half up to 67.8; the .05 goes to engagement (6.25 → 6.3).
    Case(
        "referral-decayed",
        LeadFacts(
            ts=NOW,
            channel="Referral",
            email="cy@example.co.uk",
            phone="+44 20 7946 0000",
            budget="20k-50k",
            timeline="1-3 months",
            company_size="51-200",
            industry="Financial services",
            country="GB",
        ),
        EngagementFacts(
            sessions=(Session(NOW - 90 * DAY), Session(NOW - 60 * DAY)),
            pageviews=_n(PageView, 3, NOW - 30 * DAY),
            engaged=(EngagedTime(NOW - 30 * DAY, 200_000),),
            downloads=_n(Download, 2, NOW - 30 * DAY),
        ),
        67.8,
        "standard",
        83.3,
        55.0,
        (24.0, 6.3, 17.5, 20.0),
    ),
    # The demo's QA submission: 75 → 22.5; form email+name+company+message 40 → 10.
    Case(
        "test-lead",
        LeadFacts(
            ts=NOW,
            channel="Direct",
            email="qa+1@northwind-consulting.example",
            name="Test Submission",
            company="Northwind QA",
            message="Testing the contact form after deploy, please ignore.",
            consent=True,
            is_test=True,
        ),
        EngagementFacts(),
        32.5,
        "low",
        22.2,
        40.9,
        (22.5, 0.0, 10.0, 0.0),
    ),
    # 50 → 15; form email+name+message 30 → 7.5.
    Case(
        "spam-unassigned",
        LeadFacts(
            ts=NOW,
            channel="Unassigned",
            email="x1@mailinator.com",
            name="SEO Expert",
            message="Get your website on Google page #1 in 7 days!!! Guaranteed.",
        ),
        EngagementFacts(),
        22.5,
        "poor",
        16.7,
        27.3,
        (15.0, 0.0, 7.5, 0.0),
    ),
    # 80 → 24; engagement 10 + 3 extra pages 15 + 15 + 5 = 45 → 11.25; form 100 → 25;
    # demographics 35+30+30 = 95 → 19. 79.25 → 79.3, engagement 11.25 → 11.3.
    Case(
        "ai-assistant",
        LeadFacts(
            ts=NOW,
            channel="AI Assistants",
            company_size="1000+",
            industry="Healthcare",
            country="DE",
            **FULL_FORM,
        ),
        EngagementFacts(
            sessions=(Session(NOW),),
            pageviews=_n(PageView, 5, NOW),
            engaged=(EngagedTime(NOW, 120_000), EngagedTime(NOW, 119_999)),
            downloads=(Download(NOW),),
            custom_events=(CustomEvent(NOW, "pricing_toggle"), CustomEvent(NOW, "unlisted")),
        ),
        79.3,
        "high",
        97.8,
        64.1,
        (24.0, 11.3, 25.0, 19.0),
    ),
    # Tables match ignoring case and spaces. 75 → 22.5; form email+industry 15 → 3.75;
    # demographics industry 30 + country 30 → 12. 38.25 → 38.3, form 3.75 → 3.8.
    Case(
        "email-case-insensitive",
        LeadFacts(
            ts=NOW,
            channel="Email",
            email="di@example.nl",
            industry=" software & saas ",
            country="nl",
        ),
        EngagementFacts(),
        38.3,
        "low",
        35.0,
        40.9,
        (22.5, 0.0, 3.8, 12.0),
    ),
    # Unknown channel → unknown 50 → 15; custom events 10+5 capped at 10, a 100 s read
    # earns nothing → 2.5; form email+name+company size+timeline 40 → 10; company size
    # "500" is not a band → 0.
    Case(
        "unknown-channel-caps",
        LeadFacts(
            ts=NOW,
            channel="Carrier Pigeon",
            email="ed@example.com",
            name="Ed",
            company_size="500",
            timeline="exploring",
        ),
        EngagementFacts(
            engaged=(EngagedTime(NOW, 100_000),),
            custom_events=(
                CustomEvent(NOW, "cta_click"),
                CustomEvent(NOW, "cta_click"),
                CustomEvent(NOW, "video_play"),
            ),
        ),
        27.5,
        "poor",
        22.2,
        31.8,
        (15.0, 2.5, 10.0, 0.0),
    ),
    # 65 → 19.5; engagement 2 long reads 20 + download two half-lives old 3.75 + a
    # return visit 10 = 33.75 → 8.4375; form 100 → 25; demographics 25+30+30 → 17.
    # 69.9375 → 69.9: just short of high.
    Case(
        "social-just-below-high",
        LeadFacts(
            ts=NOW,
            channel="Organic Social",
            company_size="11-50",
            industry="Manufacturing",
            country="CA",
            **FULL_FORM,
        ),
        EngagementFacts(
            sessions=(Session(NOW - DAY), Session(NOW)),
            engaged=_n(EngagedTime, 2, NOW, 300_000),
            downloads=(Download(NOW - 60 * DAY),),
        ),
        69.9,
        "standard",
        93.3,
        50.8,
        (19.5, 8.4, 25.0, 17.0),
    ),
]


def _score(case: Case, config: ScoringConfig = DEFAULT) -> Score:
    return score_lead(config, case.lead, case.engagement, now_ms=NOW, zone="Europe/Berlin")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_seed_model_scores(case: Case) -> None:
    score = _score(case)
    assert score.total == pytest.approx(case.total, abs=1e-9)
    assert score.tier == case.tier
    assert score.fit_score == pytest.approx(case.fit, abs=1e-9)
    assert score.engagement_score == pytest.approx(case.engagement_score, abs=1e-9)
    shares = tuple(c.contribution for c in score.components)
    assert shares == pytest.approx(case.contributions, abs=1e-9)
    assert math.fsum(shares) == pytest.approx(score.total, abs=1e-9)
    assert score.is_test == case.lead.is_test
    assert score.model_fingerprint == DEFAULT.fingerprint
    assert score.as_of_ms == NOW


def test_breakdown_explains_the_score() -> None:
    score = _score(CASES[0])
    by_name = {c.name: c for c in score.components}
    assert [c.name for c in score.components] == [
        "traffic_source",
        "engagement",
        "form_completion",
        "demographics",
    ]
    assert {c.name: c.group for c in score.components} == {
        "traffic_source": "engagement",
        "engagement": "engagement",
        "form_completion": "fit",
        "demographics": "fit",
    }
    form = by_name["form_completion"]
    assert "phone provided +15" in [hit.reason for hit in form.hits]
    assert form.weight == 0.25 and form.points == 100
    engagement = by_name["engagement"]
    assert engagement.raw_points == 115  # 30 + 25 + 30 + 20 + 10 before caps
    assert {cap.applies_to: cap.points_before for cap in engagement.caps} == {
        "extra_page": 25,
        "download": 30,
        "return_visit": 20,
    }
    assert engagement.points == 100
    assert by_name["traffic_source"].hits[0].reason == "channel 'Organic Search' is organic +85"
    assert "download ×2 +30" in [hit.reason for hit in engagement.hits]


def test_component_caps_and_floors_are_reported() -> None:
    config = ScoringConfig.model_validate(
        {
            "form_completion": {"custom_field_points": {"service_interest": 10}},
            "demographics": {"other_country_points": -40},
        }
    )
    lead = LeadFacts(
        ts=NOW, channel="Direct", country="BR", fields={"service_interest": "cloud"}, **FULL_FORM
    )
    score = score_lead(config, lead, EngagementFacts(), now_ms=NOW, zone="UTC")
    form, demographics = score.components[2], score.components[3]
    # FULL_FORM is worth 90 (no company size or industry) plus the custom field's 10.
    assert form.raw_points == 100
    assert [(c.applies_to, c.points_before, c.points_after) for c in form.caps] == []
    full = msgspec.structs.replace(lead, company_size="1-10", industry="Mining")
    score = score_lead(config, full, EngagementFacts(), now_ms=NOW, zone="UTC")
    form, demographics = score.components[2], score.components[3]
    assert [(c.applies_to, c.points_before, c.points_after) for c in form.caps] == [
        ("form_completion", 110, 100)
    ]
    # 10 (size) + 15 (other industry) - 40 (other country) = -15, floored at 0.
    assert demographics.raw_points == -15
    assert [(c.applies_to, c.points_after) for c in demographics.caps] == [("demographics", 0)]
    assert demographics.points == 0 and demographics.contribution == 0


def test_total_rounds_half_up_despite_binary_error() -> None:
    # .30 × 15.5 = 4.65 exactly, but 4.6499999999999995 in binary floating point.
    classes = {**DEFAULT.traffic_source.class_points, "organic": 15.5}
    config = ScoringConfig.model_validate({"traffic_source": {"class_points": classes}})
    lead = LeadFacts(ts=NOW, channel="Organic Search")
    score = score_lead(config, lead, EngagementFacts(), now_ms=NOW, zone="UTC")
    assert score.total == 4.7
    assert [c.contribution for c in score.components] == [4.7, 0.0, 0.0, 0.0]


def test_decay_halves_engagement_after_one_half_life() -> None:
    def facts(ts: int) -> EngagementFacts:
        return EngagementFacts(
            sessions=(Session(ts - DAY), Session(ts)),
            pageviews=_n(PageView, 3, ts),
            engaged=(EngagedTime(ts, 600_000),),
            downloads=(Download(ts),),
            custom_events=(CustomEvent(ts, "cta_click"),),
        )

    lead = LeadFacts(ts=NOW, channel="Direct")
    fresh = score_lead(DEFAULT, lead, facts(NOW), now_ms=NOW, zone="UTC").components[1]
    old = score_lead(DEFAULT, lead, facts(NOW - HALF_LIFE), now_ms=NOW, zone="UTC").components[1]
    assert fresh.points == 45  # 10 + 5 + 15 + 10 + 5, under every cap
    assert old.points == 22.5
    assert old.decay_factor == 0.5 and fresh.decay_factor == 1.0
    assert [hit.decay_factor for hit in old.hits] == [0.5] * 5
    assert [hit.base_points for hit in old.hits] == [hit.points for hit in fresh.hits]
    assert old.hits[2].reason == "download ×1 +15, decayed ×0.500 → +7.50"
    # Observations after `now` count as fresh; no decay when half_life_days is None.
    future = score_lead(DEFAULT, lead, facts(NOW + DAY), now_ms=NOW, zone="UTC")
    assert future.components[1].points == 45
    flat = ScoringConfig.model_validate({"engagement": {"half_life_days": None}})
    kept = score_lead(flat, lead, facts(NOW - 10 * HALF_LIFE), now_ms=NOW, zone="UTC")
    assert kept.components[1].points == 45


def test_decay_applies_before_caps() -> None:
    # Four downloads: 60 at full value would be capped at 25; one half-life old they
    # are worth 30, still capped at 25; two half-lives old 15, under the cap.
    lead = LeadFacts(ts=NOW, channel="Direct")
    for age, points in ((0, 25), (HALF_LIFE, 25), (2 * HALF_LIFE, 15)):
        facts = EngagementFacts(downloads=_n(Download, 4, NOW - age))
        score = score_lead(DEFAULT, lead, facts, now_ms=NOW, zone="UTC")
        assert score.components[1].points == points


def test_changed_model_changes_fingerprint_and_score() -> None:
    again = ScoringConfig.model_validate(json.loads(json.dumps(DEFAULT.model_dump(mode="json"))))
    assert again.fingerprint == DEFAULT.fingerprint
    reordered = ScoringConfig.model_validate(
        {
            "tiers": [t.model_dump() for t in reversed(DEFAULT.tiers)],
            "business_hours": {"weekdays": ["fri", "thu", "wed", "tue", "mon"]},
        }
    )
    assert reordered.fingerprint == DEFAULT.fingerprint
    assert len(DEFAULT.fingerprint) == 16

    reweighted = ScoringConfig.model_validate(
        {"weights": {"traffic_source": 0.40, "engagement": 0.15}}
    )
    assert reweighted.fingerprint != DEFAULT.fingerprint
    # Case "ideal-organic": .40×85 + .15×100 + .25×100 + .20×100 = 94.
    assert _score(CASES[0], reweighted).total == pytest.approx(94.0, abs=1e-9)
    assert _score(CASES[0], reweighted).model_fingerprint == reweighted.fingerprint
    holidays = ScoringConfig.model_validate({"business_hours": {"holidays": ["2024-12-25"]}})
    assert holidays.fingerprint != DEFAULT.fingerprint


TIER_BOUNDARIES = [
    (0, "poor"),
    (29.99, "poor"),
    (30, "low"),
    (49.99, "low"),
    (50, "standard"),
    (69.99, "standard"),
    (70, "high"),
    (89.99, "high"),
    (90, "premium"),
    (100, "premium"),
]


@pytest.mark.parametrize(("total", "tier"), TIER_BOUNDARIES)
def test_tier_boundaries(total: float, tier: str) -> None:
    assert tier_for(DEFAULT.tiers, total).name == tier


def test_tiers_are_configurable() -> None:
    config = ScoringConfig.model_validate(
        {"tiers": [{"name": "cold", "min_score": 0}, {"name": "hot", "min_score": 60}]}
    )
    assert [t.name for t in config.tiers] == ["hot", "cold"]
    assert tier_for(config.tiers, 59.9).name == "cold"
    assert tier_for(config.tiers, 60).name == "hot"


BERLIN_HOLIDAYS = ["2024-03-29", "2024-04-01"]  # Good Friday, Easter Monday
NY_HOLIDAYS = ["2024-11-28", "2024-11-29"]  # Thanksgiving and the day after

# (zone, holidays, submitted local time, policy, minutes, deadline in UTC or None).
# Berlin goes to summer time on Sun 2024-03-31 (17:00 is 16:00Z before, 15:00Z after);
# New York goes back to standard time on Sun 2024-11-03 (17:00 is 21:00Z before, 22:00Z after).
DEADLINES = [
    ("Europe/Berlin", BERLIN_HOLIDAYS, "2024-03-28T16:30+01:00", "end_of_business_day", None,
     "2024-03-28T16:00Z"),
    # After hours on Thursday: Friday and Monday are holidays, the weekend in between, and
    # the clocks change: Tuesday 17:00 CEST.
    ("Europe/Berlin", BERLIN_HOLIDAYS, "2024-03-28T17:30+01:00", "end_of_business_day", None,
     "2024-04-02T15:00Z"),
    ("Europe/Berlin", BERLIN_HOLIDAYS, "2024-03-28T10:00+01:00", "end_of_next_business_day",
     None, "2024-04-02T15:00Z"),
    ("Europe/Berlin", BERLIN_HOLIDAYS, "2024-03-30T11:00+01:00", "end_of_business_day", None,
     "2024-04-02T15:00Z"),
    ("Europe/Berlin", BERLIN_HOLIDAYS, "2024-03-30T11:00+01:00", "end_of_next_business_day",
     None, "2024-04-02T15:00Z"),
    ("Europe/Berlin", [], "2024-03-28T17:30+01:00", "end_of_business_day", None,
     "2024-03-29T16:00Z"),
    # Wall-clock hour across the spring-forward gap: 01:30 CET + 1 h = 03:30 CEST.
    ("Europe/Berlin", BERLIN_HOLIDAYS, "2024-03-31T01:30+01:00", "within_minutes", 60,
     "2024-03-31T01:30Z"),
    # 30 business minutes on Thursday, the other 30 on Tuesday from 09:00 CEST.
    ("Europe/Berlin", BERLIN_HOLIDAYS, "2024-03-28T16:30+01:00", "within_business_minutes", 60,
     "2024-04-02T07:30Z"),
    ("Europe/Berlin", BERLIN_HOLIDAYS, "2024-03-28T10:00+01:00", "none", None, None),
    ("America/New_York", [], "2024-11-01T16:00-04:00", "end_of_business_day", None,
     "2024-11-01T21:00Z"),
    # Exactly at closing time the day is over.
    ("America/New_York", [], "2024-11-01T17:00-04:00", "end_of_business_day", None,
     "2024-11-04T22:00Z"),
    ("America/New_York", [], "2024-11-01T17:30-04:00", "end_of_business_day", None,
     "2024-11-04T22:00Z"),
    ("America/New_York", [], "2024-11-01T16:00-04:00", "end_of_next_business_day", None,
     "2024-11-04T22:00Z"),
    # Wall-clock hour into the repeated hour: 01:30 EDT + 1 h = 01:30 EST.
    ("America/New_York", [], "2024-11-03T01:30-04:00", "within_minutes", 60,
     "2024-11-03T06:30Z"),
    ("America/New_York", [], "2024-11-01T16:30-04:00", "within_business_minutes", 90,
     "2024-11-04T15:00Z"),
    # Before opening on a business day, "same day" is still today.
    ("America/New_York", [], "2024-11-04T07:00-05:00", "end_of_business_day", None,
     "2024-11-04T22:00Z"),
    ("America/New_York", [], "2024-11-04T07:00-05:00", "end_of_next_business_day", None,
     "2024-11-05T22:00Z"),
    ("America/New_York", [], "2024-11-04T07:00-05:00", "within_business_minutes", 30,
     "2024-11-04T14:30Z"),
    ("America/New_York", NY_HOLIDAYS, "2024-11-27T18:00-05:00", "end_of_business_day", None,
     "2024-12-02T22:00Z"),
    ("America/New_York", NY_HOLIDAYS, "2024-11-27T12:00-05:00", "end_of_next_business_day",
     None, "2024-12-02T22:00Z"),
    ("America/New_York", NY_HOLIDAYS, "2024-11-27T12:00-05:00", "within_minutes", 60,
     "2024-11-27T18:00Z"),
]  # fmt: skip


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.mark.parametrize(
    ("zone", "holidays", "submitted", "policy", "minutes", "expected"),
    DEADLINES,
    ids=[f"{d[0].split('/')[1]}-{d[2][:16]}-{d[3]}" for d in DEADLINES],
)
def test_follow_up_deadlines(
    zone: str,
    holidays: list[str],
    submitted: str,
    policy: str,
    minutes: int | None,
    expected: str | None,
) -> None:
    tier = TierConfig.model_validate(
        {"name": "t", "min_score": 0, "follow_up": policy, "follow_up_minutes": minutes}
    )
    hours = BusinessHoursConfig.model_validate({"holidays": holidays})
    got = follow_up_deadline(tier, _ms(submitted), hours, ZoneInfo(zone))
    assert got == (None if expected is None else _ms(expected))


def test_score_carries_the_tiers_deadline_in_local_time() -> None:
    lead = msgspec.structs.replace(CASES[0].lead, ts=_ms("2024-11-03T01:30-04:00"))
    score = score_lead(DEFAULT, lead, _busy(lead.ts), now_ms=lead.ts, zone="America/New_York")
    assert score.tier == "premium" and score.action == "immediate follow-up"
    assert score.follow_up.policy == "within_minutes"
    assert score.follow_up.deadline_ms == _ms("2024-11-03T06:30Z")
    assert score.follow_up.deadline_local == "2024-11-03T01:30:00-05:00"
    nurture = score_lead(DEFAULT, CASES[3].lead, EngagementFacts(), now_ms=NOW, zone="UTC")
    assert (nurture.tier, nurture.follow_up.deadline_ms, nurture.follow_up.deadline_local) == (
        "low",
        None,
        None,
    )


def test_to_dict_is_plain_json() -> None:
    score = _score(CASES[2])
    data = score.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["total"] == score.total and data["tier"] == "standard"
    components = data["components"]
    assert isinstance(components, list) and isinstance(components[0]["hits"], list)
    assert [c["contribution"] for c in components] == [24.0, 6.3, 17.5, 20.0]
    assert data["follow_up"] == {
        "policy": "end_of_next_business_day",
        "deadline_ms": _ms("2024-06-03T15:00Z"),  # Saturday → Monday 17:00 CEST
        "deadline_local": "2024-06-03T17:00:00+02:00",
    }


# (config data, error location, text the message must contain)
BAD_CONFIGS: list[tuple[dict[str, Any], tuple[str | int, ...], str]] = [
    ({"weights": {"traffic_source": 0.35}}, ("weights",), "traffic_source=0.35"),
    ({"weights": {"engagement": -0.1}}, ("weights", "engagement"), "greater than or equal"),
    ({"weights": {"clicks": 0.1}}, ("weights", "clicks"), "Extra inputs"),
    (
        {"traffic_source": {"channel_classes": {"Email": "mail"}}},
        ("traffic_source", "channel_classes"),
        "'Email' maps to class 'mail'",
    ),
    (
        {"traffic_source": {"unknown_class": "other"}},
        ("traffic_source", "unknown_class"),
        "'other'",
    ),
    (
        {"traffic_source": {"class_points": {"organic": 150}}},
        ("traffic_source", "class_points", "organic"),
        "100",
    ),
    ({"engagement": {"half_life_days": 0}}, ("engagement", "half_life_days"), "greater than 0"),
    (
        {"engagement": {"download": {"points": 15, "max_points": -1}}},
        ("engagement", "download", "max_points"),
        "greater than or equal",
    ),
    (
        {"form_completion": {"field_points": {"fone": 15}}},
        ("form_completion", "field_points"),
        "'fone'",
    ),
    (
        {"demographics": {"country_points": {"US": 30, " us": 20}}},
        ("demographics", "country_points"),
        "'US' and ' us'",
    ),
    (
        {"demographics": {"industry_points": {"Mining": float("nan")}}},
        ("demographics", "industry_points", "Mining"),
        "finite",
    ),
    ({"tiers": [{"name": "hot", "min_score": 50}]}, ("tiers",), "'hot' starts at 50"),
    ({"tiers": []}, ("tiers",), "at least one tier"),
    (
        {"tiers": [{"name": "a", "min_score": 0}, {"name": "b", "min_score": 0}]},
        ("tiers",),
        "share min_score 0",
    ),
    (
        {"tiers": [{"name": "a", "min_score": 0}, {"name": "a", "min_score": 50}]},
        ("tiers",),
        "'a' used twice",
    ),
    (
        {"tiers": [{"name": "a", "min_score": 0, "follow_up": "within_minutes"}]},
        ("tiers", 0),
        "needs follow_up_minutes",
    ),
    ({"tiers": [{"name": "A!", "min_score": 0}]}, ("tiers", 0, "name"), "pattern"),
    (
        {"business_hours": {"opens_at": "18:00"}},
        ("business_hours", "closes_at"),
        "closes_at 17:00 is not after opens_at 18:00",
    ),
    (
        {"business_hours": {"weekdays": ["mon", "funday"]}},
        ("business_hours", "weekdays", 1),
        "'funday'",
    ),
    (
        {"business_hours": {"weekdays": ["mon", "mon"]}},
        ("business_hours", "weekdays"),
        "'mon' listed twice",
    ),
    # Unquoted 17:00 in YAML 1.1 is the number 1020.
    (
        yaml.safe_load("business_hours:\n  closes_at: 17:00\n"),
        ("business_hours", "closes_at"),
        "quote it: '17:00' (got 1020)",
    ),
    ({"business_hours": {"holidays": ["2024-13-01"]}}, ("business_hours", "holidays", 0), "date"),
]


@pytest.mark.parametrize(
    ("data", "loc", "text"), BAD_CONFIGS, ids=[".".join(map(str, b[1])) for b in BAD_CONFIGS]
)
def test_config_errors_name_key_and_value(
    data: dict[str, Any], loc: tuple[str | int, ...], text: str
) -> None:
    with pytest.raises(ValidationError) as info:
        ScoringConfig.model_validate(data)
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [loc], errors
    # As config.loader reports it: the message, then the value it was given.
    problem = f"{errors[0]['msg']} (got {errors[0]['input']!r})"
    assert text in problem, problem


def test_weights_sum_error_shows_the_sum() -> None:
    with pytest.raises(ValidationError) as info:
        ScoringConfig.model_validate({"weights": {"traffic_source": 0.35}})
    message = info.value.errors()[0]["msg"]
    assert "weights must sum to 1.0, got 1.05" in message
    assert "engagement=0.25, form_completion=0.25, demographics=0.2" in message


def test_quoted_times_and_yaml_dates_are_accepted() -> None:
    data = yaml.safe_load(
        "business_hours:\n  opens_at: '08:30'\n  closes_at: '18:00'\n"
        "  holidays: [2024-12-25, 2024-12-24]\n"
    )
    hours = ScoringConfig.model_validate(data).business_hours
    assert (hours.opens_at.isoformat(), hours.closes_at.isoformat()) == ("08:30:00", "18:00:00")
    assert [d.isoformat() for d in hours.holidays] == ["2024-12-24", "2024-12-25"]


_stamp = st.integers(min_value=NOW - 400 * DAY, max_value=NOW + DAY)
_facts = st.builds(
    EngagementFacts,
    sessions=st.lists(st.builds(Session, _stamp), max_size=5).map(tuple),
    pageviews=st.lists(st.builds(PageView, _stamp), max_size=12).map(tuple),
    engaged=st.lists(
        st.builds(EngagedTime, _stamp, st.floats(min_value=0, max_value=1e6)), max_size=6
    ).map(tuple),
    downloads=st.lists(st.builds(Download, _stamp), max_size=4).map(tuple),
    custom_events=st.lists(
        st.builds(CustomEvent, _stamp, st.sampled_from(["cta_click", "video_play", "x"])),
        max_size=5,
    ).map(tuple),
)
_text = st.sampled_from(["", " ", "11-50", "US", "Healthcare", "a long enough message here"])
_leads = st.builds(
    LeadFacts,
    ts=st.just(NOW),
    channel=st.sampled_from(["Direct", "Paid Search", "Email", "Unassigned", "Other"]),
    email=_text,
    phone=_text,
    company=_text,
    company_size=_text,
    industry=_text,
    country=_text,
    budget=_text,
    message=_text,
)


@settings(max_examples=150, deadline=None)
@given(
    lead=_leads,
    facts=_facts,
    parts=st.lists(st.integers(min_value=0, max_value=1000), min_size=4, max_size=4).filter(
        lambda xs: sum(xs) > 0
    ),
)
def test_breakdown_always_sums_to_total(
    lead: LeadFacts, facts: EngagementFacts, parts: list[int]
) -> None:
    names = ("traffic_source", "engagement", "form_completion", "demographics")
    weights = dict(zip(names, (p / sum(parts) for p in parts), strict=True))
    config = ScoringConfig.model_validate({"weights": weights})
    score = score_lead(config, lead, facts, now_ms=NOW, zone="UTC")
    assert math.fsum(c.contribution for c in score.components) == pytest.approx(
        score.total, abs=1e-9
    )
    assert 0 <= score.total <= 100
    assert score.total * 10 == pytest.approx(round(score.total * 10), abs=1e-9)
    assert tier_for(config.tiers, score.total).name == score.tier
    for component in score.components:
        assert 0 <= component.points <= 100
        assert component.raw_points == pytest.approx(math.fsum(h.points for h in component.hits))
        cut = math.fsum(c.points_before - c.points_after for c in component.caps)
        assert component.raw_points - cut == pytest.approx(component.points, abs=1e-9)
        assert abs(component.contribution - component.weight * component.points) < 0.1 + 1e-9
    for sub in (score.fit_score, score.engagement_score):
        assert 0 <= sub <= 100


@settings(max_examples=60, deadline=None)
@given(cases=st.lists(st.tuples(_leads, _facts), min_size=2, max_size=8))
def test_a_shared_scorer_scores_as_a_fresh_one(
    cases: list[tuple[LeadFacts, EngagementFacts]],
) -> None:
    # LeadScorer memoises components across leads; none of that may leak between them.
    scorer = LeadScorer(DEFAULT)
    for _ in range(2):
        for lead, facts in cases:
            shared = scorer.score(lead, facts, now_ms=NOW, zone="Europe/Berlin")
            alone = score_lead(DEFAULT, lead, facts, now_ms=NOW, zone="Europe/Berlin")
            assert shared == alone
            assert shared.to_dict() == alone.to_dict()


def test_activity_scores_as_the_facts_it_comes_from() -> None:
    facts = _busy(NOW - 10 * DAY)
    reads = Activity.of(facts, DEFAULT.engagement.engaged_page.min_engaged_secs)
    assert len(reads.reads) == 3 and len(reads.pageviews) == 7
    for lead in (CASES[0].lead, CASES[1].lead):
        via_facts = score_lead(DEFAULT, lead, facts, now_ms=NOW, zone="UTC")
        assert score_lead(DEFAULT, lead, reads, now_ms=NOW, zone="UTC") == via_facts
    short = EngagementFacts(engaged=(EngagedTime(NOW, 119_999.0), EngagedTime(NOW, 120_000.0)))
    assert Activity.of(short, 120).reads == [NOW]


@pytest.mark.parametrize("policy", ["end_of_business_day", "end_of_next_business_day"])
def test_a_shared_scorer_keeps_every_deadline(policy: str) -> None:
    # Closing times are remembered per local day; each lead's deadline must still be
    # follow_up_deadline's, across DST changes, weekends and holidays, before and after close.
    tiers = [{"name": "only", "min_score": 0, "action": "call", "follow_up": policy}]
    hours = {"holidays": ["2024-10-03", "2024-12-25"]}
    config = ScoringConfig.model_validate({"tiers": tiers, "business_hours": hours})
    scorer = LeadScorer(config)
    zone = ZoneInfo("Europe/Berlin")
    start = _ms("2024-09-28T00:00Z")
    lead = CASES[3].lead
    for step in range(0, 100 * DAY, 7 * 3_600_000 + 13 * 60_000):
        ts = start + step
        got = scorer.score(
            msgspec.structs.replace(lead, ts=ts), EngagementFacts(), now_ms=NOW, zone=zone
        )
        expected = follow_up_deadline(config.tiers[0], ts, config.business_hours, zone)
        assert expected is not None and got.follow_up.deadline_ms == expected
        assert (
            got.follow_up.deadline_local
            == datetime.fromtimestamp(expected / 1000, zone).isoformat()
        )
