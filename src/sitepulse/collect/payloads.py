"""Wire payloads accepted by the ingest endpoints.

These msgspec Structs are the contract with browsers and site backends: they
decode and validate in one pass, and their JSON Schema feeds the OpenAPI
document. Field names are spelled out; timestamps are epoch milliseconds.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

EventType = Literal[
    "pageview", "vital", "engagement", "form", "click", "exposure", "custom", "lead"
]

PropValue = str | int | float | bool | None

Ms = Annotated[int, msgspec.Meta(ge=0, le=32503680000000, description="epoch milliseconds")]
Short = Annotated[str, msgspec.Meta(max_length=200)]
Url = Annotated[str, msgspec.Meta(max_length=2048)]
Props = Annotated[dict[Short, PropValue], msgspec.Meta(max_length=50)]
# msgspec parses UUIDs in C; a regex pattern here doubled decode time.
EventId = Annotated[
    uuid.UUID, msgspec.Meta(description="client-generated UUID; the idempotency key")
]


class BrowserEvent(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One event sent by `/sp.js`."""

    event_id: EventId
    ts: Ms
    type: EventType
    url: Url
    name: Short = ""
    value: float | None = None
    referrer: Url = ""
    title: Annotated[str, msgspec.Meta(max_length=500)] = ""
    props: Props = {}


class CollectBatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`POST /api/v1/collect`: a batch of browser events for one site."""

    site_key: Short
    events: Annotated[list[BrowserEvent], msgspec.Meta(min_length=1, max_length=100)]
    # A consented first-party id (set by sp.js only after consent); without it the
    # visitor id is the server's daily-salted hash.
    visitor_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    # The client's clock when it sent the batch: the server shifts every ts by
    # (received_at - sent_at) so a browser with a wrong clock still lands right.
    sent_at: Ms | None = None
    # navigator.webdriver and similar automation signals, checked by bot detection.
    automation: bool = False
    screen_width: Annotated[int, msgspec.Meta(ge=0, le=100000)] | None = None
    timezone: Annotated[str, msgspec.Meta(max_length=64)] = ""
    language: Annotated[str, msgspec.Meta(max_length=35)] = ""


class ServerEvent(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One event sent by a site backend to `POST /api/v1/events`."""

    type: EventType
    name: Short = ""
    event_id: EventId | None = None
    ts: Ms | None = None
    value: float | None = None
    url: Url = ""
    referrer: Url = ""
    visitor_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    session_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    # The end user's address and agent, when the backend relays them; used for
    # enrichment and the visitor hash, never stored.
    ip: Annotated[str, msgspec.Meta(max_length=45)] = ""
    user_agent: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    props: Props = {}


class ServerEventBatch(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/v1/events` body."""

    events: Annotated[list[ServerEvent], msgspec.Meta(min_length=1, max_length=1000)]


Text = Annotated[str, msgspec.Meta(max_length=500)]


class LeadSubmission(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`POST /api/v1/leads`: one lead, from a site backend (token) or a form (site key)."""

    email: Annotated[str, msgspec.Meta(max_length=254)] = ""
    phone: Annotated[str, msgspec.Meta(max_length=40)] = ""
    name: Text = ""
    company: Text = ""
    company_size: Annotated[str, msgspec.Meta(max_length=40)] = ""
    industry: Text = ""
    country: Annotated[str, msgspec.Meta(max_length=60)] = ""
    budget: Annotated[str, msgspec.Meta(max_length=60)] = ""
    timeline: Annotated[str, msgspec.Meta(max_length=60)] = ""
    message: Annotated[str, msgspec.Meta(max_length=10000)] = ""
    consent: bool = False
    fields: Props = {}
    site_key: Short = ""
    lead_id: EventId | None = None
    ts: Ms | None = None
    form: Short = ""
    url: Url = ""
    referrer: Url = ""
    visitor_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    session_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    ip: Annotated[str, msgspec.Meta(max_length=45)] = ""
    user_agent: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    is_test: bool = False
