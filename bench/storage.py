"""Storage benchmark: bytes on disk per event after a million realistic events.

Events are built the way the enricher builds them (the real `parse_landing`,
`ChannelClassifier`, `parse_agent` and `hash64`), from a seeded model of a
lead-generation site: a few dozen pages, a channel mix with tagged and click-id
landings, returning visitors, several page views per session and the events
`/sp.js` sends for each page (vitals, scrolling, engagement, forms, clicks).
They go through `DuckDBStore.write` in batches, then the store checkpoints and
closes, and the file is measured. Each column is then copied alone into a
scratch database to see which ones dominate, and variants of the table (other
types, fewer ids, another order) show what a schema change would save.

Progress goes to stderr; the last line on stdout is one JSON object.
Run from the repository root: `.venv/bin/python bench/storage.py`.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from sitepulse.collect.payloads import PropValue
from sitepulse.enrich.channel import ChannelClassifier, ChannelDecision, referrer_host
from sitepulse.enrich.landing import Landing, parse_landing
from sitepulse.enrich.privacy import hash64
from sitepulse.enrich.useragent import Agent, parse_agent
from sitepulse.model.records import StoredEvent
from sitepulse.store.duckdb import DuckDBStore
from sitepulse.store.duckdb.backend import DB_FILE

TARGET_BYTES_PER_EVENT = 40.0
SITE = "bench"
HOST = "www.northwind-consulting.example"
OWN_HOSTS = frozenset({HOST})
START_MS = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a Monday
DAY_MS = 86_400_000
_encode = msgspec.json.Encoder().encode

PAGES: tuple[tuple[str, float], ...] = (
    ("/", 14),
    ("/services", 6),
    ("/services/data-strategy", 4),
    ("/services/cloud-migration", 4),
    ("/services/ai-automation", 4),
    ("/services/managed-analytics", 2),
    ("/pricing", 7),
    ("/case-studies", 4),
    ("/case-studies/retail-forecasting", 1.5),
    ("/case-studies/bank-cloud-move", 1.5),
    ("/case-studies/clinic-scheduling", 1),
    ("/contact", 5),
    ("/about", 2.5),
    ("/team", 1),
    ("/careers", 1.5),
    ("/careers/data-engineer", 0.6),
    ("/blog", 3),
    ("/blog/modern-data-stack-checklist", 3),
    ("/blog/cloud-cost-traps", 2.5),
    ("/blog/ai-pilots-that-ship", 2.5),
    ("/blog/dbt-vs-stored-procedures", 1.5),
    ("/blog/gdpr-analytics-guide", 1.5),
    ("/blog/lakehouse-or-warehouse", 1.2),
    ("/industries/healthcare", 1.2),
    ("/industries/finance", 1.2),
    ("/industries/retail", 1),
    ("/industries/manufacturing", 0.8),
    ("/webinars/q3-data-roadmap", 0.8),
    ("/resources/roi-calculator", 1.2),
    ("/lp/free-assessment", 2),
    ("/privacy", 0.3),
    ("/thank-you", 0.2),
)
AGENTS: tuple[tuple[str, float], ...] = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        26,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        9,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        9,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 4),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        8,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        2,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        18,
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        10,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 "
        "(KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        3,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.7 Mobile/15E148 Safari/604.1",
        3.5,
    ),
)
BOT_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)
COUNTRIES: tuple[tuple[str, float], ...] = (
    ("US", 28),
    ("GB", 24),
    ("DE", 9),
    ("FR", 5),
    ("NL", 5),
    ("CA", 5),
    ("IE", 3),
    ("AU", 3),
    ("IN", 4),
    ("ES", 2),
    ("SE", 2),
    ("PL", 2),
    ("SG", 1),
    ("BR", 1.5),
    ("", 2),
)
CAMPAIGNS = (
    "data-strategy-q1",
    "cloud-migration-uk",
    "ai-automation-pilot",
    "brand",
    "free-assessment",
    "retargeting-pricing",
)
KEYWORDS = (
    "data+consultancy",
    "cloud+migration+partner",
    "ai+consulting",
    "northwind",
    "data+strategy+consultant",
    "analytics+agency",
)
SEARCH = (
    "https://www.google.com/",
    "https://www.google.co.uk/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://www.ecosia.org/",
)
SOCIAL = (
    "https://www.linkedin.com/",
    "https://t.co/",
    "https://www.facebook.com/",
    "https://www.reddit.com/",
)
REFERRALS = (
    "https://news.ycombinator.com/",
    "https://clutch.co/profile/northwind",
    "https://www.g2.com/",
    "https://partners.example-cloud.com/directory",
    "https://medium.com/@dataweekly/tools-2026",
)
AI = ("https://chatgpt.com/", "https://www.perplexity.ai/", "https://gemini.google.com/")
FORM_FIELDS = (
    ("name", "text"),
    ("email", "email"),
    ("company", "text"),
    ("phone", "tel"),
    ("company_size", "select-one"),
    ("budget", "select-one"),
    ("message", "textarea"),
    ("consent", "checkbox"),
)
VITALS = (
    ("TTFB", 320.0, 800, 1800),
    ("FCP", 1150.0, 1800, 3000),
    ("LCP", 1900.0, 2500, 4000),
    ("CLS", 0.04, 0.1, 0.25),
)


def say(message: str) -> None:
    print(f"[storage] {message}", file=sys.stderr, flush=True)


def weighted(rng: random.Random, items: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([v for v, _ in items], [w for _, w in items])[0]


def token(rng: random.Random, length: int, alphabet: str) -> str:
    return "".join(rng.choices(alphabet, k=length))


URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
HEX = "0123456789abcdef"


def arrival(rng: random.Random) -> tuple[str, str]:
    """Where a visit comes from: (query string of the landing URL, referrer)."""
    roll = rng.random() * 100
    campaign, keyword = rng.choice(CAMPAIGNS), rng.choice(KEYWORDS)
    if roll < 22:
        return "", ""
    if roll < 55:
        return "", rng.choice(SEARCH)
    if roll < 65:
        return (
            f"utm_source=google&utm_medium=cpc&utm_campaign={campaign}&utm_term={keyword}"
            f"&gclid={token(rng, 92, URLSAFE)}",
            "https://www.google.com/",
        )
    if roll < 67:
        return (
            f"utm_source=bing&utm_medium=cpc&utm_campaign={campaign}&msclkid={token(rng, 32, HEX)}",
            "https://www.bing.com/",
        )
    if roll < 71:
        return (
            f"utm_source=linkedin&utm_medium=paid_social&utm_campaign={campaign}"
            f"&utm_content=carousel-{rng.randint(1, 4)}&li_fat_id={uuid.uuid4()}",
            "https://www.linkedin.com/",
        )
    if roll < 77:
        ref = rng.choice(SOCIAL)
        query = f"fbclid={token(rng, 61, URLSAFE)}" if "facebook" in ref else ""
        return query, ref
    if roll < 82:
        issue = f"newsletter-2026-{rng.randint(1, 12):02d}"
        return (
            f"utm_source=newsletter&utm_medium=email&utm_campaign={issue}"
            f"&mc_cid={token(rng, 10, HEX)}&mc_eid={token(rng, 10, HEX)}",
            "",
        )
    if roll < 89:
        return "", rng.choice(REFERRALS)
    if roll < 92:
        return ("utm_source=chatgpt.com" if rng.random() < 0.5 else ""), rng.choice(AI)
    if roll < 94:
        return (
            f"utm_source=google&utm_medium=display&utm_campaign=retargeting-pricing"
            f"&gclid={token(rng, 92, URLSAFE)}",
            "",
        )
    return "", f"https://{HOST}/"  # an internal referrer: a tab restored after the timeout


@dataclass
class Visitor:
    key: int
    agent: str
    country: str
    consented: bool


class Traffic:
    """A seeded stream of StoredEvents in timestamp order, like the writer sees them."""

    def __init__(self, seed: int, events: int, days: float) -> None:
        self.rng = random.Random(seed)
        self.classifier = ChannelClassifier()
        self.visitors: list[Visitor] = []
        self.target = events
        # About 30 events per session: pick the session rate that fills `days`.
        self.sessions_per_ms = events / 30 / (days * DAY_MS)
        # The session tracker numbers sessions in order (enrich/sessions.py).
        self.last_session = 0

    def visitor(self) -> Visitor:
        rng = self.rng
        if self.visitors and rng.random() < 0.35:
            # Returning visitors favour the recent ones, as real audiences do.
            return self.visitors[-1 - min(int(rng.expovariate(1 / 800)), len(self.visitors) - 1)]
        bot = rng.random() < 0.02
        found = Visitor(
            len(self.visitors),
            BOT_AGENT if bot else weighted(rng, AGENTS),
            weighted(rng, COUNTRIES),
            rng.random() < 0.15,
        )
        self.visitors.append(found)
        return found

    def next_start(self, t: float) -> float:
        # Office hours busier than nights, weekdays busier than weekends.
        hour = (t % DAY_MS) / 3_600_000
        weekday = int(t // DAY_MS) % 7 < 5
        level = (1.6 if 8 <= hour < 18 else 0.7 if 6 <= hour < 22 else 0.25) * (
            1.15 if weekday else 0.6
        )
        return t + self.rng.expovariate(self.sessions_per_ms * level)

    def __iter__(self) -> Iterator[StoredEvent]:
        pending: list[tuple[int, int, StoredEvent]] = []
        seq = 0
        emitted = 0
        t = float(START_MS)
        while emitted < self.target:
            t = self.next_start(t)
            start = int(t)
            # Later sessions start at `start` or after: anything earlier is final.
            while pending and pending[0][0] < start:
                yield heapq.heappop(pending)[2]
                emitted += 1
                if emitted >= self.target:
                    return
            for event in self.session(start):
                heapq.heappush(pending, (event.ts, seq, event))
                seq += 1
        while pending and emitted < self.target:
            yield heapq.heappop(pending)[2]
            emitted += 1

    def session(self, start: int) -> list[StoredEvent]:
        rng = self.rng
        visitor = self.visitor()
        agent = parse_agent(visitor.agent)
        day = start // DAY_MS
        vid = hash64(
            b"bench",
            visitor.key.to_bytes(8, "little"),
            b"" if visitor.consented else day.to_bytes(4, "little"),
        )
        self.last_session += 1
        sid = self.last_session
        query, referrer = arrival(rng)
        path = weighted(rng, PAGES) if rng.random() < 0.6 else "/"
        if query and rng.random() < 0.5:
            path = "/lp/free-assessment"
        first = parse_landing(f"https://{HOST}{path}" + (f"?{query}" if query else ""))
        decision = self.classifier.classify(first, referrer, own_hosts=OWN_HOSTS)
        pages = 1 if agent.bot_reason else min(1 + int(rng.expovariate(1 / 1.9)), 14)
        converts = rng.random() < 0.025
        ctx = _Session(self, visitor, agent, vid, sid, decision, first)
        t = start
        url = first.url_clean
        landing = first
        for n in range(pages):
            last = n == pages - 1
            if n:
                path = "/contact" if converts and last else weighted(rng, PAGES)
                landing = parse_landing(f"https://{HOST}{path}")
            t = ctx.page(t, landing, referrer if n == 0 else url, converts and last)
            url = landing.url_clean
            t += int(rng.uniform(300, 4_000))
        return ctx.events


class _Session:
    """Builds the events of one session's page views, as sp.js would send them."""

    def __init__(
        self,
        traffic: Traffic,
        visitor: Visitor,
        agent: Agent,
        vid: int,
        sid: int,
        decision: ChannelDecision,
        first: Landing,
    ) -> None:
        self.rng = traffic.rng
        self.visitor = visitor
        self.agent = agent
        self.vid = vid
        self.sid = sid
        self.decision = decision
        self.first = first
        self.events: list[StoredEvent] = []
        self.page_seq = 0

    def add(
        self,
        landing: Landing,
        ts: int,
        page_start: int,
        type_: str,
        name: str = "",
        value: float | None = None,
        props: dict[str, PropValue] | None = None,
        referrer: str = "",
    ) -> None:
        # sp.js flushes every 5 s: the events of one flush share its arrival time.
        received = ts - (ts - page_start) % 5_000 + 5_000 + self.rng.randint(30, 400)
        first, decision, agent = self.first, self.decision, self.agent
        segment = landing.path.split("/", 2)[1] if landing.path not in ("", "/") else ""
        self.events.append(
            StoredEvent(
                event_id=uuid.UUID(int=self.rng.getrandbits(128), version=4).bytes,
                ts=ts,
                received_at=received,
                site=SITE,
                type=type_,
                name=name,
                value=value,
                visitor_id=self.vid,
                session_id=self.sid,
                url=landing.url_clean,
                path=landing.path,
                page_group="/" + segment[:40],
                referrer=referrer,
                referrer_host=referrer_host(referrer),
                utm_source=first.utm_source,
                utm_medium=first.utm_medium,
                utm_campaign=first.utm_campaign,
                utm_term=first.utm_term,
                utm_content=first.utm_content,
                click_id_kind=first.click_id_kind,
                click_id=landing.click_id if type_ == "pageview" else "",
                channel=decision.channel,
                channel_rule=decision.rule,
                source=decision.source,
                medium=decision.medium,
                country=self.visitor.country,
                region="",
                device=agent.device,
                browser=agent.browser,
                os=agent.os,
                is_bot=bool(agent.bot_reason),
                bot_reason=agent.bot_reason,
                props=_encode(props).decode() if props else None,
                page_seq=self.page_seq,
            )
        )

    def page(self, t0: int, landing: Landing, referrer: str, submits: bool) -> int:
        """All events of one page view from `t0`; returns when the visitor left."""
        rng = self.rng
        # The enricher turns the browser's pageview_id into this page number.
        self.page_seq += 1
        self.add(landing, t0, t0, "pageview", referrer=referrer)
        slow = 1.5 if self.agent.device == "mobile" else 1.0
        for metric, median, good, poor in VITALS[: 2 if self.agent.bot_reason else 4]:
            value = median * slow * rng.lognormvariate(0, 0.45)
            value = round(value, 4) if metric == "CLS" else float(round(value))
            rating = "good" if value <= good else "needs-improvement" if value <= poor else "poor"
            at = t0 + (int(value) if metric != "CLS" else rng.randint(3_000, 20_000))
            self.add(
                landing,
                at,
                t0,
                "vital",
                metric,
                value,
                {"rating": rating, "navigation_type": "navigate"},
            )
        if self.agent.bot_reason:
            return t0 + 1_500
        dwell = int(min(max(rng.lognormvariate(10.4, 0.9), 2_500), 900_000))
        leave = t0 + dwell
        depth = min(100, int(100 * (dwell / 60_000) ** 0.5 * rng.uniform(0.6, 1.3)))
        for mark in (25, 50, 75, 90):
            if mark <= depth:
                self.add(
                    landing,
                    t0 + dwell * mark // 110,
                    t0,
                    "engagement",
                    "scroll",
                    mark,
                    {"milestone": True},
                )
        if landing.path in ("/", "/pricing"):
            self.add(
                landing,
                t0 + 900,
                t0,
                "exposure",
                landing.path.strip("/") or "hero",
                props={"variant": rng.choice(("a", "b"))},
            )
        if rng.random() < 0.05:
            href = rng.choice(
                (
                    "www.linkedin.com/company/northwind",
                    "github.com/northwind",
                    f"{HOST}/static/case-study.pdf",
                )
            )
            self.add(
                landing,
                leave - 200,
                t0,
                "click",
                "download" if href.endswith(".pdf") else "outbound",
                props={"href": href},
            )
        if landing.path == "/contact" and (submits or rng.random() < 0.3):
            leave = self.form(landing, t0, leave, submits)
        if rng.random() < 0.65:
            self.add(
                landing,
                leave,
                t0,
                "vital",
                "INP",
                float(round(110 * slow * rng.lognormvariate(0, 0.55))),
                {"rating": "good", "navigation_type": "navigate"},
            )
        self.add(landing, leave, t0, "engagement", "scroll", depth)
        self.add(
            landing, leave, t0, "engagement", "engaged_time", int(dwell * rng.uniform(0.4, 0.95))
        )
        self.add(landing, leave, t0, "engagement", "page_leave", dwell)
        return leave

    def form(self, landing: Landing, t0: int, leave: int, submits: bool) -> int:
        rng = self.rng
        t = t0 + rng.randint(4_000, 15_000)
        self.add(landing, t, t0, "form", "form_start", props={"form": "contact"})
        fields = FORM_FIELDS if submits else FORM_FIELDS[: rng.randint(1, len(FORM_FIELDS))]
        for name, kind in fields:
            props: dict[str, PropValue] = {"form": "contact", "field": name, "field_type": kind}
            self.add(landing, t, t0, "form", "field_focus", props=props)
            t += rng.randint(1_500, 20_000)
            self.add(landing, t, t0, "form", "field_blur", props={**props, "filled": True})
        if submits:
            self.add(landing, t + 300, t0, "form", "submit", props={"form": "contact"})
            self.add(landing, t + 900, t0, "lead", "contact")
        return max(leave, t + 2_000)


