"""Scoring stored leads: gather each lead's facts with SQL, score them, hand back rows.

The pure model lives in analyse/scoring/; this module is the bridge to the
store. Facts for any number of leads come from one statement: one pass over their
visitors' events, folded per lead into lists of times (session starts, page views,
engaged page loads, downloads, custom events) beside the lead's own columns, so
re-scoring every lead after a model change costs one scan of the events table, not one
per lead, and hands Python one row per lead rather than one per observation.

The scan reads only the columns the rules need and filters event types with
comparisons the scan itself can apply (the ingest only accepts the known types),
which costs a fraction of an IN list evaluated row by row over every event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import msgspec

from sitepulse.analyse.base import DAY_MS, Reader
from sitepulse.analyse.scoring import (
    Activity,
    FieldValue,
    LeadFacts,
    LeadScorer,
    Score,
)
from sitepulse.clock import Clock
from sitepulse.config.models import Settings
from sitepulse.model.records import LeadScoreRow, StoredEvent, StoredLead

# Engagement older than this before the lead does not count (decay has made it
# worth next to nothing by then anyway).
FACTS_LOOKBACK_MS = 90 * DAY_MS

_FIRST_SQL = "SELECT min(epoch_ms(l.ts)), list(DISTINCT l.site) FROM leads l WHERE {where}"

# One row per wanted lead: its columns, then its visitor's observations as lists.
# Engaged time arrives as running totals per page load: the largest counts. Types are
# pageview, engagement, click and custom: the range and the exclusions say that in
# comparisons the scan applies to its dictionary (the ingest accepts no other types).
_SCORING_SQL = """
WITH wanted AS (
    SELECT l.lead_id, l.site, l.visitor_id, l.ts FROM leads l
    WHERE {where} AND l.visitor_id <> 0
),
seen AS (
    SELECT w.lead_id, e.type, e.name, e.value, epoch_ms(e.ts) AS t, e.session_id, e.page_seq
    FROM events e JOIN wanted w ON {same_site}e.visitor_id = w.visitor_id
    WHERE {site_filter}e.ts >= w.ts - to_milliseconds({lookback})
      -- the same bound as a constant, so zone maps skip older row groups
      AND e.ts >= make_timestamp(?::BIGINT * 1000)
      AND e.ts <= make_timestamp(?::BIGINT * 1000)
      AND e.type >= 'click' AND e.type <= 'pageview'
      AND e.type <> 'exposure' AND e.type <> 'form' AND e.type <> 'lead'
      AND NOT e.is_bot
),
visits AS (
    SELECT lead_id, list(t) AS starts
    FROM (SELECT lead_id, min(t) AS t FROM seen GROUP BY lead_id, session_id)
    GROUP BY lead_id
),
reads AS (
    SELECT lead_id, list(t) AS reads
    FROM (
        SELECT lead_id, arg_max(t, value) AS t, max(value) AS ms FROM seen
        WHERE type = 'engagement' AND name = 'engaged_time'
        GROUP BY lead_id, session_id, page_seq
    )
    WHERE ms >= ?::DOUBLE
    GROUP BY lead_id
),
acts AS (
    SELECT lead_id,
           list(t) FILTER (type = 'pageview') AS views,
           list(t) FILTER (type = 'click' AND name = 'download') AS downloads,
           list(t ORDER BY t, name) FILTER (type = 'custom') AS custom_ts,
           list(name ORDER BY t, name) FILTER (type = 'custom') AS custom_names
    FROM seen WHERE type <> 'engagement' GROUP BY lead_id
)
SELECT l.lead_id, l.site, epoch_ms(l.ts), l.channel, l.email, l.phone, l.name,
       l.company, l.company_size, l.industry, l.country, l.geo_country, l.budget, l.timeline,
       l.message, l.consent, l.fields::VARCHAR, l.is_test,
       v.starts, a.views, r.reads, a.downloads, a.custom_ts, a.custom_names
FROM leads l
LEFT JOIN visits v ON v.lead_id = l.lead_id
LEFT JOIN reads r ON r.lead_id = l.lead_id
LEFT JOIN acts a ON a.lead_id = l.lead_id
WHERE {where}
ORDER BY l.ts
"""


class ScoredLead(msgspec.Struct, frozen=True, gc=False):
    """A lead's new score, ready to be written back."""

    lead_id: bytes
    site: str
    score: Score


def _fields(text: str | None) -> dict[str, FieldValue]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        str(k): v for k, v in value.items() if v is None or isinstance(v, str | int | float | bool)
    }


def _read_only(fields: dict[str, FieldValue]) -> Mapping[str, FieldValue]:
    return MappingProxyType(fields)


def _where(lead_ids: Sequence[bytes] | None) -> tuple[str, list[Any]]:
    if lead_ids is None:
        return "true", []
    marks = ", ".join("?" for _ in lead_ids)
    return f"l.lead_id IN ({marks})", [uuid.UUID(bytes=lead_id) for lead_id in lead_ids]


