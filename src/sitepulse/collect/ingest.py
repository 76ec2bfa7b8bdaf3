"""The ingest service: decode, validate, enrich, hand to the writer, report the outcome.

HTTP-free so the importer and the demo's backfill use the same path as the
endpoints. Every outcome is counted; nothing is dropped without a reason.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from prometheus_client import Counter

from sitepulse.clock import Clock
from sitepulse.collect.payloads import CollectBatch, LeadSubmission, ServerEventBatch
from sitepulse.config.models import Settings, SiteConfig
from sitepulse.enrich.pipeline import Client, Enricher
from sitepulse.enrich.privacy import format_id
from sitepulse.errors import InvalidInput
from sitepulse.export.metrics import Metrics
from sitepulse.model.records import StoredEvent, StoredLead
from sitepulse.store.base import StoreError
from sitepulse.store.writer import QueueFull, Writer, WriteResult, WriterStopped

_collect_decoder = msgspec.json.Decoder(CollectBatch)
_events_decoder = msgspec.json.Decoder(ServerEventBatch)
_lead_decoder = msgspec.json.Decoder(LeadSubmission)

_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_FIELD = re.compile(r"field `(?P<name>[^`]+)`")


@dataclass(frozen=True, slots=True)
class Outcome:
    """An HTTP-shaped answer: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


def error(status: int, code: str, message: str, field: str | None = None) -> Outcome:
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return Outcome(status, body)


def field_of(exc: msgspec.ValidationError | msgspec.DecodeError) -> tuple[str, str]:
    """(field path, message) from msgspec's error text, e.g. ('events[0].ts', 'Expected ...')."""
    text = str(exc)
    path = ""
    match = _AT.search(text)
    if match:
        path = match.group("path")
        text = text[: match.start()]
    named = _FIELD.search(text)
    if named and ("missing required" in text or "unknown field" in text):
        path = f"{path}.{named.group('name')}" if path else named.group("name")
    return path or "(body)", text


