"""Business KPIs of a period: against the seed's targets, by channel, and vs the period before.

Which sessions. A period's sessions are the human sessions that started in it (the sessions
table, by `started_at`); visitors are their distinct visitor ids. A session's channel is the
channel it arrived by. Only events and leads inside the period count, so a session that
runs past the period's end is cut there. The previous period (`Period.previous()`) is
computed the same way; change = value - previous, change ratio = change / previous.

Definitions (bots are never counted, test leads never count as leads):
- conversion rate: sessions with at least one lead in the period / sessions; target >= 3 %.
- leads, leads per day: leads in the period (by lead time and the lead's channel) / days in it,
  with the daily series and its least-squares slope.
- average lead score: mean score of the period's scored leads; unscored leads are left out;
  target > 70.
- email signup rate: visitors with a `newsletter_signup` event in one of the period's sessions
  / visitors; by channel, the visitors and signups of that channel's sessions; target >= 5 %.
- engaged time per session: per page load (session_id, page_seq) the largest `engaged_time`
  (a running total), summed over the session's loads, averaged over all the period's sessions
  (a session that sent no engagement counts as 0 s, as GA4 divides by all sessions); in
  seconds; target > 120 s.

Status. Green: target met. Yellow: missed by no more than `YELLOW_BAND` (20 %) of the target,
e.g. a conversion rate from 2.4 % up to 3 %; the seed asks for a warning band and 10-20 % is
the range named for it, so the wide end warns early. Red: missed by more. No status without a
target or without a value. A value exactly on the band's edge is yellow.

Paths. Top paths to conversion: the page views (paths, and separately page groups) of each
converting session up to its first lead, in order, counted by identical sequence. Drop-offs:
the last page viewed in sessions that did not convert, with exits per path and exit rate =
those exits / all page views of the path in the period's sessions.

Cost. The derived tables do the heavy lifting at ingest: a session row carries its engaged
time (the sum over its page loads of each load's largest `engaged_time`), its newsletter
sign-ups and its last page viewed (`sessions.engaged_ms`, `signups`, `exit_path`), and a
page view is a row of `page_loads`. Per period, one statement over the period's sessions
(with the converted ones) and one over the leads; then one for paths and drop-offs, which
reads the period sessions' page loads once. A session counts whole in the period it started
in (its engaged time and last page included).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, cast

import msgspec

from sitepulse.analyse.base import DAY_MS, LEAD_FILTER, PERIOD_FILTER, AnalysisError, Period, Reader

Status = Literal["green", "yellow", "red"]
YELLOW_BAND: Final = 0.2
_EDGE = 1e-12  # float slack so a value exactly on the yellow edge stays yellow


@dataclass(frozen=True, slots=True)
class Target:
    """A higher-is-better goal: value > `value` when `strict`, else value >= `value`."""

    value: float
    strict: bool = False

    def met(self, value: float) -> bool:
        """Whether `value` reaches the target."""
        return value > self.value if self.strict else value >= self.value

    def status(self, value: float | None, band: float = YELLOW_BAND) -> Status | None:
        """Green when met, yellow when short by at most `band` of the target, else red."""
        if value is None:
            return None
        if self.met(value):
            return "green"
        shortfall = (self.value - value) / self.value if self.value else math.inf
        return "yellow" if shortfall <= band + _EDGE else "red"


TARGETS: Final[Mapping[str, Target]] = MappingProxyType(
    {
        "conversion_rate": Target(0.03),
        "avg_lead_score": Target(70.0, strict=True),
        "email_signup_rate": Target(0.05),
        "engaged_time_per_session": Target(120.0, strict=True),
    }
)
UNITS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "visitors": "visitors",
        "sessions": "sessions",
        "conversion_rate": "ratio",
        "leads": "leads",
        "leads_per_day": "leads/day",
        "avg_lead_score": "points",
        "email_signup_rate": "ratio",
        "engaged_time_per_session": "s",
    }
)
KPI_NAMES: Final[tuple[str, ...]] = tuple(UNITS)


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: nested records become dicts, tuples become lists."""
        return cast("dict[str, Any]", msgspec.json.decode(msgspec.json.encode(self)))


@dataclass(frozen=True, slots=True)
class Reading(_Record):
    """One KPI value (overall when `channel` is None) and how it moved since the last period."""

    channel: str | None
    value: float | None
    previous: float | None
    change: float | None  # value - previous
    change_ratio: float | None  # change / previous; None when previous is 0 or missing
    status: Status | None


