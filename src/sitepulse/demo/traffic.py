"""The demo's traffic generator: backfilled history and live visits, sent over HTTP.

History goes through `/api/v1/events` (a backend relaying its users, with past
timestamps) and `/api/v1/leads` with the site token; live visits go through
`/api/v1/collect` exactly as browsers running `/sp.js` would.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
import zoneinfo
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import msgspec

from sitepulse.collect.payloads import (
    CollectBatch,
    LeadSubmission,
    ServerEvent,
    ServerEventBatch,
)
from sitepulse.demo.catalog import DEFAULT_HOST, DEFAULT_TIMEZONE
from sitepulse.demo.schedule import VisitorPool, next_arrival, plan_traffic
from sitepulse.demo.sending import Sender, SendStats, Sleep, count_events, count_lead
from sitepulse.demo.visits import DAY_MS, Beacon, Visit, plan_visit

T = TypeVar("T")

MAX_SERVER_BATCH = 1000  # ServerEventBatch.events max_length
# Requests a live run may have waiting on a slow or absent server before it sheds new ones.
MAX_LIVE_BACKLOG = 1000
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class TrafficConfig:
    """Where to send demo traffic and how much of it; rates follow the diurnal curve."""

    base_url: str
    site_key: str
    site_token: str
    seed: int = 7
    backfill_days: int = 14
    # Mean over a week; weekday late mornings see ~2x this, nights a tenth.
    backfill_visits_per_day: float = 170.0
    live_visits_per_minute: float = 30.0
    # How much the live rate follows the clock: 0 is flat, 1 the full curve (nights at a
    # tenth). Half keeps a demo started at midnight lively while peaks still stand out.
    live_diurnal_strength: float = 0.5
    host: str = DEFAULT_HOST
    timezone: str = DEFAULT_TIMEZONE
    batch_max_events: int = 500
    max_requests_in_flight: int = 4
    max_retries: int = 8

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if not 0 <= self.backfill_days <= 90:
            problems.append(f"backfill_days must be 0..90, got {self.backfill_days!r}")
        for name in ("backfill_visits_per_day", "live_visits_per_minute"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.live_diurnal_strength <= 1:
            problems.append(
                f"live_diurnal_strength must be 0..1, got {self.live_diurnal_strength!r}"
            )
        if not 1 <= self.batch_max_events <= MAX_SERVER_BATCH:
            problems.append(f"batch_max_events must be 1..1000, got {self.batch_max_events!r}")
        if self.max_requests_in_flight < 1:
            problems.append(
                f"max_requests_in_flight must be >= 1, got {self.max_requests_in_flight!r}"
            )
        if self.max_retries < 0:
            problems.append(f"max_retries must be >= 0, got {self.max_retries!r}")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezone: unknown time zone {self.timezone!r}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class BackfillStats(SendStats):
    """A backfill's outcome, plus what it planned."""

    visits: int = 0
    bot_visits: int = 0
    batches: int = 0
    # Visits that began just before `now_ms` have later events; live traffic takes over.
    events_after_now: int = 0


@dataclass
class LiveStats(SendStats):
    """A live run's outcome; the abandoned ones were still due when it stopped."""

    visits: int = 0
    bot_visits: int = 0
    beacons: int = 0
    beacons_abandoned: int = 0
    leads_abandoned: int = 0


def server_events(visit: Visit, *, until_ms: int) -> list[ServerEvent]:
    """The visit as a backend would relay it: explicit ids, the user's address and agent."""
    who = visit.visitor
    return [
        ServerEvent(
            type=e.type,
            name=e.name,
            event_id=e.event_id,
            ts=e.ts,
            value=e.value,
            url=e.url,
            referrer=e.referrer,
            visitor_id=who.key,
            session_id=visit.session_key,
            ip=who.ip,
            user_agent=who.user_agent,
            props=e.props,
        )
        for beacon in visit.beacons
        for e in beacon.events
        if e.ts <= until_ms
    ]


def backfill_lead(visit: Visit) -> LeadSubmission | None:
    """The visit's lead as the site's backend would forward it, tied to the visit's ids."""
    if visit.lead is None:
        return None
    who = visit.visitor
    return msgspec.structs.replace(
        visit.lead,
        visitor_id=who.key,
        session_id=visit.session_key,
        ip=who.ip,
        user_agent=who.user_agent,
    )


def collect_batch(visit: Visit, beacon: Beacon, *, site_key: str, sent_at: int) -> CollectBatch:
    """One beacon as sp.js would send it from the visitor's browser."""
    who = visit.visitor
    return CollectBatch(
        site_key=site_key,
        events=list(beacon.events),
        visitor_id=who.key if who.consented else "",
        sent_at=sent_at,
        automation=who.automation,
        screen_width=who.screen_width,
        timezone=who.timezone,
        language=who.language,
    )


