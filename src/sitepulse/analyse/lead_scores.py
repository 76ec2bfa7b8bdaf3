"""Scoring stored leads: gather each lead's facts with SQL, score them, hand back rows.

The pure model lives in analyse/scoring/; this module is the bridge to the
store. Facts for any number of leads
come from one statement: their visitors' session starts (`sessions`), page views and
engaged page loads (`page_loads`), downloads and custom events (the events of those two
types), folded per lead into lists of times beside the lead's own columns, so re-scoring
every lead after a model change costs one statement, not one per lead, and hands Python
one row per lead rather than one per observation.

New leads and leads whose visitors were active are scored once the loader has refreshed
the sessions and page loads that cover them (`LeadScoreKeeper.after_refresh`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from types import MappingProxyType
from typing import Any, Protocol
from zoneinfo import ZoneInfo

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

# One row per wanted lead: its columns, then its visitor's observations as lists. Session
# starts come from `sessions`, page views and engaged page loads from `page_loads` (the
# largest running total of a load's engaged time, and when it was reported), downloads
# and custom events from the events, of which they are a sliver: the type range
# 'click'..'custom' holds exactly those two types and is applied in the scan.
# `{x}` stands for a table alias in the per-source filters (see _source_filter).
_SCORING_SQL = """
WITH wanted AS (
    SELECT l.lead_id, l.site, l.visitor_id, l.ts FROM leads l
    WHERE {where} AND l.visitor_id <> 0
),
visits AS (
    SELECT w.lead_id, list(epoch_ms(s.started_at)) AS starts
    FROM sessions s JOIN wanted w ON {same_site_s}s.visitor_id = w.visitor_id
    WHERE {window_s}
    GROUP BY w.lead_id
),
loads AS (
    SELECT w.lead_id, list(epoch_ms(p.ts)) FILTER (p.viewed) AS views,
           list(epoch_ms(p.engaged_at)) FILTER (p.engaged_ms >= ?::DOUBLE) AS reads
    FROM page_loads p JOIN wanted w ON {same_site_p}p.visitor_id = w.visitor_id
    WHERE {window_p}
    GROUP BY w.lead_id
),
acts AS (
    SELECT w.lead_id,
           list(epoch_ms(e.ts)) FILTER (e.type = 'click' AND e.name = 'download') AS downloads,
           list({{'ts': epoch_ms(e.ts), 'name': e.name}}) FILTER (e.type = 'custom') AS custom
    FROM events e JOIN wanted w ON {same_site_e}e.visitor_id = w.visitor_id
    WHERE {window_e} AND e.type >= 'click' AND e.type <= 'custom'
    GROUP BY w.lead_id
)
SELECT unhex(replace(l.lead_id::VARCHAR, '-', '')), l.site, epoch_ms(l.ts), l.channel,
       l.email, l.phone, l.name, l.company, l.company_size, l.industry,
       CASE WHEN l.country = '' THEN l.geo_country ELSE l.country END, l.budget, l.timeline,
       l.message, l.consent, l.fields::VARCHAR, l.is_test, v.starts, a.views, a.reads,
       c.downloads, [x.ts FOR x IN c.custom], [x.name FOR x IN c.custom]
FROM leads l
LEFT JOIN visits v ON v.lead_id = l.lead_id
LEFT JOIN loads a ON a.lead_id = l.lead_id
LEFT JOIN acts c ON c.lead_id = l.lead_id
WHERE {where}
"""


def _source_filter(alias: str, ts: str, one_site: bool) -> str:
    """A source's rows within the lookback before each lead, human, up to now: `?` binds
    (site if `one_site`), the earliest lead's lookback start, now."""
    site = f"{alias}.site = ? AND " if one_site else ""
    return (
        f"{site}{alias}.{ts} >= w.ts - to_milliseconds({FACTS_LOOKBACK_MS})"
        # the same bound as a constant, so zone maps skip older row groups
        f" AND {alias}.{ts} >= make_timestamp(?::BIGINT * 1000)"
        f" AND {alias}.{ts} <= make_timestamp(?::BIGINT * 1000) AND NOT {alias}.is_bot"
    )


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
    # Page loads engaged for less than the model's minimum never count: they stay in SQL.
    least_ms = settings.scoring.engagement.engaged_page.min_engaged_secs * 1000
    sql = _SCORING_SQL.format(
        where=where,
        **{f"same_site_{x}": "" if one_site else f"{x}.site = w.site AND " for x in "spe"},
        window_s=_source_filter("s", "started_at", one_site),
        window_p=_source_filter("p", "ts", one_site),
        window_e=_source_filter("e", "ts", one_site),
    )
    window = [*sites[:one_site], first - FACTS_LOOKBACK_MS, now_ms]
    rows = reader.query(sql, [*args, *window, least_ms, *window, *window, *args])
    # Sorted here rather than in SQL, where sorting would move every row's lists too.
    rows.sort(key=itemgetter(2))
    zones = {site.id: ZoneInfo(site.timezone) for site in settings.sites}
    utc = ZoneInfo("UTC")
    scorer = LeadScorer(settings.scoring)
    # Custom fields repeat (a form's choices): parse each text once, share it read-only.
    parsed: dict[str | None, Mapping[str, FieldValue]] = {}
    out = []
    for (
        lead_id, site, ts, channel, email, phone, name, company, size, industry, country,
        budget, timeline, message, consent, fields, is_test,
        starts, views, reads, downloads, custom_ts, custom_names,
    ) in rows:  # fmt: skip
        form = parsed.get(fields)
        if form is None:
            form = parsed[fields] = _read_only(_fields(fields))
        lead = LeadFacts(
            ts, channel, email, phone, name, company, size, industry, country, budget,
            timeline, message, consent, form, is_test,
        )  # fmt: skip
        activity = Activity(
            starts or (), views or (), reads or (), downloads or (), custom_ts or (),
            custom_names or (),
        )  # fmt: skip
        score = scorer.score(lead, activity, now_ms=now_ms, zone=zones.get(site, utc))
        out.append(ScoredLead(lead_id, site, score))
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
        # Leads to score once the page loads and sessions cover what was just loaded.
        self._pending: set[bytes] = set()
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
        """Note new leads and the leads of visitors who were just active, to score them
        when the derived tables have caught up (`after_refresh`)."""
        wanted = self._pending
        wanted.update(lead.lead_id for lead in leads)
        for lead in leads:
            if lead.visitor_id:
                self._by_visitor.setdefault(lead.visitor_id, set()).add(lead.lead_id)
        by_visitor = self._by_visitor
        if by_visitor:
            for visitor in {e.visitor_id for e in events} & by_visitor.keys():
                wanted |= by_visitor[visitor]

    def after_refresh(self) -> None:
        """Score what `after_load` noted: their facts are in sessions and page_loads now."""
        if self._pending:
            wanted, self._pending = sorted(self._pending), set()
            self._score(wanted)

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
