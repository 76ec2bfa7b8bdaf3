from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from sitepulse.analyse.attribution import (
    ALL_MODELS,
    DAY_MS,
    UNATTRIBUTED,
    AttributionConfig,
    AttributionModel,
    Dimension,
    LeadJourney,
    Touchpoint,
    attribute,
    attribute_all,
    attribute_many,
    dimension_value,
    report,
    touchpoints_in_window,
)

# numpy's divide-by-zero / invalid-value warnings would mean a model computed 0/0.
pytestmark = pytest.mark.filterwarnings("error")

M = AttributionModel
LEAD_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR_MS = 3_600_000

# A credit is a multiple of 2**-32 and the largest share of a lead also takes the flooring
# leftover (under one unit per touchpoint), so a share sits within n * 2**-32 of its ideal
# value; the literals below are rounded to 10 decimals.
SHARE_TOL = 2e-9

CHANNEL_CHOICES = (
    "Direct",
    "Organic Search",
    "Paid Search",
    "Organic Social",
    "Paid Social",
    "Email",
    "Referral",
    "Display",
    "Affiliates",
    "AI Assistants",
    "Unassigned",
)


def tp(
    name: str,
    channel: str,
    days_before: float,
    *,
    session_id: int = 0,
    medium: str = "m",
    campaign: str = "c",
    ms: int = 0,
) -> Touchpoint:
    """A touchpoint named by its source, `days_before` the lead (plus `ms` milliseconds)."""
    return Touchpoint(
        started_at=LEAD_TS - round(days_before * DAY_MS) + ms,
        channel=channel,
        source=name,
        medium=medium,
        campaign=campaign,
        session_id=session_id,
    )


def journey(*touchpoints: Touchpoint, score: float | None = 1.0, lead_id: str = "L") -> LeadJourney:
    return LeadJourney(lead_id=lead_id, ts=LEAD_TS, score=score, touchpoints=touchpoints)


@dataclass(frozen=True)
class Case:
    name: str
    touchpoints: tuple[Touchpoint, ...]
    expected: dict[AttributionModel, dict[str, float]]
    config: AttributionConfig = field(default_factory=AttributionConfig)


def every_model(expected: dict[str, float]) -> dict[AttributionModel, dict[str, float]]:
    return dict.fromkeys(ALL_MODELS, expected)


THREE = (
    tp("google", "Organic Search", 14),
    tp("newsletter", "Email", 7),
    tp("direct", "Direct", 0),  # exactly at the lead: counts
)
# Half-life 7 days, touches 14/7/0 days back: weights 1/4, 1/2, 1 -> 1/7, 2/7, 4/7.
THREE_EXPECTED = {
    M.FIRST_TOUCH: {"google": 1.0},
    M.LAST_TOUCH: {"direct": 1.0},
    M.LAST_NON_DIRECT: {"newsletter": 1.0},
    M.LINEAR: {"google": 0.3333333333, "newsletter": 0.3333333333, "direct": 0.3333333333},
    M.TIME_DECAY: {"google": 0.1428571429, "newsletter": 0.2857142857, "direct": 0.5714285714},
    M.POSITION_BASED: {"google": 0.4, "newsletter": 0.2, "direct": 0.4},
}

