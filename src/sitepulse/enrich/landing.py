"""Landing attributes of a page URL: campaign tags, ad click ids and the clean URL.

Runs once per event at ingest. `urlsplit` is the slow part, so it only sees
the URL before the query and is cached per page; the query, unique per ad
click, is walked by hand and only the parameters we keep are decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote_plus, urlsplit


@dataclass(frozen=True, slots=True)
class Landing:
    """Where a visit landed and the campaign markers its URL carried."""

    url_clean: str
    host: str
    path: str
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    click_id_kind: str = ""
    click_id: str = ""
    # The query parameter the click id came from ("gclid", "dclid", ...): the
    # kind alone cannot tell a Google search click from a Google display click.
    click_id_param: str = ""


EMPTY_LANDING = Landing(url_clean="", host="", path="")

# Query key -> (slot among utm_source..utm_content, rank). Lower rank wins, so
# explicit utm_* tags beat Matomo's mtm_*/pk_* spellings wherever they appear.
_CAMPAIGN_KEYS: dict[str, tuple[int, int]] = {
    "utm_source": (0, 0),
    "utm_medium": (1, 0),
    "utm_campaign": (2, 0),
    "utm_term": (3, 0),
    "utm_content": (4, 0),
    "mtm_source": (0, 1),
    "mtm_medium": (1, 1),
    "mtm_campaign": (2, 1),
    "mtm_keyword": (3, 1),
    "mtm_content": (4, 1),
    "pk_source": (0, 2),
    "pk_medium": (1, 2),
    "pk_campaign": (2, 2),
    "pk_kwd": (3, 2),
    "pk_keyword": (3, 2),
    "pk_content": (4, 2),
}

# Lowercased query key -> (kind, rank). When a URL carries several, the lowest
# rank wins: ids minted per ad click come before ids that ride along on shared
# links (fbclid, newsletter ids), because the former say how the click happened.
CLICK_ID_PARAMS: dict[str, tuple[str, int]] = {
    "gclid": ("google", 0),
    "gbraid": ("google", 1),
    "wbraid": ("google", 2),
    "dclid": ("google", 3),
    "msclkid": ("microsoft", 4),
    "yclid": ("yandex", 5),
    "ttclid": ("tiktok", 6),
    "li_fat_id": ("linkedin", 7),
    "twclid": ("x", 8),
    "epik": ("pinterest", 9),
    "sccid": ("snapchat", 10),
    "rdt_cid": ("reddit", 11),
    "qclid": ("quora", 12),
    "tblci": ("taboola", 13),
    "outbrainclickid": ("outbrain", 14),
    "irclickid": ("impact", 15),
    "awc": ("awin", 16),
    "cjevent": ("cj", 17),
    "ransiteid": ("rakuten", 18),
    "sscid": ("shareasale", 19),
    "fbclid": ("meta", 20),
    "igshid": ("meta", 21),
    "mc_cid": ("mailchimp", 22),
    "_hsenc": ("hubspot", 23),
    "mkt_tok": ("marketo", 24),
    "_kx": ("klaviyo", 25),
    "ck_subscriber_id": ("kit", 26),
}

# Removed from url_clean but not reported: linker, subscriber and ad-account
# parameters that identify people or split one page into thousands of URLs.
_STRIP_ONLY = frozenset(
    {
        "gclsrc",
        "gad_source",
        "gad_campaignid",
        "srsltid",
        "_ga",
        "_gl",
        "mc_eid",
        "_hsmi",
        "oly_enc_id",
        "oly_anon_id",
        "vero_id",
        "vero_conv",
        "__s",
        "ef_id",
        "s_kwcid",
        "ranmid",
        "ranea",
        "ransitelid",
        "mtm_cid",
        "mtm_group",
        "mtm_placement",
        "pk_cid",
    }
)
# Every utm_* (utm_id, utm_source_platform, utm_creative_format, ...) and every
# HubSpot ads hsa_* parameter is tracking.
_STRIP_PREFIXES = ("utm_", "hsa_")
_CONTROL_CHARS = str.maketrans("", "", "\t\n\r")
_PLAIN_NETLOC = re.compile(r"[A-Za-z0-9.-]+")


@lru_cache(maxsize=1024)
def _decode_key(raw: str) -> str:
    # Keys repeat endlessly across URLs, so caching their decoding pays off.
    return (unquote_plus(raw) if "%" in raw or "+" in raw else raw).strip().lower()


def _decode_value(raw: str) -> str:
    return (unquote_plus(raw) if "%" in raw or "+" in raw else raw).strip()


_UNSAFE = frozenset("\t\r\n")


def host_and_path(base: str) -> tuple[str, str] | None:
    """Lowercase host and raw path of a URL without its query; None if unparseable."""
    # Fast path for the plain "https://host/path" that nearly every event
    # carries; anything unusual (port, userinfo, IPv6, non-ASCII) goes to urlsplit.
    scheme_len = 8 if base.startswith("https://") else 7 if base.startswith("http://") else 0
    # urlsplit drops tabs and newlines anywhere (as WHATWG URL parsing does).
    if scheme_len and not _UNSAFE.intersection(base):
        netloc, slash, path = base[scheme_len:].partition("/")
        if _PLAIN_NETLOC.fullmatch(netloc):
            host = netloc.lower().rstrip(".")
            return host, slash + path if slash else ("/" if host else "")
    return _split_with_urllib(base)


@lru_cache(maxsize=4096)
def _split_with_urllib(base: str) -> tuple[str, str] | None:
    try:
        parts = urlsplit(base)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:  # e.g. an unbalanced "[" in the netloc
        return None
    return host, parts.path or ("/" if host else "")


def parse_landing(url: str) -> Landing:
    """Split a page URL into its landing attributes; garbage gives empty fields."""
    if not isinstance(url, str) or not url:
        return EMPTY_LANDING
    url = url.strip()
    if "\t" in url or "\n" in url or "\r" in url:
        url = url.translate(_CONTROL_CHARS)  # browsers drop these, and so does urlsplit
    # The query runs from the first "?" to the first "#" (RFC 3986, 3.4).
    rest, hashmark, fragment = url.partition("#")
    base, _, query = rest.partition("?")
    split = host_and_path(base)
    if split is None:
        return EMPTY_LANDING
    host, path = split
    if not query:
        return Landing(url_clean=url, host=host, path=path)

    utm = ["", "", "", "", ""]
    utm_rank = [99, 99, 99, 99, 99]
    click_kind = click_value = click_param = ""
    click_rank = 99
    kept: list[str] = []
    removed = False
    for piece in query.split("&"):
        if not piece:
            removed = True
            continue
        raw_key, _, raw_value = piece.partition("=")
        key = _decode_key(raw_key)
        campaign = _CAMPAIGN_KEYS.get(key)
        if campaign is not None:
            removed = True
            slot, rank = campaign
            if rank < utm_rank[slot]:
                value = _decode_value(raw_value)
                if value:
                    utm[slot] = value
                    utm_rank[slot] = rank
            continue
        click = CLICK_ID_PARAMS.get(key)
        if click is not None:
            removed = True
            kind, rank = click
            if rank < click_rank:
                value = _decode_value(raw_value)
                if value:
                    click_kind, click_value, click_param, click_rank = kind, value, key, rank
            continue
        if key in _STRIP_ONLY or key.startswith(_STRIP_PREFIXES):
            removed = True
            continue
        kept.append(piece)

    clean = url
    if removed:
        clean = base + ("?" + "&".join(kept) if kept else "") + hashmark + fragment
    return Landing(
        url_clean=clean,
        host=host,
        path=path,
        utm_source=utm[0],
        utm_medium=utm[1],
        utm_campaign=utm[2],
        utm_term=utm[3],
        utm_content=utm[4],
        click_id_kind=click_kind,
        click_id=click_value,
        click_id_param=click_param,
    )
