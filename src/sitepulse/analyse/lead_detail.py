"""The sales view of leads: a filtered, sorted list, and one lead with its score and journey.

Everything is parameterised SQL over the leads, sessions and events tables; the only
text spliced into a statement is an ORDER BY chosen from `SORTS` (a fixed table), never
a value from the request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sitepulse.analyse.attribution import ALL_MODELS, LeadJourney, Touchpoint, attribute_all
from sitepulse.analyse.base import Period, Reader
from sitepulse.analyse.touchpoints import attribution_config
from sitepulse.config.analysis import AttributionSettings

# Sort keys the list accepts, and the SQL each one orders by. "tier" ranks by the
# model's tiers (best first), which alphabetical order would not.
SORTS: Final[Mapping[str, str]] = {
    "ts": "l.ts",
    "name": "lower(l.name)",
    "email": "lower(l.email)",
    "company": "lower(l.company)",
    "channel": "lower(l.channel)",
    "score": "l.score",
    "tier": "tier_rank",
    "follow_up_due": "l.follow_up_due",
    "overdue": "overdue",
}
# Overdue first, then the deadline that comes soonest, then the best score, then newest.
DEFAULT_ORDER: Final = "overdue DESC, l.follow_up_due ASC NULLS LAST, l.score DESC NULLS LAST"
MAX_PAGE: Final = 500
# Bounds on one lead's page: a visitor with thousands of sessions still renders quickly.
MAX_SESSIONS: Final = 50
MAX_EVENTS_PER_SESSION: Final = 200
# Form events that say something to a salesperson; field focus/blur are noise here.
_QUIET_FORM_EVENTS: Final = ("field_focus", "field_blur")


@dataclass(frozen=True, slots=True)
class LeadQuery:
    """Filters and order of the lead list; empty filters match everything."""

    tiers: tuple[str, ...] = ()
    channel: str = ""
    min_score: float | None = None
    max_score: float | None = None
    overdue_only: bool = False
    include_test: bool = False
    search: str = ""
    sort: str = ""  # a key of SORTS; "" is DEFAULT_ORDER
    descending: bool = False

    def __post_init__(self) -> None:
        if self.sort and self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)} (got {self.sort!r})")


@dataclass(frozen=True, slots=True)
class LeadRow:
    """One lead as the list shows it; times are epoch ms, UTC."""

    lead_id: str
    ts_ms: int
    name: str
    email: str
    phone: str
    company: str
    channel: str
    source: str
    medium: str
    campaign: str
    form: str
    score: float | None
    tier: str | None
    follow_up_due_ms: int | None
    overdue: bool
    is_test: bool


@dataclass(frozen=True, slots=True)
class LeadPage:
    """One page of the list and how many leads match in all."""

    rows: tuple[LeadRow, ...]
    total: int
    offset: int
    limit: int


_LIST = """
SELECT l.lead_id::VARCHAR, epoch_ms(l.ts), l.name, l.email, l.phone, l.company, l.channel,
       l.source, l.medium, l.campaign, l.form, l.score, l.tier, epoch_ms(l.follow_up_due),
       l.is_test,
       coalesce(l.follow_up_due < make_timestamp(?::BIGINT * 1000), false) AS overdue,
       list_position(?::VARCHAR[], l.tier) AS tier_rank,  -- NULL (last) when unscored
       count(*) OVER () AS matching
FROM leads l
WHERE l.site = ? AND l.ts >= make_timestamp(?::BIGINT * 1000)
  AND l.ts < make_timestamp(?::BIGINT * 1000) AND NOT l.is_bot {where}
