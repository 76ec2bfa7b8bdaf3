"""Analysis benchmark: every analysis over ~10M generated events, with ClickHouse as the peer.

The data is the demo's traffic, enriched and stored for real (see bench/dataset.py), 90
days of it for the demo site, cached between runs. The store is opened as a server would
open it (product defaults for memory and threads), the garbage collector is tuned as
`sitepulse serve` tunes it (`tune_gc`: lead scoring builds a few objects per lead), and
each analysis is called through its public function over the whole period: warm (one run
first, not counted), then `--runs` timed runs, reported as median, p95 (nearest rank) and
max.

- funnel: `funnels.funnel` with the default lead funnel
- vitals: `vitals.vitals_summary` by page group
- kpis: `kpis.kpi_report`
- attribution: `touchpoints.attribution_report`, i.e. the lead journeys (SQL) and
  `attribution.report` with all six models, by channel
- experiment: `experiments.experiment_report` for `pricing_cta` (counts by SQL, daily
  looks, `read_experiment`)
- scoring: `lead_scores.score_stored_leads` for every lead (each lead's facts in one pass
  over the events, then `score_lead` for each)

The peer is chdb (ClickHouse in-process): the columns the two comparisons need are
exported once to Parquet and loaded into MergeTree tables (events ordered by (site,
visitor_id, ts)). It answers the default funnel with `windowFunnel` and the Web Vitals
percentiles with `quantiles`, from the events: our definition counts a page load's worst
value of each metric once, which ClickHouse works out per (session, page) as a user without
our loader would. Each is timed run by run in alternation with ours, so that other load on
the machine slows both alike; ratio = our median over theirs (target <= 1). Ours read the
page_loads table our loader keeps (its cost is paid at ingest and measured by
bench/ingest.py); for the record, both engines also compute the same percentiles over the
same page_loads rows (`vitals_percentiles_same_rows`, not a target). Their answers are
checked against ours and the agreement reported.

Progress goes to stderr; the last line on stdout is one JSON object.
Run from the repository root: `.venv/bin/python -m bench.analyses` (a first run builds the
10M-event dataset, which takes a while; `--events 200000` makes a small one).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

import duckdb

from bench.dataset import MARKER, SITE, Dataset, DatasetSpec, ensure, open_store, settings
from sitepulse.analyse import funnels, kpis, vitals
from sitepulse.analyse.attribution import Dimension
from sitepulse.analyse.base import Period
from sitepulse.analyse.experiments import ExperimentReport, experiment_report
from sitepulse.analyse.lead_scores import score_stored_leads
from sitepulse.analyse.touchpoints import attribution_report
from sitepulse.cli.serving import tune_gc
from sitepulse.config.analysis import ExperimentSettings
from sitepulse.config.models import Settings
from sitepulse.store.duckdb import DuckDBStore

TARGET_MS = 1_000.0
TARGET_RATIO = 1.0
TARGET_RATIOS = ("funnel", "vitals")  # our time over chdb's that must be <= TARGET_RATIO
EXPERIMENT = "pricing_cta"
# ClickHouse's `quantile` is exact up to 8,192 samples and a reservoir sample beyond.
VITALS_TOLERANCE = 0.05
# Our strict funnel is meant to count exactly as windowFunnel's default mode; the tolerance
# only tells a difference at the edges (ties, window bounds) from a wrong answer.
FUNNEL_TOLERANCE = 0.02
COUNT_TOLERANCE = 0.001


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall-clock times of the counted runs, in milliseconds."""

    median_ms: float
    p95_ms: float
    max_ms: float
    runs: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        """Median, nearest-rank p95 and max of `seconds`."""
        ordered = sorted(s * 1000 for s in seconds)
        n = len(ordered)
        middle = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
        p95 = ordered[max(0, math.ceil(0.95 * n) - 1)]
        return cls(round(middle, 1), round(p95, 1), round(ordered[-1], 1), n)


def measure(run: Callable[[], Any], runs: int) -> tuple[Timing, Any]:
    """Run once to warm up, then `runs` timed runs; the timing and the last answer."""
    answer = run()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = run()
        seconds.append(time.perf_counter() - started)
    return Timing.of(seconds), answer


