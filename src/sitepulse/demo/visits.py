"""Planning one visit: who comes, from where, which pages, and every event it produces.

Pure functions of a `random.Random` and a start time, so distributions can be tested
without a server and the same seed always tells the same story.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from sitepulse.collect.payloads import BrowserEvent, LeadSubmission
from sitepulse.demo.catalog import (
    AI_ASSISTANTS,
    AI_REFERRERS,
    CAMPAIGNS,
    CHANNELS,
    DEFAULT_HOST,
    DIRECT,
    DISPLAY,
    DISPLAY_REFERRERS,
    EMAIL,
    EXPERIMENTS,
    ORGANIC_SEARCH,
    ORGANIC_SOCIAL,
    PAGES,
    REFERRAL,
    REFERRAL_REFERRERS,
    SEARCH_REFERRERS,
    SERVICE_PAGES,
    SOCIAL_REFERRERS,
    TRANSITIONS,
    Campaign,
    Channel,
)
from sitepulse.demo.clients import (
    AGENTS,
    BOT_SHARE,
    BOTS,
    COUNTRIES,
    COUNTRIES_BY_CODE,
    SCREEN_WIDTHS,
    Bot,
)
from sitepulse.demo.draw import random_hex, weighted
from sitepulse.demo.pages import PageContext, page_events

DAY_MS = 86_400_000
MAX_PAGES = 12
# sp.js sends its queue 5 s after the first queued event, at 20 events, and on page hide.
FLUSH_MS = 5_000
BATCH_EVENTS = 20


@dataclass(frozen=True)
class Visitor:
    """One simulated person (or bot) with a stable device, address and id."""

    key: str
    ip: str
    user_agent: str
    device: str
    country: str
    language: str = ""
    timezone: str = ""
    screen_width: int | None = None
    consented: bool = False
    bot: str = ""
    automation: bool = False


@dataclass(frozen=True)
class Beacon:
    """The events one browser request carries, and when the browser sends it."""

    send_ms: int
    events: tuple[BrowserEvent, ...]


@dataclass(frozen=True)
class Visit:
    """A planned session: the visitor, where they came from, what they saw and sent."""

    visitor: Visitor
    session_key: str
    start_ms: int
    channel: str
    campaign: str
    landing_url: str
    referrer: str
    pages: tuple[str, ...]
    beacons: tuple[Beacon, ...]
    variants: dict[str, str] = field(default_factory=dict)
    lead: LeadSubmission | None = None
    form_failed: bool = False
    returning: bool = False

    @property
    def is_bot(self) -> bool:
        """True for crawlers, scripts and headless browsers."""
        return bool(self.visitor.bot)

    @property
    def events(self) -> tuple[BrowserEvent, ...]:
        """Every event of the visit in the order the browser sends them."""
        return tuple(e for b in self.beacons for e in b.events)


@functools.cache
def _network(cidr: str) -> tuple[int, int]:
    net = ipaddress.IPv4Network(cidr)
    return int(net.network_address), net.num_addresses


def random_address(rng: random.Random, networks: Sequence[str]) -> str:
    """A host address inside one of `networks` (never the network or broadcast address)."""
    base, size = _network(rng.choice(networks))
    return str(ipaddress.IPv4Address(base + rng.randrange(1, size - 1)))


def new_visitor(rng: random.Random) -> Visitor:
    """A first-time visitor: ~5 % bots, the rest people on real browsers in real countries."""
    if rng.random() < BOT_SHARE:
        bot = weighted(rng, [(b, b.weight) for b in BOTS])
        return Visitor(
            key=random_hex(rng),
            ip=random_address(rng, bot.networks),
            user_agent=bot.user_agent,
            device="bot",
            country="",
            bot=bot.kind,
            automation=bot.automation,
            screen_width=1280 if bot.runs_js else None,
        )
    agent = weighted(rng, [(a, a.weight) for a in AGENTS])
    country = weighted(rng, [(c, c.weight) for c in COUNTRIES])
    return Visitor(
        key=random_hex(rng),
        ip=random_address(rng, country.networks),
        user_agent=agent.user_agent,
        device=agent.device,
        country=country.code,
        language=country.language,
        timezone=country.timezone,
        screen_width=rng.choice(SCREEN_WIDTHS[agent.device]),
        consented=rng.random() < 0.4,
    )


def moved(rng: random.Random, visitor: Visitor) -> Visitor:
    """The same person on another day: same browser and consented id, a new address."""
    networks = COUNTRIES_BY_CODE[visitor.country].networks
    return replace(visitor, ip=random_address(rng, networks))


def _channel(rng: random.Random, start_ms: int, returning: bool) -> Channel:
    weekday = (start_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; 0 is Monday
    options: list[tuple[Channel, float]] = []
    for channel in CHANNELS:
        weight = channel.weight
        # Newsletters go out on Tuesdays and Thursdays.
        if channel.name == EMAIL:
            weight *= 2.6 if weekday in (1, 3) else 0.6
        if returning:
            weight *= {DIRECT: 3.0, EMAIL: 1.6, ORGANIC_SEARCH: 1.0}.get(channel.name, 0.5)
        options.append((channel, weight))
    return weighted(rng, options)


def _click_id(rng: random.Random, kind: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    if kind == "gclid":
        return "Cj0KCQ" + "".join(rng.choice(alphabet) for _ in range(80))
    if kind == "fbclid":
        return "IwAR" + "".join(rng.choice(alphabet) for _ in range(58))
    if kind == "li_fat_id":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return random_hex(rng)


def _campaign_arrival(rng: random.Random, campaign: Campaign) -> tuple[str, str, str]:
    params = {
        "utm_source": campaign.source,
        "utm_medium": campaign.medium,
        "utm_campaign": campaign.name,
    }
    if campaign.terms:
        params["utm_term"] = rng.choice(campaign.terms)
    if campaign.contents:
        params["utm_content"] = rng.choice(campaign.contents)
    if campaign.click_id:
        params[campaign.click_id] = _click_id(rng, campaign.click_id)
    referrer = campaign.referrer
    if campaign.channel == DISPLAY:
        referrer = weighted(rng, DISPLAY_REFERRERS)
    elif campaign.channel == EMAIL and rng.random() < 0.2:
        referrer = "https://mail.google.com/"
    return rng.choice(campaign.landings), urlencode(params), referrer


def _arrival(rng: random.Random, channel: Channel) -> tuple[str, str, str, str]:
    """Landing path, query string, referrer and campaign name for a visit from `channel`."""
    campaigns = [c for c in CAMPAIGNS if c.channel == channel.name]
    if campaigns:
        campaign = weighted(rng, [(c, c.weight) for c in campaigns])
        landing, query, referrer = _campaign_arrival(rng, campaign)
        return landing, query, referrer, campaign.name
    landing = weighted(rng, channel.landings)
    query, referrer = "", ""
    if channel.name == ORGANIC_SEARCH:
        referrer = weighted(rng, SEARCH_REFERRERS)
    elif channel.name == ORGANIC_SOCIAL:
        referrer = weighted(rng, SOCIAL_REFERRERS)
        if referrer == "https://t.co/":
            referrer += "".join(
                rng.choice("abcdefghijkmnopqrstuvwxyzABCDEFGH23456789") for _ in range(10)
            )
    elif channel.name == REFERRAL:
        referrer = weighted(rng, REFERRAL_REFERRERS)
    elif channel.name == AI_ASSISTANTS:
        referrer = weighted(rng, AI_REFERRERS)
        # ChatGPT tags the links it cites.
        if referrer == "https://chatgpt.com/" and rng.random() < 0.7:
            query = "utm_source=chatgpt.com"
    return landing, query, referrer, ""


def _walk(
    rng: random.Random, landing: str, channel: Channel, *, bounce: float, returning: bool
) -> list[str]:
    pages = [landing]
    if rng.random() < bounce:
        return pages
    keep_going = channel.continue_p + (0.06 if returning else 0.0)
    while len(pages) < MAX_PAGES:
        pages.append(weighted(rng, TRANSITIONS[pages[-1]]))
        if rng.random() > keep_going:
            break
    return pages


def conversion_probability(
    channel: Channel, pages: Sequence[str], variants: dict[str, str], returning: bool
) -> float:
    """Chance that a visit with this path ends in a lead; pricing's bold CTA converts better."""
    p = channel.conversion
    if "/pricing" in pages:
        p *= 1.45 * (1.4 if variants.get("pricing_cta") == "bold" else 1.0)
    if "/case-studies" in pages:
        p *= 1.2
    if returning:
        p *= 1.5
    return min(p, 0.6)