CASES = [
    Case("single touch", (tp("google", "Organic Search", 3),), every_model({"google": 1.0})),
    Case("three touches", THREE, THREE_EXPECTED),
    Case("three touches given newest first", tuple(reversed(THREE)), THREE_EXPECTED),
    Case(
        # Half-life 7 days, touches 28/21/14/7/0 days back: weights 1/16 .. 1, total 31/16.
        "five touches",
        (
            tp("a", "Paid Search", 28),
            tp("b", "Organic Social", 21),
            tp("c", "Referral", 14),
            tp("d", "Direct", 7),
            tp("e", "Direct", 0),
        ),
        {
            M.FIRST_TOUCH: {"a": 1.0},
            M.LAST_TOUCH: {"e": 1.0},
            M.LAST_NON_DIRECT: {"c": 1.0},
            M.LINEAR: {"a": 0.2, "b": 0.2, "c": 0.2, "d": 0.2, "e": 0.2},
            M.TIME_DECAY: {
                "a": 0.0322580645,
                "b": 0.0645161290,
                "c": 0.1290322581,
                "d": 0.2580645161,
                "e": 0.5161290323,
            },
            M.POSITION_BASED: {
                "a": 0.4,
                "b": 0.0666666667,
                "c": 0.0666666667,
                "d": 0.0666666667,
                "e": 0.4,
            },
        },
    ),
    Case(
        # Seven days apart: time-decay weights 1/2 and 1.
        "two touches",
        (tp("fb", "Paid Social", 9), tp("mail", "Email", 2)),
        {
            M.FIRST_TOUCH: {"fb": 1.0},
            M.LAST_TOUCH: {"mail": 1.0},
            M.LAST_NON_DIRECT: {"mail": 1.0},
            M.LINEAR: {"fb": 0.5, "mail": 0.5},
            M.TIME_DECAY: {"fb": 0.3333333333, "mail": 0.6666666667},
            M.POSITION_BASED: {"fb": 0.5, "mail": 0.5},
        },
    ),
    Case(
        "all direct: last non-direct falls back to last touch",
        (tp("d1", "Direct", 5), tp("d2", "Direct", 1)),
        {
            M.FIRST_TOUCH: {"d1": 1.0},
            M.LAST_TOUCH: {"d2": 1.0},
            M.LAST_NON_DIRECT: {"d2": 1.0},
            M.LINEAR: {"d1": 0.5, "d2": 0.5},
            # 4 days apart: weights 2**(-4/7) = 0.6729500963 and 1.
            M.TIME_DECAY: {"d1": 0.4022535387, "d2": 0.5977464613},
            M.POSITION_BASED: {"d1": 0.5, "d2": 0.5},
        },
    ),
    Case(
        # Same start: the lower session id comes first, whatever the input order.
        "tie broken by session id",
        (
            tp("late_id", "Paid Search", 7, session_id=9),
            tp("direct", "Direct", 0, session_id=1),
            tp("early_id", "Email", 7, session_id=4),
        ),
        {
            M.FIRST_TOUCH: {"early_id": 1.0},
            M.LAST_TOUCH: {"direct": 1.0},
            M.LAST_NON_DIRECT: {"late_id": 1.0},
            M.LINEAR: {"early_id": 0.3333333333, "late_id": 0.3333333333, "direct": 0.3333333333},
            M.TIME_DECAY: {"early_id": 0.25, "late_id": 0.25, "direct": 0.5},
            M.POSITION_BASED: {"early_id": 0.4, "late_id": 0.2, "direct": 0.4},
        },
    ),
    Case(
        # Same start and same session id: input order decides.
        "full tie kept in input order",
        (tp("x", "Organic Search", 2), tp("y", "Paid Search", 2)),
        {
            M.FIRST_TOUCH: {"x": 1.0},
            M.LAST_TOUCH: {"y": 1.0},
            M.LAST_NON_DIRECT: {"y": 1.0},
            M.LINEAR: {"x": 0.5, "y": 0.5},
            M.TIME_DECAY: {"x": 0.5, "y": 0.5},
            M.POSITION_BASED: {"x": 0.5, "y": 0.5},
        },
    ),
    Case(
        # 28-day window: 28 days back counts, 1 ms more does not, nor anything after the lead.
        # Time decay: weights 2**-4 and 1 -> 1/17 and 16/17.
        "window edges",
        (
            tp("too_old", "Paid Search", 28, ms=-1),
            tp("edge", "Email", 28),
            tp("after", "Organic Social", 0, ms=1),
            tp("at_lead", "Referral", 0),
        ),
        {
            M.FIRST_TOUCH: {"edge": 1.0},
            M.LAST_TOUCH: {"at_lead": 1.0},
            M.LAST_NON_DIRECT: {"at_lead": 1.0},
            M.LINEAR: {"edge": 0.5, "at_lead": 0.5},
            M.TIME_DECAY: {"edge": 0.0588235294, "at_lead": 0.9411764706},
            M.POSITION_BASED: {"edge": 0.5, "at_lead": 0.5},
        },
        AttributionConfig(lookback_days=28),
    ),
    Case("no touchpoints", (), every_model({UNATTRIBUTED: 1.0})),
    Case(
        "only touchpoints outside the window",
        (tp("old", "Paid Search", 31), tp("later", "Email", 0, ms=HOUR_MS)),
        every_model({UNATTRIBUTED: 1.0}),
    ),
    Case(
        # Half-life 1 day, touches 3/2/1/0 days back: weights 1/8, 1/4, 1/2, 1 (total 15/8).
        # Position 30/40/30: the two middle touches split 40%.
        "custom half-life and position weights",
        (
            tp("a", "Display", 3),
            tp("b", "Affiliates", 2),
            tp("c", "AI Assistants", 1),
            tp("d", "Direct", 0),
        ),
        {
            M.FIRST_TOUCH: {"a": 1.0},
            M.LAST_TOUCH: {"d": 1.0},
            M.LAST_NON_DIRECT: {"c": 1.0},
            M.LINEAR: {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25},
            M.TIME_DECAY: {
                "a": 0.0666666667,
                "b": 0.1333333333,
                "c": 0.2666666667,
                "d": 0.5333333333,
            },
            M.POSITION_BASED: {"a": 0.3, "b": 0.2, "c": 0.2, "d": 0.3},
        },
        AttributionConfig(
            half_life_days=1.0,
            position_first_weight=0.3,
            position_middle_weight=0.4,
            position_last_weight=0.3,
        ),
    ),
]

