"""Web Vitals: percentiles, Google's ratings, Core Web Vitals pass rate, LCP vs conversion.

Samples. One sample per page load and metric: the worst (largest) value the load reported
(the web-vitals library reports each metric once per load, again after a back/forward-cache
restore), as CrUX counts page loads. Loads come from `page_loads` (one row per page view,
kept by the loader with the worst LCP, INP, CLS, FCP and TTFB of the load) and belong to
the period by their page view's time. Bots never count. Breakdowns are by the load's page
group or device class; an empty one is "(not set)". A vital whose page view is unknown
(page_seq 0: a few in a hundred thousand) belongs to no load and is not counted.

Percentiles are DuckDB `quantile_cont`: linear interpolation between the two closest ranks,
h = (n - 1) * q (Hyndman-Fan type 7), the same as `numpy.percentile`'s default. ClickHouse
`quantile` interpolates the same way but over a reservoir sample of 8,192 values, so the
two agree exactly up to 8,192 samples and approximately beyond.

Ratings follow web.dev and the web-vitals library: good when value <= the good threshold,
poor when value > the poor threshold, needs improvement in between.

Page loads. A load passes the Core Web Vitals when each of LCP, INP and CLS that it
measured is good: INP exists only after an interaction, so a load without one passes on LCP
and CLS alone; loads with none of the three are not assessed.

LCP and conversion. Each page load with an LCP falls in a rating bucket and in a finer
bucket (0-1 s, 1-2 s, 2-2.5 s, 2.5-4 s, > 4 s; upper edges inclusive, so the finer buckets
nest in the ratings). A bucket's conversion rate is the share of its distinct sessions that
produced a non-test lead in the period; a session whose loads fall in several buckets
counts once in each.

Cost. Four statements over the period's rows of page_loads (a twelfth of the events): the
distributions by group, the overall ones, the loads by group and LCP bucket, and the
sessions' bucket masks against the converted sessions. On 10M events (820k page loads) the
exact percentiles are most of the time.

Memory. Exact percentiles keep every sample of a statement's groups in memory until the
end (DuckDB cannot spill quantile states): 8 bytes a load and metric. A bounded sketch
(ClickHouse's `quantile` keeps a reservoir of 8,192 samples per group) would trade
exactness for memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, cast, get_args

import msgspec

from sitepulse.analyse.base import LEAD_FILTER, PERIOD_FILTER, AnalysisError, Period, Reader

Rating = Literal["good", "needs-improvement", "poor"]
By = Literal["page_group", "device"]
RATINGS: Final[tuple[Rating, ...]] = get_args(Rating)


@dataclass(frozen=True, slots=True)
class Threshold:
    """Google's rating boundaries for one metric: good <= `good` < needs improvement <= `poor`."""

    metric: str
    good: float
    poor: float
    unit: str  # "ms", or "" for the unitless CLS

    def rate(self, value: float) -> Rating:
        """The web-vitals library's rating of `value`."""
        if value <= self.good:
            return "good"
        return "needs-improvement" if value <= self.poor else "poor"


# web.dev/articles/vitals (LCP, INP, CLS), /fcp and /ttfb, as of 2024 (INP replaced FID).
THRESHOLDS: Final[Mapping[str, Threshold]] = MappingProxyType(
    {
        "LCP": Threshold("LCP", 2500.0, 4000.0, "ms"),
        "INP": Threshold("INP", 200.0, 500.0, "ms"),
        "CLS": Threshold("CLS", 0.1, 0.25, ""),
        "FCP": Threshold("FCP", 1800.0, 3000.0, "ms"),
        "TTFB": Threshold("TTFB", 800.0, 1800.0, "ms"),
    }
)
METRICS: Final[tuple[str, ...]] = tuple(THRESHOLDS)
CORE_METRICS: Final[tuple[str, ...]] = ("LCP", "INP", "CLS")
QUANTILES: Final[tuple[float, ...]] = (0.5, 0.75, 0.9, 0.95)
CWV_TARGET: Final = 0.90
"""Share of page loads that must pass the Core Web Vitals (the seed's 90 % SLO)."""
QUANTILE_METHOD: Final = "duckdb quantile_cont: linear interpolation, h = (n - 1) q (type 7)"