@dataclass(frozen=True)
class Column:
    """One column's share of the file: its segments' bytes and compression methods."""

    name: str
    bytes: int
    compression: str

    def per_event(self, events: int) -> float:
        return self.bytes / events


def segment_bytes(db_file: Path, table: str) -> list[Column]:
    """Bytes per column from `pragma_storage_info`, validity masks included.

    DuckDB reports where each segment starts, not its length: a segment is taken
    to run to the next segment in its block (or to the block's end), plus any
    overflow blocks. Free space at a block's end thus counts toward the column
    written last into it; over a whole file the figures add up to the used blocks.
    """
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        size = con.execute("PRAGMA database_size").fetchone()
        rows = con.execute(
            "SELECT column_name, segment_type, compression, block_id, block_offset,"
            " len(additional_block_ids) FROM pragma_storage_info(?) WHERE block_id >= 0",
            [table],
        ).fetchall()
    finally:
        con.close()
    assert size is not None
    block_size = int(size[2])
    by_block: dict[int, list[tuple[int, str, int]]] = {}
    methods: dict[str, dict[str, int]] = {}
    for name, kind, method, block, offset, extra in rows:
        by_block.setdefault(int(block), []).append((int(offset), str(name), int(extra or 0)))
        if kind != "VALIDITY":
            counts = methods.setdefault(str(name), {})
            counts[str(method)] = counts.get(str(method), 0) + 1
    sizes: dict[str, int] = {}
    for segments in by_block.values():
        segments.sort()
        ends = [offset for offset, _, _ in segments[1:]] + [block_size]
        for (offset, name, extra), end in zip(segments, ends, strict=True):
            sizes[name] = sizes.get(name, 0) + end - offset + extra * block_size
    return sorted(
        (
            Column(
                name, used, "/".join(sorted(methods.get(name, {}), key=lambda m: -methods[name][m]))
            )
            for name, used in sizes.items()
        ),
        key=lambda c: c.bytes,
        reverse=True,
    )


