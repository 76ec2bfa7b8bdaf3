from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sitepulse.analyse.base import AnalysisError, Period
from sitepulse.analyse.kpis import KPI_NAMES, TARGETS, KpiReport, Target, kpi_report
from sitepulse.store.duckdb.backend import DuckDBStore
from tests.analyse.journeys import DAY, HOUR, MINUTE, SITE, T0, Journeys, Visit

C0 = T0 + 7 * DAY
PERIOD = Period(SITE, C0, C0 + 7 * DAY)
SECOND = 1000


@dataclass
class Page:
    """A page view and the running engaged-time totals its page load reported (ms)."""

    path: str
    engaged: tuple[int, ...] = ()


def browse(visit: Visit, ts: int, *pages: Page) -> int:
    """View `pages` a minute apart from `ts`; returns the time after the last one."""
    for page in pages:
        visit.page(ts, page.path)
        for i, total in enumerate(page.engaged):
            visit.engaged(ts + (i + 1) * SECOND, total)
        ts += MINUTE
    return ts


def build() -> tuple[Journeys, dict[int, float]]:
    """Known sessions in PERIOD and the week before; returns the book and lead scores."""
    book = Journeys()
    scores: dict[int, float] = {}

    # The current week.
    s1 = book.visit(1, channel="Organic Search", source="google", medium="organic")
    t = browse(
        s1,
        C0 + HOUR,
        Page("/", (10_000, 30_000)),
        Page("/services/a", (60_000,)),
        Page("/contact", (40_000,)),
    )
    s1.lead(t)
    scores[s1.session_id] = 80
    browse(s1, t + MINUTE, Page("/thanks"))  # after the lead: not on the path to it

    s2 = book.visit(2, channel="Organic Search", source="google", medium="organic")
    t = browse(s2, C0 + DAY + HOUR, Page("/", (20_000,)), Page("/pricing", (10_000,)))
    s2.custom(t - 30 * SECOND, "newsletter_signup")

    s3 = book.visit(3)  # Direct; sends no engagement at all
    t = browse(s3, C0 + DAY + 2 * HOUR, Page("/"), Page("/contact"))
    s3.lead(t)  # never scored

    s4 = book.visit(3)  # the same visitor again
    t = browse(s4, C0 + 2 * DAY + HOUR, Page("/blog/x", (90_000,)))
    s4.custom(t - 30 * SECOND, "newsletter_signup")

    s5 = book.visit(4, channel="Email", source="newsletter", medium="email")
    t = browse(
        s5,
        C0 + 3 * DAY + HOUR,
        Page("/", (50_000,)),
        Page("/services/a", (100_000,)),
        Page("/contact", (50_000,)),
    )
    s5.lead(t)
    scores[s5.session_id] = 60

    s6 = book.visit(5, channel="Email", source="newsletter", medium="email")
    t = browse(s6, C0 + 3 * DAY + 2 * HOUR, Page("/", (5_000,)))
    s6.lead(t, is_test=True)
    scores[s6.session_id] = 99  # a test lead's score never counts

    bot = book.visit(6, is_bot=True)
    t = browse(bot, C0 + 4 * DAY, Page("/", (999_000,)))
    bot.custom(t, "newsletter_signup")
    bot.lead(t + SECOND)
    scores[bot.session_id] = 99

    s8 = book.visit(7, channel="Organic Search", source="google", medium="organic")
    browse(s8, C0 + 6 * DAY + HOUR, Page("/", (15_000,)), Page("/pricing", (20_000,)))

    # The week before.
    p1 = book.visit(1, channel="Organic Search", source="google", medium="organic")
    t = browse(p1, T0 + 2 * DAY, Page("/", (100_000,)), Page("/contact", (200_000,)))
    p1.lead(t)
    scores[p1.session_id] = 90
    p2 = book.visit(8, channel="Referral", source="partner.example", medium="referral")
    browse(p2, T0 + 3 * DAY, Page("/", (60_000,)))
    p3 = book.visit(9)
    browse(p3, T0 + 4 * DAY, Page("/pricing"))
    p4 = book.visit(10)
    t = browse(p4, T0 + 5 * DAY, Page("/", (20_000,)))
    p4.lead(t, is_test=True)
    return book, scores


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    book, scores = build()
    db = book.save(tmp_path_factory.mktemp("kpis"))
    for session_id, score in scores.items():  # what lead scoring does later
        db.query("UPDATE leads SET score = ? WHERE session_id = ?", [score, session_id])
    yield db
    db.close()


