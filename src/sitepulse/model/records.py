"""Records as they are stored. Produced by enrichment, consumed by the store."""

from __future__ import annotations

import msgspec

# Session ids below this bound are numbered in order by the session tracker
# (small numbers compress to a byte or two); ids a site backend gives are
# hashed into the range above it.
SEQUENTIAL_SESSION_IDS = 1 << 40


class StoredEvent(msgspec.Struct, frozen=True, gc=False):
    """One enriched event, ready for the events table. Times are epoch ms, UTC."""

    event_id: bytes  # 16-byte UUID; the store clears it after the dedupe window
    ts: int
    received_at: int
    site: str
    type: str
    name: str
    value: float | None
    visitor_id: int
    session_id: int
    url: str
    path: str
    page_group: str
    referrer: str
    referrer_host: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_term: str
    utm_content: str
    click_id_kind: str
    click_id: str
    channel: str
    channel_rule: str
    source: str
    medium: str
    country: str
    region: str
    device: str
    browser: str
    os: str
    is_bot: bool
    bot_reason: str
    props: str | None  # JSON text, None when empty
    # The n-th page view of the session this event belongs to; 0 when unknown.
    page_seq: int = 0


class StoredLead(msgspec.Struct, frozen=True, gc=False):
    """One lead submission with the context that links it to its visit."""

    lead_id: bytes
    ts: int
    received_at: int
    site: str
    visitor_id: int
    session_id: int
    email: str
    phone: str
    name: str
    company: str
    company_size: str
    industry: str
    country: str
    budget: str
    timeline: str
    message: str
    consent: bool
    fields: str | None
    form: str
    url: str
    path: str
    referrer: str
    channel: str
    channel_rule: str
    source: str
    medium: str
    campaign: str
    click_id_kind: str
    click_id: str
    geo_country: str
    geo_region: str
    device: str
    browser: str
    os: str
    is_bot: bool
    is_test: bool


class LeadScoreRow(msgspec.Struct, frozen=True):
    """A lead's score as the store keeps it (see analyse/lead_scores.py)."""

    lead_id: bytes
    score: float
    tier: str
    fit_score: float
    engagement_score: float
    breakdown: str  # JSON: the score's explanation
    model: str  # the scoring model's fingerprint
    scored_at: int
    follow_up_due: int | None


EVENT_COLUMNS: tuple[str, ...] = StoredEvent.__struct_fields__
LEAD_COLUMNS: tuple[str, ...] = StoredLead.__struct_fields__