@dataclass(frozen=True, slots=True)
class LcpBucket:
    """An LCP range in ms, lower edge exclusive (except 0), upper edge inclusive."""

    label: str
    lower_ms: float
    upper_ms: float | None  # None: no upper edge

    def contains(self, value: float) -> bool:
        """Whether an LCP of `value` ms falls in this bucket."""
        above = value >= self.lower_ms if self.lower_ms == 0 else value > self.lower_ms
        return above and (self.upper_ms is None or value <= self.upper_ms)


_LCP = THRESHOLDS["LCP"]
LCP_BUCKETS: Final[tuple[LcpBucket, ...]] = (
    LcpBucket("0-1 s", 0.0, 1000.0),
    LcpBucket("1-2 s", 1000.0, 2000.0),
    LcpBucket("2-2.5 s", 2000.0, _LCP.good),
    LcpBucket("2.5-4 s", _LCP.good, _LCP.poor),
    LcpBucket("> 4 s", _LCP.poor, None),
)


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: nested records become dicts, tuples become lists."""
        return cast("dict[str, Any]", msgspec.json.decode(msgspec.json.encode(self)))


@dataclass(frozen=True, slots=True)
class MetricStats(_Record):
    """One metric's distribution in one group; percentiles and shares are None without data."""

    metric: str
    samples: int
    p50: float | None
    p75: float | None
    p90: float | None
    p95: float | None
    good: int
    needs_improvement: int
    poor: int
    good_share: float | None
    needs_improvement_share: float | None
    poor_share: float | None
    p75_rating: Rating | None  # how CrUX rates a page or origin: by its p75


@dataclass(frozen=True, slots=True)
class Compliance(_Record):
    """Page loads passing every Core Web Vital they measured, against the 90 % target."""

    page_loads: int  # loads with at least one of LCP, INP, CLS
    passing: int
    without_inp: int  # assessed on LCP and CLS only
    share: float | None
    target: float
    met: bool | None


@dataclass(frozen=True, slots=True)
class GroupVitals(_Record):
    """Every metric of one group (a page group, a device class, or "all")."""

    key: str
    metrics: tuple[MetricStats, ...]
    compliance: Compliance

    def metric(self, name: str) -> MetricStats:
        """The stats of metric `name` (LCP, INP, CLS, FCP or TTFB)."""
        for stats in self.metrics:
            if stats.metric == name:
                return stats
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class LcpConversion(_Record):
    """Sessions with a page load in one LCP bucket, and how many of them produced a lead."""

    bucket: str
    lower_ms: float
    upper_ms: float | None
    page_loads: int
    sessions: int
    converting_sessions: int
    conversion_rate: float | None


@dataclass(frozen=True, slots=True)
class VitalsReport(_Record):
    """Web Vitals of one site and period, overall and by page group or device class."""

    site: str
    start_ms: int
    end_ms: int
    by: By | None
    quantile_method: str
    overall: GroupVitals
    groups: tuple[GroupVitals, ...]  # by `by`, most samples first; empty when `by` is None
    lcp_by_rating: tuple[LcpConversion, ...]
    lcp_by_range: tuple[LcpConversion, ...]

    def group(self, key: str) -> GroupVitals:
        """The breakdown row for `key`."""
        for group in self.groups:
            if group.key == key:
                return group
        raise KeyError(key)


ALL: Final = "all"
_NOT_SET: Final = "(not set)"


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _num(value: float) -> str:
    # A DOUBLE literal: a bare 0.1 would be a DECIMAL in DuckDB.
    return f"{value!r}::DOUBLE"


def _column(metric: str) -> str:
    """The page_loads column of a metric (its worst value in the load)."""
    return metric.lower()