MODEL_CASES = [(case, model) for case in CASES for model in ALL_MODELS]


@pytest.mark.parametrize(
    ("case", "model"), MODEL_CASES, ids=[f"{c.name}-{m.value}" for c, m in MODEL_CASES]
)
def test_hand_computed_credits(case: Case, model: AttributionModel) -> None:
    credits = attribute(journey(*case.touchpoints), model, case.config)
    expected = case.expected[model]
    # Credits come oldest first, as the expected dicts are written.
    assert [c.touchpoint.source for c in credits] == list(expected)
    for credit in credits:
        assert credit.share == pytest.approx(expected[credit.touchpoint.source], abs=SHARE_TOL)
    assert sum(c.share for c in credits) == 1.0


def test_attribute_all_matches_attribute() -> None:
    lead = journey(*THREE)
    assert attribute_all(lead) == {model: attribute(lead, model) for model in ALL_MODELS}


def test_dyadic_shares_are_exact() -> None:
    lead = journey(tp("x", "Organic Search", 7, session_id=1), tp("y", "Email", 7, session_id=2))
    credits = attribute_all(lead)
    assert [c.share for c in credits[M.LINEAR]] == [0.5, 0.5]
    assert [c.share for c in credits[M.TIME_DECAY]] == [0.5, 0.5]
    assert [c.share for c in credits[M.FIRST_TOUCH]] == [1.0]


def test_unattributed_credit_is_the_sentinel_touchpoint() -> None:
    (credit,) = attribute(journey(), M.LINEAR)
    assert credit.share == 1.0
    assert credit.touchpoint.channel == UNATTRIBUTED
    for dimension in Dimension:
        assert dimension_value(credit.touchpoint, dimension) == UNATTRIBUTED


def test_default_window_is_thirty_days_back_to_the_lead() -> None:
    lead = journey(
        tp("after", "Email", 0, ms=1),
        tp("at_lead", "Email", 0),
        tp("inside", "Email", 29),
        tp("edge", "Email", 30),
        tp("too_old", "Email", 30, ms=-1),
        tp("way_old", "Email", 90),
    )
    assert [t.source for t in touchpoints_in_window(lead)] == ["edge", "inside", "at_lead"]
    assert [t.source for t in touchpoints_in_window(lead, AttributionConfig(lookback_days=90))] == [
        "way_old",
        "too_old",
        "edge",
        "inside",
        "at_lead",
    ]


def test_session_ids_beyond_int64_and_negative_still_order() -> None:
    big = 2**64 - 1  # hash64 ids are unsigned 64-bit
    lead = journey(
        tp("big", "Email", 1, session_id=big),
        tp("neg", "Email", 1, session_id=-5),
        tp("small", "Email", 1, session_id=3),
    )
    assert [t.source for t in touchpoints_in_window(lead)] == ["neg", "small", "big"]
    unsigned = journey(tp("big", "Email", 1, session_id=big), tp("small", "Email", 1, session_id=3))
    assert [t.source for t in touchpoints_in_window(unsigned)] == ["small", "big"]


# Random journeys: exact sums, and agreement with a plain-float reference written here.

RANDOM_CONFIGS = (
    AttributionConfig(),
    AttributionConfig(lookback_days=7, half_life_days=0.5),
    AttributionConfig(
        lookback_days=90,
        half_life_days=30.0,
        position_first_weight=0.25,
        position_middle_weight=0.5,
        position_last_weight=0.25,
    ),
    AttributionConfig(
        half_life_days=0.001,
        position_first_weight=0.0,
        position_middle_weight=0.3,
        position_last_weight=0.7,
    ),
)


