"""The demo traffic's shape, checked over thousands of seeded visits without a server."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import random
import statistics
import uuid
from zoneinfo import ZoneInfo

import msgspec
import pytest

from sitepulse.collect.payloads import CollectBatch, LeadSubmission, ServerEvent
from sitepulse.demo.catalog import (
    CHANNELS,
    CHANNELS_BY_NAME,
    DEFAULT_HOST,
    EXPERIMENTS,
    FORM_FIELDS,
    PAGES,
)
from sitepulse.demo.clients import (
    BOTS,
    COUNTRIES,
)
from sitepulse.demo.schedule import next_arrival, plan_traffic
from sitepulse.demo.traffic import TrafficConfig, backfill_lead, collect_batch, server_events
from sitepulse.demo.visits import DAY_MS, Visit, conversion_probability, plan_visit, random_address
from sitepulse.demo.vitals import THRESHOLDS, rating
from sitepulse.enrich.channel import ChannelClassifier
from sitepulse.enrich.geo import GeoLookup, bundled_database
from sitepulse.enrich.landing import parse_landing
from sitepulse.enrich.useragent import parse_agent

# Monday 2025-03-03 00:00 UTC; visits spread over the following week.
WEEK_START_MS = 1_740_960_000_000
VISITS = 4000


@pytest.fixture(scope="module")
def visits() -> list[Visit]:
    rng = random.Random(20250303)
    starts = sorted(WEEK_START_MS + rng.randrange(7 * DAY_MS) for _ in range(VISITS))
    return [plan_visit(rng, start) for start in starts]


@pytest.fixture(scope="module")
def humans(visits: list[Visit]) -> list[Visit]:
    return [v for v in visits if not v.is_bot]


def test_channel_mix_follows_the_catalog(humans: list[Visit]) -> None:
    counts = collections.Counter(v.channel for v in humans)
    total_weight = sum(c.weight for c in CHANNELS)
    assert set(counts) == {c.name for c in CHANNELS}
    for channel in CHANNELS:
        share = counts[channel.name] / len(humans)
        # Email's share swings with send days; everything else stays close to its weight.
        assert share == pytest.approx(channel.weight / total_weight, abs=0.03), channel.name
    assert counts.most_common(1)[0][0] == "Organic Search"


def test_sitepulse_classifies_each_visit_into_its_intended_channel(humans: list[Visit]) -> None:
    classifier = ChannelClassifier()
    own = frozenset({DEFAULT_HOST})
    wrong = []
    for v in humans:
        decision = classifier.classify(parse_landing(v.landing_url), v.referrer, own_hosts=own)
        if decision.channel != v.channel:
            wrong.append((v.channel, decision.channel, v.landing_url, v.referrer))
    assert wrong == []


def test_campaigns_carry_utm_tags_and_click_ids(humans: list[Visit]) -> None:
    paid = [v for v in humans if v.channel in ("Paid Search", "Paid Social", "Email", "Display")]
    assert paid
    for visit in paid:
        landing = parse_landing(visit.landing_url)
        assert landing.utm_campaign == visit.campaign != ""
        assert landing.utm_source and landing.utm_medium
    campaigns = {v.campaign for v in paid}
    assert len(campaigns) >= 10
    assert any(parse_landing(v.landing_url).click_id_kind == "google" for v in paid)


def test_more_visits_late_morning_than_at_night_and_on_weekdays() -> None:
    tz = ZoneInfo("Europe/London")
    rng = random.Random(3)
    days = 28
    start = WEEK_START_MS
    by_hour: collections.Counter[int] = collections.Counter()
    by_weekday: collections.Counter[int] = collections.Counter()
    t, n = next_arrival(rng, start, 400 / 1440, tz), 0
    while t < start + days * DAY_MS:
        local = dt.datetime.fromtimestamp(t / 1000, tz)
        by_hour[local.hour] += 1
        by_weekday[local.weekday()] += 1
        n += 1
        t = next_arrival(rng, t, 400 / 1440, tz)
    assert n == pytest.approx(400 * days, rel=0.06)
    assert by_hour[11] > 5 * by_hour[3]
    assert by_hour[14] > by_hour[12] > by_hour[22]
    weekday_mean = sum(by_weekday[d] for d in range(5)) / 5
    weekend_mean = (by_weekday[5] + by_weekday[6]) / 2
    assert weekday_mean > 1.8 * weekend_mean


def test_a_flattened_live_curve_keeps_nights_busy() -> None:
    tz = ZoneInfo("Europe/London")
    night = WEEK_START_MS + 3 * 3_600_000  # Monday 03:00 in London
    for strength, low, high in ((1.0, 0.0, 0.25), (0.5, 0.45, 0.7)):
        rng = random.Random(5)
        t, n = night, 0
        while (t := next_arrival(rng, t, 30, tz, strength=strength)) < night + 3_600_000:
            n += 1
        assert low * 30 * 60 < n < high * 30 * 60, strength


def test_conversion_rate_and_its_drivers(humans: list[Visit]) -> None:
    leads = [v for v in humans if v.lead is not None]
    assert 0.01 <= len(leads) / len(humans) <= 0.08
    by_channel = collections.defaultdict(list)
    for v in humans:
        by_channel[v.channel].append(v.lead is not None)
    rate = {k: sum(hits) / len(hits) for k, hits in by_channel.items()}
    for strong in ("Paid Search", "Email", "Referral"):
        for weak in ("Display", "Paid Social", "Organic Social"):
            assert rate[strong] > rate[weak], (strong, weak)
    # The pricing_cta experiment: the bold variant converts better, all else equal.
    paid = CHANNELS_BY_NAME["Paid Search"]
    path = ["/", "/pricing", "/contact"]
    bold = conversion_probability(paid, path, {"pricing_cta": "bold"}, False)
    control = conversion_probability(paid, path, {"pricing_cta": "control"}, False)
    assert 1.1 < bold / control < 1.6


def test_every_planned_event_and_lead_satisfies_the_wire_contract(visits: list[Visit]) -> None:
    cfg = TrafficConfig(base_url="http://127.0.0.1:1", site_key="pk_demo", site_token="t" * 20)
    ids: set[uuid.UUID] = set()
    for visit in visits:
        for event in server_events(visit, until_ms=2**53):
            msgspec.convert(msgspec.to_builtins(event), type=ServerEvent)
            assert event.event_id is not None
            ids.add(event.event_id)
        for beacon in visit.beacons:
            batch = collect_batch(visit, beacon, site_key=cfg.site_key, sent_at=beacon.send_ms)
            msgspec.convert(msgspec.to_builtins(batch), type=CollectBatch)
        lead = backfill_lead(visit)
        if lead is not None:
            msgspec.convert(msgspec.to_builtins(lead), type=LeadSubmission)
            assert lead.email and lead.ts is not None and lead.lead_id
    assert len(ids) == sum(len(v.events) for v in visits), "event ids must be unique"


def test_visits_read_like_real_sessions(humans: list[Visit]) -> None:
    for visit in humans:
        events = visit.events
        assert events[0].type == "pageview" and events[0].url == visit.landing_url
        assert events[0].referrer == visit.referrer
        assert all(e.url.startswith(f"https://{DEFAULT_HOST}/") for e in events)
        assert all(PAGES.get(p) for p in visit.pages)
        gaps = [b.ts - a.ts for a, b in itertools.pairwise(events)]
        # Pages follow one another; nobody idles into the server's 30-minute session timeout.
        assert max(gaps, default=0) < 30 * 60_000
        for beacon in visit.beacons:
            assert 1 <= len(beacon.events) <= 20
            assert beacon.send_ms >= max(e.ts for e in beacon.events)
    depth = statistics.mean(len(v.pages) for v in humans)
    assert 1.8 < depth < 3.5
    bounce = sum(len(v.pages) == 1 for v in humans) / len(humans)
    assert 0.3 < bounce < 0.6


def test_devices_countries_and_addresses_vary(humans: list[Visit]) -> None:
    devices = collections.Counter(v.visitor.device for v in humans)
    assert 0.5 < devices["desktop"] / len(humans) < 0.75
    assert devices["mobile"] > devices["tablet"] > 0
    countries = collections.Counter(v.visitor.country for v in humans)
    assert set(countries) == {c.code for c in COUNTRIES}
    assert len({v.visitor.user_agent for v in humans}) >= 15
    assert len({v.visitor.ip for v in humans}) > 0.9 * len(humans)
    for visit in humans:
        assert parse_agent(visit.visitor.user_agent).bot_reason == "", visit.visitor.user_agent


def test_every_address_range_resolves_to_its_country() -> None:
    path = bundled_database()
    assert path is not None, "python-geoacumen is installed by the set-up"
    geo = GeoLookup(path)
    rng = random.Random(11)
    try:
        for country in COUNTRIES:
            for network in country.networks:
                for _ in range(40):
                    ip = random_address(rng, [network])
                    assert geo.lookup(ip).country == country.code, (country.code, network, ip)
    finally:
        geo.close()


def test_about_five_percent_bots_all_flagged(visits: list[Visit]) -> None:
    bots = [v for v in visits if v.is_bot]
    assert 0.035 < len(bots) / len(visits) < 0.07
    assert {v.visitor.bot for v in bots} == {b.kind for b in BOTS}
    for visit in bots:
        assert parse_agent(visit.visitor.user_agent).bot_reason, visit.visitor.user_agent
        assert visit.visitor.automation == (visit.visitor.bot == "headless-chrome")


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("LCP", 2500, "good"),
        ("LCP", 2501, "needs-improvement"),
        ("LCP", 4000, "needs-improvement"),
        ("LCP", 4001, "poor"),
        ("INP", 200, "good"),
        ("INP", 500, "needs-improvement"),
        ("INP", 501, "poor"),
        ("CLS", 0.1, "good"),
        ("CLS", 0.1001, "needs-improvement"),
        ("CLS", 0.2501, "poor"),
        ("FCP", 1800, "good"),
        ("FCP", 3001, "poor"),
        ("TTFB", 800, "good"),
        ("TTFB", 1799, "needs-improvement"),
        ("TTFB", 1801, "poor"),
    ],
)
def test_rating_uses_googles_thresholds(metric: str, value: float, expected: str) -> None:
    assert rating(metric, value) == expected


def test_vitals_are_rated_consistently_and_mobile_is_slower(humans: list[Visit]) -> None:
    lcp: dict[str, list[float]] = collections.defaultdict(list)
    cls: list[float] = []
    for visit in humans:
        for event in visit.events:
            if event.type != "vital":
                continue
            assert event.name in THRESHOLDS and event.value is not None
            assert event.props["rating"] == rating(event.name, event.value)
            if event.name == "LCP":
                lcp[visit.visitor.device].append(event.value)
            elif event.name == "CLS":
                cls.append(event.value)
    assert 1500 < statistics.median(lcp["desktop"]) < 2600
    assert statistics.median(lcp["mobile"]) > 1.2 * statistics.median(lcp["desktop"])
    every_lcp = lcp["desktop"] + lcp["mobile"]
    slow = sum(v > 4000 for v in every_lcp) / len(every_lcp)
    assert 0.02 < slow < 0.2, "a slow tail, not a slow site"
    assert statistics.median(cls) < 0.05 and max(cls) > 0.25


def test_contact_form_funnel_has_drop_off_errors_and_failures(humans: list[Visit]) -> None:
    fields = {name for name, _, _, _ in FORM_FIELDS}
    started = submitted = errored = failed = 0
    for visit in humans:
        forms = [e for e in visit.events if e.type == "form"]
        names = [e.name for e in forms]
        started += "form_start" in names
        submitted += "submit" in names
        errored += "submit_error" in names
        for event in forms:
            assert event.props["form"] == "contact"
            if event.name.startswith("field_"):
                assert event.props["field"] in fields
        if visit.lead is not None:
            submit = next(e for e in forms if e.name == "submit")
            assert visit.lead.ts is not None and visit.lead.ts >= submit.ts
        if visit.form_failed:
            failed += 1
            assert "submit" in names and visit.lead is None
    assert started > 2 * submitted > 0
    assert errored > 0 and failed > 0


def test_experiments_are_exposed_on_their_pages(humans: list[Visit]) -> None:
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for visit in humans:
        for event in visit.events:
            if event.type == "exposure":
                page = {"pricing_cta": "/pricing", "hero_copy": "/"}[event.name]
                assert event.url.split("?")[0] == f"https://{DEFAULT_HOST}{page}"
                assert event.props["variant"] == visit.variants[event.name]
                seen[event.name].add(str(event.props["variant"]))
    assert {k: set(v) for k, v in EXPERIMENTS.items()} == seen


def test_leads_vary_and_include_test_and_custom_fields(humans: list[Visit]) -> None:
    leads = [v.lead for v in humans if v.lead is not None]
    assert len({lead.company_size for lead in leads}) >= 5
    assert len({lead.budget for lead in leads}) >= 4
    assert len({lead.country for lead in leads}) >= 6
    assert any(lead.phone for lead in leads) and any(not lead.phone for lead in leads)
    assert any(lead.consent for lead in leads) and any(not lead.consent for lead in leads)
    assert any("service_interest" in lead.fields for lead in leads)
    test_share = sum(lead.is_test for lead in leads) / len(leads)
    assert test_share < 0.1


def test_downloads_outbound_clicks_and_custom_events_happen(humans: list[Visit]) -> None:
    names = collections.Counter((e.type, e.name) for v in humans for e in v.events)
    for key in (
        ("click", "download"),
        ("click", "outbound"),
        ("custom", "cta_click"),
        ("custom", "pricing_toggle"),
        ("engagement", "scroll"),
        ("engagement", "engaged_time"),
        ("engagement", "page_leave"),
    ):
        assert names[key] > 0, key


def test_visitors_return_the_same_day_or_with_consent() -> None:
    visits = list(
        plan_traffic(
            random.Random(8),
            WEEK_START_MS,
            WEEK_START_MS + 5 * DAY_MS,
            visits_per_day=250,
            timezone="Europe/London",
        )
    )
    last_seen: dict[str, int] = {}
    returning = 0
    for visit in visits:
        key = visit.visitor.key
        if visit.returning:
            returning += 1
            previous = last_seen[key]
            assert visit.visitor.consented or previous // DAY_MS == visit.start_ms // DAY_MS
        else:
            assert key not in last_seen
        last_seen[key] = visit.start_ms
    assert 0.05 < returning / len(visits) < 0.3
    assert any(v.returning and v.visitor.consented for v in visits)


def test_the_same_seed_plans_the_same_traffic() -> None:
    def plan(seed: int) -> list[Visit]:
        return list(
            plan_traffic(
                random.Random(seed),
                WEEK_START_MS,
                WEEK_START_MS + DAY_MS // 2,
                visits_per_day=200,
                timezone="Europe/London",
            )
        )

    first, again, other = plan(1), plan(1), plan(2)
    assert first == again
    assert [v.events for v in first] != [v.events for v in other]
    one, two = (plan_visit(random.Random(9), WEEK_START_MS) for _ in range(2))
    assert one == two


def test_config_rejects_bad_values_naming_them() -> None:
    with pytest.raises(ValueError, match="backfill_days") as info:
        TrafficConfig(
            base_url="localhost:8000",
            site_key="k",
            site_token="t",
            backfill_days=-1,
            timezone="Mars/Olympus",
        )
    assert "base_url" in str(info.value) and "Mars/Olympus" in str(info.value)
