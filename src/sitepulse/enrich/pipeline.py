"""Turns validated wire payloads into stored records: the whole enrichment stage."""

from __future__ import annotations

import functools
import ipaddress
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from sitepulse.collect.payloads import (
    BrowserEvent,
    CollectBatch,
    LeadSubmission,
    PropValue,
    ServerEvent,
)
from sitepulse.config.models import IngestConfig, SiteConfig
from sitepulse.enrich.channel import ChannelClassifier
from sitepulse.enrich.geo import GeoLookup, Place
from sitepulse.enrich.landing import Landing, parse_landing
from sitepulse.enrich.privacy import DailySalt, id_from_string, is_wire_id, visitor_hash
from sitepulse.enrich.sessions import SessionState, SessionTracker
from sitepulse.enrich.useragent import Agent, parse_agent
from sitepulse.errors import InvalidInput
from sitepulse.model.records import SEQUENTIAL_SESSION_IDS, StoredEvent, StoredLead

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Client:
    """Who sent the data: the end user's address and agent (never stored as such)."""

    ip: str
    user_agent: str
    automation: bool = False


@dataclass(frozen=True, slots=True)
class Visit:
    """The visitor-level context shared by a batch of events."""

    site: SiteConfig
    visitor_id: int
    agent: Agent
    place: Place
    bot_reason: str


@dataclass(slots=True)
class Enriched:
    events: list[StoredEvent]
    visitor_id: int
    session_id: int
    bot_reason: str


@functools.lru_cache(maxsize=4096)
def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _event_uuid(value: uuid.UUID | None) -> bytes:
    return value.bytes if value is not None else uuid.uuid4().bytes


def _source_key(landing: Landing, referrer: str, own_hosts: tuple[str, ...]) -> tuple[str, ...]:
    """What identifies a traffic source; all-empty for internal or direct navigation."""
    ref_host = _referrer_host(referrer)
    external = bool(ref_host) and ref_host != landing.host and ref_host not in own_hosts
    return (
        landing.utm_source,
        landing.utm_medium,
        landing.utm_campaign,
        landing.click_id_kind,
        ref_host if external else "",
    )


# Pages repeat across visitors: parsing each distinct URL once pays for itself.
_landing = functools.lru_cache(maxsize=16384)(parse_landing)


def _session_key(site: SiteConfig, visitor_id: int, given_session: str) -> tuple[str, int] | None:
    """How the tracker finds a session: by the id a backend gave, else by visitor."""
    if given_session:
        sid = id_from_string(site.id, given_session)
        if not is_wire_id(given_session):
            # Foreign ids live above the sequential range (see SEQUENTIAL_SESSION_IDS).
            sid |= SEQUENTIAL_SESSION_IDS
        return ("s:" + site.id, sid)
    if visitor_id:
        return (site.id, visitor_id)
    return None


def _props(props: dict[str, PropValue]) -> str | None:
    if "pageview_id" in props:
        # Stored as page_seq: a small number instead of a UUID per event.
        props = {k: v for k, v in props.items() if k != "pageview_id"}
    return _encode(props).decode() if props else None


@functools.lru_cache(maxsize=8192)
def _referrer_host(referrer: str) -> str:
    try:
        return (urlsplit(referrer).hostname or "") if referrer else ""
    except ValueError:
        return ""


