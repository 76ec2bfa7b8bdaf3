"""Who visits the demo site: real browser agents, residential networks per country, and bots."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Agent:
    """A real browser User-Agent string, its device class and its share of human visits."""

    user_agent: str
    device: str
    weight: float


AGENTS: tuple[Agent, ...] = (
    Agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "desktop",
        26,
    ),
    Agent(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "desktop",
        9,
    ),
    Agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "desktop",
        9,
    ),
    Agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "desktop",
        4,
    ),
    Agent(
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "desktop",
        1.5,
    ),
    Agent(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "desktop",
        8,
    ),
    Agent(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "desktop",
        2,
    ),
    Agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
        "desktop",
        1,
    ),
    Agent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "mobile",
        13,
    ),
    Agent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        "mobile",
        5,
    ),
    Agent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        "mobile",
        2,
    ),
    Agent(
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        "mobile",
        10,
    ),
    Agent(
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 "
        "(KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "mobile",
        3,
    ),
    Agent(
        "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.7 Mobile/15E148 Safari/604.1",
        "tablet",
        3.5,
    ),
    Agent(
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "tablet",
        1,
    ),
)

SCREEN_WIDTHS: dict[str, tuple[int, ...]] = {
    "desktop": (1920, 1536, 1440, 1366, 2560, 1280),
    "mobile": (390, 393, 412, 430, 375, 360),
    "tablet": (820, 768, 1024, 800),
}


@dataclass(frozen=True)
class Country:
    """Visitors from one country: share, residential ISP ranges, language, zone and phone prefix."""

    code: str
    weight: float
    networks: tuple[str, ...]
    language: str
    timezone: str
    phone_prefix: str


# Residential and mobile ISP ranges (Comcast, BT, Deutsche Telekom, Free, KPN, Rogers,
# Telstra, Jio, Telefonica, Telia, Eir, Orange Polska, Singtel, ...): every address in
# them resolves to its country in the common open country databases.
COUNTRIES: tuple[Country, ...] = (
    Country("US", 28, ("73.0.0.0/10", "98.192.0.0/10"), "en-US", "America/New_York", "+1"),
    Country(
        "GB",
        24,
        ("81.128.0.0/11", "86.128.0.0/10", "90.192.0.0/11"),
        "en-GB",
        "Europe/London",
        "+44",
    ),
    Country(
        "DE", 9, ("79.192.0.0/10", "91.0.0.0/10", "84.128.0.0/10"), "de-DE", "Europe/Berlin", "+49"
    ),
    Country("FR", 5, ("82.64.0.0/14", "86.192.0.0/11"), "fr-FR", "Europe/Paris", "+33"),
    Country(
        "NL",
        5,
        ("145.53.0.0/16", "84.24.0.0/13", "77.160.0.0/13"),
        "nl-NL",
        "Europe/Amsterdam",
        "+31",
    ),
    Country(
        "CA",
        5,
        ("99.224.0.0/11", "70.48.0.0/13", "174.88.0.0/13"),
        "en-CA",
        "America/Toronto",
        "+1",
    ),
    Country(
        "AU",
        4,
        ("1.128.0.0/11", "120.144.0.0/13", "49.176.0.0/12"),
        "en-AU",
        "Australia/Sydney",
        "+61",
    ),
    Country(
        "IN",
        6,
        ("49.36.0.0/14", "122.160.0.0/15", "117.192.0.0/10"),
        "en-IN",
        "Asia/Kolkata",
        "+91",
    ),
    Country(
        "ES", 3, ("88.0.0.0/11", "83.32.0.0/11", "81.32.0.0/12"), "es-ES", "Europe/Madrid", "+34"
    ),
    Country(
        "SE",
        3,
        ("78.64.0.0/12", "90.224.0.0/12", "81.224.0.0/12"),
        "sv-SE",
        "Europe/Stockholm",
        "+46",
    ),
    Country("IE", 3, ("86.40.0.0/13", "109.76.0.0/14"), "en-IE", "Europe/Dublin", "+353"),
    Country("PL", 2, ("83.0.0.0/11",), "pl-PL", "Europe/Warsaw", "+48"),
    Country("SG", 3, ("116.86.0.0/15", "121.6.0.0/15"), "en-SG", "Asia/Singapore", "+65"),
)
COUNTRIES_BY_CODE = {c.code: c for c in COUNTRIES}


@dataclass(frozen=True)
class Bot:
    """An automated client the server should flag, with where it comes from and how it crawls."""

    kind: str
    user_agent: str
    networks: tuple[str, ...]
    weight: float
    pages: tuple[int, int]
    gap_ms: tuple[int, int]
    automation: bool = False
    runs_js: bool = False


# Weights are percent of all visits, so bots make up ~5 %.
BOTS: tuple[Bot, ...] = (
    Bot(
        "googlebot",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ("66.249.64.0/19",),
        1.5,
        (3, 12),
        (800, 4000),
        runs_js=True,
    ),
    Bot(
        "bingbot",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        ("157.55.39.0/24", "207.46.13.0/24"),
        0.8,
        (2, 8),
        (1500, 6000),
    ),
    Bot(
        "ahrefsbot",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        ("54.36.148.0/22",),
        1.0,
        (4, 12),
        (300, 2000),
    ),
    Bot(
        "python-requests",
        "python-requests/2.32.3",
        ("159.203.0.0/16", "3.80.0.0/12"),
        0.9,
        (1, 5),
        (50, 400),
    ),
    Bot(
        "headless-chrome",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
        ("3.80.0.0/12",),
        0.8,
        (2, 6),
        (400, 2500),
        automation=True,
        runs_js=True,
    ),
)
BOT_SHARE = sum(b.weight for b in BOTS) / 100