@pytest.fixture(scope="module")
def report(store: DuckDBStore) -> KpiReport:
    return kpi_report(store, PERIOD)


def approx(value: float | None) -> object:
    return None if value is None else pytest.approx(value, rel=1e-12)


Expected = tuple[float | None, float | None, str | None]

# name: (current, previous, status) overall
OVERALL: dict[str, tuple[float, float, str | None]] = {
    "visitors": (6, 4, None),
    "sessions": (7, 4, None),
    "conversion_rate": (3 / 7, 1 / 4, "green"),
    "leads": (3, 1, None),
    "leads_per_day": (3 / 7, 1 / 7, None),
    "avg_lead_score": (70.0, 90.0, "yellow"),  # must exceed 70
    "email_signup_rate": (2 / 6, 0.0, "green"),
    "engaged_time_per_session": (490 / 7, 380 / 4, "red"),
}

# name: {channel: (current, previous, status)}
BY_CHANNEL: dict[str, dict[str, Expected]] = {
    "visitors": {
        "Organic Search": (3, 1, None),
        "Direct": (1, 2, None),
        "Email": (2, 0, None),
        "Referral": (0, 1, None),
    },
    "sessions": {
        "Organic Search": (3, 1, None),
        "Direct": (2, 2, None),
        "Email": (2, 0, None),
        "Referral": (0, 1, None),
    },
    "conversion_rate": {
        "Organic Search": (1 / 3, 1.0, "green"),
        "Direct": (1 / 2, 0.0, "green"),
        "Email": (1 / 2, None, "green"),
        "Referral": (None, 0.0, None),
    },
    "leads": {
        "Organic Search": (1, 1, None),
        "Direct": (1, 0, None),
        "Email": (1, 0, None),
        "Referral": (0, 0, None),
    },
    "avg_lead_score": {
        "Organic Search": (80.0, 90.0, "green"),
        "Direct": (None, None, None),
        "Email": (60.0, None, "yellow"),
        "Referral": (None, None, None),
    },
    "email_signup_rate": {
        "Organic Search": (1 / 3, 0.0, "green"),
        "Direct": (1.0, 0.0, "green"),
        "Email": (0.0, None, "red"),
        "Referral": (None, 0.0, None),
    },
    "engaged_time_per_session": {
        "Organic Search": (65.0, 300.0, "red"),
        "Direct": (45.0, 10.0, "red"),
        "Email": (102.5, None, "yellow"),
        "Referral": (None, 60.0, None),
    },
}


@pytest.mark.parametrize("name", KPI_NAMES)
def test_overall_against_previous_period(report: KpiReport, name: str) -> None:
    now, before, status = OVERALL[name]
    reading = report.kpi(name).overall
    assert reading.channel is None
    assert reading.value == approx(now)
    assert reading.previous == approx(before)
    assert reading.change == approx(now - before)
    assert reading.change_ratio == approx((now - before) / before if before else None)
    assert reading.status == status
    assert report.kpi(name).target == TARGETS.get(name)


@pytest.mark.parametrize("name", sorted(BY_CHANNEL))
def test_by_channel(report: KpiReport, name: str) -> None:
    kpi = report.kpi(name)
    got = {r.channel: (r.value, r.previous, r.status) for r in kpi.by_channel}
    want = {
        ch: (approx(now), approx(before), status)
        for ch, (now, before, status) in BY_CHANNEL[name].items()
    }
    assert got == want


def test_channels_sorted_by_current_value(report: KpiReport) -> None:
    sessions = [r.channel for r in report.kpi("sessions").by_channel]
    assert sessions == ["Organic Search", "Direct", "Email", "Referral"]
    scores = [r.channel for r in report.kpi("avg_lead_score").by_channel]
    assert scores == ["Organic Search", "Email", "Direct", "Referral"]  # no value last