ORDER BY {order}, l.ts DESC, l.lead_id
LIMIT ? OFFSET ?
"""


def _filters(query: LeadQuery, now_ms: int) -> tuple[str, list[Any]]:
    parts: list[str] = []
    args: list[Any] = []
    if not query.include_test:
        parts.append("NOT l.is_test")
    if query.tiers:
        parts.append("list_contains(?::VARCHAR[], l.tier)")
        args.append(list(query.tiers))
    if query.channel:
        parts.append("l.channel = ?")
        args.append(query.channel)
    if query.min_score is not None:
        parts.append("l.score >= ?")
        args.append(query.min_score)
    if query.max_score is not None:
        parts.append("l.score <= ?")
        args.append(query.max_score)
    if query.overdue_only:
        parts.append("l.follow_up_due < make_timestamp(?::BIGINT * 1000)")
        args.append(now_ms)
    needle = query.search.strip().lower()
    if needle:
        # contains() takes the text literally: a % or _ typed in the box is not a wildcard.
        parts.append(
            "(contains(lower(l.name), ?) OR contains(lower(l.email), ?)"
            " OR contains(lower(l.company), ?))"
        )
        args += [needle, needle, needle]
    return "".join(f" AND {part}" for part in parts), args


def _order(query: LeadQuery) -> str:
    if not query.sort:
        return DEFAULT_ORDER
    direction = "DESC" if query.descending else "ASC"
    return f"{SORTS[query.sort]} {direction} NULLS LAST"


def lead_list(
    reader: Reader,
    period: Period,
    query: LeadQuery,
    *,
    now_ms: int,
    tier_order: Sequence[str] = (),
    offset: int = 0,
    limit: int = 50,
) -> LeadPage:
    """Leads submitted in `period` matching `query`; `tier_order` ranks tiers best first."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE} (got {limit})")
    if offset < 0:
        raise ValueError(f"offset must not be negative (got {offset})")
    where, args = _filters(query, now_ms)
    sql = _LIST.format(where=where, order=_order(query))
    rows = reader.query(sql, [now_ms, list(tier_order), *period.params, *args, limit, offset])
    total = int(rows[0][-1]) if rows else 0
    if not rows and offset:
        # Past the end: the count still tells the pager where the end is.
        again = reader.query(sql, [now_ms, list(tier_order), *period.params, *args, 1, 0])
        total = int(again[0][-1]) if again else 0
    return LeadPage(tuple(_row(row) for row in rows), total, offset, limit)


def _row(row: Sequence[Any]) -> LeadRow:
    (lead_id, ts, name, email, phone, company, channel, source, medium, campaign) = row[:10]
    (form, score, tier, due, is_test, overdue) = row[10:16]
    return LeadRow(
        lead_id=lead_id,
        ts_ms=int(ts),
        name=name,
        email=email,
        phone=phone,
        company=company,
        channel=channel,
        source=source,
        medium=medium,
        campaign=campaign,
        form=form,
        score=score,
        tier=tier,
        follow_up_due_ms=None if due is None else int(due),
        overdue=bool(overdue),
        is_test=bool(is_test),
    )


def iter_leads(
    reader: Reader,
    period: Period,
    query: LeadQuery,
    *,
    now_ms: int,
    tier_order: Sequence[str] = (),
    chunk: int = MAX_PAGE,
) -> Iterator[LeadRow]:
    """Every lead `lead_list` would page through, in the same order, a chunk at a time.

    The order is total (ties broken by time, then id) and `now_ms` is fixed, so chunks
    neither repeat nor skip a lead unless one is stored mid-export.
    """
    offset = 0
    while True:
        page = lead_list(
            reader, period, query, now_ms=now_ms, tier_order=tier_order, offset=offset, limit=chunk
        )
        yield from page.rows
        offset += len(page.rows)
        if len(page.rows) < chunk:
            return


def lead_channels(reader: Reader, period: Period) -> list[str]:
    """The channels leads of `period` came from, for the list's filter."""
    rows = reader.query(
        "SELECT DISTINCT channel FROM leads WHERE site = ?"
        " AND ts >= make_timestamp(?::BIGINT * 1000) AND ts < make_timestamp(?::BIGINT * 1000)"
        " AND NOT is_bot ORDER BY 1",
        period.params,
    )
    return [str(row[0]) for row in rows]