def scratch_bytes(source: Path, scratch: Path, select: str) -> int:
    """Bytes a table made by `select` (over `db.events`) takes in a fresh file of its own."""
    target = scratch / f"{uuid.uuid4().hex}.duckdb"
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{source}' AS db (READ_ONLY)")
        con.execute(f"ATTACH '{target}' AS scratch")
        con.execute(f"CREATE TABLE scratch.t AS {select}")
        con.execute("DETACH scratch")
    finally:
        con.close()
    size = target.stat().st_size
    target.unlink()
    return size


# Each variant is a SELECT over db.events, measured alone in a fresh file.
VARIANTS: dict[str, str] = {
    # The same rows written once, in one go: what loading piecemeal costs.
    "copy_as_is": "SELECT * FROM db.events ORDER BY rowid",
    "sorted_day_session_ts": "SELECT * FROM db.events ORDER BY ts::DATE, session_id, ts",
    "received_at_as_offset_ms": "SELECT * EXCLUDE (received_at), (epoch_ms(received_at)"
    " - epoch_ms(ts))::INTEGER AS received_after_ms FROM db.events ORDER BY rowid",
    "no_visitor_id": "SELECT * EXCLUDE (visitor_id) FROM db.events ORDER BY rowid",
}


def write(store: DuckDBStore, events: list[StoredEvent]) -> None:
    """One load, the sessions refresh and the housekeeping, as the loader runs them."""
    store.write(events, [])
    # The loader's upkeep, on the traffic's clock: event ids expire after a day.
    store.housekeeping(max(e.received_at for e in events), DAY_MS)
    touched: dict[int, int] = {}
    for event in events:
        if event.ts < touched.get(event.session_id, event.ts + 1):
            touched[event.session_id] = event.ts
    # Like the writer: sessions never span a UTC day, so a day back covers them.
    store.refresh_sessions(list(touched), min(touched.values()) - DAY_MS)