def _distribution_sql(by: By | None) -> list[str]:
    """Per metric, overall and per group with `by`: loads, percentiles, good and poor counts.

    One row per group, then one overall: (overall, group, then per metric in METRICS:
    loads, [p50, p75, p90, p95], good, poor). Every metric is a column of page_loads, so
    one scan of the period's loads answers all five at once. The groups and the overall
    row are two statements: GROUPING SETS would compute each quantile state twice in one
    pass, which costs more than a second scan of these few columns.
    """
    # `by` goes into SQL as a column name, so only the two known names get this far.
    per_metric = ", ".join(
        f"count({c}), quantile_cont({c}, {list(QUANTILES)}),"
        f" count(*) FILTER ({c} <= {_num(t.good)}), count(*) FILTER ({c} > {_num(t.poor)})"
        for t in THRESHOLDS.values()
        for c in [_column(t.metric)]
    )
    measured = " OR ".join(f"{_column(m)} IS NOT NULL" for m in METRICS)
    loads = f"FROM page_loads WHERE {PERIOD_FILTER} AND ({measured})"
    overall = f"SELECT true, NULL, {per_metric} {loads}"
    if by is None:
        return [overall]
    return [f"SELECT false, {by}, {per_metric} {loads} GROUP BY {by}", overall]


def _loads_sql(by: By | None) -> str:
    """Page loads with any Core Web Vital, by group and LCP bucket: (group, LCP bucket index
    or NULL, loads, passing, without INP)."""
    lcp, inp, cls = (THRESHOLDS[m] for m in CORE_METRICS)
    return f"""
        SELECT {by or "NULL"}, {_bucket_sql()}, count(*),
               count(*) FILTER (coalesce(lcp <= {_num(lcp.good)}, true)
                                AND coalesce(inp <= {_num(inp.good)}, true)
                                AND coalesce(cls <= {_num(cls.good)}, true)),
               count(*) FILTER (inp IS NULL)
        FROM page_loads
        WHERE {PERIOD_FILTER} AND (lcp IS NOT NULL OR inp IS NOT NULL OR cls IS NOT NULL)
        GROUP BY ALL
    """


def _bucket_sql() -> str:
    # The bucket index is how many upper edges the LCP is above (NULL without an LCP).
    return " + ".join(
        f"(lcp > {_num(b.upper_ms)})::TINYINT" for b in LCP_BUCKETS if b.upper_ms is not None
    )


# Sessions by the set of LCP buckets their loads fell in (a bit mask, so each session
# counts once), with how many of them produced a lead: (mask, sessions, converting).
_SESSION_MASKS_SQL = f"""
    WITH masks AS (
        SELECT session_id, bit_or(1 << ({_bucket_sql()})) AS mask FROM page_loads
        WHERE {PERIOD_FILTER} AND lcp IS NOT NULL
        GROUP BY session_id
    ),
    converted AS (SELECT DISTINCT session_id FROM leads WHERE {LEAD_FILTER})
    SELECT mask, count(*), count(*) FILTER (session_id IN (SELECT session_id FROM converted))
    FROM masks GROUP BY mask
"""