@dataclass(frozen=True, slots=True)
class Kpi(_Record):
    """A KPI overall and by channel (channels by current value, largest first)."""

    name: str
    unit: str
    target: Target | None
    overall: Reading
    by_channel: tuple[Reading, ...]

    def channel(self, name: str) -> Reading:
        """The reading for channel `name`."""
        for reading in self.by_channel:
            if reading.channel == name:
                return reading
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class DailyLeads(_Record):
    """Leads in [start_ms, start_ms + one day); the last day may be cut short by the period."""

    start_ms: int
    leads: int
    full_day: bool


@dataclass(frozen=True, slots=True)
class LeadTrend(_Record):
    """Leads per day over the period and the least-squares slope over its full days."""

    days: tuple[DailyLeads, ...]
    slope_per_day: float | None  # change in leads/day per day; None with fewer than 2 full days


@dataclass(frozen=True, slots=True)
class PathCount(_Record):
    """One sequence of pages before a lead, and how many converting sessions followed it."""

    steps: tuple[str, ...]
    sessions: int
    share: float  # of converting sessions


@dataclass(frozen=True, slots=True)
class DropOff(_Record):
    """A page where sessions that did not convert ended."""

    path: str
    exits: int
    pageviews: int
    exit_rate: float | None  # exits / pageviews of the path
    share: float  # of all non-converting exits


@dataclass(frozen=True, slots=True)
class KpiReport(_Record):
    """The KPIs of one site and period with the previous period, trend, paths and drop-offs."""

    site: str
    start_ms: int
    end_ms: int
    previous_start_ms: int
    previous_end_ms: int
    yellow_band: float
    kpis: tuple[Kpi, ...]
    lead_trend: LeadTrend
    converting_sessions: int
    top_paths: tuple[PathCount, ...]
    top_page_group_paths: tuple[PathCount, ...]
    non_converting_exits: int
    drop_offs: tuple[DropOff, ...]

    def kpi(self, name: str) -> Kpi:
        """The KPI called `name` (see KPI_NAMES)."""
        for kpi in self.kpis:
            if kpi.name == name:
                return kpi
        raise KeyError(name)


# The period's human sessions. PERIOD_FILTER is written for `ts`; for a session that is
# when it started.
_SESSIONS = f"""
    period_sessions AS (
        SELECT session_id, visitor_id, channel, engaged_ms, signups, exit_path FROM (
            SELECT *, started_at AS ts FROM sessions
        ) WHERE {PERIOD_FILTER}
    )"""
_CONVERTED = f"converted AS (SELECT DISTINCT session_id FROM leads WHERE {LEAD_FILTER})"

# One pass over the period's sessions (each carries its engaged time and sign-ups), folded
# per (channel, visitor) first: the per-channel visitors are then plain counts and only the
# overall ones a DISTINCT, which costs a fraction of DISTINCTs under GROUPING SETS.
_SESSION_KPIS = f"""
    WITH {_SESSIONS},
    {_CONVERTED},
    per_visitor AS MATERIALIZED (
        SELECT s.channel, s.visitor_id, count(*) AS sessions, count(c.session_id) AS converted,
               sum(s.engaged_ms) AS engaged_ms, bool_or(s.signups > 0) AS signed
        FROM period_sessions AS s LEFT JOIN converted AS c ON c.session_id = s.session_id
        GROUP BY s.channel, s.visitor_id
    )
    SELECT false, channel, sum(sessions)::BIGINT, count(*), sum(converted)::BIGINT,
           coalesce(sum(engaged_ms), 0), count(*) FILTER (signed)
    FROM per_visitor GROUP BY channel
    UNION ALL
    SELECT true, NULL, coalesce(sum(sessions), 0)::BIGINT, count(DISTINCT visitor_id),
           coalesce(sum(converted), 0)::BIGINT, coalesce(sum(engaged_ms), 0),
           count(DISTINCT visitor_id) FILTER (signed)
    FROM per_visitor
"""

_LEAD_KPIS = f"""
    SELECT grouping(channel) = 1, channel, count(*), avg(score)
    FROM leads WHERE {LEAD_FILTER}
    GROUP BY GROUPING SETS ((channel), ())
"""

_DAILY_LEADS = f"""
    SELECT (epoch_ms(ts) - ?) // {DAY_MS} AS day, count(*) FROM leads
    WHERE {LEAD_FILTER} GROUP BY day
"""

