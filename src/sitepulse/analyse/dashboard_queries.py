"""The dashboards' own queries: leads today, leads per local date, score distribution by
channel, and conversion by the LCP of the landing page. Everything else on the dashboards
comes from the existing analyses (kpis, vitals, funnels, attribution, experiments).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Sequence
from typing import Any, Final

from sitepulse.analyse import kpis, vitals
from sitepulse.analyse.base import LEAD_FILTER, PERIOD_FILTER, Period, Reader

SCORE_BINS: Final = tuple(range(0, 101, 10))  # edges: [0, 10), ..., [90, 100]
UNSCORED: Final = "unscored"


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _midnight(day: dt.date, zone: zoneinfo.ZoneInfo) -> int:
    return int(dt.datetime.combine(day, dt.time(), zone).timestamp() * 1000)


_LEADS_TODAY = f"""
    SELECT count(*) FILTER (ts >= make_timestamp(?::BIGINT * 1000)),
           count(*) FILTER (ts < make_timestamp(?::BIGINT * 1000)),
           count(*) FILTER (ts < make_timestamp(?::BIGINT * 1000))
    FROM leads WHERE {LEAD_FILTER}
"""


def leads_today(reader: Reader, site: str, zone: str, now_ms: int) -> dict[str, Any]:
    """Leads since local midnight, yesterday's up to the same time, and all of yesterday's."""
    tz = zoneinfo.ZoneInfo(zone)
    today = dt.datetime.fromtimestamp(now_ms / 1000, tz).date()
    start = _midnight(today, tz)
    yesterday = _midnight(today - dt.timedelta(days=1), tz)
    same_time = min(yesterday + (now_ms - start), start)
    since = Period(site, yesterday, max(now_ms, start + 1))
    ((now, before, whole),) = reader.query(_LEADS_TODAY, [start, same_time, start, *since.params])
    return {
        "date": today.isoformat(),
        "timezone": zone,
        "today": int(now),
        "by_this_time_yesterday": int(before),
        "yesterday_total": int(whole),
    }


# Leads per local date: the site's zone applied to UTC timestamps (ICU), so days
# follow the site's midnights through daylight-saving changes.
_DAILY = f"""
    SELECT timezone(?, timezone('UTC', ts))::DATE::VARCHAR AS day, count(*) FROM leads
    WHERE {LEAD_FILTER} GROUP BY day
"""


def _dates(period: Period, zone: zoneinfo.ZoneInfo) -> list[str]:
    first = dt.datetime.fromtimestamp(period.start_ms / 1000, zone).date()
    last = dt.datetime.fromtimestamp((period.end_ms - 1) / 1000, zone).date()
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def daily_leads(reader: Reader, period: Period, zone: str) -> list[dict[str, Any]]:
    """Leads on each local date the period touches (first and last may be partial)."""
    counts = dict(reader.query(_DAILY, [zone, *period.params]))
    return [
        {"date": d, "leads": int(counts.get(d, 0))} for d in _dates(period, zoneinfo.ZoneInfo(zone))
    ]


_SCORES = f"""
    -- least() skips NULLs, so an unscored lead would land in the top bin without the CASE.
    SELECT channel,
           CASE WHEN score IS NOT NULL THEN greatest(least(floor(score / 10), 9), 0)::INTEGER END
               AS bin,
           coalesce(tier, '{UNSCORED}'),
           count(*), sum(score)
    FROM leads WHERE {LEAD_FILTER} GROUP BY ALL
"""


def score_distribution(reader: Reader, period: Period, tiers: Sequence[str]) -> dict[str, Any]:
    """Per channel: leads by score bin (10 points wide) and by tier, and the mean score."""
    rows: dict[str, dict[str, Any]] = {}
    for channel, bin_, tier, n, total in reader.query(_SCORES, period.params):
        row = rows.setdefault(
            channel,
            {
                "channel": channel,
                "leads": 0,
                "scored": 0,
                "score_sum": 0.0,
                "histogram": [0] * (len(SCORE_BINS) - 1),
                "tiers": dict.fromkeys([*tiers, UNSCORED], 0),
            },
        )
        row["leads"] += int(n)
        row["tiers"][tier] = row["tiers"].get(tier, 0) + int(n)
        if bin_ is not None:
            row["histogram"][bin_] += int(n)
            row["scored"] += int(n)
            row["score_sum"] += float(total)
    out = []
    for row in sorted(rows.values(), key=lambda r: (-r["leads"], r["channel"])):
        mean = _ratio(row.pop("score_sum"), row["scored"])
        target = kpis.TARGETS["avg_lead_score"]
        out.append(row | {"avg_score": mean, "status": target.status(mean)})
    return {"bins": list(SCORE_BINS), "tiers": [*tiers, UNSCORED], "rows": out}


# Sessions started in the period whose landing page load (page_seq 1) reported an LCP,
# by LCP range, with how many produced a lead; its worst LCP counts when sent twice.
_LANDING_LCP = f"""
    WITH landing AS (
        SELECT session_id, lcp FROM page_loads
        WHERE {PERIOD_FILTER} AND page_seq = 1 AND lcp IS NOT NULL
    ),
    started AS (
        SELECT session_id FROM sessions
        WHERE site = ? AND started_at >= make_timestamp(?::BIGINT * 1000)
          AND started_at < make_timestamp(?::BIGINT * 1000) AND NOT is_bot
    ),
    converted AS (SELECT DISTINCT session_id FROM leads WHERE {LEAD_FILTER})
    SELECT {{bucket}} AS bucket, count(*), count(c.session_id)
    FROM landing JOIN started USING (session_id)
    LEFT JOIN converted c USING (session_id)
    GROUP BY bucket
"""


def conversion_by_landing_lcp(reader: Reader, period: Period) -> dict[str, Any]:
    """Conversion of sessions by their landing page's LCP: by rating and by finer range."""
    buckets = vitals.LCP_BUCKETS
    index = " + ".join(
        f"(lcp > {b.upper_ms!r}::DOUBLE)::INTEGER" for b in buckets if b.upper_ms is not None
    )
    sql = _LANDING_LCP.format(bucket=index)
    counts = {int(b): (int(n), int(c)) for b, n, c in reader.query(sql, period.params * 3)}
    lcp = vitals.THRESHOLDS["LCP"]

    def row(label: str, members: Sequence[int], low: float, high: float | None) -> dict[str, Any]:
        n = sum(counts.get(i, (0, 0))[0] for i in members)
        c = sum(counts.get(i, (0, 0))[1] for i in members)
        return {
            "bucket": label,
            "lower_ms": low,
            "upper_ms": high,
            "sessions": n,
            "converting_sessions": c,
            "conversion_rate": _ratio(c, n),
        }

    by_range = [row(b.label, [i], b.lower_ms, b.upper_ms) for i, b in enumerate(buckets)]
    by_rating = []
    for rating in vitals.RATINGS:
        members = [
            i
            for i, b in enumerate(buckets)
            if lcp.rate(b.upper_ms if b.upper_ms is not None else math.inf) == rating
        ]
        low = buckets[members[0]].lower_ms
        by_rating.append(row(rating, members, low, buckets[members[-1]].upper_ms))
    return {"by_rating": by_rating, "by_range": by_range}