def analyses(store: DuckDBStore, period: Period, config: Settings) -> dict[str, Callable[[], Any]]:
    """Each benchmarked analysis as a call over the whole period."""
    experiment = ExperimentSettings(name=EXPERIMENT)
    return {
        "funnel": lambda: funnels.funnel(store, period, funnels.DEFAULT_LEAD_FUNNEL),
        "vitals": lambda: vitals.vitals_summary(store, period, by="page_group"),
        "kpis": lambda: kpis.kpi_report(store, period),
        "attribution": lambda: attribution_report(
            store, period, config.attribution, Dimension.CHANNEL
        ),
        "experiment": lambda: experiment_report(store, period, experiment),
        "scoring": lambda: score_stored_leads(store, config, None, period.end_ms),
    }


# What the two comparisons read, exported once from the store. Times as epoch ms: that is
# the unit windowFunnel wants its timestamps and window in.
_EXPORT_EVENTS = """
COPY (
    SELECT site, visitor_id, session_id, epoch_ms(ts) AS ts, type, name, path, page_group,
           value, is_bot, page_seq
    FROM events
) TO '{path}' (FORMAT parquet)
"""
_EXPORT_LOADS = """
COPY (
    SELECT site, session_id, page_seq, epoch_ms(ts) AS ts, page_group, is_bot,
           lcp, inp, cls, fcp, ttfb
    FROM page_loads
) TO '{path}' (FORMAT parquet)
"""
_EXPORT_LEADS = """
COPY (
    SELECT site, visitor_id, session_id, epoch_ms(ts) AS ts, form, is_bot, is_test FROM leads
) TO '{path}' (FORMAT parquet)
"""
# The schema a ClickHouse user would choose: dictionary-coded repeated strings, and the
# sort key the funnel groups by.
_CH_TABLES = {
    "events": """
        CREATE TABLE events (
            site LowCardinality(String), visitor_id UInt64, session_id UInt64, ts UInt64,
            type LowCardinality(String), name LowCardinality(String),
            path LowCardinality(String), page_group LowCardinality(String),
            value Nullable(Float64), is_bot Bool, page_seq UInt16
        ) ENGINE = MergeTree ORDER BY (site, visitor_id, ts)
    """,
    "page_loads": """
        CREATE TABLE page_loads (
            site LowCardinality(String), session_id UInt64, page_seq UInt16, ts UInt64,
            page_group LowCardinality(String), is_bot Bool,
            lcp Nullable(Float64), inp Nullable(Float64), cls Nullable(Float64),
            fcp Nullable(Float64), ttfb Nullable(Float64)
        ) ENGINE = MergeTree ORDER BY (site, ts)
    """,
    "leads": """
        CREATE TABLE leads (
            site LowCardinality(String), visitor_id UInt64, session_id UInt64, ts UInt64,
            form LowCardinality(String), is_bot Bool, is_test Bool
        ) ENGINE = MergeTree ORDER BY (site, visitor_id, ts)
    """,
}
_PERIOD = "site = {site:String} AND ts >= {start:UInt64} AND ts < {end:UInt64} AND NOT is_bot"
# The default lead funnel (funnels.DEFAULT_LEAD_FUNNEL), by visitor: a visitor's level is the
# furthest step a chain within the window reached; step k counts the levels >= k.
_CH_FUNNEL = f"""
SELECT level, count() FROM (
    SELECT visitor_id, windowFunnel({{window}})(ts, c1, c2, c3, c4, c5, c6) AS level
    FROM (
        SELECT visitor_id, ts,
               type = 'pageview' AS c1,
               type = 'pageview' AND startsWith(path, '/services') AS c2,
               type = 'pageview' AND startsWith(path, '/contact') AS c3,
               type = 'form' AND name = 'form_start' AS c4,
               type = 'form' AND name = 'submit' AS c5,
               false AS c6
        FROM events WHERE {_PERIOD} AND type IN ('pageview', 'form')
        UNION ALL
        SELECT visitor_id, ts, false, false, false, false, false, true
        FROM leads WHERE {_PERIOD} AND NOT is_test
    )
    GROUP BY visitor_id
)
GROUP BY level ORDER BY level
"""
_QUANTILES = (0.5, 0.75, 0.9, 0.95)
# Our definition (see analyse/vitals.py): one sample per page load and metric, its worst
# value. ClickHouse works it out from the events, as a user without our loader would.
_CH_VITALS = f"""
SELECT grp, name, count(), quantiles({", ".join(map(str, _QUANTILES))})(v)
FROM (
    SELECT any(if(page_group = '', '(not set)', page_group)) AS grp, name, max(value) AS v
    FROM events
    WHERE {_PERIOD} AND type = 'vital' AND isFinite(value) AND session_id <> 0
      AND page_seq > 0 AND name IN ('LCP', 'INP', 'CLS', 'FCP', 'TTFB')
    GROUP BY session_id, page_seq, name
)
GROUP BY GROUPING SETS ((grp, name), (name))
SETTINGS group_by_use_nulls = 1
"""
# Not a target, for the record: both engines on the same page_loads rows (ours are kept by
# the loader), the percentiles alone. Engine against engine, without the rollup's help.
_CH_LOADS_VITALS = f"""
SELECT grp, name, count(), quantiles({", ".join(map(str, _QUANTILES))})(v)
FROM (
    SELECT if(page_group = '', '(not set)', page_group) AS grp, name, v
    FROM page_loads
    ARRAY JOIN ['LCP', 'INP', 'CLS', 'FCP', 'TTFB'] AS name, [lcp, inp, cls, fcp, ttfb] AS v
    WHERE {_PERIOD} AND v IS NOT NULL
)
GROUP BY GROUPING SETS ((grp, name), (name))
SETTINGS group_by_use_nulls = 1
"""
_DUCK_LOADS_VITALS = f"""
SELECT grp, name, count(*), quantile_cont(v, {list(_QUANTILES)})
FROM (
    SELECT coalesce(nullif(page_group, ''), '(not set)') AS grp, name, v
    FROM (UNPIVOT (
        SELECT page_group, lcp AS LCP, inp AS INP, cls AS CLS, fcp AS FCP, ttfb AS TTFB
        FROM page_loads
        WHERE site = ? AND ts >= make_timestamp(?::BIGINT * 1000)
          AND ts < make_timestamp(?::BIGINT * 1000) AND NOT is_bot
    ) ON LCP, INP, CLS, FCP, TTFB INTO NAME name VALUE v)
)
GROUP BY GROUPING SETS ((grp, name), (name))
"""