def random_journeys(seed: int, count: int) -> list[LeadJourney]:
    rng = random.Random(seed)
    journeys = []
    for i in range(count):
        ts = LEAD_TS + rng.randrange(60 * DAY_MS)
        touchpoints: list[Touchpoint] = []
        for k in range(rng.randint(0, 20)):
            if touchpoints and rng.random() < 0.15:
                started = touchpoints[-1].started_at  # a tie
            elif rng.random() < 0.3:
                started = ts - rng.randrange(10) * DAY_MS  # on whole days: more ties
            else:
                started = ts - rng.randrange(-2 * DAY_MS, 100 * DAY_MS)
            touchpoints.append(
                Touchpoint(
                    started_at=started,
                    channel=rng.choice(CHANNEL_CHOICES),
                    source=f"t{k}",
                    medium=rng.choice(("cpc", "organic", "email", "")),
                    campaign=rng.choice(("spring", "brand", "")),
                    session_id=rng.choice((0, rng.randrange(2**64))),
                )
            )
        score = None if rng.random() < 0.2 else round(rng.uniform(0, 100), 2)
        journeys.append(LeadJourney(f"lead{i}", ts, score, tuple(touchpoints)))
    return journeys


def reference_shares(
    lead: LeadJourney, model: AttributionModel, config: AttributionConfig
) -> dict[str, float]:
    """Ideal (unquantised) shares by touchpoint source, straight from the definitions."""
    window = [
        t
        for t in lead.touchpoints
        if lead.ts - config.lookback_days * DAY_MS <= t.started_at <= lead.ts
    ]
    window.sort(key=lambda t: (t.started_at, t.session_id))
    if not window:
        return {UNATTRIBUTED: 1.0}
    n = len(window)
    if model is M.FIRST_TOUCH:
        weights = [1.0] + [0.0] * (n - 1)
    elif model is M.LAST_TOUCH:
        weights = [0.0] * (n - 1) + [1.0]
    elif model is M.LAST_NON_DIRECT:
        non_direct = [i for i, t in enumerate(window) if t.channel != "Direct"]
        chosen = non_direct[-1] if non_direct else n - 1
        weights = [1.0 if i == chosen else 0.0 for i in range(n)]
    elif model is M.LINEAR:
        weights = [1.0] * n
    elif model is M.TIME_DECAY:
        half_life_ms = config.half_life_days * DAY_MS
        # Relative to the latest touch: the ratios the definition asks for, without underflow.
        weights = [2.0 ** (-(window[-1].started_at - t.started_at) / half_life_ms) for t in window]
    else:
        first, middle, last = (
            config.position_first_weight,
            config.position_middle_weight,
            config.position_last_weight,
        )
        if n == 1:
            weights = [1.0]
        elif n == 2:
            weights = [first, last]
        else:
            weights = [first] + [middle / (n - 2)] * (n - 2) + [last]
    total = sum(weights)
    return {t.source: w / total for t, w in zip(window, weights, strict=True)}


@pytest.mark.parametrize("config", RANDOM_CONFIGS, ids=range(len(RANDOM_CONFIGS)))
def test_random_journeys_sum_to_exactly_one_and_match_reference(config: AttributionConfig) -> None:
    journeys = random_journeys(seed=7, count=300)
    table = attribute_many(journeys, config)
    assert len(table) == len(journeys)
    for lead, credits_by_model in zip(journeys, table, strict=True):
        for model in ALL_MODELS:
            credits = credits_by_model[model]
            shares = [c.share for c in credits]
            assert sum(shares) == 1.0
            assert sum(reversed(shares)) == 1.0
            assert math.fsum(shares) == 1.0
            assert all(0.0 < s <= 1.0 for s in shares)
            got = {c.touchpoint.source: c.share for c in credits}
            want = reference_shares(lead, model, config)
            assert set(got) <= set(want)
            for source, share in want.items():
                assert got.get(source, 0.0) == pytest.approx(share, abs=2e-8), (lead, model)


def test_batch_and_single_lead_agree() -> None:
    journeys = random_journeys(seed=11, count=40)
    batch = attribute_many(journeys)
    assert batch == [attribute_all(lead) for lead in journeys]