def score_stored_leads(
    reader: Reader, settings: Settings, lead_ids: Sequence[bytes] | None, now_ms: int
) -> list[ScoredLead]:
    """Score the given leads (None: every lead) as of `now_ms`."""
    if lead_ids is not None and not lead_ids:
        return []
    where, args = _where(lead_ids)
    ((first, sites),) = reader.query(_FIRST_SQL.format(where=where), args)
    if first is None:
        return []
    # Usually every lead is of one site: its events are then picked in the scan by a
    # constant, which is much cheaper than reading the site of every event into the join.
    one_site = len(sites) == 1
    same_site = "" if one_site else "e.site = w.site AND "
    site_filter = "e.site = ? AND " if one_site else ""
    # Page loads engaged for less than the model's minimum never count: they stay in SQL.
    least_ms = settings.scoring.engagement.engaged_page.min_engaged_secs * 1000
    rows = reader.query(
        _SCORING_SQL.format(
            where=where, lookback=FACTS_LOOKBACK_MS, same_site=same_site, site_filter=site_filter
        ),
        [*args, *sites[:one_site], first - FACTS_LOOKBACK_MS, now_ms, least_ms, *args],
    )
    zones = {site.id: site.timezone for site in settings.sites}
    scorer = LeadScorer(settings.scoring)
    # Custom fields repeat (a form's choices): parse each text once, share it read-only.
    parsed: dict[str | None, Mapping[str, FieldValue]] = {}
    out = []
    for row in rows:
        (lead_uuid, site, ts, channel, email, phone, name, company, size, industry) = row[:10]
        (country, geo_country, budget, timeline, message, consent, fields, is_test) = row[10:18]
        (starts, views, reads, downloads, custom_ts, custom_names) = row[18:]
        lead = LeadFacts(
            ts=ts,
            channel=channel,
            email=email,
            phone=phone,
            name=name,
            company=company,
            company_size=size,
            industry=industry,
            country=country or geo_country,
            budget=budget,
            timeline=timeline,
            message=message,
            consent=consent,
            fields=parsed.get(fields) or parsed.setdefault(fields, _read_only(_fields(fields))),
            is_test=is_test,
        )
        activity = Activity(
            session_starts=starts or (),
            pageviews=views or (),
            reads=reads or (),
            downloads=downloads or (),
            custom_ts=custom_ts or (),
            custom_names=custom_names or (),
        )
        score = scorer.score(lead, activity, now_ms=now_ms, zone=zones.get(site, "UTC"))
        out.append(ScoredLead(lead_uuid.bytes, site, score))
    return out


def score_row(scored: ScoredLead) -> LeadScoreRow:
    """The store's row for a score."""
    score = scored.score
    return LeadScoreRow(
        lead_id=scored.lead_id,
        score=score.total,
        tier=score.tier,
        fit_score=score.fit_score,
        engagement_score=score.engagement_score,
        breakdown=json.dumps(score.to_dict(), separators=(",", ":")),
        model=score.model_fingerprint,
        scored_at=score.as_of_ms,
        follow_up_due=score.follow_up.deadline_ms,
    )


class ScoreStore(Reader, Protocol):
    def save_lead_scores(self, rows: Sequence[LeadScoreRow]) -> None: ...


class LeadScoreKeeper:
    """Keeps stored scores current; runs on the loader thread (the store's one writer).

    New leads are scored as soon as they are loaded, so `POST /api/v1/leads` can
    answer with the score. A lead is re-scored when its visitor's later events
    arrive, when the model changes (its fingerprint differs) and, for decay,
    every `rescore_interval_secs`.
    """

    def __init__(
        self,
        store: ScoreStore,
        settings: Settings,
        *,
        clock: Clock,
        on_scored: Callable[[list[ScoredLead]], None] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._on_scored = on_scored
        self._fingerprint = settings.scoring.fingerprint
        self._rescore_ms = settings.analysis.rescore_interval_secs * 1000
        self._last_full = clock()
        # visitor id -> their leads; bounded by the leads of the facts window.
        self._by_visitor: dict[int, set[bytes]] = {}
        self.scored = 0

    def prime(self) -> None:
        """Learn which visitors have leads; score leads that are unscored or stale."""
        since = self._clock() - FACTS_LOOKBACK_MS
        for lead_id, visitor_id in self._store.query(
            "SELECT lead_id, visitor_id FROM leads"
            " WHERE ts >= make_timestamp(?::BIGINT * 1000) AND visitor_id <> 0",
            [since],
        ):
            self._by_visitor.setdefault(int(visitor_id), set()).add(lead_id.bytes)
        self._rescore_stale()

    def after_load(self, events: Sequence[StoredEvent], leads: Sequence[StoredLead]) -> None:
        """Score new leads and re-score leads whose visitors were just active."""
        wanted = {lead.lead_id for lead in leads}
        for lead in leads:
            if lead.visitor_id:
                self._by_visitor.setdefault(lead.visitor_id, set()).add(lead.lead_id)
        by_visitor = self._by_visitor
        if by_visitor:
            for visitor in {e.visitor_id for e in events} & by_visitor.keys():
                wanted |= by_visitor[visitor]
        if wanted:
            self._score(sorted(wanted))

    def periodic(self) -> None:
        """Re-score stale leads; every rescore interval, every recent lead (decay)."""
        now = self._clock()
        if now - self._last_full >= self._rescore_ms:
            self._last_full = now
            rows = self._store.query(
                "SELECT lead_id FROM leads WHERE ts >= make_timestamp(?::BIGINT * 1000)",
                [now - FACTS_LOOKBACK_MS],
            )
            self._score([row[0].bytes for row in rows])
        else:
            self._rescore_stale()

    def _rescore_stale(self) -> None:
        rows = self._store.query(
            "SELECT lead_id FROM leads WHERE score_model IS DISTINCT FROM ?", [self._fingerprint]
        )
        if rows:
            self._score([row[0].bytes for row in rows])

    def _score(self, lead_ids: list[bytes]) -> None:
        for start in range(0, len(lead_ids), 5000):
            chunk = lead_ids[start : start + 5000]
            scored = score_stored_leads(self._store, self._settings, chunk, self._clock())
            self._store.save_lead_scores([score_row(s) for s in scored])
            self.scored += len(scored)
            if self._on_scored is not None and scored:
                self._on_scored(scored)
