"""User agents, bots, geo from a real .mmdb, IP anonymisation, visitor ids, sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from sitepulse.enrich.channel import ChannelDecision
from sitepulse.enrich.geo import GeoLookup, Place, bundled_database
from sitepulse.enrich.landing import parse_landing
from sitepulse.enrich.privacy import (
    DailySalt,
    anonymise_ip,
    format_id,
    id_from_string,
    visitor_hash,
)
from sitepulse.enrich.sessions import SessionTracker
from sitepulse.enrich.useragent import parse_agent

AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36",
        "Chrome",
        "desktop",
        "",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mobile Safari",
        "mobile",
        "",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        "Mobile Safari",
        "tablet",
        "",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36",
        "Chrome",
        "tablet",
        "",
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Googlebot",
        "bot",
        "ua_spider",
    ),
    ("python-requests/2.32.3", "Python Requests", "bot", "ua_"),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/130.0.0.0 Safari/537.36",
        "HeadlessChrome",
        "bot",
        "ua_",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; CUBOT KINGKONG 9) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Mobile Safari/537.36",
        "Chrome Mobile",
        "mobile",
        "",
    ),
    ("", "", "unknown", "empty_user_agent"),
]


@pytest.mark.parametrize(
    ("ua", "browser", "device", "bot"), AGENTS, ids=[a[1] or "empty" for a in AGENTS]
)
def test_user_agents(ua: str, browser: str, device: str, bot: str) -> None:
    agent = parse_agent(ua)
    assert agent.device == device
    assert agent.bot_reason.startswith(bot) and bool(agent.bot_reason) == bool(bot)
    if browser and not bot:
        assert agent.browser == browser


def test_geo_from_a_city_database(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"country": {"iso_code": "GB"}, "subdivisions": [{"iso_code": "ENG"}]},
    )
    writer.insert_network(IPSet(["2001:db8::/32"]), {"country": {"iso_code": "DE"}})
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    geo = GeoLookup(path)
    assert geo.lookup("81.2.69.160") == Place("GB", "GB-ENG")
    assert geo.lookup("2001:db8::1") == Place("DE", "")
    assert geo.lookup("10.0.0.1") == Place("", "")
    assert geo.lookup("not an ip") == Place("", "")
    geo.close()


def test_bundled_country_database_works_out_of_the_box() -> None:
    path = bundled_database()
    assert path is not None, "python-geoacumen is installed by the set-up"
    geo = GeoLookup(path)
    assert geo.lookup("81.2.69.160").country == "GB"
    assert geo.lookup("8.8.8.8").country == "US"
    # It answers private and loopback addresses with the text "None": no country.
    assert geo.lookup("127.0.0.1") == geo.lookup("192.168.1.20") == Place("", "")
    geo.close()


@pytest.mark.parametrize(
    ("ip", "anonymous"),
    [
        ("81.2.69.160", "81.2.69.0"),
        ("2a00:1450:4009:81f::200e", "2a00:1450:4009::"),
        ("garbage", ""),
    ],
)
def test_anonymise_ip(ip: str, anonymous: str) -> None:
    assert anonymise_ip(ip) == anonymous


def test_visitor_ids_rotate_with_the_daily_salt() -> None:
    salts: dict[str, bytes] = {}

    def fetch(day: str, new: bytes) -> bytes:
        return salts.setdefault(day, new)

    salt = DailySalt(fetch)
    day1, day2 = 1_763_856_000_000, 1_763_856_000_000 + 86_400_000
    same_day = visitor_hash(salt.for_time(day1), "s", "1.2.3.4", "UA")
    assert same_day == visitor_hash(salt.for_time(day1 + 3_600_000), "s", "1.2.3.4", "UA")
    assert same_day != visitor_hash(salt.for_time(day2), "s", "1.2.3.4", "UA")
    assert same_day != visitor_hash(salt.for_time(day1), "other-site", "1.2.3.4", "UA")


def test_ids_round_trip_their_wire_form() -> None:
    vid = id_from_string("s", "crm-customer-42")
    assert id_from_string("s", format_id(vid)) == vid
    assert id_from_string("s", "crm-customer-42") != id_from_string("t", "crm-customer-42")


def test_sessions_split_on_inactivity_and_new_campaigns() -> None:
    tracker = SessionTracker(timeout_ms=30 * 60_000, max_entries=2)
    decision = ChannelDecision("Direct", "(direct)", "(none)", "no_referrer")
    landing = parse_landing("https://x.example/")
    key = ("site", 1)
    first = tracker.start(key, 0, decision, landing, ("",) * 5)
    assert tracker.current(key, 10 * 60_000, None) is first
    assert tracker.current(key, 39 * 60_000, None) is first  # 29 min after the last event
    assert tracker.current(key, 39 * 60_000 + 31 * 60_000, None) is None
    assert tracker.current(key, 40 * 60_000, ("google", "cpc", "x", "", "")) is None
    tracker.start(("site", 2), 0, decision, landing, ("",) * 5)
    tracker.start(("site", 3), 0, decision, landing, ("",) * 5)
    assert len(tracker) == 2 and tracker.get(key) is None  # bounded: the oldest went first


def test_sessions_number_pages_and_find_them_by_id() -> None:
    tracker = SessionTracker(timeout_ms=30 * 60_000, max_entries=10)
    decision = ChannelDecision("Direct", "(direct)", "(none)", "no_referrer")
    state = tracker.start(("site", 1), 0, decision, parse_landing("https://x.example/"), ("",) * 5)
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 41)]
    assert [state.new_page(page_id) for page_id in ids] == list(range(1, 41))
    assert state.page_of(ids[-1]) == 40
    assert state.page_of(ids[8].upper()) == 9  # the browser's case does not matter
    assert state.page_of(ids[7]) == 0  # only the latest 32 page ids are kept
    assert state.page_of(None) == 40  # an event naming no page belongs to the latest
    assert tracker.by_id("site", state.session_id) is state
    assert tracker.by_id("other-site", state.session_id) is None