# Reports.

REPORT_LEADS = [
    journey(
        tp("google", "Organic Search", 14, medium="organic", campaign=""),
        tp("newsletter", "Email", 7, medium="email", campaign="spring"),
        tp("(direct)", "Direct", 0, medium="(none)", campaign=""),
        score=10.0,
        lead_id="a",
    ),
    journey(
        tp("google", "Paid Search", 1, medium="cpc", campaign="brand"), score=None, lead_id="b"
    ),
    journey(score=2.0, lead_id="c"),
]

# Lead a alone, in credits per model (first, last, lnd, linear, decay, position):
#   Organic Search 1, 0, 0, 1/3, 1/7, 0.4
#   Email          0, 0, 1, 1/3, 2/7, 0.2
#   Direct         0, 1, 0, 1/3, 4/7, 0.4
# Lead b is all Paid Search, lead c all "(unattributed)".
THIRD = 0.3333333333
CHANNEL_LEADS = {
    UNATTRIBUTED: [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    "Paid Search": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    "Direct": [0.0, 1.0, 0.0, THIRD, 0.5714285714, 0.4],
    "Organic Search": [1.0, 0.0, 0.0, THIRD, 0.1428571429, 0.4],
    "Email": [0.0, 0.0, 1.0, THIRD, 0.2857142857, 0.2],
}
# Value is credit x score: lead a has score 10, b none (value 0), c has 2.
CHANNEL_VALUE = {
    UNATTRIBUTED: [2.0] * 6,
    "Paid Search": [0.0] * 6,
    "Direct": [0.0, 10.0, 0.0, 3.333333333, 5.714285714, 4.0],
    "Organic Search": [10.0, 0.0, 0.0, 3.333333333, 1.428571429, 4.0],
    "Email": [0.0, 0.0, 10.0, 3.333333333, 2.857142857, 2.0],
}
# Largest minus smallest share of the 3 leads: Paid Search and (unattributed) agree.
CHANNEL_DISAGREEMENT = {
    UNATTRIBUTED: 0.0,
    "Paid Search": 0.0,
    "Direct": THIRD,
    "Organic Search": THIRD,
    "Email": THIRD,
}


def test_channel_report_hand_computed() -> None:
    result = report(REPORT_LEADS, Dimension.CHANNEL)
    assert result.lead_count == 3
    assert result.models == ALL_MODELS
    # Ordered by credit summed over the models (6, 6, 2.30, 1.88, 1.82), then key.
    assert [row.key for row in result.rows] == list(CHANNEL_LEADS)
    for row in result.rows:
        assert [row.leads[m] for m in ALL_MODELS] == pytest.approx(
            CHANNEL_LEADS[row.key], abs=SHARE_TOL
        )
        assert [row.share[m] for m in ALL_MODELS] == pytest.approx(
            [x / 3 for x in CHANNEL_LEADS[row.key]], abs=SHARE_TOL
        )
        assert [row.value[m] for m in ALL_MODELS] == pytest.approx(CHANNEL_VALUE[row.key], abs=1e-7)
        assert row.disagreement == pytest.approx(CHANNEL_DISAGREEMENT[row.key], abs=SHARE_TOL)
    assert result.total.leads == dict.fromkeys(ALL_MODELS, 3.0)
    assert result.total.value == pytest.approx(dict.fromkeys(ALL_MODELS, 12.0))
    assert result.total.disagreement == 0.0


@pytest.mark.parametrize(
    ("dimension", "last_touch"),
    [
        (Dimension.SOURCE, {"google": 1.0, "(direct)": 1.0, UNATTRIBUTED: 1.0}),
        (
            Dimension.SOURCE_MEDIUM,
            {"google / cpc": 1.0, "(direct) / (none)": 1.0, UNATTRIBUTED: 1.0},
        ),
        (Dimension.CAMPAIGN, {"brand": 1.0, "(not set)": 1.0, UNATTRIBUTED: 1.0}),
    ],
)
def test_other_dimensions_last_touch(dimension: Dimension, last_touch: dict[str, float]) -> None:
    result = report(REPORT_LEADS, dimension)
    got = {row.key: row.leads[M.LAST_TOUCH] for row in result.rows if row.leads[M.LAST_TOUCH]}
    assert got == last_touch


def test_source_report_merges_a_source_across_channels() -> None:
    rows = {row.key: row for row in report(REPORT_LEADS, Dimension.SOURCE).rows}
    # google: lead a's organic first touch plus lead b's paid touch.
    assert rows["google"].leads[M.FIRST_TOUCH] == 2.0
    assert rows["google"].leads[M.LINEAR] == pytest.approx(1 + THIRD, abs=SHARE_TOL)
    assert set(rows) == {"google", "newsletter", "(direct)", UNATTRIBUTED}


def test_campaign_report_labels_empty_campaign_not_set() -> None:
    rows = {row.key: row for row in report(REPORT_LEADS, Dimension.CAMPAIGN).rows}
    assert set(rows) == {"brand", "spring", "(not set)", UNATTRIBUTED}
    # Lead a's first and last touch have no campaign.
    assert rows["(not set)"].leads[M.FIRST_TOUCH] == 1.0
    assert rows["(not set)"].leads[M.POSITION_BASED] == pytest.approx(0.8, abs=SHARE_TOL)
    assert rows["spring"].leads[M.LAST_NON_DIRECT] == 1.0


@pytest.mark.parametrize("dimension", list(Dimension))
def test_random_report_totals_equal_lead_count(dimension: Dimension) -> None:
    journeys = random_journeys(seed=3, count=400)
    result = report(journeys, dimension)
    assert result.lead_count == 400
    scores = math.fsum(j.score or 0.0 for j in journeys)
    for model in ALL_MODELS:
        column = [row.leads[model] for row in result.rows]
        assert result.total.leads[model] == 400.0
        assert sum(column) == 400.0
        assert sum(reversed(column)) == 400.0
        assert result.total.value[model] == pytest.approx(scores, rel=1e-12)
    assert len({row.key for row in result.rows}) == len(result.rows)
    totals = [sum(row.leads.values()) for row in result.rows]
    assert totals == sorted(totals, reverse=True)


def test_report_equals_sum_of_lead_credits() -> None:
    journeys = random_journeys(seed=5, count=200)
    config = RANDOM_CONFIGS[2]
    expected_leads: dict[tuple[str, AttributionModel], float] = {}
    expected_value: dict[tuple[str, AttributionModel], float] = {}
    for lead, credits_by_model in zip(journeys, attribute_many(journeys, config), strict=True):
        for model, credits in credits_by_model.items():
            for credit in credits:
                key = (dimension_value(credit.touchpoint, Dimension.SOURCE_MEDIUM), model)
                expected_leads[key] = expected_leads.get(key, 0.0) + credit.share
                expected_value[key] = expected_value.get(key, 0.0) + credit.share * (
                    lead.score or 0.0
                )
    result = report(journeys, Dimension.SOURCE_MEDIUM, config)
    got_leads = {(r.key, m): x for r in result.rows for m, x in r.leads.items() if x}
    got_value = {(r.key, m): r.value[m] for r in result.rows for m in ALL_MODELS if r.leads[m]}
    # Shares are multiples of 2**-32, so these sums are exact on both sides.
    assert got_leads == expected_leads
    assert got_value == pytest.approx(expected_value, rel=1e-12, abs=1e-9)


def test_report_is_deterministic_under_lead_order() -> None:
    journeys = random_journeys(seed=9, count=100)
    forward = report(journeys, Dimension.CHANNEL)
    backward = report(list(reversed(journeys)), Dimension.CHANNEL)
    assert [r.key for r in forward.rows] == [r.key for r in backward.rows]
    assert [r.leads for r in forward.rows] == [r.leads for r in backward.rows]


def test_report_of_no_leads() -> None:
    result = report([], Dimension.CHANNEL)
    assert result.lead_count == 0
    assert result.rows == ()
    assert result.total.leads == dict.fromkeys(ALL_MODELS, 0.0)
    assert result.total.disagreement == 0.0


def test_report_with_chosen_models() -> None:
    result = report(REPORT_LEADS, Dimension.CHANNEL, models=(M.LAST_TOUCH, M.FIRST_TOUCH))
    assert result.models == (M.LAST_TOUCH, M.FIRST_TOUCH)
    direct = next(row for row in result.rows if row.key == "Direct")
    assert direct.leads == {M.LAST_TOUCH: 1.0, M.FIRST_TOUCH: 0.0}
    assert direct.disagreement == pytest.approx(1 / 3)


@pytest.mark.parametrize("models", [(), (M.LINEAR, M.LINEAR)])
def test_report_rejects_bad_model_lists(models: tuple[AttributionModel, ...]) -> None:
    with pytest.raises(ValueError, match="models must be non-empty and distinct"):
        report(REPORT_LEADS, Dimension.CHANNEL, models=models)


def test_report_to_dict_is_json() -> None:
    data = report(REPORT_LEADS, Dimension.SOURCE_MEDIUM).to_dict()
    decoded: dict[str, Any] = json.loads(json.dumps(data))
    assert decoded["dimension"] == "source_medium"
    assert decoded["models"] == [
        "first_touch",
        "last_touch",
        "last_non_direct",
        "linear",
        "time_decay",
        "position_based",
    ]
    assert decoded["lead_count"] == 3
    assert decoded["config"] == {
        "lookback_days": 30,
        "half_life_days": 7.0,
        "position_first_weight": 0.4,
        "position_middle_weight": 0.2,
        "position_last_weight": 0.4,
    }
    assert decoded["total"]["leads"]["linear"] == 3.0
    first = decoded["rows"][0]
    assert set(first) == {"key", "leads", "share", "value", "disagreement"}
    assert set(first["leads"]) == set(decoded["models"])
    assert [row["key"] for row in decoded["rows"]][:2] == [UNATTRIBUTED, "google / cpc"]


# Validation.

BAD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({"lookback_days": 0}, r"lookback_days .* got 0"),
    ({"lookback_days": -3}, r"lookback_days .* got -3"),
    ({"lookback_days": 7.5}, r"lookback_days .* got 7\.5"),
    ({"lookback_days": True}, r"lookback_days .* got True"),
    ({"half_life_days": 0.0}, r"half_life_days .* got 0\.0"),
    ({"half_life_days": -1.0}, r"half_life_days .* got -1\.0"),
    ({"half_life_days": math.inf}, r"half_life_days .* got inf"),
    ({"half_life_days": math.nan}, r"half_life_days .* got nan"),
    ({"half_life_days": "7"}, r"half_life_days .* got '7'"),
    ({"position_first_weight": -0.1}, r"position_first_weight .* got -0\.1"),
    ({"position_middle_weight": 1.5}, r"position_middle_weight .* got 1\.5"),
    ({"position_last_weight": math.nan}, r"position_last_weight .* got nan"),
    (
        {"position_first_weight": 0.5},
        r"sum to 1, got position_first_weight=0\.5, position_middle_weight=0\.2, "
        r"position_last_weight=0\.4",
    ),
    (
        {"position_first_weight": 0.0, "position_middle_weight": 1.0, "position_last_weight": 0.0},
        r"position_first_weight \+ position_last_weight must be > 0, got 0\.0 \+ 0\.0",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), BAD_CONFIGS, ids=[str(kwargs) for kwargs, _ in BAD_CONFIGS]
)
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AttributionConfig(**kwargs)


