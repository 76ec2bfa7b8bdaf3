from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from sitepulse.analyse.base import AnalysisError, Period
from sitepulse.analyse.vitals import (
    CWV_TARGET,
    LCP_BUCKETS,
    METRICS,
    THRESHOLDS,
    VitalsReport,
    vitals_summary,
)
from sitepulse.store.duckdb.backend import DuckDBStore
from tests.analyse.journeys import DAY, HOUR, SITE, T0, Journeys, Visit

PERIOD = Period(SITE, T0, T0 + DAY)


def load(visit: Visit, ts: int, path: str, **vitals: float | list[float]) -> None:
    """A page view of `path` and its vitals; a list reports a metric more than once."""
    visit.page(ts, path)
    for i, (metric, values) in enumerate(vitals.items()):
        for j, value in enumerate(values if isinstance(values, list) else [values]):
            visit.vital(ts + 1000 + 100 * i + 10 * j, metric, value)


def build() -> Journeys:
    """Known page loads (letters name sessions, digits their loads) around the boundaries."""
    book = Journeys()
    a = book.visit(1, device="desktop")  # converts
    load(a, T0 + HOUR, "/", LCP=2500, INP=200, CLS=0.1, FCP=1800, TTFB=800)  # A1 all good
    load(a, T0 + HOUR + 60_000, "/pricing", LCP=2501, CLS=0.05)  # A2 LCP needs improvement
    a.lead(T0 + HOUR + 120_000)
    b = book.visit(2, device="mobile")
    load(b, T0 + 2 * HOUR, "/services/x", LCP=4000, INP=500, CLS=0.25, FCP=3000, TTFB=1800)
    load(
        b, T0 + 2 * HOUR + 60_000, "/services/y", LCP=4001, INP=501, CLS=0.2501, FCP=3001, TTFB=1801
    )
    c = book.visit(3, device="tablet")
    load(c, T0 + 3 * HOUR, "/", LCP=900, CLS=0.0)  # C1 passes without an INP
    load(c, T0 + 3 * HOUR + 60_000, "/", LCP=1000, INP=100, CLS=0.1)  # C2
    d = book.visit(4, device="mobile")  # converts
    load(d, T0 + 4 * HOUR, "/contact", LCP=1500, INP=150, CLS=0.01)
    d.lead(T0 + 4 * HOUR + 60_000)
    e = book.visit(5, device="desktop")  # only a test lead: does not convert
    load(e, T0 + 5 * HOUR, "/contact", LCP=2200, INP=250, CLS=0.02)
    e.lead(T0 + 5 * HOUR + 60_000, is_test=True)
    g = book.visit(6, device="desktop")  # CLS reported twice: the load's worst counts
    load(g, T0 + 6 * HOUR, "/blog/a", LCP=3000, CLS=[0.05, 0.12])

    bot = book.visit(7, device="desktop", is_bot=True)
    load(bot, T0 + 7 * HOUR, "/", LCP=9000, INP=900, CLS=0.9, FCP=9000, TTFB=9000)
    bot.lead(T0 + 7 * HOUR + 60_000)
    early = book.visit(8, device="desktop")  # before the period
    load(early, T0 - HOUR, "/", LCP=100, INP=10, CLS=0.0, FCP=100, TTFB=100)
    legacy = book.visit(11, device="desktop")  # FID only: not a metric we rate
    load(legacy, T0 + 8 * HOUR, "/legacy", FID=50)
    late = book.visit(9, device="desktop")  # at the period's end: excluded (end is exclusive)
    load(late, T0 + DAY, "/", LCP=100)

    other = Journeys(site="other")
    other._next_session = 100
    stranger = other.visit(10, device="")
    load(stranger, T0 + HOUR, "/", LCP=50, INP=5, CLS=0.0, FCP=50, TTFB=50)
    book.events += other.events
    return book