def generate(folder: Path, args: argparse.Namespace) -> tuple[int, float]:
    """Write the events through the store; returns (events written, seconds)."""
    store = DuckDBStore(folder)
    store.migrate()
    started = time.monotonic()
    pending: list[StoredEvent] = []
    written = 0
    for event in Traffic(args.seed, args.events, args.days):
        pending.append(event)
        if len(pending) >= args.batch:
            write(store, pending)
            written += len(pending)
            pending = []
            if written % 100_000 < args.batch:
                say(f"{written:,} events written ({time.monotonic() - started:.0f}s)")
    if pending:
        write(store, pending)
        written += len(pending)
    store.checkpoint()
    store.close()
    return written, time.monotonic() - started


def table_facts(db_file: Path) -> dict[str, Any]:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        size = con.execute("PRAGMA database_size").fetchone()
        facts = con.execute(
            "SELECT count(*), count(DISTINCT session_id), count(DISTINCT visitor_id),"
            " min(ts)::VARCHAR, max(ts)::VARCHAR, count(*) FILTER (props IS NOT NULL),"
            " count(*) FILTER (click_id <> '') FROM events"
        ).fetchone()
        sessions = con.execute("SELECT count(*) FROM sessions").fetchone()
        types = con.execute(
            "SELECT type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    finally:
        con.close()
    assert size is not None and facts is not None and sessions is not None
    return {
        "database_size": {
            "size": size[1],
            "block_size": size[2],
            "total_blocks": size[3],
            "used_blocks": size[4],
            "free_blocks": size[5],
        },
        "events": facts[0],
        "sessions": facts[1],
        "visitors": facts[2],
        "first_ts": facts[3],
        "last_ts": facts[4],
        "with_props": facts[5],
        "with_click_id": facts[6],
        "session_rows": sessions[0],
        "types": {str(t): int(n) for t, n in types},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    # The loader commits every 0.5 s: a few thousand rows at a busy site's pace.
    parser.add_argument("--batch", type=int, default=2_000, help="events per store.write")
    parser.add_argument("--days", type=float, default=30.0, help="time span of the traffic")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--variants",
        choices=("auto", "always", "never"),
        default="auto",
        help="measure table variants (auto: only when over the target)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if not 1_000 <= args.events <= 20_000_000 or not 1 <= args.batch <= 100_000:
        parser.error("--events must be 1e3..2e7 and --batch 1..1e5")
    work = Path(tempfile.mkdtemp(prefix="sitepulse-storage-"))
    say(f"work folder {work}")
    try:
        report = measure(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report), flush=True)


def measure(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    folder = work / "data"
    say(f"generating {args.events:,} events over {args.days:g} days, {args.batch:,} per write")
    written, seconds = generate(folder, args)
    db_file = folder / DB_FILE
    wal = db_file.with_name(DB_FILE + ".wal")
    size = db_file.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    per_event = size / written
    say(
        f"{written:,} events in {seconds:.0f}s ({written / seconds:,.0f}/s); file {size:,} bytes"
        f" = {per_event:.1f} bytes/event (target {TARGET_BYTES_PER_EVENT:g})"
    )
    facts = table_facts(db_file)
    blocks = facts["database_size"]
    columns = segment_bytes(db_file, "events")
    in_events = sum(c.bytes for c in columns)
    in_sessions = sum(c.bytes for c in segment_bytes(db_file, "sessions"))
    free = blocks["free_blocks"] * blocks["block_size"]
    rest = size - in_events - in_sessions - free
    say(
        f"events segments {in_events / written:.1f}, sessions {in_sessions / written:.1f},"
        f" free blocks {free / written:.1f}, rest {rest / written:.1f} bytes/event"
    )
    say("top columns: " + ", ".join(f"{c.name} {c.per_event(written):.1f}" for c in columns[:8]))
    scratch = work / "scratch"
    scratch.mkdir()
    empty = scratch_bytes(db_file, scratch, "SELECT 1 AS x")
    variants: dict[str, float] = {}
    if args.variants == "always" or (
        args.variants == "auto" and per_event > TARGET_BYTES_PER_EVENT
    ):
        for name, select in VARIANTS.items():
            variants[name] = round((scratch_bytes(db_file, scratch, select) - empty) / written, 2)
            say(f"variant {name}: {variants[name]:.1f} bytes/event (events table alone)")
    return {
        "events": written,
        "bytes": size,
        "bytes_per_event": round(per_event, 2),
        "target_met": per_event <= TARGET_BYTES_PER_EVENT,
        "breakdown_bytes_per_event": {
            "events_table": round(in_events / written, 2),
            "sessions_table": round(in_sessions / written, 2),
            "free_blocks": round(free / written, 2),
            "other": round(rest / written, 2),
        },
        "columns": [
            {
                "name": c.name,
                "bytes_per_event": round(c.per_event(written), 2),
                "share": round(c.bytes / max(in_events, 1), 3),
                "compression": c.compression,
            }
            for c in columns
        ],
        "variants_bytes_per_event": variants,
        "write_events_per_s": round(written / seconds),
        "facts": facts,
        "seed": args.seed,
        "days": args.days,
        "batch": args.batch,
    }


if __name__ == "__main__":
    main()
