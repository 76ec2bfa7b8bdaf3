"""Funnels and form failures over real DuckDB files of known journeys.

Hand-made journeys carry literal expectations; seeded random journeys are checked against
a plain-Python reference (ClickHouse's windowFunnel scan for strict order, brute force over
windows for any order) and, for strict order, against windowFunnel itself in chdb.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import json
import random
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sitepulse.analyse.base import AnalysisError, Period
from sitepulse.analyse.funnels import (
    DEFAULT_LEAD_FUNNEL,
    EventStep,
    FunnelDefinition,
    FunnelReport,
    FunnelStep,
    LeadStep,
    Order,
    PageStep,
    Unit,
    form_failures,
    funnel,
    implies,
    parse_funnel,
)
from sitepulse.store.duckdb.backend import DuckDBStore
from tests.analyse.journeys import DAY, HOUR, MINUTE, SITE, T0, Journeys, Visit

SECOND = 1000
PERIOD = Period(SITE, T0, T0 + 10 * DAY)
D = T0 + DAY


def at(visitor: int) -> int:
    """When a hand-made visitor arrives: visitor n at hour n of day D."""
    return D + visitor * HOUR


def _error(visit: Visit, ts: int, reason: str, field: str = "") -> None:
    props = {"form": "contact", "reason": reason} | ({"field": field} if field else {})
    visit.event(ts, "form", "submit_error", props=props)


def _to_lead(visit: Visit, ts: int, *, lead_after: int | None = SECOND, test: bool = False) -> None:
    """Form start at `ts`, submit a minute later, then (maybe) the stored lead."""
    visit.form(ts, "form_start").form(ts + MINUTE, "submit")
    if lead_after is not None:
        visit.lead(ts + MINUTE + lead_after, is_test=test)


def hand_made() -> Journeys:
    """Thirteen visitors; each comment gives the furthest step of the default funnel in
    strict order, per visitor, with the 24 h window."""
    book = Journeys()
    # 1: the whole funnel; exposed to cta A, later to B (the first exposure counts).
    t = at(1)
    v = book.visit(1, channel="Organic Search").page(t, "/").exposure(t + 10 * SECOND, "cta", "A")
    v.page(t + MINUTE, "/services/seo").page(t + 5 * MINUTE, "/contact")
    v.form(t + 6 * MINUTE, "form_start").form(t + 8 * MINUTE, "submit")
    v.lead(t + 8 * MINUTE + 2 * SECOND).exposure(t + 9 * MINUTE, "cta", "B")
    # 2: lands on a service page (landing and service page at once); the submit fails.
    t = at(2)
    v = book.visit(2, channel="Paid Search", device="mobile").page(t, "/services/web")
    v.exposure(t + 5 * SECOND, "cta", "B").page(t + 2 * MINUTE, "/contact")
    v.form(t + 3 * MINUTE, "form_start").form(t + 5 * MINUTE, "submit")
    # 3: skips the service page: a lead, yet only step 1.
    t = at(3)
    _to_lead(book.visit(3).page(t, "/").page(t + MINUTE, "/contact"), t + 2 * MINUTE)
    # 4: out of order (contact before services): step 2 strict, all six in any order.
    t = at(4)
    v = book.visit(4, channel="Organic Search", device="tablet").page(t, "/contact")
    v.exposure(t + SECOND, "cta", "B").page(t + MINUTE, "/services/a")
    _to_lead(v, t + 2 * MINUTE)
    # 5: services, then two days later contact and a lead: step 2 (6 with a 3-day window).
    t = at(5)
    book.visit(5, channel="Referral").page(t, "/").page(t + MINUTE, "/services/b")
    t += 2 * DAY
    _to_lead(book.visit(5, channel="Referral").page(t, "/contact"), t + MINUTE)
    # 6: a bot converting: never counted.
    t = at(6)
    v = book.visit(6, is_bot=True).page(t, "/services/a").page(t + MINUTE, "/contact")
    _to_lead(v, t + 2 * MINUTE)
    # 7: a test lead: step 5.
    t = at(7)
    v = book.visit(7, channel="Email", device="mobile").page(t, "/")
    v.page(t + MINUTE, "/services/x").page(t + 2 * MINUTE, "/contact")
    _to_lead(v, t + 3 * MINUTE, test=True)
    # 8: the browser blocks a bad email, the visitor fixes it, the request then fails.
    t = at(8)
    v = book.visit(8, channel="Paid Search").page(t, "/services/x").page(t + MINUTE, "/contact")
    v.form(t + 2 * MINUTE, "form_start")
    _error(v, t + 3 * MINUTE, "invalid", "email")
    v.form(t + 4 * MINUTE, "submit")
    _error(v, t + 4 * MINUTE + 5 * SECOND, "network")
    # 9: a bad email, then a submit that never arrives.
    t = at(9)
    v = book.visit(9, channel="Organic Search", device="mobile").page(t, "/")
    v.page(t + MINUTE, "/services/a").page(t + 2 * MINUTE, "/contact")
    v.form(t + 3 * MINUTE, "form_start")
    _error(v, t + 4 * MINUTE, "invalid", "email")
    v.form(t + 5 * MINUTE, "submit")
    # 10: services on a phone, contact and a lead 20 hours later on a desktop: step 6 per
    # visitor (inside 24 h), steps 2 and 1 per session.
    t = at(10)
    v = book.visit(10, channel="Email", device="mobile").page(t, "/")
    v.page(t + 2 * MINUTE, "/services/a")
    t += 20 * HOUR
    v = book.visit(10, channel="Email").exposure(t, "cta", "A").page(t, "/contact")
    v.form(t + MINUTE, "form_start").form(t + 3 * MINUTE, "submit").lead(t + 3 * MINUTE + SECOND)
    # 11: a blog reader signs up for the newsletter, which fails.
    t = at(11)
    book.visit(11).page(t, "/blog/x").form(t + 30 * SECOND, "submit", form="newsletter")
    # 12: services and contact, no form: step 3.
    t = at(12)
    v = book.visit(12, channel="Organic Search").page(t, "/pricing")
    v.page(t + MINUTE, "/services/x").page(t + 2 * MINUTE, "/contact")
    # 13: the lead is stored 15 minutes after the submit.
    t = at(13)
    _to_lead(book.visit(13).page(t, "/contact"), t + MINUTE, lead_after=15 * MINUTE)
    return book


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    db = hand_made().save(tmp_path_factory.mktemp("funnels"))
    yield db
    db.close()


def units(report: FunnelReport) -> list[int]:
    return [step.units for step in report.steps]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, [12, 9, 7, 6, 6, 2]),
        ({"order": Order.ANY}, [12, 9, 8, 7, 7, 3]),  # + visitor 4
        ({"window_ms": 3 * DAY}, [12, 9, 8, 7, 7, 3]),  # + visitor 5
        ({"unit": Unit.SESSION}, [14, 9, 6, 5, 5, 1]),  # 5 and 10 split; 10 loses its lead
        ({"unit": Unit.SESSION, "order": Order.ANY}, [14, 9, 7, 6, 6, 2]),
        ({"window_ms": 3 * MINUTE}, [12, 9, 5, 4, 1, 0]),  # 3 minutes from the service page
    ],
)
def test_default_funnel_counts(
    store: DuckDBStore, changes: dict[str, Any], expected: list[int]
) -> None:
    definition = dataclasses.replace(DEFAULT_LEAD_FUNNEL, **changes)
    assert units(funnel(store, PERIOD, definition)) == expected


def test_default_funnel_rates_and_times(store: DuckDBStore) -> None:
    report = funnel(store, PERIOD, DEFAULT_LEAD_FUNNEL)
    rows = [
        (s.conversion_from_first, s.conversion_from_previous, s.drop_off, s.drop_off_rate)
        for s in report.steps
    ]
    assert rows == [
        (1.0, 1.0, 0, 0.0),
        (9 / 12, 9 / 12, 3, 3 / 12),
        (7 / 12, 7 / 9, 2, 2 / 9),
        (6 / 12, 6 / 7, 1, 1 / 7),
        (6 / 12, 1.0, 0, 0.0),
        (2 / 12, 2 / 6, 4, 4 / 6),
    ]
    # Contact page after the service page: 4 min, 2 min, 20 h minus 2 min and four 1 min.
    gaps = [None, 0.0, 60_000.0, 60_000.0, 120_000.0, (2_000 + 1_000) / 2]
    assert [s.median_ms_from_previous for s in report.steps] == gaps
    # Visitor 1: 8 min 2 s from "/"; visitor 10: 20 h 3 min 1 s from "/" the day before.
    assert report.median_time_to_convert_ms == (482_000 + 72_181_000) / 2
    assert (report.total.entered, report.total.converted) == (12, 2)
    assert report.total.conversion_rate == 2 / 12


def test_any_order_times(store: DuckDBStore) -> None:
    definition = dataclasses.replace(DEFAULT_LEAD_FUNNEL, order=Order.ANY)
    report = funnel(store, PERIOD, definition, breakdown="device")
    tablet = next(s for s in report.segments if s.value == "tablet")
    # Visitor 4: contact page, services 1 min later, form 1 min later, submit 1 min later,
    # lead 1 s later.
    assert [s.units for s in tablet.steps] == [1, 1, 1, 1, 1, 1]
    assert [s.median_ms_from_previous for s in tablet.steps] == [
        None,
        60_000.0,
        0.0,
        60_000.0,
        60_000.0,
        1_000.0,
    ]
    assert tablet.median_time_to_convert_ms == 181_000.0


@pytest.mark.parametrize(
    ("breakdown", "experiment", "expected"),
    [
        (
            "channel",
            None,
            {
                "Organic Search": [4, 4, 3, 2, 2, 1],
                "Direct": [3, 0, 0, 0, 0, 0],
                "Email": [2, 2, 2, 2, 2, 1],
                "Paid Search": [2, 2, 2, 2, 2, 0],
                "Referral": [1, 1, 0, 0, 0, 0],
            },
        ),
        (
            "device",  # visitor 10 entered on a phone
            None,
            {
                "desktop": [7, 4, 3, 2, 2, 1],
                "mobile": [4, 4, 4, 4, 4, 1],
                "tablet": [1, 1, 0, 0, 0, 0],
            },
        ),
        (
            None,
            "cta",
            {
                "(not exposed)": [8, 5, 4, 3, 3, 0],
                "A": [2, 2, 2, 2, 2, 2],
                "B": [2, 2, 1, 1, 1, 0],
            },
        ),
    ],
)
def test_breakdowns(
    store: DuckDBStore,
    breakdown: str | None,
    experiment: str | None,
    expected: dict[str, list[int]],
) -> None:
    report = funnel(store, PERIOD, DEFAULT_LEAD_FUNNEL, breakdown=breakdown, experiment=experiment)
    assert {s.value: [step.units for step in s.steps] for s in report.segments} == expected
    assert [s.value for s in report.segments] == list(expected)  # most entries first
    sums = [sum(s.steps[i].units for s in report.segments) for i in range(6)]
    assert sums == units(report) == [12, 9, 7, 6, 6, 2]


def test_segment_times(store: DuckDBStore) -> None:
    report = funnel(store, PERIOD, DEFAULT_LEAD_FUNNEL, breakdown="device")
    times = {s.value: s.median_time_to_convert_ms for s in report.segments}
    assert times == {"desktop": 482_000.0, "mobile": 72_181_000.0, "tablet": None}


def test_report_to_dict(store: DuckDBStore) -> None:
    report = funnel(store, PERIOD, DEFAULT_LEAD_FUNNEL, experiment="cta")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["funnel"] == DEFAULT_LEAD_FUNNEL.to_dict()
    assert (data["breakdown"], data["experiment"]) == ("variant", "cta")
    assert (data["entered"], data["converted"]) == (12, 2)
    assert data["steps"][2] == {
        "step": 3,
        "name": "contact page",
        "units": 7,
        "conversion_from_first": 7 / 12,
        "conversion_from_previous": 7 / 9,
        "drop_off": 2,
        "drop_off_rate": 2 / 9,
        "median_ms_from_previous": 60_000.0,
    }
    assert [s["value"] for s in data["segments"]] == ["(not exposed)", "A", "B"]


def test_empty_period(store: DuckDBStore) -> None:
    report = funnel(store, Period(SITE, T0 - 9 * DAY, T0 - 8 * DAY), DEFAULT_LEAD_FUNNEL)
    assert units(report) == [0] * 6
    assert report.steps[1].conversion_from_first is None
    assert report.median_time_to_convert_ms is None
    other_site = funnel(
        store, Period("other", T0, T0 + DAY), DEFAULT_LEAD_FUNNEL, breakdown="channel"
    )
    assert units(other_site) == [0] * 6 and other_site.segments == ()


@pytest.mark.parametrize(
    ("within_ms", "expected"),
    [
        (
            10 * MINUTE,
            {
                "totals": (10, 5, 5, 5),
                "by_form": [
                    ("contact", "/contact", 8, 4, 4, 4),
                    ("newsletter", "/blog/x", 1, 0, 1, 1),
                    ("contact", "/services/a", 1, 1, 0, 0),
                ],
                "by_reason": [
                    ("contact", "", "", 2),  # visitors 2 and 13
                    ("contact", "invalid", "email", 1),  # visitor 9
                    ("contact", "network", "", 1),  # visitor 8: the last error wins
                    ("newsletter", "", "", 1),
                ],
            },
        ),
        (
            20 * MINUTE,  # visitor 13's late lead counts
            {
                "totals": (10, 6, 4, 4),
                "by_form": [
                    ("contact", "/contact", 8, 5, 3, 3),
                    ("newsletter", "/blog/x", 1, 0, 1, 1),
                    ("contact", "/services/a", 1, 1, 0, 0),
                ],
                "by_reason": [
                    ("contact", "", "", 1),
                    ("contact", "invalid", "email", 1),
                    ("contact", "network", "", 1),
                    ("newsletter", "", "", 1),
                ],
            },
        ),
    ],
)
def test_form_failures(store: DuckDBStore, within_ms: int, expected: dict[str, Any]) -> None:
    report = form_failures(store, PERIOD, within_ms=within_ms)
    totals = (report.submits, report.became_leads, report.failed, report.failed_visitors)
    assert totals == expected["totals"]
    assert [
        (r.form, r.path, r.submits, r.became_leads, r.failed, r.failed_visitors)
        for r in report.by_form
    ] == expected["by_form"]
    assert [(r.form, r.reason, r.field, r.failed) for r in report.by_reason] == expected[
        "by_reason"
    ]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["failed"] == expected["totals"][2]
    assert data["by_form"][0]["failure_rate"] == report.by_form[0].failure_rate


def test_window_edges_are_inclusive(tmp_path: Path) -> None:
    book = Journeys()
    # Exactly 24 h from the landing (also the service page) to the lead: converts.
    v = book.visit(1).page(D, "/services/a").page(D + HOUR, "/contact")
    v.form(D + 2 * HOUR, "form_start").form(D + DAY - MINUTE, "submit").lead(D + DAY)
    # One millisecond more: stops at the submit.
    v = book.visit(2).page(D, "/services/a").page(D + HOUR, "/contact")
    v.form(D + 2 * HOUR, "form_start").form(D + DAY - MINUTE, "submit").lead(D + DAY + 1)
    # A lead exactly `within_ms` after the submit counts; one millisecond later it does not.
    book.visit(3).page(D, "/contact").form(D, "submit").lead(D + 10 * MINUTE)
    book.visit(4).page(D, "/contact").form(D, "submit").lead(D + 10 * MINUTE + 1)
    # A page view without a session counts for its visitor, never as "session 0".
    book.visit(5).page(D, "/services/a")
    book.events[-1] = msgspec.structs.replace(book.events[-1], session_id=0)
    db = book.save(tmp_path)
    try:
        report = funnel(db, PERIOD, DEFAULT_LEAD_FUNNEL)
        assert units(report) == [5, 3, 2, 2, 2, 1]
        assert report.median_time_to_convert_ms == DAY
        by_session = dataclasses.replace(DEFAULT_LEAD_FUNNEL, unit=Unit.SESSION)
        assert units(funnel(db, PERIOD, by_session)) == [4, 2, 2, 2, 2, 1]
        failures = form_failures(db, PERIOD)
        # Visitors 1 and 2 submit a minute before their leads; 3 is on the edge; 4 is late.
        assert (failures.submits, failures.became_leads, failures.failed) == (4, 3, 1)
    finally:
        db.close()


# --- validation --------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "name": "demo",
    "steps": [{"name": "any page"}, {"name": "lead", "lead": True}],
}


def _with(**changes: Any) -> dict[str, Any]:
    return GOOD | changes


def _step(**step: Any) -> dict[str, Any]:
    return _with(steps=[{"name": "any page"}, {"name": "x"} | step])


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_with(name=""), "name"),
        (_with(name=None), "name"),
        (_with(steps=[{"name": "only"}]), "steps"),
        (_with(steps=[{"name": f"s{i}"} for i in range(21)]), "steps"),
        (_with(steps="oops"), "steps"),
        (_with(window_ms=0), "window_ms"),
        (_with(window_ms=400 * DAY), "window_ms"),
        (_with(window_ms="1h"), "window_ms"),
        (_with(window_ms=True), "window_ms"),
        (_with(order="sideways"), "order"),
        (_with(unit="account"), "unit"),
        (_with(colour="red"), "colour"),
        (_with(steps=[{"name": "any page"}, "x"]), "steps[1]"),
        (_with(steps=[{"name": "a"}, {"name": "a"}]), "steps[1].name"),
        (_with(steps=[{"name": "a"}, {}]), "steps[1].name"),
        (_step(path="services"), "steps[1].path"),
        (_step(path="/a", page_group="/a"), "steps[1].path"),
        (_step(page_group="a"), "steps[1].page_group"),
        (_step(pattern="/a"), "steps[1].pattern"),
        (_step(type="lead"), "steps[1].type"),
        (_step(type="click", path="/a"), "steps[1].path"),
        (_step(type="pagevieww"), "steps[1].type"),
        (_step(type="form", event=""), "steps[1].event"),
        (_step(type="form", props=["form"]), "steps[1].props"),
        (_step(type="form", props={"a b": "x"}), "steps[1].props"),
        (_step(type="form", props={"form": 1.5}), "steps[1].props.form"),
        (_step(lead="yes"), "steps[1].lead"),
        (_step(lead=True, form=""), "steps[1].form"),
        (_step(lead=True, type="form"), "steps[1].type"),
    ],
)
def test_parse_errors_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        parse_funnel(data)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_parse_round_trip() -> None:
    cta: dict[str, Any] = {"name": "cta", "type": "custom", "event": "cta_click"}
    steps = [
        {"name": "pricing", "path": "/pricing"},
        {"name": "services", "page_group": "/services"},
        cta | {"props": {"plan": "pro", "n": 2}},
        {"name": "lead", "lead": True, "form": "contact"},
    ]
    data = {"name": "signup", "steps": steps, "window_ms": HOUR, "order": "any", "unit": "session"}
    definition = parse_funnel(data)
    assert definition.steps[2] == EventStep(
        "cta", type="custom", event="cta_click", props=(("plan", "pro"), ("n", "2"))
    )
    # Prop values are kept as the text `->>` gives.
    steps[2] = cta | {"props": {"plan": "pro", "n": "2"}}
    assert definition.to_dict() == data
    assert parse_funnel(definition.to_dict()) == definition
    assert parse_funnel(DEFAULT_LEAD_FUNNEL.to_dict()) == DEFAULT_LEAD_FUNNEL
    assert parse_funnel(GOOD) == FunnelDefinition(
        "demo", (PageStep("any page"), LeadStep("lead")), DAY, Order.STRICT, Unit.VISITOR
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"breakdown": "country"}, "breakdown"),
        ({"breakdown": "variant"}, "experiment"),
        ({"breakdown": "channel", "experiment": "cta"}, "experiment"),
        ({"experiment": ""}, "experiment"),
    ],
)
def test_funnel_argument_errors(store: DuckDBStore, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        funnel(store, PERIOD, DEFAULT_LEAD_FUNNEL, **kwargs)
    assert caught.value.field == field


@pytest.mark.parametrize("within_ms", [0, -5, 1.5, True])
def test_form_failures_window_error(store: DuckDBStore, within_ms: Any) -> None:
    with pytest.raises(AnalysisError) as caught:
        form_failures(store, PERIOD, within_ms=within_ms)
    assert caught.value.field == "within_ms"


@pytest.mark.parametrize(
    ("later", "earlier", "expected"),
    [
        (PageStep("a", path="/services/x"), PageStep("b"), True),
        (PageStep("a", page_group="/blog"), PageStep("b"), True),
        (PageStep("a", path="/services/x"), PageStep("b", path="/services*"), True),
        (PageStep("a", path="/services/*"), PageStep("b", path="/services*"), True),
        (PageStep("a", path="/services*"), PageStep("b", path="/services/*"), False),
        (PageStep("a", path="/serv?ces/x"), PageStep("b", path="/services*"), False),
        (PageStep("a", path="/x"), PageStep("b", path="/x"), True),
        (PageStep("a"), PageStep("b", path="/x"), False),
        (PageStep("a", page_group="/x"), PageStep("b", path="/x*"), False),
        (EventStep("a", "form", "submit", (("form", "c"),)), EventStep("b", "form"), True),
        (
            EventStep("a", "form", "submit", (("form", "c"),)),
            EventStep("b", "form", "submit"),
            True,
        ),
        (
            EventStep("a", "form", "submit"),
            EventStep("b", "form", "submit", (("form", "c"),)),
            False,
        ),
        (EventStep("a", "form", "submit"), EventStep("b", "form", "form_start"), False),
        (EventStep("a", "custom", "x"), EventStep("b", "form", "x"), False),
        (LeadStep("a", form="c"), LeadStep("b"), True),
        (LeadStep("a"), LeadStep("b", form="c"), False),
        (LeadStep("a"), PageStep("b"), False),
    ],
)
def test_implies(later: FunnelStep, earlier: FunnelStep, expected: bool) -> None:
    assert implies(later, earlier) is expected


# --- randomized cross-check against a plain-Python reference ------------------------------

CHANNELS = ("Direct", "Organic Search", "Email")
PATHS = ("/", "/services/a", "/services/b", "/services", "/contact", "/blog/x", "/pricing")
FORMS = ("contact", "contact", "newsletter")
LEAD_PATH = ("/", "/services/b", "/contact", "form_start", "submit", "lead")
RANDOM_KINDS = ("page", "page", "page", "form_start", "submit", "error", "lead", "exposure")


def random_book(seed: int, visitors: int = 250) -> Journeys:
    """Visitors with 1-3 sessions: random events, or the lead path with steps dropped and
    swapped; equal timestamps happen on purpose."""
    rng = random.Random(seed)
    book = Journeys()
    for visitor in range(1, visitors + 1):
        t = T0 + rng.randrange(0, 5 * DAY)
        for _ in range(rng.randint(1, 3)):
            visit = book.visit(
                visitor,
                channel=rng.choice(CHANNELS),
                device=rng.choice(("desktop", "mobile")),
                is_bot=rng.random() < 0.03,
            )
            if rng.random() < 0.4:
                plan = [k for k in LEAD_PATH if rng.random() < 0.85]
                for i in range(len(plan) - 1):
                    if rng.random() < 0.15:
                        plan[i], plan[i + 1] = plan[i + 1], plan[i]
            else:
                plan = [rng.choice(RANDOM_KINDS) for _ in range(rng.randint(1, 8))]
            for kind in plan:
                t += rng.choice((0, SECOND, 30 * SECOND, 5 * MINUTE, 40 * MINUTE, 3 * HOUR))
                form = rng.choice(FORMS)
                if kind == "page":
                    visit.page(t, rng.choice(PATHS))
                elif kind.startswith("/"):
                    visit.page(t, kind)
                elif kind in ("form_start", "submit"):
                    visit.form(t, kind, form=form)
                elif kind == "error":
                    _error(visit, t, rng.choice(("invalid", "network")))
                elif kind == "lead":
                    visit.lead(t, form=form, is_test=rng.random() < 0.15)
                else:
                    visit.exposure(t, "cta", rng.choice("AB"))
            t += rng.choice((10 * MINUTE, 5 * HOUR, 26 * HOUR))
    return book


def _matches(step: FunnelStep, type_: str, name: str, path: str, props: dict[str, Any]) -> bool:
    if isinstance(step, LeadStep):
        return type_ == "lead*" and step.form in (None, name)
    if isinstance(step, PageStep):
        if type_ != "pageview":
            return False
        if step.page_group is not None:
            return "/" + path.strip("/").split("/", 1)[0] == step.page_group
        return step.path is None or fnmatch.fnmatchcase(path, step.path)
    return (
        type_ == step.type
        and step.event in (None, name)
        and all(str(props.get(key)) == value for key, value in step.props)
    )


@dataclass
class Entry:
    t: int
    step: int
    channel: str


def reference_entries(
    book: Journeys, definition: FunnelDefinition, period: Period
) -> dict[int, list[Entry]]:
    """Per unit, (time, step) for every step an event or counted lead matches."""
    per_unit: dict[int, list[Entry]] = defaultdict(list)
    rows: list[tuple[int, int, int, bool, str, str, str, str, dict[str, Any]]] = [
        (
            e.visitor_id,
            e.session_id,
            e.ts,
            e.is_bot,
            e.channel,
            e.type,
            e.name,
            e.path,
            json.loads(e.props) if e.props else {},
        )
        for e in book.events
        if e.type != "lead"  # lead steps read stored leads, below
    ]
    rows += [
        (x.visitor_id, x.session_id, x.ts, x.is_bot, x.channel, "lead*", x.form, x.path, {})
        for x in book.leads
        if not x.is_test
    ]
    for visitor, session, ts, is_bot, channel, type_, name, path, props in rows:
        if is_bot or not period.start_ms <= ts < period.end_ms:
            continue
        unit = visitor if definition.unit is Unit.VISITOR else session
        for i, step in enumerate(definition.steps):
            if _matches(step, type_, name, path, props):
                per_unit[unit].append(Entry(ts, i, channel))
    return per_unit


def strict_reached(entries: list[Entry], n: int, window: int) -> list[int | None]:
    """windowFunnel's scan: events by (time, step); the latest chain start per level."""
    start: list[int | None] = [None] * n
    reached: list[int | None] = [None] * n
    for entry in sorted(entries, key=lambda x: (x.t, x.step)):
        j = entry.step
        if j == 0:
            start[0] = entry.t
        elif (begun := start[j - 1]) is not None and entry.t - begun <= window:
            start[j] = begun
        else:
            continue
        if reached[j] is None:
            reached[j] = entry.t
    return reached


