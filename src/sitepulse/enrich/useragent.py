"""User agent parsing (ua-parser with its Rust accelerator) and bot detection."""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass

import ua_parser


@dataclass(frozen=True, slots=True)
class Agent:
    """What we keep of a user agent: families only, never the raw string."""

    browser: str
    os: str
    device: str  # desktop | mobile | tablet | bot | unknown
    bot_reason: str  # '' for humans


def _bot_pattern() -> re.Pattern[str]:
    text = (importlib.resources.files("sitepulse.enrich") / "data" / "bots.txt").read_text()
    tokens = [line.strip() for line in text.splitlines()]
    tokens = [t for t in tokens if t and not t.startswith("#")]
    parts = [t[3:] if t.startswith("re:") else re.escape(t) for t in tokens]
    return re.compile("|".join(sorted(parts, key=len, reverse=True)), re.I)


_BOTS = _bot_pattern()


def _device_class(ua: str, os_family: str, device_family: str) -> str:
    if device_family == "iPad" or (os_family == "Android" and "Mobile" not in ua):
        return "tablet"
    if os_family in ("iOS", "Android") or "Mobile" in ua or device_family == "iPhone":
        return "mobile"
    if os_family in ("Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "macOS"):
        return "desktop"
    return "unknown"


@functools.lru_cache(maxsize=8192)
def parse_agent(ua: str) -> Agent:
    """Parse a User-Agent string; cached because a site sees few distinct agents."""
    if not ua.strip():
        return Agent("", "", "unknown", "empty_user_agent")
    result = ua_parser.parse(ua)
    browser = result.user_agent.family if result.user_agent else "Other"
    os_family = result.os.family if result.os else "Other"
    device_family = result.device.family if result.device else "Other"
    if device_family == "Spider":
        return Agent(browser, os_family, "bot", f"ua_spider:{browser.lower()}")
    found = _BOTS.search(ua)
    if found:
        return Agent(browser, os_family, "bot", f"ua_pattern:{found.group(0).lower()}")
    return Agent(browser, os_family, _device_class(ua, os_family, device_family), "")