# Paths and drop-offs: the converting sessions' page views up to their first lead, the
# period sessions' views per path, and their last pages (`sessions.exit_path`).
_PAGES = f"""
    WITH {_SESSIONS},
    first_lead AS (
        SELECT session_id, min(ts) AS lead_ts FROM leads WHERE {LEAD_FILTER} GROUP BY session_id
    ),
    converting AS (
        SELECT f.session_id, f.lead_ts FROM first_lead AS f
        WHERE f.session_id IN (SELECT session_id FROM period_sessions)
    ),
    views AS MATERIALIZED (
        SELECT session_id, ts, path, page_seq, page_group FROM page_loads
        WHERE {PERIOD_FILTER} AND viewed
          AND session_id IN (SELECT session_id FROM period_sessions)
    ),
    steps AS (
        SELECT session_id, list(path ORDER BY ts, page_seq) AS paths,
               list(page_group ORDER BY ts, page_seq) AS groups
        FROM views JOIN converting USING (session_id)
        WHERE ts <= lead_ts
        GROUP BY session_id
    ),
    totals AS (SELECT path, count(*) AS pageviews FROM views GROUP BY path),
    exits AS (
        SELECT exit_path AS path, count(*) AS exits FROM period_sessions
        WHERE exit_path <> '' AND session_id NOT IN (SELECT session_id FROM first_lead)
        GROUP BY exit_path
    )
    SELECT 'total', NULL::VARCHAR[], count(*), NULL, NULL FROM converting
    UNION ALL (
        SELECT 'path', paths, count(*) AS n, NULL, NULL FROM steps GROUP BY paths
        ORDER BY n DESC, paths LIMIT ?
    )
    UNION ALL (
        SELECT 'group', groups, count(*) AS n, NULL, NULL FROM steps GROUP BY groups
        ORDER BY n DESC, groups LIMIT ?
    )
    UNION ALL (
        SELECT 'exit', [e.path], e.exits, coalesce(t.pageviews, 0), sum(e.exits) OVER ()
        FROM exits AS e LEFT JOIN totals AS t USING (path)
        ORDER BY e.exits DESC, e.path
        LIMIT ?
    )
"""


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class _Values:
    """Every KPI value of one period: overall (key None) and per channel."""

    by_key: dict[str | None, dict[str, float | None]]


def _period_values(reader: Reader, period: Period) -> _Values:
    days = period.length_ms / DAY_MS
    out: dict[str | None, dict[str, float | None]] = {}
    for overall, channel, sessions, visitors, converted, engaged_ms, signed in reader.query(
        _SESSION_KPIS, [*period.params * 2]
    ):
        out[None if overall else channel] = _session_values(
            int(sessions), int(visitors), int(converted), float(engaged_ms), int(signed)
        )
    out.setdefault(None, _session_values(0, 0, 0, 0.0, 0))
    for overall, channel, leads, avg_score in reader.query(_LEAD_KPIS, period.params):
        out.setdefault(None if overall else channel, {}).update(
            leads=int(leads),
            leads_per_day=int(leads) / days,
            avg_lead_score=None if avg_score is None else float(avg_score),
        )
    return _Values(out)


def _session_values(
    sessions: int, visitors: int, converted: int, engaged_ms: float, signed: int
) -> dict[str, float | None]:
    return {
        "visitors": visitors,
        "sessions": sessions,
        "conversion_rate": _ratio(converted, sessions),
        "email_signup_rate": _ratio(signed, visitors),
        "engaged_time_per_session": _ratio(engaged_ms / 1000.0, sessions),
    }


def _empty(name: str) -> float | None:
    # Counts of nothing are 0; rates and means of nothing do not exist.
    return 0 if name in ("visitors", "sessions", "leads", "leads_per_day") else None


def _reading(
    name: str, channel: str | None, now: float | None, before: float | None, band: float
) -> Reading:
    change = None if now is None or before is None else now - before
    target = TARGETS.get(name)
    return Reading(
        channel=channel,
        value=now,
        previous=before,
        change=change,
        change_ratio=None if change is None or before is None else _ratio(change, before),
        status=target.status(now, band) if target else None,
    )