def any_reached(entries: list[Entry], n: int, window: int) -> list[int | None]:
    """Brute force: for each window start, the first event of every step after it."""
    reached: list[int | None] = [None] * n
    for s in {x.t for x in entries}:
        nexts = [
            min((x.t for x in entries if x.step == i and x.t >= s), default=None) for i in range(n)
        ]
        for level in range(n):
            held = nexts[: level + 1]
            if any(t is None for t in held):
                break
            end = max(t for t in held if t is not None)
            if end - s <= window and (reached[level] is None or end < (reached[level] or 0)):
                reached[level] = end
    return reached


@dataclass
class Expected:
    counts: list[int]
    gaps: list[float | None]
    to_convert: float | None
    by_channel: dict[str, list[int]]


def reference(book: Journeys, definition: FunnelDefinition, period: Period) -> Expected:
    n, window = len(definition.steps), definition.window_ms
    strict = definition.order is Order.STRICT
    counts = [0] * n
    gaps: list[list[int]] = [[] for _ in range(n)]
    to_convert: list[int] = []
    by_channel: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    for entries in reference_entries(book, definition, period).values():
        if not any(x.step == 0 for x in entries):
            continue
        reached = (strict_reached if strict else any_reached)(entries, n, window)
        first = min((x for x in entries if x.step == 0), key=lambda x: x.t)
        for j, at in enumerate(reached):
            if at is None:
                break
            counts[j] += 1
            by_channel[first.channel][j] += 1
            if j and strict:
                gaps[j].append(at - max(x.t for x in entries if x.step == j - 1 and x.t <= at))
            elif j:
                previous = reached[j - 1]
                assert previous is not None
                gaps[j].append(at - previous)
        if (done := reached[-1]) is not None:
            starts = [
                x.t for x in entries if (x.step == 0 or not strict) and done - window <= x.t <= done
            ]
            to_convert.append(done - min(starts))
    return Expected(
        counts,
        [statistics.median(g) if g else None for g in gaps[1:]],
        statistics.median(to_convert) if to_convert else None,
        dict(by_channel),
    )