@dataclass(frozen=True, slots=True)
class JourneyEvent:
    """Something the visitor did in a session: a page view or a key event."""

    ts_ms: int
    type: str
    name: str
    path: str
    props: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class JourneySession:
    """One session of the lead's visitor, with its page views and key events in order."""

    session_id: int
    started_ms: int
    last_seen_ms: int
    channel: str
    source: str
    medium: str
    campaign: str
    referrer: str
    landing_url: str
    landing_path: str
    device: str
    browser: str
    country: str
    pageviews: int
    events: tuple[JourneyEvent, ...]
    is_lead_session: bool
    after_lead: bool


@dataclass(frozen=True, slots=True)
class ModelCredit:
    """How one attribution model shares the lead among the journey's sessions."""

    model: str
    shares: tuple[tuple[str, float], ...]  # (channel / source / medium, share), oldest first


@dataclass(frozen=True, slots=True)
class LeadDetail:
    """One lead: what they told us, how it scored and why, and how they got there."""

    lead_id: str
    site: str
    ts_ms: int
    received_ms: int
    contact: Mapping[str, str]  # email, phone, name, company, ... as submitted
    fields: Mapping[str, str]  # the form's other fields, as text
    consent: bool
    form: str
    url: str
    referrer: str
    channel: str
    source: str
    medium: str
    campaign: str
    click_id_kind: str
    geo: str
    device: str
    browser: str
    os: str
    is_test: bool
    score: float | None
    fit_score: float | None
    engagement_score: float | None
    tier: str | None
    scored_ms: int | None
    follow_up_due_ms: int | None
    overdue: bool
    breakdown: Mapping[str, Any] | None  # Score.to_dict() as stored
    sessions: tuple[JourneySession, ...] = ()
    credits: tuple[ModelCredit, ...] = field(default=())


CONTACT_FIELDS: Final = (
    "name",
    "email",
    "phone",
    "company",
    "company_size",
    "industry",
    "country",
    "budget",
    "timeline",
    "message",
)

_LEAD = f"""
SELECT lead_id::VARCHAR, site, epoch_ms(ts), epoch_ms(received_at), visitor_id,
       {", ".join(CONTACT_FIELDS)}, fields::VARCHAR, consent, form, url, referrer,
       channel, source, medium, campaign, click_id_kind, geo_country, geo_region, device,
       browser, os, is_test, score, fit_score, engagement_score, tier,
       epoch_ms(scored_at), epoch_ms(follow_up_due),
       coalesce(follow_up_due < make_timestamp(?::BIGINT * 1000), false),
       score_breakdown::VARCHAR, session_id
FROM leads WHERE lead_id = ? AND site = ? AND NOT is_bot
"""

# The visitor's sessions from the lookback before the lead onwards, the most recent
# MAX_SESSIONS of them (then shown oldest first).
_SESSIONS = """
SELECT session_id, epoch_ms(started_at), epoch_ms(last_seen), channel, source, medium,
       campaign, referrer, landing_url, landing_path, device, browser, country, pageviews
FROM sessions
WHERE site = ? AND visitor_id = ? AND NOT is_bot
  AND started_at >= make_timestamp(?::BIGINT * 1000)
ORDER BY started_at DESC, session_id DESC
LIMIT ?
"""

_EVENTS = """
SELECT session_id, epoch_ms(ts), type, name, path, props::VARCHAR FROM (
    SELECT *, row_number() OVER (PARTITION BY session_id ORDER BY ts, page_seq) AS n
    FROM events
    WHERE site = ? AND visitor_id = ? AND list_contains(?::UBIGINT[], session_id)
      AND ts >= make_timestamp(?::BIGINT * 1000) AND NOT is_bot
      AND type IN ('pageview', 'form', 'click', 'custom', 'lead', 'exposure')
      AND NOT (type = 'form' AND list_contains(?::VARCHAR[], name))
)
WHERE n <= ?
ORDER BY session_id, ts, page_seq
"""