def _metric_rows(row: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """One distribution row split per metric: (overall, group, name, n, [q], good, poor)."""
    return [
        (row[0], row[1], metric, *row[2 + 4 * i : 6 + 4 * i]) for i, metric in enumerate(METRICS)
    ]


def _metric_stats(metric: str, row: tuple[Any, ...] | None) -> MetricStats:
    if row is None or not row[3]:
        return MetricStats(metric, 0, None, None, None, None, 0, 0, 0, None, None, None, None)
    n, q, good, poor = int(row[3]), [float(x) for x in row[4]], int(row[5]), int(row[6])
    middle = n - good - poor
    return MetricStats(
        metric=metric,
        samples=n,
        p50=q[0],
        p75=q[1],
        p90=q[2],
        p95=q[3],
        good=good,
        needs_improvement=middle,
        poor=poor,
        good_share=_ratio(good, n),
        needs_improvement_share=_ratio(middle, n),
        poor_share=_ratio(poor, n),
        p75_rating=THRESHOLDS[metric].rate(q[1]),
    )


def _compliance(loads: int, passing: int, without_inp: int) -> Compliance:
    share = _ratio(passing, loads)
    met = None if share is None else share >= CWV_TARGET
    return Compliance(loads, passing, without_inp, share, CWV_TARGET, met)


_LCP_RATINGS: Final = (
    LcpBucket("good", 0.0, _LCP.good),
    LcpBucket("needs-improvement", _LCP.good, _LCP.poor),
    LcpBucket("poor", _LCP.poor, None),
)
# Which LCP_BUCKETS make up each rating (the buckets nest in the ratings).
_RATING_OF_BUCKET: Final = tuple(
    RATINGS.index(_LCP.rate(b.upper_ms if b.upper_ms is not None else math.inf))
    for b in LCP_BUCKETS
)


def _lcp_conversions(
    bucket_loads: Sequence[int], masks: Sequence[tuple[int, int, int]]
) -> tuple[tuple[LcpConversion, ...], tuple[LcpConversion, ...]]:
    """(by rating, by range), from loads per bucket and (mask, sessions, converting) rows."""
    n = len(LCP_BUCKETS)
    # slots 0..n-1 are the buckets, n.. the ratings
    loads = [*bucket_loads, *([0] * len(RATINGS))]
    sessions = [0] * (n + len(RATINGS))
    converting = [0] * (n + len(RATINGS))
    for i, rating in enumerate(_RATING_OF_BUCKET):
        loads[n + rating] += bucket_loads[i]
    for mask, count, conv in masks:
        slots = {i for i in range(n) if mask >> i & 1}
        slots |= {n + _RATING_OF_BUCKET[i] for i in slots}
        for slot in slots:
            sessions[slot] += count
            converting[slot] += conv
    items = tuple(
        LcpConversion(
            bucket=b.label,
            lower_ms=b.lower_ms,
            upper_ms=b.upper_ms,
            page_loads=loads[i],
            sessions=sessions[i],
            converting_sessions=converting[i],
            conversion_rate=_ratio(converting[i], sessions[i]),
        )
        for i, b in enumerate((*LCP_BUCKETS, *_LCP_RATINGS))
    )
    return items[n:], items[:n]


def vitals_summary(reader: Reader, period: Period, *, by: By | None = "page_group") -> VitalsReport:
    """Web Vitals of `period`: percentiles, ratings, CWV pass rate, LCP against conversion."""
    if by is not None and by not in get_args(By):
        raise AnalysisError("by", f"must be one of {', '.join(get_args(By))} or None, got {by!r}")
    dist = [
        r
        for sql in _distribution_sql(by)
        for row in reader.query(sql, period.params)
        for r in _metric_rows(row)
    ]
    load_rows = reader.query(_loads_sql(by), period.params)
    masks = [
        (int(mask), int(count), int(conv))
        for mask, count, conv in reader.query(_SESSION_MASKS_SQL, [*period.params, *period.params])
    ]

    overall_rows: dict[str, tuple[Any, ...]] = {}
    group_rows: dict[str, dict[str, tuple[Any, ...]]] = {}
    samples: dict[str, int] = {}
    rated: dict[str, list[int]] = {}
    for r in dist:
        if r[0]:
            overall_rows[r[2]] = r
        else:
            key = r[1] or _NOT_SET
            group_rows.setdefault(key, {})[r[2]] = r
            samples[key] = samples.get(key, 0) + int(r[3])
            counts = rated.setdefault(r[2], [0, 0])
            counts[0] += int(r[5])
            counts[1] += int(r[6])
    if by is not None:
        overall_rows = {m: (*r[:5], *rated.get(m, [0, 0])) for m, r in overall_rows.items()}
    group_counts: dict[str, list[int]] = {}
    bucket_loads = [0] * len(LCP_BUCKETS)
    for grp, index, count, passing, without_inp in load_rows:
        if index is not None:
            bucket_loads[index] += int(count)
        totals = group_counts.setdefault(grp or _NOT_SET if by else ALL, [0, 0, 0])
        for i, value in enumerate((count, passing, without_inp)):
            totals[i] += int(value)
    overall_counts = [sum(c[i] for c in group_counts.values()) for i in range(3)]
    keys = sorted(
        set(group_rows) | (set(group_counts) if by else set()),
        key=lambda k: (-samples.get(k, 0), k),
    )
    groups = tuple(
        GroupVitals(
            key,
            tuple(_metric_stats(m, group_rows.get(key, {}).get(m)) for m in METRICS),
            _compliance(*group_counts.get(key, [0, 0, 0])),
        )
        for key in keys
    )
    overall = GroupVitals(
        ALL,
        tuple(_metric_stats(m, overall_rows.get(m)) for m in METRICS),
        _compliance(*overall_counts),
    )
    by_rating, by_range = _lcp_conversions(bucket_loads, masks)
    return VitalsReport(
        site=period.site,
        start_ms=period.start_ms,
        end_ms=period.end_ms,
        by=by,
        quantile_method=QUANTILE_METHOD,
        overall=overall,
        groups=groups,
        lcp_by_rating=by_rating,
        lcp_by_range=by_range,
    )


def cwv_compliance(reader: Reader, period: Period) -> Compliance:
    """The period's Core Web Vitals pass rate alone (one statement, no percentiles)."""
    counts = [0, 0, 0]
    for _grp, _bucket, *values in reader.query(_loads_sql(None), period.params):
        for i, value in enumerate(values):
            counts[i] += int(value)
    return _compliance(*counts)


def core_vitals_by(
    reader: Reader, period: Period, by: By = "page_group"
) -> tuple[GroupVitals, ...]:
    """LCP, INP and CLS per group with each group's CWV pass rate, in one statement (what a
    dashboard's "by page" table needs: no FCP or TTFB, no overall row, no LCP conversion).
    Groups as in `vitals_summary`'s, most LCP/INP/CLS samples first; FCP and TTFB are
    left empty."""
    if by not in get_args(By):
        raise AnalysisError("by", f"must be one of {', '.join(get_args(By))}, got {by!r}")
    lcp, inp, cls = (THRESHOLDS[m] for m in CORE_METRICS)
    per_metric = ", ".join(
        f"count({c}), quantile_cont({c}, {list(QUANTILES)}),"
        f" count(*) FILTER ({c} <= {_num(t.good)}), count(*) FILTER ({c} > {_num(t.poor)})"
        for t in (lcp, inp, cls)
        for c in [_column(t.metric)]
    )
    sql = f"""
        SELECT {by}, {per_metric}, count(*),
               count(*) FILTER (coalesce(lcp <= {_num(lcp.good)}, true)
                                AND coalesce(inp <= {_num(inp.good)}, true)
                                AND coalesce(cls <= {_num(cls.good)}, true)),
               count(*) FILTER (inp IS NULL)
        FROM page_loads
        WHERE {PERIOD_FILTER} AND (lcp IS NOT NULL OR inp IS NOT NULL OR cls IS NOT NULL)
        GROUP BY {by}
    """
    groups = []
    for row in reader.query(sql, period.params):
        stats = {
            metric: _metric_stats(metric, (None, None, metric, *row[1 + 4 * i : 5 + 4 * i]))
            for i, metric in enumerate(CORE_METRICS)
        }
        groups.append(
            GroupVitals(
                row[0] or _NOT_SET,
                tuple(stats.get(m) or _metric_stats(m, None) for m in METRICS),
                _compliance(int(row[13]), int(row[14]), int(row[15])),
            )
        )
    return tuple(sorted(groups, key=lambda g: (-sum(m.samples for m in g.metrics), g.key)))