FUNNELS = {
    "default": DEFAULT_LEAD_FUNNEL,
    "forms": FunnelDefinition(
        "forms",
        (
            PageStep("any page"),
            EventStep("submit", "form", "submit"),
            EventStep("contact submit", "form", "submit", (("form", "contact"),)),  # implied
            LeadStep("contact lead", form="contact"),
        ),
        window_ms=HOUR,
    ),
    "pages": FunnelDefinition(
        "pages",
        (
            PageStep("service", path="/services/*"),
            PageStep("any page"),  # not implied: needs a join
            PageStep("service again", path="/services*"),  # implied by the join's result
            PageStep("contact", page_group="/contact"),
        ),
        window_ms=2 * HOUR,
    ),
    "narrowing": FunnelDefinition(  # each step implies the one before: no join at all
        "narrowing",
        (
            PageStep("any page"),
            PageStep("services", path="/services*"),
            PageStep("service b", path="/services/b"),
        ),
        window_ms=HOUR,
    ),
    "exposure first": FunnelDefinition(
        "exposure first",
        (
            EventStep("exposed", "exposure", "cta", (("variant", "B"),)),
            PageStep("contact", path="/contact"),
            LeadStep("lead"),
        ),
    ),
    "lead first": FunnelDefinition(
        "lead first", (LeadStep("lead"), PageStep("any page"), LeadStep("another lead"))
    ),
    # Form steps are read with a range of names pushed into the scan: "submit" lies inside
    # the range [form_start, submit_error] and matches no step.
    "errors": FunnelDefinition(
        "errors",
        (
            PageStep("any page"),
            EventStep("start", "form", "form_start"),
            EventStep("failed", "form", "submit_error"),
        ),
        window_ms=2 * HOUR,
    ),
}
CASES = [
    (name, order, unit)
    for name in FUNNELS
    for order in Order
    for unit in Unit
    if name == "default" or unit is Unit.VISITOR or order is Order.STRICT
]


