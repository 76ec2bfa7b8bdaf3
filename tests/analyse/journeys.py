"""Build known visitor journeys straight into a real DuckDB store, for analysis tests.

A `Journeys` collects events and leads with sensible defaults; `save()` writes
them through the store's own write path and refreshes the derived sessions,
exactly as the loader would.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sitepulse.model.records import StoredEvent, StoredLead
from sitepulse.store.duckdb.backend import DuckDBStore

SITE = "acme"
HOST = "https://www.acme.example"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


class Visit:
    """One session of one visitor; events are added in time order."""

    def __init__(
        self,
        book: Journeys,
        visitor_id: int,
        session_id: int,
        *,
        channel: str,
        source: str,
        medium: str,
        campaign: str,
        device: str,
        country: str,
        is_bot: bool,
    ) -> None:
        self.book = book
        self.visitor_id = visitor_id
        self.session_id = session_id
        self.context = {
            "channel": channel,
            "source": source,
            "medium": medium,
            "utm_campaign": campaign,
            "device": device,
            "country": country,
            "is_bot": is_bot,
        }
        self.page_seq = 0
        self.path = "/"

    def event(
        self,
        ts: int,
        type_: str,
        name: str = "",
        value: float | None = None,
        props: dict[str, Any] | None = None,
        path: str | None = None,
    ) -> Visit:
        path = self.path if path is None else path
        ctx = self.context
        self.book.events.append(
            StoredEvent(
                event_id=uuid.uuid4().bytes,
                ts=ts,
                received_at=ts + 1000,
                site=self.book.site,
                type=type_,
                name=name,
                value=value,
                visitor_id=self.visitor_id,
                session_id=self.session_id,
                url=HOST + path,
                path=path,
                page_group="/" + path.strip("/").split("/", 1)[0],
                referrer="",
                referrer_host="",
                utm_source=str(ctx["source"]),
                utm_medium=str(ctx["medium"]),
                utm_campaign=str(ctx["utm_campaign"]),
                utm_term="",
                utm_content="",
                click_id_kind="",
                click_id="",
                channel=str(ctx["channel"]),
                channel_rule="test",
                source=str(ctx["source"]),
                medium=str(ctx["medium"]),
                country=str(ctx["country"]),
                region="",
                device=str(ctx["device"]),
                browser="Chrome",
                os="Windows",
                is_bot=bool(ctx["is_bot"]),
                bot_reason="test" if ctx["is_bot"] else "",
                props=json.dumps(props) if props else None,
                page_seq=self.page_seq,
            )
        )
        return self

    def page(self, ts: int, path: str) -> Visit:
        """A page view of `path` (it becomes the page later events belong to)."""
        self.page_seq += 1
        self.path = path
        return self.event(ts, "pageview")

    def vital(self, ts: int, metric: str, value: float) -> Visit:
        return self.event(ts, "vital", metric, value)

    def engaged(self, ts: int, engaged_ms: int) -> Visit:
        return self.event(ts, "engagement", "engaged_time", engaged_ms)

    def form(self, ts: int, step: str, form: str = "contact") -> Visit:
        return self.event(ts, "form", step, props={"form": form})

    def exposure(self, ts: int, experiment: str, variant: str) -> Visit:
        return self.event(ts, "exposure", experiment, props={"variant": variant})

    def custom(self, ts: int, name: str, props: dict[str, Any] | None = None) -> Visit:
        return self.event(ts, "custom", name, props=props)

    def lead(
        self, ts: int, *, form: str = "contact", is_test: bool = False, **fields: Any
    ) -> Visit:
        """A stored lead (the `lead` event plus the leads row), as ingest writes it."""
        lead_id = uuid.uuid4().bytes
        self.event(ts, "lead", form)
        ctx = self.context
        self.book.leads.append(
            StoredLead(
                lead_id=lead_id,
                ts=ts,
                received_at=ts + 1000,
                site=self.book.site,
                visitor_id=self.visitor_id,
                session_id=self.session_id,
                email=fields.get("email", f"v{self.visitor_id}@example.com"),
                phone=fields.get("phone", ""),
                name=fields.get("name", ""),
                company=fields.get("company", ""),
                company_size=fields.get("company_size", ""),
                industry=fields.get("industry", ""),
                country=fields.get("country", ""),
                budget=fields.get("budget", ""),
                timeline=fields.get("timeline", ""),
                message=fields.get("message", ""),
                consent=True,
                fields=None,
                form=form,
                url=HOST + self.path,
                path=self.path,
                referrer="",
                channel=str(ctx["channel"]),
                channel_rule="test",
                source=str(ctx["source"]),
                medium=str(ctx["medium"]),
                campaign=str(ctx["utm_campaign"]),
                click_id_kind="",
                click_id="",
                geo_country=str(ctx["country"]),
                geo_region="",
                device=str(ctx["device"]),
                browser="Chrome",
                os="Windows",
                is_bot=bool(ctx["is_bot"]),
                is_test=is_test,
            )
        )
        return self


class Journeys:
    """Known journeys for one site, written into a real store by `save`."""

    def __init__(self, site: str = SITE) -> None:
        self.site = site
        self.events: list[StoredEvent] = []
        self.leads: list[StoredLead] = []
        self._next_session = 0

    def visit(
        self,
        visitor_id: int,
        *,
        channel: str = "Direct",
        source: str = "(direct)",
        medium: str = "(none)",
        campaign: str = "",
        device: str = "desktop",
        country: str = "US",
        is_bot: bool = False,
    ) -> Visit:
        """Start a new session of `visitor_id` (session ids are numbered in order)."""
        self._next_session += 1
        return Visit(
            self,
            visitor_id,
            self._next_session,
            channel=channel,
            source=source,
            medium=medium,
            campaign=campaign,
            device=device,
            country=country,
            is_bot=is_bot,
        )

    def save(self, folder: Path) -> DuckDBStore:
        """Write everything into a store in `folder` (a real DuckDB file) and return it."""
        store = DuckDBStore(folder)
        store.migrate()
        store.write(self.events, self.leads)
        sessions = sorted({e.session_id for e in self.events if e.session_id})
        if self.events:
            store.refresh_sessions(sessions, min(e.ts for e in self.events) - DAY)
        return store