class IngestService:
    """Ties enrichment, the writer and metrics together for the three ingest paths."""

    def __init__(
        self,
        settings: Settings,
        *,
        enricher: Enricher,
        writer: Writer,
        metrics: Metrics,
        clock: Clock,
        tokens: dict[str, str],
        lead_score: Callable[[bytes], dict[str, Any] | None] | None = None,
    ) -> None:
        self.settings = settings
        # Blocking look-up of a stored lead's score (waits for the loader).
        self._lead_score = lead_score
        self.enricher = enricher
        self.writer = writer
        self.metrics = metrics
        self.clock = clock
        self.sites_by_key = {site.public_key: site for site in settings.sites}
        self.sites_by_id = {site.id: site for site in settings.sites}
        self._tokens = [(token, self.sites_by_id[site]) for site, token in tokens.items()]
        self._drop_bots = settings.bots.action == "drop"
        self._request_counters: dict[tuple[str, int], Counter] = {}

    def site_for_token(self, token: str) -> SiteConfig | None:
        """The site whose secret token this is (constant-time comparison)."""
        found = None
        for secret, site in self._tokens:
            if hmac.compare_digest(secret.encode(), token.encode()):
                found = site
        return found

    def _count(self, endpoint: str, outcome: Outcome) -> Outcome:
        key = (endpoint, outcome.status)
        child = self._request_counters.get(key)
        if child is None:
            # labels() locks and builds a key each call; the children never change.
            child = self._request_counters[key] = self.metrics.requests.labels(
                endpoint, str(outcome.status)
            )
        child.inc()
        return outcome

    def _invalid(
        self, endpoint: str, exc: msgspec.ValidationError | msgspec.DecodeError, events: int = 0
    ) -> Outcome:
        field, message = field_of(exc)
        self.metrics.dropped.labels("invalid").inc(max(events, 1))
        code = (
            "invalid_json"
            if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError)
            else "invalid"
        )
        return self._count(endpoint, error(400, code, message, field))

    def _bots(self, events: list[StoredEvent]) -> list[StoredEvent]:
        bots = [ev for ev in events if ev.is_bot]
        if not bots:
            return events
        kind = bots[0].bot_reason.split(":", 1)[0]
        action = "dropped" if self._drop_bots else "flagged"
        self.metrics.bots.labels(kind, action).inc(len(bots))
        if not self._drop_bots:
            return events
        self.metrics.dropped.labels("bot").inc(len(bots))
        return [ev for ev in events if not ev.is_bot]

    async def _write(
        self, endpoint: str, events: list[StoredEvent], leads: list[StoredLead]
    ) -> WriteResult | Outcome:
        size = len(events) + len(leads)
        try:
            future = self.writer.submit(events, leads)
        except QueueFull:
            self.metrics.dropped.labels("queue_full").inc(size)
            retry = str(self.settings.ingest.retry_after_secs)
            out = error(429, "queue_full", "ingest queue is full; retry later")
            return self._count(endpoint, Outcome(out.status, out.body, {"Retry-After": retry}))
        except WriterStopped:
            self.metrics.dropped.labels("shutting_down").inc(size)
            return self._count(endpoint, error(503, "unavailable", "server is shutting down"))
        try:
            return await future
        except StoreError as exc:
            self.metrics.dropped.labels("store_error").inc(size)
            self.metrics.store_errors.inc()
            out = error(503, "store_unavailable", f"could not store the data: {exc}")
            return self._count(endpoint, Outcome(503, out.body, {"Retry-After": "5"}))

    async def collect(self, body: bytes, client: Client) -> Outcome:
        """`POST /api/v1/collect`: a browser batch."""
        endpoint = "collect"
        try:
            batch = _collect_decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return self._invalid(endpoint, exc)
        site = self.sites_by_key.get(batch.site_key)
        if site is None:
            self.metrics.dropped.labels("unknown_site").inc(len(batch.events))
            return self._count(
                endpoint, error(404, "unknown_site", "no site has this key", "site_key")
            )
        if batch.automation:
            client = Client(client.ip, client.user_agent, automation=True)
        now = self.clock()
        try:
            enriched = self.enricher.browser(site, batch, client, now)
        except InvalidInput as exc:
            self.metrics.dropped.labels("invalid").inc(len(batch.events))
            return self._count(endpoint, error(400, "invalid", exc.message, exc.field))
        events = self._bots(enriched.events)
        result = await self._write(endpoint, events, [])
        if isinstance(result, Outcome):
            return result
        return self._count(
            endpoint,
            Outcome(
                202,
                {
                    "accepted": len(result.stored_events),
                    "duplicates": result.duplicate_events,
                    "visitor_id": format_id(enriched.visitor_id),
                    "session_id": format_id(enriched.session_id),
                },
            ),
        )

    async def server_events(self, body: bytes, site: SiteConfig, client: Client) -> Outcome:
        """`POST /api/v1/events`: backend events for the token's site."""
        endpoint = "events"
        try:
            batch = _events_decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return self._invalid(endpoint, exc)
        try:
            events = self.enricher.server(site, batch.events, client, self.clock())
        except InvalidInput as exc:
            self.metrics.dropped.labels("invalid").inc(len(batch.events))
            return self._count(endpoint, error(400, "invalid", exc.message, exc.field))
        events = self._bots(events)
        result = await self._write(endpoint, events, [])
        if isinstance(result, Outcome):
            return result
        return self._count(
            endpoint,
            Outcome(
                202,
                {
                    "accepted": len(result.stored_events),
                    "duplicates": result.duplicate_events,
                },
            ),
        )

    def decode_lead(self, body: bytes) -> LeadSubmission | Outcome:
        try:
            return _lead_decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return self._invalid("leads", exc)

    async def lead(self, sub: LeadSubmission, site: SiteConfig, client: Client) -> Outcome:
        """`POST /api/v1/leads`: one lead; 201 with its id once committed."""
        endpoint = "leads"
        try:
            lead, event = self.enricher.lead(site, sub, client, self.clock())
        except InvalidInput as exc:
            self.metrics.dropped.labels("invalid").inc()
            return self._count(endpoint, error(400, "invalid", exc.message, exc.field))
        result = await self._write(endpoint, [event], [lead])
        if isinstance(result, Outcome):
            return result
        lead_id = _uuid_text(lead.lead_id)
        status = 201 if result.stored_leads else 200
        body: dict[str, Any] = {
            "lead_id": lead_id,
            "duplicate": not result.stored_leads,
            "visitor_id": format_id(lead.visitor_id),
            "session_id": format_id(lead.session_id),
        }
        if self._lead_score is not None:
            # The lead is durable already; its score is a courtesy that may be missing
            # (null) if the loader is slow, never a reason to fail the request.
            found = await asyncio.to_thread(self._lead_score, lead.lead_id)
            body |= found or {"score": None, "tier": None, "follow_up_due": None}
        return self._count(endpoint, Outcome(status, body))


def _uuid_text(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
