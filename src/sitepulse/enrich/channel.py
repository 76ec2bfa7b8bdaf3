"""Channel classification after GA4's default channel group, plus "AI Assistants".

Rules run in GA4's documented order over the visit's source, medium and
campaign. Where those come from decides the rule family, and every decision
carries a short, stable `rule` string saying which rule matched:

- `utm:...`        the landing URL was tagged (utm_source or utm_medium present);
- `click_id:...`   no tags, but an ad or platform click id was present;
- `referrer:...`   neither, so the HTTP referrer decides;
- `no_referrer`    nothing at all, i.e. Direct.

Source lists live in `data/*.txt`; see `search_engines.txt` for the format.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, TypeVar

from sitepulse.enrich.landing import Landing, host_and_path

_T = TypeVar("_T")

Category = Literal[
    "search_engine",
    "social_network",
    "video_site",
    "shopping_site",
    "email_provider",
    "ai_assistant",
]

DATA_FILES: Final[Mapping[Category, str]] = {
    "search_engine": "search_engines.txt",
    "social_network": "social_networks.txt",
    "video_site": "video_sites.txt",
    "shopping_site": "shopping_sites.txt",
    "email_provider": "email_providers.txt",
    "ai_assistant": "ai_assistants.txt",
}

# Every channel a decision can carry, in the order the rules try them.
CHANNELS: Final = (
    "Direct",
    "Cross-network",
    "Paid Shopping",
    "Paid Search",
    "Paid Social",
    "Paid Video",
    "Display",
    "Paid Other",
    "AI Assistants",
    "Organic Shopping",
    "Organic Social",
    "Organic Video",
    "Organic Search",
    "Referral",
    "Email",
    "Affiliates",
    "Audio",
    "SMS",
    "Mobile Push Notifications",
    "Unassigned",
)


class SourceListError(ValueError):
    """A source list line that cannot be loaded; the message names file, line and value."""


@dataclass(frozen=True, slots=True)
class ChannelDecision:
    """The channel of a visit and why: normalised source and medium plus the matched rule."""

    channel: str
    source: str
    medium: str
    rule: str


@dataclass(frozen=True, slots=True)
class SourceMatch:
    """A known source: its list and canonical name."""

    category: Category
    name: str


# GA4's regexes, lowercase input. "Medium matches ^(.*cp.*|ppc|retargeting|paid.*)$".
_PAID_MEDIUM = re.compile(r"cp|^(?:ppc|retargeting)$|^paid")
# "Campaign Name matches ^(.*(([^a-df-z]|^)shop|shopping).*)$": "eshop" and
# "summer-shop" count, "workshop" does not.
_SHOP_CAMPAIGN = re.compile(r"(?:^|[^a-df-z])shop|shopping")
_DISPLAY_MEDIUMS = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_SOCIAL_MEDIUMS = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
_REFERRAL_MEDIUMS = frozenset({"referral", "app", "link"})
_EMAIL_WORDS = frozenset({"email", "e-mail", "e_mail", "e mail"})
# Second-level labels under which ccTLD registries sell names (google.co.uk,
# google.com.br, yahoo.co.jp): enough to find the brand label without the PSL.
_SECOND_LEVEL = frozenset(
    {"co", "com", "net", "org", "gov", "edu", "ac", "ne", "or", "go", "gob", "mil", "nic"}
)
_BRAND = re.compile(r"^[a-z0-9-]+\.\*$")
_HOST = re.compile(r"^!?[a-z0-9-]+(?:\.[a-z0-9-]+)+$")
_ALIAS = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

# Click id param -> (channel, source, medium, trusted), used only when the URL
# carries no utm tags (explicit tags are the site owner's word and win).
# trusted=True: the id is minted per ad click, so it decides whatever the
# referrer says. trusted=False: the platform stamps it on every outbound link
# (fbclid on all Facebook/Instagram links, igshid on shares, ESP ids on every
# newsletter link) and it survives copy-paste, so it proves nothing about
# payment and only decides when there is no external referrer to go on.
_CLICK_IDS: Final[Mapping[str, tuple[str, str, str, bool]]] = {
    # Google Ads can also serve gclid on Display/YouTube/PMax, but the URL
    # cannot tell, and search is by far the common case (GA4 agrees).
    "gclid": ("Paid Search", "google", "cpc", True),
    "gbraid": ("Paid Search", "google", "cpc", True),
    "wbraid": ("Paid Search", "google", "cpc", True),
    # dclid comes from Campaign Manager 360 / DV360 display and video buys.
    "dclid": ("Display", "google", "display", True),
    "msclkid": ("Paid Search", "bing", "cpc", True),
    "yclid": ("Paid Search", "yandex", "cpc", True),
    # These platforms add their id only to ad clicks, never to organic posts.
    "ttclid": ("Paid Social", "tiktok", "cpc", True),
    "li_fat_id": ("Paid Social", "linkedin", "cpc", True),
    "twclid": ("Paid Social", "x", "cpc", True),
    "epik": ("Paid Social", "pinterest", "cpc", True),
    "sccid": ("Paid Social", "snapchat", "cpc", True),
    "rdt_cid": ("Paid Social", "reddit", "cpc", True),
    "qclid": ("Paid Social", "quora", "cpc", True),
    # Native-ad networks: paid, but neither search nor social.
    "tblci": ("Paid Other", "taboola", "cpc", True),
    "outbrainclickid": ("Paid Other", "outbrain", "cpc", True),
    # Affiliate networks mint one id per click through their redirect.
    "irclickid": ("Affiliates", "impact", "affiliate", True),
    "awc": ("Affiliates", "awin", "affiliate", True),
    "cjevent": ("Affiliates", "cj", "affiliate", True),
    "ransiteid": ("Affiliates", "rakuten_advertising", "affiliate", True),
    "sscid": ("Affiliates", "shareasale", "affiliate", True),
    # Meta paid traffic is only recognisable by its utm tags.
    "fbclid": ("Organic Social", "facebook", "referral", False),
    "igshid": ("Organic Social", "instagram", "referral", False),
    "mc_cid": ("Email", "mailchimp", "email", False),
    "_hsenc": ("Email", "hubspot", "email", False),
    "mkt_tok": ("Email", "marketo", "email", False),
    "_kx": ("Email", "klaviyo", "email", False),
    "ck_subscriber_id": ("Email", "kit", "email", False),
}

# Referrer category -> (channel, medium). Medium "email" for webmail (not
# GA4's "referral") keeps every decision's source/medium pair self-consistent:
# re-run as utm tags, it lands in the same channel.
_REFERRER_CHANNELS: Final[Mapping[Category, tuple[str, str]]] = {
    "ai_assistant": ("AI Assistants", "referral"),
    "search_engine": ("Organic Search", "organic"),
    "social_network": ("Organic Social", "referral"),
    "video_site": ("Organic Video", "referral"),
    "shopping_site": ("Organic Shopping", "referral"),
    "email_provider": ("Email", "email"),
}


def _put(table: dict[str, _T], key: str, value: _T, where: str) -> None:
    if key in table and table[key] != value:
        raise SourceListError(f"{where}: {key!r} is already listed for another source")
    table[key] = value


def _brand_label(labels: list[str]) -> str:
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else ""


@lru_cache(maxsize=4096)
def referrer_host(referrer: str) -> str:
    """Lowercase host of a referrer URL (or bare host); "" if there is none."""
    text = referrer.strip()
    if not text:
        return ""
    if "//" not in text:
        text = "//" + text
    split = host_and_path(text.partition("#")[0].partition("?")[0])
    return split[0] if split is not None else ""


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


class SourceCatalog:
    """Host and utm_source lookup over the six source lists."""

    def __init__(self, texts: Mapping[Category, str]) -> None:
        # Exact host (and its subdomains) -> match; None marks a "!" exclusion.
        self._hosts: dict[str, SourceMatch | None] = {}
        self._brands: dict[str, SourceMatch] = {}
        self._aliases: dict[str, SourceMatch] = {}
        names: dict[str, Category] = {}
        for category, text in texts.items():
            self._load(category, DATA_FILES.get(category, category), text, names)
        self.match_host: Callable[[str], SourceMatch | None] = lru_cache(maxsize=8192)(
            self._match_host
        )
        self.match_source: Callable[[str], SourceMatch | None] = lru_cache(maxsize=8192)(
            self._match_source
        )

    @classmethod
    def bundled(cls) -> SourceCatalog:
        """The lists shipped in `sitepulse/enrich/data/`."""
        data = importlib.resources.files("sitepulse.enrich") / "data"
        return cls({cat: (data / name).read_text("utf-8") for cat, name in DATA_FILES.items()})

    def _load(self, category: Category, file: str, text: str, names: dict[str, Category]) -> None:
        for lineno, raw in enumerate(text.splitlines(), 1):
            words = raw.split("#", 1)[0].lower().split()
            if not words:
                continue
            where = f"{file}:{lineno}"
            name, patterns = words[0], words[1:]
            if not _ALIAS.match(name):
                raise SourceListError(f"{where}: bad source name {name!r}")
            if names.setdefault(name, category) != category:
                raise SourceListError(f"{where}: source {name!r} is already in {names[name]}")
            if not patterns:
                raise SourceListError(f"{where}: source {name!r} has no patterns")
            match = SourceMatch(category, name)
            _put(self._aliases, name, match, where)
            for pattern in patterns:
                if _BRAND.match(pattern):
                    _put(self._brands, pattern[:-2], match, where)
                elif _HOST.match(pattern):
                    excluded = pattern.startswith("!")
                    _put(self._hosts, pattern.lstrip("!"), None if excluded else match, where)
                elif _ALIAS.match(pattern):
                    _put(self._aliases, pattern, match, where)
                else:
                    raise SourceListError(f"{where}: bad pattern {pattern!r}")

    def _match_host(self, host: str) -> SourceMatch | None:
        labels = host.split(".")
        # Most specific first, so mail.google.com (webmail) beats google.* (search).
        for i in range(len(labels) - 1):
            suffix = ".".join(labels[i:])
            if suffix in self._hosts:
                return self._hosts[suffix]
        return self._brands.get(_brand_label(labels))

    def _match_source(self, source: str) -> SourceMatch | None:
        match = self._aliases.get(source)
        if match is None and "." in source:
            match = self.match_host(referrer_host(source))
        return match


_DIRECT = ChannelDecision("Direct", "(direct)", "(none)", "no_referrer")
_INTERNAL = ChannelDecision("Direct", "(direct)", "(none)", "referrer:internal")
_CLICK_DECISIONS: Final = {
    param: (ChannelDecision(channel, source, medium, f"click_id:{param}"), trusted)
    for param, (channel, source, medium, trusted) in _CLICK_IDS.items()
}


class ChannelClassifier:
    """Assigns each visit a channel from its landing attributes and referrer."""

    def __init__(self, catalog: SourceCatalog | None = None) -> None:
        self._catalog = catalog if catalog is not None else SourceCatalog.bundled()
        # Decisions are pure functions of a few short strings that repeat
        # across visits (tag sets, referrer hosts), so they are cached whole.
        self._tagged: Callable[[str, str, str], ChannelDecision] = lru_cache(maxsize=4096)(
            self._decide_tagged
        )
        self._referred: Callable[[str], ChannelDecision] = lru_cache(maxsize=4096)(
            self._decide_referred
        )

    def classify(
        self, landing: Landing, referrer: str, *, own_hosts: frozenset[str] = frozenset()
    ) -> ChannelDecision:
        """The channel for a visit; `own_hosts` (lowercase) and their subdomains are internal."""
        if landing.utm_source or landing.utm_medium:
            return self._tagged(landing.utm_source, landing.utm_medium, landing.utm_campaign)
        ref_host = referrer_host(referrer) if isinstance(referrer, str) else ""
        internal = bool(ref_host) and _is_internal(ref_host, landing.host, own_hosts)
        if internal:
            ref_host = ""
        # A lone utm_campaign names a campaign but not where the visit came
        # from, so it falls through to the click id and the referrer.
        if landing.click_id_param in _CLICK_DECISIONS:
            decision, trusted = _CLICK_DECISIONS[landing.click_id_param]
            if trusted or not ref_host:
                return decision
        if ref_host:
            return self._referred(ref_host)
        return _INTERNAL if internal else _DIRECT

    def _decide_tagged(
        self, utm_source: str, utm_medium: str, utm_campaign: str
    ) -> ChannelDecision:
        raw_source = utm_source.strip().lower()
        medium = utm_medium.strip().lower() or "(not set)"
        known = self._catalog.match_source(raw_source) if raw_source else None
        source = known.name if known else raw_source or "(not set)"
        kind = known.category if known else None
        channel, rule = _tag_rules(source, medium, utm_campaign.lower(), kind)
        return ChannelDecision(channel, source, medium, rule)

    def _decide_referred(self, host: str) -> ChannelDecision:
        known = self._catalog.match_host(host)
        if known is None:
            return ChannelDecision("Referral", _strip_www(host), "referral", "referrer:other")
        channel, medium = _REFERRER_CHANNELS[known.category]
        rule = f"referrer:{known.category}:{known.name}"
        return ChannelDecision(channel, known.name, medium, rule)


def _is_internal(ref_host: str, landing_host: str, own_hosts: frozenset[str]) -> bool:
    if ref_host == landing_host or _strip_www(ref_host) == _strip_www(landing_host):
        return True
    # Walk the host's suffixes: app.example.com, example.com, com.
    host = ref_host
    while own_hosts:
        if host in own_hosts:
            return True
        dot = host.find(".")
        if dot < 0:
            return False
        host = host[dot + 1 :]
    return False


def _tag_rules(source: str, medium: str, campaign: str, kind: Category | None) -> tuple[str, str]:
    """GA4's rules, in GA4's order, over tagged traffic: (channel, rule)."""
    if source == "(direct)" and medium in ("(not set)", "(none)"):
        return "Direct", "utm:source=(direct)"
    if "cross-network" in campaign:
        return "Cross-network", "utm:campaign~cross-network"
    paid = _PAID_MEDIUM.search(medium) is not None
    shop_campaign = _SHOP_CAMPAIGN.search(campaign) is not None
    if paid:
        if kind == "shopping_site":
            return "Paid Shopping", "utm:medium~paid+source:shopping_site"
        if shop_campaign:
            return "Paid Shopping", "utm:medium~paid+campaign~shop"
        if kind == "search_engine":
            return "Paid Search", "utm:medium~paid+source:search_engine"
        if kind == "social_network":
            return "Paid Social", "utm:medium~paid+source:social_network"
        if kind == "video_site":
            return "Paid Video", "utm:medium~paid+source:video_site"
    if medium in _DISPLAY_MEDIUMS:
        return "Display", "utm:medium=display"
    if paid:
        return "Paid Other", "utm:medium~paid"
    # Not in GA4, which would call these Referral or Unassigned. Checked after
    # the paid rules so ads bought on an assistant stay paid.
    if kind == "ai_assistant":
        return "AI Assistants", "utm:source:ai_assistant"
    if kind == "shopping_site":
        return "Organic Shopping", "utm:source:shopping_site"
    if shop_campaign:
        return "Organic Shopping", "utm:campaign~shop"
    if kind == "social_network":
        return "Organic Social", "utm:source:social_network"
    if medium in _SOCIAL_MEDIUMS:
        return "Organic Social", "utm:medium=social"
    if kind == "video_site":
        return "Organic Video", "utm:source:video_site"
    if "video" in medium:
        return "Organic Video", "utm:medium~video"
    if kind == "search_engine":
        return "Organic Search", "utm:source:search_engine"
    if medium == "organic":
        return "Organic Search", "utm:medium=organic"
    # GA4 tries Referral before Email, so source=email + medium=referral is Referral.
    if medium in _REFERRAL_MEDIUMS:
        return "Referral", "utm:medium=referral"
    if source in _EMAIL_WORDS or medium in _EMAIL_WORDS:
        return "Email", "utm:source|medium=email"
    # Not in GA4: utm_source=mail.google.com says the link sat in a message.
    if kind == "email_provider":
        return "Email", "utm:source:email_provider"
    if medium == "affiliate":
        return "Affiliates", "utm:medium=affiliate"
    if medium == "audio":
        return "Audio", "utm:medium=audio"
    if source == "sms" or medium == "sms":
        return "SMS", "utm:source|medium=sms"
    if medium.endswith("push") or "mobile" in medium or "notification" in medium:
        return "Mobile Push Notifications", "utm:medium~push"
    if source == "firebase":
        return "Mobile Push Notifications", "utm:source=firebase"
    return "Unassigned", "utm:unmatched"