class Enricher:
    """Stateful only in bounded caches (sessions, parsed agents and places)."""

    def __init__(
        self,
        ingest: IngestConfig,
        *,
        geo: GeoLookup,
        salt: DailySalt,
        classifier: ChannelClassifier,
    ) -> None:
        self._ingest = ingest
        self._geo = geo
        self._salt = salt
        self._classifier = classifier
        self.sessions = SessionTracker(ingest.session_timeout_secs * 1000, ingest.session_cache_max)
        self._groups: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        self._group_cache: dict[tuple[str, str], str] = {}

    def page_group(self, site: SiteConfig, path: str) -> str:
        """The configured group whose pattern matches first, else the first path segment."""
        key = (site.id, path)
        group = self._group_cache.get(key)
        if group is None:
            if len(self._group_cache) >= 16384:
                self._group_cache.clear()
            group = self._group_cache[key] = self._match_group(site, path)
        return group

    def _match_group(self, site: SiteConfig, path: str) -> str:
        patterns = self._groups.get(site.id)
        if patterns is None:
            patterns = [(g, re.compile(p)) for g, p in site.page_groups.items()]
            self._groups[site.id] = patterns
        for group, pattern in patterns:
            if pattern.search(path):
                return group
        segment = path.lstrip("/").split("/", 1)[0]
        return "/" + segment[:40]

    def _visit(self, site: SiteConfig, client: Client, given_visitor: str, now: int) -> Visit:
        agent = parse_agent(client.user_agent)
        reason = agent.bot_reason
        if not reason and client.automation:
            reason = "automation_flag"
        if given_visitor:
            vid = id_from_string(site.id, given_visitor)
        elif client.ip or client.user_agent:
            vid = visitor_hash(self._salt.for_time(now), site.id, client.ip, client.user_agent)
        else:
            vid = 0
        return Visit(site, vid, agent, self._geo.lookup(client.ip), reason)

    def _session(
        self,
        visit: Visit,
        *,
        ts: int,
        is_pageview: bool,
        landing: Landing,
        referrer: str,
        given_session: str,
    ) -> SessionState | None:
        site = visit.site
        if given_session and is_wire_id(given_session):
            # An id sitepulse issued (e.g. to the browser, which put it in a lead form):
            # continue that session, with its channel, rather than start a new one.
            issued = self.sessions.by_id(site.id, id_from_string(site.id, given_session))
            if issued is not None and ts // 86_400_000 == issued.day:
                issued.last_ts = max(issued.last_ts, ts)
                return issued
        key = _session_key(site, visit.visitor_id, given_session)
        if key is None:
            return None
        if is_pageview:
            source_key = _source_key(landing, referrer, site.hosts)
            state = self.sessions.current(key, ts, source_key if any(source_key) else None)
        else:
            state = self.sessions.current(key, ts, None)
        if state is not None:
            return state
        if not is_pageview:
            source_key = _source_key(landing, referrer, site.hosts)
        decision = self._classifier.classify(landing, referrer, own_hosts=frozenset(site.hosts))
        return self.sessions.start(
            key,
            ts,
            decision,
            landing,
            source_key,
            session_id=key[1] if given_session else None,
        )

    def _record(
        self,
        visit: Visit,
        *,
        event_id: bytes,
        ts: int,
        received_at: int,
        type_: str,
        name: str,
        value: float | None,
        url: str,
        referrer: str,
        props: dict[str, PropValue],
        given_session: str = "",
    ) -> StoredEvent:
        landing = _landing(url)
        state = self._session(
            visit,
            ts=ts,
            is_pageview=type_ == "pageview",
            landing=landing,
            referrer=referrer,
            given_session=given_session,
        )
        page_seq = 0
        if state is not None:
            decision, session_id, first = state.decision, state.session_id, state.landing
            if type_ == "pageview":
                page_seq = state.new_page(str(uuid.UUID(bytes=event_id)))
            else:
                page_seq = state.page_of(props.get("pageview_id"))
        else:
            decision = self._classifier.classify(
                landing, referrer, own_hosts=frozenset(visit.site.hosts)
            )
            session_id, first = 0, landing
        agent = visit.agent
        return StoredEvent(
            event_id=event_id,
            ts=ts,
            received_at=received_at,
            site=visit.site.id,
            type=type_,
            name=name,
            value=value,
            visitor_id=visit.visitor_id,
            session_id=session_id,
            url=landing.url_clean,
            path=landing.path,
            page_group=self.page_group(visit.site, landing.path),
            referrer=referrer,
            referrer_host=_referrer_host(referrer),
            utm_source=first.utm_source,
            utm_medium=first.utm_medium,
            utm_campaign=first.utm_campaign,
            utm_term=first.utm_term,
            utm_content=first.utm_content,
            click_id_kind=first.click_id_kind,
            # The click id identifies the ad click that landed on this page: the
            # page view carries it, the page's later events need not repeat it.
            click_id=landing.click_id if type_ == "pageview" else "",
            channel=decision.channel,
            channel_rule=decision.rule,
            source=decision.source,
            medium=decision.medium,
            country=visit.place.country,
            region=visit.place.region,
            device=agent.device,
            browser=agent.browser,
            os=agent.os,
            is_bot=bool(visit.bot_reason),
            bot_reason=visit.bot_reason,
            props=_props(props),
            page_seq=page_seq,
        )

    def _check_ts(
        self, index: int | None, ts: int, received_at: int, *, oldest: int | None
    ) -> None:
        problem = ""
        if ts > received_at + self._ingest.max_future_secs * 1000:
            problem = "timestamp is in the future"
        elif oldest is not None and ts < oldest:
            problem = f"timestamp is more than {self._ingest.max_event_age_secs} s old"
        if problem:
            # The field name is built only on the error path: this runs per event.
            raise InvalidInput("ts" if index is None else f"events[{index}].ts", problem)

    def browser(
        self, site: SiteConfig, batch: CollectBatch, client: Client, received_at: int
    ) -> Enriched:
        """Enrich a browser batch; client clock skew is corrected with `sent_at`."""
        skew = received_at - batch.sent_at if batch.sent_at is not None else 0
        visit = self._visit(site, client, batch.visitor_id, received_at)
        oldest = received_at - self._ingest.max_event_age_secs * 1000
        out: list[StoredEvent] = []
        ev: BrowserEvent
        for i, ev in enumerate(batch.events):
            ts = ev.ts + skew
            self._check_ts(i, ts, received_at, oldest=oldest)
            out.append(
                self._record(
                    visit,
                    event_id=ev.event_id.bytes,
                    ts=ts,
                    received_at=received_at,
                    type_=ev.type,
                    name=ev.name,
                    value=ev.value,
                    url=ev.url,
                    referrer=ev.referrer,
                    props=ev.props,
                )
            )
        last = out[-1]
        return Enriched(out, visit.visitor_id, last.session_id, visit.bot_reason)

    def server(
        self, site: SiteConfig, events: Sequence[ServerEvent], fallback: Client, received_at: int
    ) -> list[StoredEvent]:
        """Enrich backend events; each may carry its own user's ip, agent and ids."""
        out: list[StoredEvent] = []
        for i, ev in enumerate(events):
            ts = ev.ts if ev.ts is not None else received_at
            self._check_ts(i, ts, received_at, oldest=None)
            if ev.ip and not _valid_ip(ev.ip):
                raise InvalidInput(f"events[{i}].ip", "not an IP address")
            client = Client(ev.ip, ev.user_agent) if (ev.ip or ev.user_agent) else fallback
            visit = self._visit(site, client, ev.visitor_id, ts)
            out.append(
                self._record(
                    visit,
                    event_id=_event_uuid(ev.event_id),
                    ts=ts,
                    received_at=received_at,
                    type_=ev.type,
                    name=ev.name,
                    value=ev.value,
                    url=ev.url,
                    referrer=ev.referrer,
                    props=ev.props,
                    given_session=ev.session_id,
                )
            )
        return out

    def lead(
        self, site: SiteConfig, sub: LeadSubmission, client: Client, received_at: int
    ) -> tuple[StoredLead, StoredEvent]:
        """Validate and enrich one lead; also returns its `lead` event for funnels."""
        email = sub.email.strip()
        if not email and not sub.phone.strip():
            raise InvalidInput("email", "an email address or a phone number is required")
        if email and not _EMAIL.match(email):
            raise InvalidInput("email", "not an email address")
        ts = sub.ts if sub.ts is not None else received_at
        self._check_ts(None, ts, received_at, oldest=None)
        if sub.ip and not _valid_ip(sub.ip):
            raise InvalidInput("ip", "not an IP address")
        visit = self._visit(site, client, sub.visitor_id, ts)
        lead_id = _event_uuid(sub.lead_id)
        event = self._record(
            visit,
            event_id=lead_id,
            ts=ts,
            received_at=received_at,
            type_="lead",
            name=sub.form or "lead",
            value=None,
            url=sub.url,
            referrer=sub.referrer,
            props={},
            given_session=sub.session_id,
        )
        state = (
            self.sessions.get(key)
            if (key := _session_key(site, visit.visitor_id, sub.session_id))
            else None
        )
        if sub.session_id and is_wire_id(sub.session_id):
            state = self.sessions.by_id(site.id, event.session_id) or state
        click_id = (state.landing if state is not None else _landing(sub.url)).click_id
        lead = StoredLead(
            lead_id=lead_id,
            ts=ts,
            received_at=received_at,
            site=site.id,
            visitor_id=visit.visitor_id,
            session_id=event.session_id,
            email=email,
            phone=sub.phone.strip(),
            name=sub.name.strip(),
            company=sub.company.strip(),
            company_size=sub.company_size.strip(),
            industry=sub.industry.strip(),
            country=sub.country.strip(),
            budget=sub.budget.strip(),
            timeline=sub.timeline.strip(),
            message=sub.message,
            consent=sub.consent,
            fields=_props(sub.fields),
            form=sub.form,
            url=event.url,
            path=event.path,
            referrer=sub.referrer,
            channel=event.channel,
            channel_rule=event.channel_rule,
            source=event.source,
            medium=event.medium,
            campaign=event.utm_campaign,
            click_id_kind=event.click_id_kind,
            click_id=click_id,
            geo_country=event.country,
            geo_region=event.region,
            device=event.device,
            browser=event.browser,
            os=event.os,
            is_bot=event.is_bot,
            is_test=sub.is_test,
        )
        return lead, event