def test_config_accepts_valid_values() -> None:
    config = AttributionConfig(
        lookback_days=1,
        half_life_days=0.25,
        position_first_weight=0.5,
        position_middle_weight=0.0,
        position_last_weight=0.5,
    )
    assert config.lookback_ms == DAY_MS
    assert config.half_life_ms == DAY_MS / 4


@pytest.mark.parametrize(
    ("touchpoint", "dimension", "expected"),
    [
        (Touchpoint(0, "Email", "mailchimp", "email", "spring"), Dimension.CHANNEL, "Email"),
        (Touchpoint(0, "Email", "mailchimp", "email", "spring"), Dimension.SOURCE, "mailchimp"),
        (
            Touchpoint(0, "Email", "mailchimp", "email", "spring"),
            Dimension.SOURCE_MEDIUM,
            "mailchimp / email",
        ),
        (Touchpoint(0, "Email", "mailchimp", "email", "spring"), Dimension.CAMPAIGN, "spring"),
        (Touchpoint(0, "Referral", "", "", ""), Dimension.CAMPAIGN, "(not set)"),
        (Touchpoint(0, "Referral", "", "", ""), Dimension.SOURCE_MEDIUM, "(not set) / (not set)"),
        (Touchpoint(0, "", "x", "y", "z"), Dimension.CHANNEL, "(not set)"),
    ],
)
def test_dimension_value(touchpoint: Touchpoint, dimension: Dimension, expected: str) -> None:
    assert dimension_value(touchpoint, dimension) == expected