def _batches(
    visits: Iterable[Visit],
    stats: BackfillStats,
    leads: list[LeadSubmission],
    *,
    now_ms: int,
    max_events: int,
) -> Iterable[list[ServerEvent]]:
    """Whole visits per batch, so the server sees each session's landing page first."""
    batch: list[ServerEvent] = []
    for visit in visits:
        stats.visits += 1
        stats.bot_visits += visit.is_bot
        events = server_events(visit, until_ms=now_ms)
        stats.events_after_now += len(visit.events) - len(events)
        lead = backfill_lead(visit)
        if lead is not None and lead.ts is not None and lead.ts <= now_ms:
            leads.append(lead)
        if batch and len(batch) + len(events) > max_events:
            yield batch
            batch = []
        while len(events) > MAX_SERVER_BATCH:
            yield events[:MAX_SERVER_BATCH]
            events = events[MAX_SERVER_BATCH:]
        batch.extend(events)
    if batch:
        yield batch


async def _pump(items: Iterable[T], workers: int, handle: Callable[[T], Awaitable[None]]) -> None:
    """Run `handle` over `items` with at most `workers` at a time, in order of arrival."""
    queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=workers * 2)

    async def work() -> None:
        while (item := await queue.get()) is not None:
            await handle(item)

    tasks = [asyncio.create_task(work()) for _ in range(workers)]
    try:
        for item in items:
            await queue.put(item)
        for _ in tasks:
            await queue.put(None)
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def backfill(
    cfg: TrafficConfig, *, now_ms: int, client: httpx.AsyncClient, sleep: Sleep = asyncio.sleep
) -> BackfillStats:
    """Play `cfg.backfill_days` of history ending at `now_ms`: events first, then leads."""
    stats = BackfillStats()
    sender = Sender(client, stats, base_url=cfg.base_url, max_retries=cfg.max_retries, sleep=sleep)
    # Same seed and end time, same history with the same ids: a repeated backfill is
    # stored once. A later end time gives new ids, so it is not mistaken for a replay.
    rng = random.Random(f"backfill:{cfg.seed}:{now_ms}")
    visits = plan_traffic(
        rng,
        now_ms - cfg.backfill_days * DAY_MS,
        now_ms,
        visits_per_day=cfg.backfill_visits_per_day,
        timezone=cfg.timezone,
        host=cfg.host,
    )
    leads: list[LeadSubmission] = []
    headers = {"Authorization": f"Bearer {cfg.site_token}", "Content-Type": "application/json"}

    async def send_batch(batch: list[ServerEvent]) -> None:
        stats.batches += 1
        stats.events_sent += len(batch)
        outcome = await sender.post("/api/v1/events", _encode(ServerEventBatch(batch)), headers)
        count_events(stats, outcome, len(batch))

    async def send_lead(lead: LeadSubmission) -> None:
        stats.leads_sent += 1
        count_lead(stats, await sender.post("/api/v1/leads", _encode(lead), headers))

    batches = _batches(visits, stats, leads, now_ms=now_ms, max_events=cfg.batch_max_events)
    await _pump(batches, cfg.max_requests_in_flight, send_batch)
    # Leads go last: the server attributes each to a session it has already seen.
    await _pump(leads, cfg.max_requests_in_flight, send_lead)
    return stats


@dataclass(order=True)
class _Due:
    at_ms: int
    seq: int
    visit: Visit = field(compare=False)
    beacon: Beacon | None = field(compare=False, default=None)