@pytest.fixture(scope="module")
def random_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Journeys, DuckDBStore]]:
    book = random_book(seed=20260101)
    db = book.save(tmp_path_factory.mktemp("random-funnels"))
    yield book, db
    db.close()


@pytest.mark.parametrize(("name", "order", "unit"), CASES)
def test_matches_reference(
    random_store: tuple[Journeys, DuckDBStore], name: str, order: Order, unit: Unit
) -> None:
    book, db = random_store
    definition = dataclasses.replace(FUNNELS[name], order=order, unit=unit)
    period = Period(SITE, T0 + HOUR, T0 + 7 * DAY)
    expected = reference(book, definition, period)
    report = funnel(db, period, definition, breakdown="channel")
    assert units(report) == expected.counts
    assert expected.counts[-1] > 0, "the random journeys should convert some units"
    got_gaps = [s.median_ms_from_previous for s in report.steps[1:]]
    assert got_gaps == pytest.approx(expected.gaps)
    assert report.median_time_to_convert_ms == pytest.approx(expected.to_convert)
    assert {s.value: [x.units for x in s.steps] for s in report.segments} == expected.by_channel


@pytest.mark.parametrize(("name", "order", "unit"), CASES)
def test_totals_without_breakdown_match_reference(
    random_store: tuple[Journeys, DuckDBStore], name: str, order: Order, unit: Unit
) -> None:
    """Without segments the query aggregates its per-unit parts apart, unjoined."""
    book, db = random_store
    definition = dataclasses.replace(FUNNELS[name], order=order, unit=unit)
    period = Period(SITE, T0 + HOUR, T0 + 7 * DAY)
    expected = reference(book, definition, period)
    report = funnel(db, period, definition)
    assert units(report) == expected.counts
    got_gaps = [s.median_ms_from_previous for s in report.steps[1:]]
    assert got_gaps == pytest.approx(expected.gaps)
    assert report.median_time_to_convert_ms == pytest.approx(expected.to_convert)
    assert report.segments == ()