def test_changes(report: KpiReport) -> None:
    conversion = report.kpi("conversion_rate").overall
    assert conversion.change == pytest.approx(5 / 28)
    assert conversion.change_ratio == pytest.approx(5 / 7)
    signup = report.kpi("email_signup_rate").overall
    assert signup.change == pytest.approx(1 / 3)
    assert signup.change_ratio is None
    email = report.kpi("sessions").channel("Email")
    assert (email.value, email.previous, email.change, email.change_ratio) == (2, 0, 2, None)


def test_lead_trend(report: KpiReport) -> None:
    trend = report.lead_trend
    assert [d.leads for d in trend.days] == [1, 1, 0, 1, 0, 0, 0]
    assert [d.start_ms for d in trend.days] == [C0 + i * DAY for i in range(7)]
    assert all(d.full_day for d in trend.days)
    # x = 0..6, mean 3: sum((x - 3) * y) = -3 - 2 + 0 = -5; sum((x - 3)^2) = 28
    assert trend.slope_per_day == pytest.approx(-5 / 28)


def test_lead_trend_with_a_partial_day(store: DuckDBStore) -> None:
    trend = kpi_report(store, Period(SITE, C0, C0 + 2 * DAY + 12 * HOUR)).lead_trend
    assert [(d.leads, d.full_day) for d in trend.days] == [(1, True), (1, True), (0, False)]
    assert trend.slope_per_day == 0.0
    single = kpi_report(store, Period(SITE, C0, C0 + DAY)).lead_trend
    assert single.slope_per_day is None


def test_top_paths_to_conversion(report: KpiReport) -> None:
    assert report.converting_sessions == 3
    paths = [(p.steps, p.sessions, p.share) for p in report.top_paths]
    assert paths == [
        (("/", "/services/a", "/contact"), 2, approx(2 / 3)),
        (("/", "/contact"), 1, approx(1 / 3)),
    ]
    groups = [(p.steps, p.sessions) for p in report.top_page_group_paths]
    assert groups == [(("/", "/services", "/contact"), 2), (("/", "/contact"), 1)]


def test_drop_offs(report: KpiReport) -> None:
    # Non-converting sessions: s2 and s8 leave from /pricing, s4 from /blog/x, s6 (a test
    # lead) from /; the bot is not counted.
    assert report.non_converting_exits == 4
    got = [(d.path, d.exits, d.pageviews, d.exit_rate, d.share) for d in report.drop_offs]
    assert got == [
        ("/pricing", 2, 2, 1.0, 0.5),
        ("/", 1, 6, approx(1 / 6), 0.25),
        ("/blog/x", 1, 1, 1.0, 0.25),
    ]


def test_top_limits_lists(store: DuckDBStore) -> None:
    report = kpi_report(store, PERIOD, top=1)
    assert [p.steps for p in report.top_paths] == [("/", "/services/a", "/contact")]
    assert [d.path for d in report.drop_offs] == ["/pricing"]
    assert report.non_converting_exits == 4
    assert report.drop_offs[0].share == 0.5


def test_yellow_band_is_a_parameter(store: DuckDBStore) -> None:
    report = kpi_report(store, PERIOD, yellow_band=0.1)
    assert report.yellow_band == 0.1
    assert report.kpi("avg_lead_score").channel("Email").status == "red"  # 14 % short
    assert report.kpi("avg_lead_score").overall.status == "yellow"


def test_previous_period_report(store: DuckDBStore) -> None:
    report = kpi_report(store, PERIOD.previous())
    assert report.kpi("sessions").overall.value == 4
    assert report.kpi("sessions").overall.previous == 0
    assert report.converting_sessions == 1
    assert [p.steps for p in report.top_paths] == [("/", "/contact")]
    assert [(d.path, d.exits) for d in report.drop_offs] == [("/", 2), ("/pricing", 1)]