class _Result(Protocol):
    def bytes(self) -> bytes: ...


class _Session(Protocol):
    """The part of `chdb.session.Session` used here (chdb has no type hints)."""

    def query(
        self, sql: str, fmt: str = ..., *, params: dict[str, Any] | None = ...
    ) -> _Result: ...

    def close(self) -> None: ...


class ClickHouse:
    """chdb over the benchmark's events and leads, kept in MergeTree tables beside the data."""

    def __init__(self, store: DuckDBStore, dataset: Dataset, log: Callable[[str], None]) -> None:
        folder = dataset.folder / "chdb"
        folder.mkdir(exist_ok=True)
        # Imported here: only the peer needs chdb.
        chdb_session = importlib.import_module("chdb.session")
        self.session: _Session = chdb_session.Session(str(folder / "db"))
        self.load_seconds: float | None = None
        ((loads,),) = store.query("SELECT count(*) FROM page_loads")
        if (
            self._count("events") != dataset.events
            or self._count("leads") != dataset.leads
            or self._count("page_loads") != loads
        ):
            started = time.perf_counter()
            log("loading the events, page loads and leads into chdb (once per dataset)")
            exports = (
                ("events", _EXPORT_EVENTS),
                ("page_loads", _EXPORT_LOADS),
                ("leads", _EXPORT_LEADS),
            )
            for table, export in exports:
                parquet = folder / f"{table}.parquet"
                store.query(export.format(path=str(parquet).replace("'", "''")))
                self.session.query(f"DROP TABLE IF EXISTS {table}")
                self.session.query(_CH_TABLES[table])
                self.session.query(
                    f"INSERT INTO {table} SELECT * FROM file({_quote(str(parquet))}, Parquet)"
                )
                self.session.query(f"OPTIMIZE TABLE {table} FINAL")
                parquet.unlink()
            self.load_seconds = time.perf_counter() - started

    def _count(self, table: str) -> int | None:
        exists = self.rows(f"EXISTS TABLE {table}")
        return int(self.rows(f"SELECT count() FROM {table}")[0][0]) if exists[0][0] else None

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        """The answer's rows, decoded from ClickHouse's compact JSON."""
        result = self.session.query(sql, "JSONCompact", params=params)
        data: list[list[Any]] = json.loads(result.bytes())["data"]
        return data

    def version(self) -> str:
        return str(self.rows("SELECT version()")[0][0])

    def close(self) -> None:
        self.session.close()


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _relative(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None:
        return None
    scale = max(abs(ours), abs(theirs))
    return abs(ours - theirs) / scale if scale else 0.0


def funnel_levels(rows: Sequence[Sequence[Any]], steps: int) -> list[int]:
    """Visitors reaching each step, from windowFunnel's (level, visitors) rows."""
    reached = [0] * steps
    for level, visitors in rows:
        for k in range(min(int(level), steps)):
            reached[k] += int(visitors)
    return reached


def funnel_agreement(ours: Sequence[int], theirs: Sequence[int]) -> dict[str, Any]:
    """Per-step counts side by side and the largest relative difference."""
    worst = max((_relative(a, b) or 0.0 for a, b in zip(ours, theirs, strict=True)), default=0.0)
    return {
        "ours": list(ours),
        "chdb": list(theirs),
        "identical": list(ours) == list(theirs),
        "max_rel_diff": round(worst, 6),
        "tolerance": FUNNEL_TOLERANCE,
        "ok": worst <= FUNNEL_TOLERANCE,
    }


def vitals_agreement(report: vitals.VitalsReport, rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Samples and percentiles per (group, metric): ours against ClickHouse's."""
    theirs = {(row[0] or vitals.ALL, row[1]): (int(row[2]), row[3]) for row in rows}
    compared = samples_differ = 0
    worst_p75 = worst_any = 0.0
    worst_at = ""
    for group in (report.overall, *report.groups):
        for stats in group.metrics:
            found = theirs.pop((group.key, stats.metric), None)
            if found is None:
                samples_differ += stats.samples > 0
                continue
            count, quantiles = found
            compared += 1
            # A session id the tracker re-learned (a backend's own ids, after eviction)
            # numbers its pages from 1 again: a few in 10^4 loads differ in grouping.
            samples_differ += (_relative(count, stats.samples) or 0.0) > COUNT_TOLERANCE
            mine = (stats.p50, stats.p75, stats.p90, stats.p95)
            diffs = [_relative(a, float(b)) or 0.0 for a, b in zip(mine, quantiles, strict=True)]
            if diffs[1] > worst_p75:
                worst_p75, worst_at = diffs[1], f"{group.key} {stats.metric}"
            worst_any = max(worst_any, *diffs)
    samples_differ += len(theirs)  # groups only ClickHouse saw
    return {
        "groups_compared": compared,
        "sample_counts_differ": samples_differ,
        "p75_max_rel_diff": round(worst_p75, 6),
        "p75_worst": worst_at,
        "p50_p95_max_rel_diff": round(worst_any, 6),
        "tolerance": VITALS_TOLERANCE,
        "ok": samples_differ == 0 and worst_p75 <= VITALS_TOLERANCE,
    }


def _answers(results: dict[str, Any]) -> dict[str, Any]:
    """A few figures from each answer, to show what was computed."""
    out: dict[str, Any] = {}
    if "funnel" in results:
        report: funnels.FunnelReport = results["funnel"]
        out["funnel_visitors"] = [step.units for step in report.steps]
    if "vitals" in results:
        summary: vitals.VitalsReport = results["vitals"]
        out["vitals_groups"] = len(summary.groups)
        out["vitals_lcp_p75_ms"] = summary.overall.metric("LCP").p75
    if "kpis" in results:
        out["kpis"] = len(results["kpis"].kpis)
    if "attribution" in results:
        out["attribution_leads"] = results["attribution"].lead_count
    if "experiment" in results:
        found: ExperimentReport = results["experiment"]
        readout = found.readout
        out["experiment"] = found.name
        out["experiment_visitors"] = None if readout is None else [a.visitors for a in readout.arms]
        out["experiment_verdict"] = found.problem if readout is None else readout.verdict
    if "scoring" in results:
        out["leads_scored"] = len(results["scoring"])
    return out


def _ratio(ours: Timing | None, theirs: Timing) -> float | None:
    return None if ours is None else round(ours.median_ms / theirs.median_ms, 2)


def period_params(period: Period) -> dict[str, Any]:
    """The ClickHouse query parameters of `period`."""
    return {"site": period.site, "start": period.start_ms, "end": period.end_ms}


def peer_queries(ch: ClickHouse, period: Period) -> dict[str, Callable[[], list[list[Any]]]]:
    """ClickHouse's answer to each compared analysis, by the analysis's name."""
    params = period_params(period)
    funnel_sql = _CH_FUNNEL.replace("{window}", str(funnels.DEFAULT_LEAD_FUNNEL.window_ms))
    return {
        "funnel": lambda: ch.rows(funnel_sql, params),
        "vitals": lambda: ch.rows(_CH_VITALS, params),
    }


def measure_pair(
    ours: Callable[[], Any], theirs: Callable[[], Any], runs: int
) -> tuple[Timing, Any, Timing, Any]:
    """`measure` for two calls at once, alternating run by run, so that whatever else the
    machine is doing slows both alike."""
    mine, other = ours(), theirs()
    mine_s: list[float] = []
    other_s: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        mine = ours()
        between = time.perf_counter()
        other = theirs()
        mine_s.append(between - started)
        other_s.append(time.perf_counter() - between)
    return Timing.of(mine_s), mine, Timing.of(other_s), other


def _comparison(
    ch: ClickHouse,
    store: DuckDBStore,
    period: Period,
    runs: int,
    ours: dict[str, Any],
    times: dict[str, Timing],
    theirs: dict[str, tuple[Timing, list[list[Any]]]],
) -> dict[str, Any]:
    """ClickHouse's times, our time over theirs, and whether the answers agree."""
    funnel_time, funnel_rows = theirs["funnel"]
    vitals_time, vitals_rows = theirs["vitals"]
    agreement: dict[str, Any] = {"funnel": None, "vitals": None}
    if "funnel" in ours:
        steps = len(funnels.DEFAULT_LEAD_FUNNEL.steps)
        agreement["funnel"] = funnel_agreement(
            [step.units for step in ours["funnel"].steps], funnel_levels(funnel_rows, steps)
        )
    if "vitals" in ours:
        agreement["vitals"] = vitals_agreement(ours["vitals"], vitals_rows)
    # The percentiles alone, both engines over the same page_loads rows, alternating.
    duck: Timing | str
    peer_again: Timing | None = None
    try:
        duck, _, peer_again, _ = measure_pair(
            lambda: store.query(_DUCK_LOADS_VITALS, period.params),
            lambda: ch.rows(_CH_LOADS_VITALS, period_params(period)),
            runs,
        )
    except duckdb.Error as exc:
        duck = _error(exc)
    return {
        "chdb": {
            "version": ch.version(),
            "load_seconds": None if ch.load_seconds is None else round(ch.load_seconds, 1),
            "funnel_ms": funnel_time.median_ms,
            "vitals_ms": vitals_time.median_ms,
            "funnel": asdict(funnel_time),
            "vitals": asdict(vitals_time),
            # Both engines' percentiles alone over the same page_loads rows.
            "page_loads_percentiles_ms": {
                "duckdb": duck.median_ms if isinstance(duck, Timing) else duck,
                "chdb": None if peer_again is None else peer_again.median_ms,
            },
        },
        "ratios": {
            "funnel": _ratio(times.get("funnel"), funnel_time),
            "vitals": _ratio(times.get("vitals"), vitals_time),
            # Not a target: engine against engine, the same percentiles over the same
            # page_loads rows (ours exact, ClickHouse's over a reservoir of 8,192).
            "vitals_percentiles_same_rows": (
                _ratio(duck, peer_again)
                if isinstance(duck, Timing) and peer_again is not None
                else None
            ),
        },
        "agreement": agreement,
    }


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000_000, help="events to generate")
    parser.add_argument("--days", type=int, default=90, help="days the events span")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, help="dataset folder (default: under the temp dir)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per analysis")
    parser.add_argument("--memory-mb", type=int, help="DuckDB memory limit (default: config's)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: config's)")
    parser.add_argument("--rebuild", action="store_true", help="build the dataset anew")
    parser.add_argument("--no-peer", action="store_true", help="skip the chdb comparison")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark: dataset, our analyses, the peer; the figures as a dict."""
    spec = DatasetSpec(events=args.events, seed=args.seed, days=args.days)
    folder = args.data or spec.default_folder()
    if args.rebuild:
        (folder / MARKER).unlink(missing_ok=True)
    dataset = ensure(spec, folder, _log)
    store = open_store(dataset, memory_limit_mb=args.memory_mb, threads=args.threads, log=_log)
    config = settings(dataset.folder)
    period = Period(SITE.id, dataset.start_ms, dataset.end_ms)
    tune_gc()
    ch: ClickHouse | None = None
    times: dict[str, Timing] = {}
    answers: dict[str, Any] = {}
    failed: dict[str, str] = {}
    theirs: dict[str, tuple[Timing, list[list[Any]]]] = {}
    try:
        ch = None if args.no_peer else ClickHouse(store, dataset, _log)
        peers = {} if ch is None else peer_queries(ch, period)
        load_before = os.getloadavg()
        for name, call in analyses(store, period, config).items():
            peer = peers.get(name)
            try:
                if peer is None:
                    timing, answers[name] = measure(call, args.runs)
                else:
                    timing, answers[name], peer_time, rows = measure_pair(call, peer, args.runs)
                    theirs[name] = (peer_time, rows)
            except Exception as exc:  # one failing analysis is a finding, not the end of the run
                failed[name] = _error(exc)
                _log(f"{name:12} FAILED: {traceback.format_exc()}")
                if peer is not None:
                    theirs[name] = measure(peer, args.runs)
                continue
            times[name] = timing
            _log(f"{name:12} median {timing.median_ms:8.1f} ms   max {timing.max_ms:8.1f} ms")
        load_after = os.getloadavg()
        ((memory, threads),) = store.query(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        )
        out: dict[str, Any] = {
            "bench": "analyses",
            "dataset": {**dataset.facts(), "file_mb": round(_file_mb(store), 1)},
            "store": {"duckdb": duckdb.__version__, "memory_limit": memory, "threads": threads},
            "runs": args.runs,
            "analyses": {
                name: asdict(times[name]) if name in times else {"error": failed[name]}
                for name in (*times, *failed)
            },
            "answers": _answers(answers),
        }
        if ch is not None:
            out |= _comparison(ch, store, period, args.runs, answers, times, theirs)
            _log(
                f"chdb: funnel {out['chdb']['funnel_ms']} ms, vitals {out['chdb']['vitals_ms']} ms"
            )
    finally:
        if ch is not None:
            ch.close()
        store.close()
    targets = {
        f"{name}_p95_le_{TARGET_MS:.0f}ms": name in times and times[name].p95_ms <= TARGET_MS
        for name in (*times, *failed)
    }
    for name, ratio in out.get("ratios", {}).items():
        if name in TARGET_RATIOS:
            targets[f"{name}_ratio_le_{TARGET_RATIO:g}"] = (
                ratio is not None and ratio <= TARGET_RATIO
            )
    out["machine"] = {
        "cpus": os.cpu_count(),
        # Other work on the machine slows every figure; this says how busy it was.
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }
    out["targets"] = targets
    out["targets_met"] = all(targets.values()) and ch is not None
    return out


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[TextIO]:
    """Send everything written to file descriptor 1 to stderr; yield the real stdout.

    DuckDB's progress bar and chdb write to the process's stdout directly, and the last
    line of stdout must be the JSON.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with os.fdopen(os.dup(saved), "w", encoding="utf-8") as real:
            yield real
            real.flush()
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    with stdout_to_stderr() as stdout:
        out = run(args)
        print(json.dumps(out), file=stdout)
    return 0


def _file_mb(store: DuckDBStore) -> float:
    return store.path.stat().st_size / 1e6


if __name__ == "__main__":
    raise SystemExit(main())
