"""Scoring stored leads: gather each lead's facts with SQL, score them, hand back rows.

The pure model lives in analyse/scoring.py; this module is the bridge to the
store. Facts for any number of leads come from two queries (the leads, and one
pass over their visitors' events), so re-scoring every lead after a model
change costs one scan of the events table, not one per lead.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sitepulse.analyse.base import DAY_MS, Reader
from sitepulse.analyse.scoring import (
    CustomEvent,
    Download,
    EngagedTime,
    EngagementFacts,
    FieldValue,
    LeadFacts,
    PageView,
    Score,
    Session,
    score_lead,
)
from sitepulse.clock import Clock
from sitepulse.config.models import Settings
from sitepulse.model.records import LeadScoreRow, StoredEvent, StoredLead

# Engagement older than this before the lead does not count (decay has made it
# worth next to nothing by then anyway).
FACTS_LOOKBACK_MS = 90 * DAY_MS

_LEAD_SQL = """
SELECT l.lead_id, l.site, epoch_ms(l.ts), l.visitor_id, l.channel, l.email, l.phone, l.name,
       l.company, l.company_size, l.industry, l.country, l.geo_country, l.budget, l.timeline,
       l.message, l.consent, l.fields::VARCHAR, l.is_test
FROM leads l
WHERE {where}
ORDER BY l.ts
"""

# One row per observation the scoring model looks at, for every wanted lead.
# Engaged time arrives as running totals per page load: the largest counts.
_FACTS_SQL = """
WITH wanted AS (
    SELECT l.lead_id, l.site, l.visitor_id, l.ts FROM leads l
    WHERE {where} AND l.visitor_id <> 0
),
seen AS (
    SELECT w.lead_id, e.type, e.name, e.value, e.ts, e.path, e.url, e.session_id, e.page_seq
    FROM events e JOIN wanted w ON e.site = w.site AND e.visitor_id = w.visitor_id
    WHERE e.ts >= w.ts - to_milliseconds({lookback})
      -- the same bound as a constant, so zone maps skip older row groups
      AND e.ts >= make_timestamp(?::BIGINT * 1000)
      AND e.ts <= make_timestamp(?::BIGINT * 1000)
      AND e.type IN ('pageview', 'engagement', 'click', 'custom') AND NOT e.is_bot
)
SELECT lead_id, 'session', epoch_ms(min(ts)), NULL, '' FROM seen GROUP BY lead_id, session_id
UNION ALL
SELECT lead_id, 'pageview', epoch_ms(ts), NULL, path FROM seen WHERE type = 'pageview'
UNION ALL
SELECT lead_id, 'engaged', epoch_ms(arg_max(ts, value)), max(value), any_value(path)
FROM seen WHERE type = 'engagement' AND name = 'engaged_time'
GROUP BY lead_id, session_id, page_seq
UNION ALL
SELECT lead_id, 'download', epoch_ms(ts), NULL, url FROM seen
WHERE type = 'click' AND name = 'download'
UNION ALL
SELECT lead_id, 'custom', epoch_ms(ts), NULL, name FROM seen WHERE type = 'custom'
"""


@dataclass(slots=True)
class _Facts:
    sessions: list[Session] = field(default_factory=list)
    pageviews: list[PageView] = field(default_factory=list)
    engaged: list[EngagedTime] = field(default_factory=list)
    downloads: list[Download] = field(default_factory=list)
    custom: list[CustomEvent] = field(default_factory=list)

    def frozen(self) -> EngagementFacts:
        return EngagementFacts(
            tuple(self.sessions),
            tuple(self.pageviews),
            tuple(self.engaged),
            tuple(self.downloads),
            tuple(self.custom),
        )


@dataclass(frozen=True, slots=True)
class ScoredLead:
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
    leads = reader.query(_LEAD_SQL.format(where=where), args)
    if not leads:
        return []
    facts: dict[bytes, _Facts] = {}
    rows = reader.query(
        _FACTS_SQL.format(where=where, lookback=FACTS_LOOKBACK_MS),
        [*args, min(row[2] for row in leads) - FACTS_LOOKBACK_MS, now_ms],
    )
    for lead_id, kind, ts, number, text in rows:
        bucket = facts.setdefault(lead_id.bytes, _Facts())
        if kind == "session":
            bucket.sessions.append(Session(ts))
        elif kind == "pageview":
            bucket.pageviews.append(PageView(ts, text))
        elif kind == "engaged":
            bucket.engaged.append(EngagedTime(ts, float(number), text))
        elif kind == "download":
            bucket.downloads.append(Download(ts, text))
        else:
            bucket.custom.append(CustomEvent(ts, text))
    zones = {site.id: site.timezone for site in settings.sites}
    empty = EngagementFacts()
    out = []
    for row in leads:
        (lead_uuid, site, ts, _vid, channel, email, phone, name, company, size, industry) = row[:11]
        (country, geo_country, budget, timeline, message, consent, fields, is_test) = row[11:]
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
            fields=_fields(fields),
            is_test=is_test,
        )
        found = facts.get(lead_uuid.bytes)
        score = score_lead(
            settings.scoring,
            lead,
            found.frozen() if found is not None else empty,
            now_ms=now_ms,
            zone=zones.get(site, "UTC"),
        )
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