def test_strict_order_matches_clickhouse_window_funnel(
    random_store: tuple[Journeys, DuckDBStore], tmp_path: Path
) -> None:
    import chdb  # the analysis benchmark's peer, a dev dependency

    clickhouse: Callable[[str, str], object] = chdb.query
    book, db = random_store
    period = Period(SITE, T0, T0 + 8 * DAY)
    table = tmp_path / "events.csv"
    with table.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["visitor", "ts", "type", "name", "path"])
        for e in book.events:
            if not e.is_bot and e.type != "lead":
                out.writerow([e.visitor_id, e.ts, e.type, e.name, e.path])
        for x in book.leads:
            if not x.is_bot and not x.is_test:
                out.writerow([x.visitor_id, x.ts, "lead", x.form, x.path])
    for window in (MINUTE, HOUR, DAY):
        answer = clickhouse(
            f"""SELECT level, count() FROM (
              SELECT visitor, windowFunnel({window})(toUInt64(ts), type = 'pageview',
                type = 'pageview' AND path LIKE '/services%',
                type = 'pageview' AND path LIKE '/contact%',
                type = 'form' AND name = 'form_start', type = 'form' AND name = 'submit',
                type = 'lead') AS level
              FROM file('{table}', CSVWithNames)
              WHERE ts >= {period.start_ms} AND ts < {period.end_ms} GROUP BY visitor)
            WHERE level > 0 GROUP BY level""",
            "CSV",
        )
        levels: dict[int, int] = {}
        for line in str(answer).split():
            level, count = line.split(",")
            levels[int(level)] = int(count)
        theirs = [sum(c for level, c in levels.items() if level >= k) for k in range(1, 7)]
        definition = dataclasses.replace(DEFAULT_LEAD_FUNNEL, window_ms=window)
        assert units(funnel(db, period, definition)) == theirs