# Every in-period human page load's worst value, by metric (the bot, the early and late
# loads and the other site are left out; G's CLS counts once, as its worst 0.12).
SAMPLES: dict[str, list[float]] = {
    "LCP": [2500, 2501, 4000, 4001, 900, 1000, 1500, 2200, 3000],
    "INP": [200, 500, 501, 100, 150, 250],
    "CLS": [0.1, 0.05, 0.25, 0.2501, 0.0, 0.1, 0.01, 0.02, 0.12],
    "FCP": [1800, 3000, 3001],
    "TTFB": [800, 1800, 1801],
}
# metric: (good, needs improvement, poor), with each boundary value on its own side
RATED: dict[str, tuple[int, int, int]] = {
    "LCP": (5, 3, 1),
    "INP": (3, 2, 1),
    "CLS": (6, 2, 1),
    "FCP": (1, 1, 1),
    "TTFB": (1, 1, 1),
}
# metric: (p50, p75, p90, p95), type-7 interpolation worked by hand
PERCENTILES: dict[str, tuple[float, float, float, float]] = {
    "LCP": (2500.0, 3000.0, 4000.2, 4000.6),
    "INP": (225.0, 437.5, 500.5, 500.75),
    "CLS": (0.1, 0.12, 0.25002, 0.25006),
    "FCP": (3000.0, 3000.5, 3000.8, 3000.9),
    "TTFB": (1800.0, 1800.5, 1800.8, 1800.9),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    db = build().save(tmp_path_factory.mktemp("vitals"))
    yield db
    db.close()


@pytest.fixture(scope="module")
def report(store: DuckDBStore) -> VitalsReport:
    return vitals_summary(store, PERIOD)


@pytest.mark.parametrize(
    ("metric", "value", "rating"),
    [
        ("LCP", 2500, "good"),
        ("LCP", 2500.001, "needs-improvement"),
        ("LCP", 4000, "needs-improvement"),
        ("LCP", 4000.001, "poor"),
        ("INP", 200, "good"),
        ("INP", 201, "needs-improvement"),
        ("INP", 500, "needs-improvement"),
        ("INP", 501, "poor"),
        ("CLS", 0.1, "good"),
        ("CLS", 0.1001, "needs-improvement"),
        ("CLS", 0.25, "needs-improvement"),
        ("CLS", 0.2501, "poor"),
        ("FCP", 1800, "good"),
        ("FCP", 3000, "needs-improvement"),
        ("FCP", 3001, "poor"),
        ("TTFB", 800, "good"),
        ("TTFB", 1800, "needs-improvement"),
        ("TTFB", 1801, "poor"),
        ("LCP", 0, "good"),
    ],
)
def test_threshold_table_rates_like_web_vitals(metric: str, value: float, rating: str) -> None:
    assert THRESHOLDS[metric].rate(value) == rating


def test_threshold_table_is_googles() -> None:
    table = {m: (t.good, t.poor, t.unit) for m, t in THRESHOLDS.items()}
    assert table == {
        "LCP": (2500, 4000, "ms"),
        "INP": (200, 500, "ms"),
        "CLS": (0.1, 0.25, ""),
        "FCP": (1800, 3000, "ms"),
        "TTFB": (800, 1800, "ms"),
    }


@pytest.mark.parametrize("metric", METRICS)
def test_overall_percentiles_and_ratings(report: VitalsReport, metric: str) -> None:
    stats = report.overall.metric(metric)
    values = SAMPLES[metric]
    assert stats.samples == len(values)
    got = (stats.p50, stats.p75, stats.p90, stats.p95)
    assert got == pytest.approx(PERCENTILES[metric], rel=1e-12, abs=1e-12)
    # numpy's default percentile is the same definition as DuckDB's quantile_cont
    assert got == pytest.approx(tuple(np.percentile(values, [50, 75, 90, 95])), rel=1e-12)
    good, middle, poor = RATED[metric]
    assert (stats.good, stats.needs_improvement, stats.poor) == (good, middle, poor)
    assert stats.good_share == pytest.approx(good / len(values))
    assert stats.needs_improvement_share == pytest.approx(middle / len(values))
    assert stats.poor_share == pytest.approx(poor / len(values))
    assert stats.p75_rating == THRESHOLDS[metric].rate(PERCENTILES[metric][1])


def test_p75_rating_of_each_metric(report: VitalsReport) -> None:
    ratings = {m.metric: m.p75_rating for m in report.overall.metrics}
    assert ratings == {
        "LCP": "needs-improvement",
        "INP": "needs-improvement",
        "CLS": "needs-improvement",
        "FCP": "poor",
        "TTFB": "poor",
    }


def test_by_page_group(report: VitalsReport) -> None:
    assert report.by == "page_group"
    # most samples first, then by name
    assert [g.key for g in report.groups] == ["/", "/services", "/contact", "/blog", "/pricing"]
    home = report.group("/")
    lcp = home.metric("LCP")
    assert (lcp.samples, lcp.p50, lcp.p75) == (3, 1000.0, 1750.0)
    assert lcp.p75 == pytest.approx(np.percentile([2500, 900, 1000], 75))
    assert home.metric("INP").samples == 2
    assert home.metric("TTFB").p95 == 800.0
    blog = report.group("/blog")
    assert blog.metric("CLS").samples == 1  # one load reporting twice: its worst counts
    assert blog.metric("CLS").p50 == 0.12
    assert blog.metric("INP").samples == 0
    assert blog.metric("INP").p75 is None
    assert blog.metric("INP").good_share is None
    services = report.group("/services").metric("LCP")
    assert (services.p50, services.needs_improvement, services.poor) == (4000.5, 1, 1)


def test_by_device(store: DuckDBStore) -> None:
    report = vitals_summary(store, PERIOD, by="device")
    # mobile: 13 values over three loads, desktop 12 over four
    assert [g.key for g in report.groups] == ["mobile", "desktop", "tablet"]
    desktop = report.group("desktop").metric("LCP")
    assert desktop.samples == 4
    assert desktop.p75 == pytest.approx(np.percentile([2500, 2501, 2200, 3000], 75))
    assert desktop.p75 == pytest.approx(2625.75)
    mobile = report.group("mobile").metric("INP")
    assert (mobile.samples, mobile.p50) == (3, 500.0)
    assert report.group("tablet").compliance.share == 1.0
    assert report.overall == vitals_summary(store, PERIOD, by=None).overall


def test_overall_only(store: DuckDBStore) -> None:
    report = vitals_summary(store, PERIOD, by=None)
    assert report.by is None
    assert report.groups == ()
    assert report.overall.metric("LCP").p75 == 3000.0


def test_core_web_vitals_compliance(report: VitalsReport) -> None:
    # Nine loads: A1, C1, C2, D1 pass; A2 (LCP), B1, B2, E1 (INP), G1 (worst CLS 0.12) fail.
    # A2, C1 and G1 had no INP.
    comp = report.overall.compliance
    assert (comp.page_loads, comp.passing, comp.without_inp) == (9, 4, 3)
    assert comp.share == pytest.approx(4 / 9)
    assert comp.target == CWV_TARGET == 0.9
    assert comp.met is False
    by_group = {g.key: (g.compliance.page_loads, g.compliance.passing) for g in report.groups}
    assert by_group == {
        "/": (3, 3),
        "/pricing": (1, 0),
        "/services": (2, 0),
        "/contact": (2, 1),
        "/blog": (1, 0),
    }
    assert report.group("/").compliance.met is True


def test_conversion_by_lcp_range(report: VitalsReport) -> None:
    assert [b.bucket for b in report.lcp_by_range] == [b.label for b in LCP_BUCKETS]
    got = {
        b.bucket: (b.page_loads, b.sessions, b.converting_sessions, b.conversion_rate)
        for b in report.lcp_by_range
    }
    assert got == {
        "0-1 s": (2, 1, 0, 0.0),  # C's 900 and 1000 (the upper edge is inclusive)
        "1-2 s": (1, 1, 1, 1.0),  # D
        "2-2.5 s": (2, 2, 1, 0.5),  # A's 2500 and E's 2200 (a test lead does not convert)
        "2.5-4 s": (3, 3, 1, pytest.approx(1 / 3)),  # A's 2501, B's 4000, G
        "> 4 s": (1, 1, 0, 0.0),  # B's 4001
    }


def test_conversion_by_lcp_rating(report: VitalsReport) -> None:
    got = {
        b.bucket: (b.page_loads, b.sessions, b.converting_sessions, b.conversion_rate)
        for b in report.lcp_by_rating
    }
    assert got == {
        "good": (5, 4, 2, 0.5),
        "needs-improvement": (3, 3, 1, pytest.approx(1 / 3)),
        "poor": (1, 1, 0, 0.0),
    }
    assert [(b.lower_ms, b.upper_ms) for b in report.lcp_by_rating] == [
        (0, 2500),
        (2500, 4000),
        (4000, None),
    ]


def test_lcp_buckets_nest_in_the_ratings() -> None:
    for bucket in LCP_BUCKETS:
        inside = [
            v
            for v in (0, 999.9, 1000, 1000.1, 2500, 2500.1, 4000, 4000.1, 1e9)
            if bucket.contains(v)
        ]
        assert len({THRESHOLDS["LCP"].rate(v) for v in inside}) == 1, bucket


def test_empty_period(store: DuckDBStore) -> None:
    report = vitals_summary(store, Period(SITE, T0 + 10 * DAY, T0 + 11 * DAY))
    assert report.groups == ()
    for stats in report.overall.metrics:
        assert (stats.samples, stats.p75, stats.good_share, stats.p75_rating) == (
            0,
            None,
            None,
            None,
        )
    comp = report.overall.compliance
    assert (comp.page_loads, comp.share, comp.met) == (0, None, None)
    assert all(b.sessions == 0 and b.conversion_rate is None for b in report.lcp_by_range)
    assert all(b.page_loads == 0 for b in report.lcp_by_rating)


def test_unknown_site_is_empty(store: DuckDBStore) -> None:
    report = vitals_summary(store, Period("nobody", T0, T0 + DAY))
    assert report.overall.metric("LCP").samples == 0


def test_other_site_is_its_own(store: DuckDBStore) -> None:
    report = vitals_summary(store, Period("other", T0, T0 + DAY), by="device")
    assert report.overall.metric("LCP").p75 == 50.0
    assert report.overall.compliance.page_loads == 1
    assert [g.key for g in report.groups] == ["(not set)"]  # no device recorded


def test_bad_dimension(store: DuckDBStore) -> None:
    with pytest.raises(AnalysisError) as info:
        vitals_summary(store, PERIOD, by="country")  # type: ignore[arg-type]
    assert info.value.field == "by"


def test_to_dict_is_json(report: VitalsReport) -> None:
    data = report.to_dict()
    again = json.loads(json.dumps(data))
    assert again == data
    assert data["overall"]["compliance"]["share"] == pytest.approx(4 / 9)
    assert data["overall"]["metrics"][0]["metric"] == "LCP"
    assert data["lcp_by_range"][-1] == {
        "bucket": "> 4 s",
        "lower_ms": 4000.0,
        "upper_ms": None,
        "page_loads": 1,
        "sessions": 1,
        "converting_sessions": 0,
        "conversion_rate": 0.0,
    }
    assert "quantile_cont" in data["quantile_method"]


def test_cwv_compliance_alone_matches_the_summary(store: DuckDBStore, report: VitalsReport) -> None:
    from sitepulse.analyse.vitals import cwv_compliance

    assert cwv_compliance(store, PERIOD) == report.overall.compliance
    empty = cwv_compliance(store, Period(SITE, T0 - 10 * DAY, T0 - 9 * DAY))
    assert (empty.page_loads, empty.share) == (0, None)


def test_core_vitals_by_group_match_the_summary(store: DuckDBStore, report: VitalsReport) -> None:
    from sitepulse.analyse.vitals import CORE_METRICS, core_vitals_by

    lean = {g.key: g for g in core_vitals_by(store, PERIOD, by="page_group")}
    assert lean.keys() == {g.key for g in report.groups}
    for want in report.groups:
        got = lean[want.key]
        assert got.compliance == want.compliance
        for metric in CORE_METRICS:
            assert got.metric(metric) == want.metric(metric)
        assert got.metric("FCP").samples == 0