class _Live:
    """Visits in flight during a live run: what is due when, and the ids the server gave."""

    def __init__(
        self,
        cfg: TrafficConfig,
        client: httpx.AsyncClient,
        clock: Callable[[], float],
        sleep: Sleep,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.closing = False
        self.stats = LiveStats()
        self.sender = Sender(
            client, self.stats, base_url=cfg.base_url, max_retries=cfg.max_retries, sleep=sleep
        )
        self.due: list[_Due] = []
        self.seq = 0
        # session_key -> (visitor_id, session_id) from the latest 202, as sp.js keeps them.
        self.ids: dict[str, tuple[str, str]] = {}
        self.remaining: Counter[str] = Counter()
        # Browsers do not queue behind one another; this only keeps a slow server from
        # being flooded by one process.
        self.slots = asyncio.Semaphore(cfg.max_requests_in_flight * 8)

    def add(self, visit: Visit) -> None:
        self.stats.visits += 1
        self.stats.bot_visits += visit.is_bot
        for beacon in visit.beacons:
            self._push(beacon.send_ms, visit, beacon)
        if visit.lead is not None and visit.lead.ts is not None:
            self._push(visit.lead.ts, visit, None)

    def _push(self, at_ms: int, visit: Visit, beacon: Beacon | None) -> None:
        self.seq += 1
        self.remaining[visit.session_key] += 1
        heapq.heappush(self.due, _Due(at_ms, self.seq, visit, beacon))

    async def deliver(self, item: _Due) -> None:
        async with self.slots:
            try:
                if self.closing:
                    self.abandon(item)
                elif item.beacon is not None:
                    await self._beacon(item.visit, item.beacon)
                else:
                    await self._lead(item.visit)
            finally:
                self._done(item.visit.session_key)

    def abandon(self, item: _Due) -> None:
        """Count what a browser closed mid-visit would never send."""
        if item.beacon is not None:
            self.stats.beacons_abandoned += 1
        else:
            self.stats.leads_abandoned += 1

    def shed(self, item: _Due) -> None:
        """Count a request dropped because too many are already waiting on the server."""
        if item.beacon is not None:
            self.stats.events_sent += len(item.beacon.events)
            self.stats.events_rejected["backlog_full"] += len(item.beacon.events)
        else:
            self.stats.leads_sent += 1
            self.stats.leads_rejected["backlog_full"] += 1
        self._done(item.visit.session_key)

    def _done(self, key: str) -> None:
        self.remaining[key] -= 1
        if self.remaining[key] <= 0:
            del self.remaining[key]
            self.ids.pop(key, None)

    def _headers(self, visit: Visit, content_type: str) -> dict[str, str]:
        return {
            "Content-Type": content_type,
            "User-Agent": visit.visitor.user_agent,
            "X-Forwarded-For": visit.visitor.ip,
            "Origin": f"https://{self.cfg.host}",
        }

    async def _beacon(self, visit: Visit, beacon: Beacon) -> None:
        # Stamped when it really leaves, as sp.js does: the server corrects clock skew with it.
        sent_at = int(self.clock() * 1000)
        batch = collect_batch(visit, beacon, site_key=self.cfg.site_key, sent_at=sent_at)
        self.stats.beacons += 1
        self.stats.events_sent += len(batch.events)
        outcome = await self.sender.post(
            "/api/v1/collect", _encode(batch), self._headers(visit, "text/plain")
        )
        count_events(self.stats, outcome, len(batch.events))
        if not isinstance(outcome, str) and outcome[0] == 202:
            answer = outcome[1]
            if answer.get("session_id"):
                self.ids[visit.session_key] = (
                    str(answer.get("visitor_id", "")),
                    str(answer["session_id"]),
                )

    async def _lead(self, visit: Visit) -> None:
        assert visit.lead is not None
        visitor_id, session_id = self.ids.get(visit.session_key, ("", ""))
        lead = msgspec.structs.replace(
            visit.lead, site_key=self.cfg.site_key, visitor_id=visitor_id, session_id=session_id
        )
        self.stats.leads_sent += 1
        outcome = await self.sender.post(
            "/api/v1/leads", _encode(lead), self._headers(visit, "text/plain")
        )
        count_lead(self.stats, outcome)


async def run_live(
    cfg: TrafficConfig,
    *,
    client: httpx.AsyncClient,
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
) -> LiveStats:
    """Send real-time visits as browsers would until `stop` is set; `clock` is in seconds."""
    live = _Live(cfg, client, clock, sleep)
    now_ms = int(clock() * 1000)
    # The start time is part of the seed: a second run must not resend the first one's
    # event ids, which the server would drop as duplicates.
    rng = random.Random(f"live:{cfg.seed}:{now_ms}")
    pool = VisitorPool(rng)
    tz = zoneinfo.ZoneInfo(cfg.timezone)
    rate = cfg.live_visits_per_minute
    in_flight: set[asyncio.Task[None]] = set()
    strength = cfg.live_diurnal_strength
    next_visit = next_arrival(rng, now_ms, rate, tz, strength=strength) if rate > 0 else None
    while not stop.is_set():
        now_ms = int(clock() * 1000)
        while next_visit is not None and next_visit <= now_ms:
            visitor, returning = pool.visitor_for(next_visit)
            live.add(
                plan_visit(rng, next_visit, visitor=visitor, returning=returning, host=cfg.host)
            )
            next_visit = next_arrival(rng, next_visit, rate, tz, strength=strength)
        while live.due and live.due[0].at_ms <= now_ms:
            item = heapq.heappop(live.due)
            if len(in_flight) >= MAX_LIVE_BACKLOG:
                live.shed(item)
                continue
            task = asyncio.create_task(live.deliver(item))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        wake = min(
            [t for t in (next_visit, live.due[0].at_ms if live.due else None) if t is not None],
            default=now_ms + 500,
        )
        await sleep(min(max(wake - now_ms, 1) / 1000, 0.5))
    # Browsers closed mid-visit never send the rest; requests already on the wire complete.
    live.closing = True
    live.sender.stop()
    for item in live.due:
        live.abandon(item)
    if in_flight:
        await asyncio.gather(*in_flight)
    return live.stats