def _text_fields(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _props(raw: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(_text_fields(raw).items()))


def _breakdown(raw: str | None) -> Mapping[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def lead_detail(
    reader: Reader,
    lead_id: str,
    *,
    site: str,
    now_ms: int,
    attribution: AttributionSettings | None = None,
) -> LeadDetail | None:
    """One lead of `site` with its journey; None when there is no such lead (or id)."""
    try:
        key = uuid.UUID(lead_id)
    except ValueError:
        return None
    rows = reader.query(_LEAD, [now_ms, key, site])
    if not rows:
        return None
    row = rows[0]
    (lead, site_id, ts, received, visitor) = row[:5]
    contact = dict(zip(CONTACT_FIELDS, row[5:15], strict=True))
    (fields, consent, form, url, referrer, channel, source, medium, campaign) = row[15:24]
    (click_kind, geo_country, geo_region, device, browser, os_name, is_test) = row[24:31]
    (score, fit, engagement, tier, scored, due, overdue, breakdown, lead_session) = row[31:]
    settings = attribution if attribution is not None else AttributionSettings()
    config = attribution_config(settings)
    sessions = _journey(
        reader, site, int(visitor), int(ts) - config.lookback_ms, int(ts), int(lead_session)
    )
    touchpoints = tuple(
        Touchpoint(s.started_ms, s.channel, s.source, s.medium, s.campaign, s.session_id)
        for s in sessions
        if not s.after_lead
    )
    credits = attribute_all(LeadJourney(lead, int(ts), score, touchpoints), config)
    return LeadDetail(
        lead_id=lead,
        site=site_id,
        ts_ms=int(ts),
        received_ms=int(received),
        contact=contact,
        fields=_text_fields(fields),
        consent=bool(consent),
        form=form,
        url=url,
        referrer=referrer,
        channel=channel,
        source=source,
        medium=medium,
        campaign=campaign,
        click_id_kind=click_kind,
        geo=" / ".join(part for part in (geo_country, geo_region) if part),
        device=device,
        browser=browser,
        os=os_name,
        is_test=bool(is_test),
        score=score,
        fit_score=fit,
        engagement_score=engagement,
        tier=tier,
        scored_ms=None if scored is None else int(scored),
        follow_up_due_ms=None if due is None else int(due),
        overdue=bool(overdue),
        breakdown=_breakdown(breakdown),
        sessions=sessions,
        credits=tuple(
            ModelCredit(
                model.value,
                tuple(
                    (
                        f"{c.touchpoint.channel} · {c.touchpoint.source} / {c.touchpoint.medium}",
                        c.share,
                    )
                    for c in credits[model]
                ),
            )
            for model in ALL_MODELS
        ),
    )


def _journey(
    reader: Reader, site: str, visitor: int, since_ms: int, lead_ms: int, lead_session: int
) -> tuple[JourneySession, ...]:
    if visitor == 0:
        return ()  # an unlinked lead (e.g. sent by a backend without the visitor's cookie)
    found = reader.query(_SESSIONS, [site, visitor, since_ms, MAX_SESSIONS])
    if not found:
        return ()
    ids = [int(row[0]) for row in found]
    events: dict[int, list[JourneyEvent]] = {}
    for sid, ts, type_, name, path, props in reader.query(
        _EVENTS,
        [site, visitor, ids, since_ms, list(_QUIET_FORM_EVENTS), MAX_EVENTS_PER_SESSION],
    ):
        events.setdefault(int(sid), []).append(
            JourneyEvent(int(ts), type_, name, path, _props(props))
        )
    sessions = [
        JourneySession(
            session_id=int(sid),
            started_ms=int(started),
            last_seen_ms=int(last),
            channel=channel,
            source=source,
            medium=medium,
            campaign=campaign,
            referrer=referrer,
            landing_url=landing_url,
            landing_path=landing_path,
            device=device,
            browser=browser,
            country=country,
            pageviews=int(pageviews),
            events=tuple(events.get(int(sid), ())),
            is_lead_session=int(sid) == lead_session,
            after_lead=int(started) > lead_ms,
        )
        for (sid, started, last, channel, source, medium, campaign, referrer, landing_url,
             landing_path, device, browser, country, pageviews) in found
    ]  # fmt: skip
    sessions.sort(key=lambda s: (s.started_ms, s.session_id))
    return tuple(sessions)