def _service_interest(rng: random.Random, pages: Sequence[str]) -> str:
    seen = [p.rsplit("/", 1)[1] for p in pages if p in SERVICE_PAGES]
    if seen:
        return seen[-1]
    return rng.choice((*(p.rsplit("/", 1)[1] for p in SERVICE_PAGES), "not-sure"))


def _beacons(rng: random.Random, events: list[BrowserEvent]) -> list[Beacon]:
    """Group one page view's events into requests the way sp.js flushes them."""
    beacons: list[Beacon] = []
    group: list[BrowserEvent] = []
    for event in sorted(events, key=lambda e: e.ts):
        if group and event.ts >= group[0].ts + FLUSH_MS:
            beacons.append(Beacon(group[0].ts + FLUSH_MS + rng.randrange(5, 80), tuple(group)))
            group = []
        group.append(event)
        if len(group) >= BATCH_EVENTS:
            beacons.append(Beacon(event.ts + rng.randrange(5, 80), tuple(group)))
            group = []
    if group:
        beacons.append(Beacon(group[-1].ts + rng.randrange(5, 80), tuple(group)))
    return beacons


def plan_visit(
    rng: random.Random,
    start_ms: int,
    *,
    visitor: Visitor | None = None,
    returning: bool = False,
    host: str = DEFAULT_HOST,
) -> Visit:
    """Plan one visit starting at `start_ms`: a new visitor unless `visitor` is given."""
    visitor = visitor or new_visitor(rng)
    session_key = random_hex(rng)
    if visitor.bot:
        return _plan_bot_visit(rng, start_ms, visitor, session_key, host)
    channel = _channel(rng, start_ms, returning)
    landing, query, referrer, campaign = _arrival(rng, channel)
    variants = {name: rng.choice(options) for name, options in EXPERIMENTS.items()}
    bounce = channel.bounce
    if landing == "/":
        bounce *= {"outcomes": 0.85, "social_proof": 0.93}.get(variants["hero_copy"], 1.0)
    pages = _walk(rng, landing, channel, bounce=bounce, returning=returning)
    converts = rng.random() < conversion_probability(channel, pages, variants, returning)
    if converts and "/contact" in pages:
        pages = pages[: pages.index("/contact") + 1]
    elif converts:
        pages.append("/contact")
    form_failed = converts and rng.random() < 0.07
    ctx = PageContext(
        rng=rng,
        host=host,
        device=visitor.device,
        country=visitor.country,
        channel=channel.name,
        service=_service_interest(rng, pages),
        variants=variants,
        converts=converts,
        form_failed=form_failed,
        is_test=converts and rng.random() < 0.025,
    )
    landing_url = f"https://{host}{landing}" + (f"?{query}" if query else "")
    beacons, lead = _pages(ctx, pages, start_ms, landing_url, referrer)
    return Visit(
        visitor=visitor,
        session_key=session_key,
        start_ms=start_ms,
        channel=channel.name,
        campaign=campaign,
        landing_url=landing_url,
        referrer=referrer,
        pages=tuple(pages),
        beacons=tuple(beacons),
        variants=variants,
        lead=lead,
        form_failed=form_failed,
        returning=returning,
    )


