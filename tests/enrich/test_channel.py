from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sitepulse.enrich.channel import (
    CHANNELS,
    ChannelClassifier,
    ChannelDecision,
    SourceCatalog,
    SourceListError,
)
from sitepulse.enrich.landing import EMPTY_LANDING, host_and_path, parse_landing

CASES_FILE = Path(__file__).with_name("channel_cases.yaml")
SITE = "https://www.example.com"
RULE_FAMILIES = ("utm:", "click_id:", "referrer:", "no_referrer")


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    url: str
    channel: str
    referrer: str = ""
    own_hosts: tuple[str, ...] = ()
    source: str | None = None
    medium: str | None = None
    rule: str | None = None


def load_cases() -> list[Case]:
    raw: list[dict[str, Any]] = yaml.safe_load(CASES_FILE.read_text())
    cases = []
    for entry in raw:
        hosts = entry.pop("own_hosts", [])
        if entry["url"].startswith("/"):
            entry["url"] = SITE + entry["url"]
        cases.append(Case(**entry, own_hosts=tuple(hosts)))  # unknown keys raise
    return cases


CASES = load_cases()
CLASSIFIER = ChannelClassifier()


def classify(url: str, referrer: str = "", own_hosts: tuple[str, ...] = ()) -> ChannelDecision:
    return CLASSIFIER.classify(parse_landing(url), referrer, own_hosts=frozenset(own_hosts))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_channel_case(case: Case) -> None:
    decision = classify(case.url, case.referrer, case.own_hosts)
    assert decision.channel == case.channel, decision
    if case.source is not None:
        assert decision.source == case.source, decision
    if case.medium is not None:
        assert decision.medium == case.medium, decision
    if case.rule is not None:
        assert decision.rule == case.rule, decision
    assert decision.rule.startswith(RULE_FAMILIES), decision
    # A decision's source/medium, replayed as utm tags, must land in the same
    # channel: stored source/medium never contradict the stored channel.
    tags = {"utm_source": decision.source, "utm_medium": decision.medium}
    campaign = parse_landing(case.url).utm_campaign
    replay = classify(f"{SITE}/?{urlencode(tags)}&utm_campaign={campaign}")
    assert replay.channel == decision.channel, (decision, replay)


def test_cases_cover_every_channel_and_names_are_unique() -> None:
    assert {c.channel for c in CASES} == set(CHANNELS)
    assert len({c.name for c in CASES}) == len(CASES)


def test_parse_landing_removes_tracking_and_keeps_the_rest() -> None:
    url = (
        "https://Shop.Example.com/p/a%20b?id=7&utm_source=%20News+Letter%20&UTM_MEDIUM=Email"
        "&utm_campaign=Spring&utm_term=t&utm_content=c&utm_id=9&gclid=G1&fbclid=F1"
        "&mc_eid=secret&_gl=1*x&q=a+b#top"
    )
    landing = parse_landing(url)
    assert landing.url_clean == "https://Shop.Example.com/p/a%20b?id=7&q=a+b#top"
    assert (landing.host, landing.path) == ("shop.example.com", "/p/a%20b")
    assert (landing.utm_source, landing.utm_medium) == ("News Letter", "Email")
    assert (landing.utm_campaign, landing.utm_term, landing.utm_content) == ("Spring", "t", "c")
    # gclid outranks fbclid: it is minted per ad click.
    assert (landing.click_id_kind, landing.click_id) == ("google", "G1")


def test_parse_landing_without_query_is_unchanged() -> None:
    landing = parse_landing("https://www.example.com")
    assert landing == dataclasses.replace(
        EMPTY_LANDING, url_clean="https://www.example.com", host="www.example.com", path="/"
    )


def test_parse_landing_utm_beats_matomo_whatever_the_order() -> None:
    landing = parse_landing("https://x.test/?mtm_source=matomo&utm_source=utm&pk_medium=pk")
    assert (landing.utm_source, landing.utm_medium) == ("utm", "pk")


@pytest.mark.parametrize(
    "url", ["", "   ", "http://[::1", "::::", "?utm_source", "%%%", "http://exa mple.com/?%zz=%"]
)
def test_parse_landing_garbage_is_safe(url: str) -> None:
    landing = parse_landing(url)
    assert landing.click_id == ""
    CLASSIFIER.classify(landing, url)


@given(st.text(), st.text())
def test_never_raises_on_any_text(url: str, referrer: str) -> None:
    decision = CLASSIFIER.classify(parse_landing(url), referrer)
    assert decision.channel in CHANNELS
    assert decision.rule


def test_bundled_lists_load_and_keep_categories_apart() -> None:
    catalog = SourceCatalog.bundled()
    for host, name in [
        ("www.google.de", "google"),
        ("mail.google.com", "gmail"),
        ("gemini.google.com", "gemini"),
        ("shopping.google.com", "google_shopping"),
        ("www.youtube.com", "youtube"),
    ]:
        match = catalog.match_host(host)
        assert match is not None and match.name == name, host
    assert catalog.match_host("docs.google.com") is None


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ({"search_engine": "google google.*\nbing google.*"}, "search_engines.txt:2"),
        ({"search_engine": "google *.google.com"}, "bad pattern"),
        ({"search_engine": "google"}, "no patterns"),
        ({"search_engine": "x x.com", "social_network": "x twitter.com"}, "already in"),
    ],
)
def test_bad_source_lists_name_the_line(texts: dict[Any, str], message: str) -> None:
    with pytest.raises(SourceListError, match=message):
        SourceCatalog(texts)


URLISH = st.text(alphabet="hHtTpPsS:/.-_@[]%?#&=+ aAzZ09é\t", max_size=40)


@given(st.sampled_from(["https://", "http://", "HTTP://", "//", ""]), URLISH, URLISH)
def test_host_and_path_fast_path_agrees_with_urlsplit(scheme: str, netloc: str, path: str) -> None:
    base = (scheme + netloc + "/" + path).partition("#")[0].partition("?")[0]
    try:
        parts = urlsplit(base)
        host = (parts.hostname or "").rstrip(".")
        expected: tuple[str, str] | None = (host, parts.path or ("/" if host else ""))
    except ValueError:
        expected = None
    assert host_and_path(base) == expected