GLOB_PATHS = ("/a_b/x", "/axb/y", "/a%b", "/a_", "/contact", "/contact-us", "/x/contact")


@pytest.fixture(scope="module")
def glob_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    book = Journeys()
    for visitor, path in enumerate(GLOB_PATHS, start=1):
        book.visit(visitor).page(at(visitor), "/").page(at(visitor) + MINUTE, path)
    db = book.save(tmp_path_factory.mktemp("globs"))
    yield db
    db.close()


@pytest.mark.parametrize(
    ("glob", "matched"),
    [
        ("/a_b*", {"/a_b/x"}),  # a literal prefix: `_` is no wildcard
        ("/a%*", {"/a%b"}),
        ("/a?b*", {"/a_b/x", "/axb/y", "/a%b"}),
        ("/contact*", {"/contact", "/contact-us"}),
        ("/contact", {"/contact"}),
        ("*contact", {"/contact", "/x/contact"}),
        ("/a_", {"/a_"}),
    ],
)
def test_path_globs(glob_store: DuckDBStore, glob: str, matched: set[str]) -> None:
    assert {p for p in GLOB_PATHS if fnmatch.fnmatchcase(p, glob)} == matched  # the meaning
    definition = FunnelDefinition("glob", (PageStep("any"), PageStep("glob", path=glob)))
    report = funnel(glob_store, PERIOD, definition)
    assert units(report) == [len(GLOB_PATHS), len(matched)]


@pytest.mark.parametrize("breakdown", [None, "device", "channel"])
@pytest.mark.parametrize("order", list(Order))
def test_pageview_steps_that_name_an_event_or_props_read_the_events(
    random_store: tuple[Journeys, DuckDBStore], breakdown: str | None, order: Order
) -> None:
    """Page loads hold neither names nor props: a page-view step asking for them is
    matched on the events (the journeys' page views carry none, so nobody reaches it)."""
    book, db = random_store
    period = Period(SITE, T0 + HOUR, T0 + 7 * DAY)
    for last in (
        EventStep("named view", "pageview", "virtual"),
        EventStep("tagged view", "pageview", None, (("variant", "B"),)),
        EventStep("any view", "pageview"),
    ):
        definition = FunnelDefinition(
            "views", (PageStep("landing", path="/*"), last), DAY, order, Unit.VISITOR
        )
        expected = reference(book, definition, period)
        report = funnel(db, period, definition, breakdown=breakdown)
        assert units(report) == expected.counts, last
        assert (expected.counts[-1] > 0) == (last.name == "any view")