def _pages(
    ctx: PageContext, pages: Sequence[str], start_ms: int, landing_url: str, referrer: str
) -> tuple[list[Beacon], LeadSubmission | None]:
    beacons: list[Beacon] = []
    lead: LeadSubmission | None = None
    t, url, ref = start_ms, landing_url, referrer
    for i, path in enumerate(pages):
        next_path = pages[i + 1] if i + 1 < len(pages) else ""
        result = page_events(
            ctx, path, t, url=url, referrer=ref, next_path=next_path, single_page=len(pages) == 1
        )
        beacons.extend(_beacons(ctx.rng, result.events))
        lead = lead or result.lead
        t = result.leave_ms + ctx.rng.randrange(150, 1200)
        ref, url = url, f"https://{ctx.host}{next_path}"
    return beacons, lead


def _plan_bot_visit(
    rng: random.Random, start_ms: int, visitor: Visitor, session_key: str, host: str
) -> Visit:
    bot: Bot = next(b for b in BOTS if b.kind == visitor.bot)
    paths = list(PAGES)
    if bot.kind == "python-requests":
        paths = ["/contact", "/pricing", "/", "/services"]
    count = rng.randint(*bot.pages)
    pages = [rng.choice(paths) for _ in range(count)]
    spam = bot.automation and rng.random() < 0.2
    if spam:
        pages.append("/contact")
    ctx = PageContext(
        rng=rng,
        host=host,
        device="bot",
        country="",
        channel=DIRECT,
        service="not-sure",
        variants={name: rng.choice(options) for name, options in EXPERIMENTS.items()},
        converts=spam,
        automation=True,
        runs_js=bot.runs_js,
    )
    beacons: list[Beacon] = []
    lead: LeadSubmission | None = None
    t = start_ms
    for path in pages:
        result = page_events(
            ctx,
            path,
            t,
            url=f"https://{host}{path}",
            referrer="",
            next_path="",
            single_page=False,
            dwell_ms=rng.randint(*bot.gap_ms),
        )
        beacons.extend(_beacons(rng, result.events))
        lead = lead or result.lead
        t = result.leave_ms + rng.randrange(20, 300)
    return Visit(
        visitor=visitor,
        session_key=session_key,
        start_ms=start_ms,
        channel=DIRECT,
        campaign="",
        landing_url=f"https://{host}{pages[0]}",
        referrer="",
        pages=tuple(pages),
        beacons=tuple(beacons),
        variants=ctx.variants,
        lead=lead,
    )