def test_empty_period(store: DuckDBStore) -> None:
    report = kpi_report(store, Period(SITE, T0 + 100 * DAY, T0 + 107 * DAY))
    values = {k.name: (k.overall.value, k.overall.previous, k.overall.status) for k in report.kpis}
    assert values == {
        "visitors": (0, 0, None),
        "sessions": (0, 0, None),
        "conversion_rate": (None, None, None),
        "leads": (0, 0, None),
        "leads_per_day": (0.0, 0.0, None),
        "avg_lead_score": (None, None, None),
        "email_signup_rate": (None, None, None),
        "engaged_time_per_session": (None, None, None),
    }
    assert all(k.by_channel == () for k in report.kpis)
    assert report.kpi("sessions").overall.change == 0
    assert report.kpi("sessions").overall.change_ratio is None
    assert [d.leads for d in report.lead_trend.days] == [0] * 7
    assert report.lead_trend.slope_per_day == 0.0
    assert (report.converting_sessions, report.top_paths, report.top_page_group_paths) == (
        0,
        (),
        (),
    )
    assert (report.non_converting_exits, report.drop_offs) == (0, ())


@pytest.mark.parametrize(
    ("target", "value", "status"),
    [
        (Target(0.03), 0.03, "green"),  # ">= 3 %": met on the dot
        (Target(0.03), 0.5, "green"),
        (Target(0.03), 0.0299, "yellow"),
        (Target(0.03), 0.024, "yellow"),  # exactly 20 % short
        (Target(0.03), 0.0239, "red"),
        (Target(0.03), 0.0, "red"),
        (Target(0.03), None, None),
        (Target(70.0, strict=True), 70.0, "yellow"),  # "> 70": not met on the dot
        (Target(70.0, strict=True), 70.01, "green"),
        (Target(70.0, strict=True), 56.0, "yellow"),
        (Target(70.0, strict=True), 55.99, "red"),
        (Target(120.0, strict=True), 96.0, "yellow"),
        (Target(120.0, strict=True), 95.9, "red"),
        (Target(0.05), 0.04, "yellow"),
        (Target(0.05), 0.0399, "red"),
    ],
)
def test_status_colours(target: Target, value: float | None, status: str | None) -> None:
    assert target.status(value) == status


def test_targets_are_the_seeds() -> None:
    assert dict(TARGETS) == {
        "conversion_rate": Target(0.03),
        "avg_lead_score": Target(70.0, strict=True),
        "email_signup_rate": Target(0.05),
        "engaged_time_per_session": Target(120.0, strict=True),
    }


@pytest.mark.parametrize("top", [0, -1, True, 2.5])
def test_bad_top(store: DuckDBStore, top: object) -> None:
    with pytest.raises(AnalysisError) as info:
        kpi_report(store, PERIOD, top=top)  # type: ignore[arg-type]
    assert info.value.field == "top"


@pytest.mark.parametrize("band", [-0.1, 1.0, float("nan")])
def test_bad_yellow_band(store: DuckDBStore, band: float) -> None:
    with pytest.raises(AnalysisError) as info:
        kpi_report(store, PERIOD, yellow_band=band)
    assert info.value.field == "yellow_band"


def test_to_dict_is_json(report: KpiReport) -> None:
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    conversion = next(k for k in data["kpis"] if k["name"] == "conversion_rate")
    assert conversion["target"] == {"value": 0.03, "strict": False}
    assert conversion["overall"]["status"] == "green"
    assert data["top_paths"][0]["steps"] == ["/", "/services/a", "/contact"]
    assert data["drop_offs"][0]["path"] == "/pricing"


def test_without_the_previous_period_there_are_no_changes(store: DuckDBStore) -> None:
    full = kpi_report(store, PERIOD)
    lean = kpi_report(store, PERIOD, previous=False, paths=False)
    for a, b in zip(full.kpis, lean.kpis, strict=True):
        assert b.overall.value == a.overall.value and b.overall.status == a.overall.status
        assert (b.overall.previous, b.overall.change, b.overall.change_ratio) == (None, None, None)
    assert lean.top_paths == () and lean.drop_offs == ()