def _kpis(current: _Values, previous: _Values | None, band: float) -> tuple[Kpi, ...]:
    """Readings per KPI; without `previous` (not computed), no previous values or changes."""
    before_keys = previous.by_key if previous is not None else {}
    channels = {k for k in (*current.by_key, *before_keys) if k is not None}

    def value(values: _Values | None, key: str | None, name: str) -> float | None:
        if values is None:
            return None
        return values.by_key.get(key, {}).get(name, _empty(name))

    kpis = []
    for name in KPI_NAMES:
        by_channel = sorted(
            (
                _reading(name, ch, value(current, ch, name), value(previous, ch, name), band)
                for ch in channels
            ),
            key=lambda r: (-(r.value if r.value is not None else -math.inf), r.channel or ""),
        )
        kpis.append(
            Kpi(
                name=name,
                unit=UNITS[name],
                target=TARGETS.get(name),
                overall=_reading(
                    name, None, value(current, None, name), value(previous, None, name), band
                ),
                by_channel=tuple(by_channel),
            )
        )
    return tuple(kpis)


def _slope(ys: Sequence[float]) -> float | None:
    """Least-squares slope of `ys` against 0, 1, 2, ..."""
    n = len(ys)
    if n < 2:
        return None
    mean_x = (n - 1) / 2
    mean_y = sum(ys) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(ys))
    den = sum((x - mean_x) ** 2 for x in range(n))
    return num / den


def _lead_trend(reader: Reader, period: Period) -> LeadTrend:
    counts = {
        int(day): int(n) for day, n in reader.query(_DAILY_LEADS, [period.start_ms, *period.params])
    }
    n_days = -(-period.length_ms // DAY_MS)
    days = tuple(
        DailyLeads(
            start_ms=period.start_ms + i * DAY_MS,
            leads=counts.get(i, 0),
            full_day=period.start_ms + (i + 1) * DAY_MS <= period.end_ms,
        )
        for i in range(n_days)
    )
    return LeadTrend(days, _slope([float(d.leads) for d in days if d.full_day]))


@dataclass(frozen=True, slots=True)
class _Pages:
    """Converting sessions, their top paths, and where the others left."""

    converting: int
    top_paths: tuple[PathCount, ...]
    top_groups: tuple[PathCount, ...]
    exits: int
    drop_offs: tuple[DropOff, ...]


def _pages(reader: Reader, period: Period, top: int) -> _Pages:
    rows = reader.query(_PAGES, [*period.params * 3, top, top, top])
    total = next(int(r[2]) for r in rows if r[0] == "total")

    def counted(kind: str) -> tuple[PathCount, ...]:
        return tuple(
            PathCount(tuple(r[1]), int(r[2]), int(r[2]) / total) for r in rows if r[0] == kind
        )

    exits = [r for r in rows if r[0] == "exit"]
    all_exits = int(exits[0][4]) if exits else 0
    drop_offs = tuple(
        DropOff(
            path=steps[0],
            exits=int(count),
            pageviews=int(views),
            exit_rate=_ratio(int(count), int(views)),
            share=int(count) / all_exits,
        )
        for _, steps, count, views, _ in exits
    )
    return _Pages(total, counted("path"), counted("group"), all_exits, drop_offs)


def kpi_report(
    reader: Reader,
    period: Period,
    *,
    top: int = 10,
    yellow_band: float = YELLOW_BAND,
    paths: bool = True,
    previous: bool = True,
) -> KpiReport:
    """The KPIs of `period` against their targets and the period before, plus paths
    (without `paths`, the paths and drop-offs are left empty and not computed; without
    `previous`, the previous period's values and the changes are None)."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise AnalysisError("top", f"must be a positive whole number, got {top!r}")
    if not 0 <= yellow_band < 1:
        raise AnalysisError("yellow_band", f"must be in [0, 1), got {yellow_band!r}")
    before = period.previous()
    current = _period_values(reader, period)
    earlier = _period_values(reader, before) if previous else None
    pages = _pages(reader, period, top) if paths else _Pages(0, (), (), 0, ())
    return KpiReport(
        site=period.site,
        start_ms=period.start_ms,
        end_ms=period.end_ms,
        previous_start_ms=before.start_ms,
        previous_end_ms=before.end_ms,
        yellow_band=yellow_band,
        kpis=_kpis(current, earlier, yellow_band),
        lead_trend=_lead_trend(reader, period),
        converting_sessions=pages.converting,
        top_paths=pages.top_paths,
        top_page_group_paths=pages.top_groups,
        non_converting_exits=pages.exits,
        drop_offs=pages.drop_offs,
    )
