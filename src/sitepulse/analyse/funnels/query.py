"""A funnel as one SQL statement over the events, page loads and leads tables.

Speed: one scan of the events per event type the steps use (forms, custom events, ...;
page views are read from page_loads, one row per view, unless the breakdown is by
channel, which only the events carry),
each with its type (and, when every step of that type names its event, a range of
names) pushed into the scan as constants, so the step masks are worked out only on rows
of the right type and the scan skips the rest. Their (unit, time, step bitmask) rows,
page views matching step 1 only included, are materialised once as `ev` (a few bytes a
row: a 10M-event site's period fits the default memory limit). Step 1's per-unit
aggregate reads `ev` whole, without a filter, which keeps DuckDB from re-checking every
consumer's bit on every row as it fills `ev`. Step k's chains come from step k-1's by an
equi-join on the unit bounded by the window, keeping per step-k event only the latest
chain start (all a later step needs, as in windowFunnel's scan). When step k's match
implies step k-1's (a service page is a page view) the chain passes through the same
event and needs no join at all. Any order instead sorts the steps' rows per unit once
(a window function giving, from each event, the next event of every step).

A path glob that is a literal prefix and a `*` is matched with `starts_with`, which is
several times cheaper per row than LIKE with a bound pattern.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sitepulse.analyse.base import LEAD_FILTER, PERIOD_FILTER, AnalysisError, Period, Reader
from sitepulse.analyse.funnels.definition import (
    NOT_EXPOSED,
    Breakdown,
    EventStep,
    FunnelDefinition,
    FunnelStep,
    LeadStep,
    Order,
    PageStep,
    Unit,
    _text,
    implies,
)
from sitepulse.analyse.funnels.report import FunnelReport, _segment

_FAR: Final = 1 << 62  # "never" for a step with no event after a window start
_PAGEVIEW: Final = "pageview"


@dataclass(slots=True)
class _Sql:
    """SQL text with its `?` parameters, kept in textual order."""

    text: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, text: str, params: Sequence[Any] = ()) -> _Sql:
        self.text.append(text)
        self.params.extend(params)
        return self

    def extend(self, other: _Sql) -> _Sql:
        return self.add("".join(other.text), other.params)

    def sql(self) -> str:
        return "".join(self.text)


def _like(glob: str) -> str:
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _event_type(step: PageStep | EventStep) -> str:
    """The `events.type` a page or event step matches."""
    return step.type if isinstance(step, EventStep) else _PAGEVIEW


def _match(step: FunnelStep) -> _Sql | None:
    """The step's match over rows already of its type (None: every such row)."""
    if isinstance(step, LeadStep):
        return None if step.form is None else _Sql().add("form = ?", [step.form])
    if isinstance(step, PageStep):
        path = step.path
        if step.page_group is not None:
            return _Sql().add("page_group = ?", [step.page_group])
        if path is None:
            return None
        head = path[:-1]
        if path.endswith("*") and "*" not in head and "?" not in head:
            return _Sql().add("starts_with(path, ?)", [head])
        if "*" in path or "?" in path:
            return _Sql().add("path LIKE ? ESCAPE '\\'", [_like(path)])
        return _Sql().add("path = ?", [path])
    sql = _Sql()
    parts: list[tuple[str, list[Any]]] = []
    if step.event is not None:
        parts.append(("name = ?", [step.event]))
    parts += [("props->>? = ?", [f'$."{key}"', value]) for key, value in step.props]
    if not parts:
        return None
    for n, (text, params) in enumerate(parts):
        sql.add(" AND " if n else "").add(text, params)
    return sql


_UNIT_COLUMN = {Unit.VISITOR: "visitor_id", Unit.SESSION: "session_id"}
_DIMENSION_COLUMN = {Breakdown.CHANNEL: "channel", Breakdown.DEVICE: "device"}


@dataclass(frozen=True, slots=True)
class _Plan:
    """The shape of one funnel query."""

    definition: FunnelDefinition
    period: Period
    dim: str | None  # the events/leads column of the breakdown, if any

    @property
    def unit(self) -> str:
        return _UNIT_COLUMN[self.definition.unit]

    @property
    def no_zero(self) -> str:
        # Session 0 means "unknown", not one session.
        return " AND session_id <> 0" if self.definition.unit is Unit.SESSION else ""

    @property
    def columns(self) -> str:
        return "u, t, m, d" if self.dim else "u, t, m"

    def scan(self, table: str, steps: Sequence[int], type_: str | None, where: str = "") -> _Sql:
        """(u, t, m[, d]) rows of `table` (of event type `type_`, and `where`), m the bit
        mask of `steps` they match, rows matching none left out."""
        matches = [(index, _match(self.definition.steps[index])) for index in steps]
        sql = _Sql().add(f"SELECT {self.unit} AS u, epoch_ms(ts) AS t, ")
        for n, (index, match) in enumerate(matches):
            sql.add(" | " if n else "")
            if match is None:
                sql.add(str(1 << index))
            else:
                sql.add("CASE WHEN ").extend(match).add(f" THEN {1 << index} ELSE 0 END")
        sql.add(" AS m")
        if self.dim:
            sql.add(f", {self.dim} AS d")
        filter_ = LEAD_FILTER if table == "leads" else PERIOD_FILTER
        sql.add(f" FROM {table} WHERE {filter_}{self.no_zero}{where}", self.period.params)
        if table == "page_loads":
            sql.add(" AND viewed")
        elif type_ is not None:
            sql.add(" AND type = ?", [type_])
            names = [
                step.event
                for step in (self.definition.steps[i] for i in steps)
                if isinstance(step, EventStep) and step.event is not None
            ]
            if len(names) == len(steps):
                # Pushed into the scan, like the type: the other names of the type
                # (field focus and blur are most form events) are skipped there.
                sql.add(" AND name >= ? AND name <= ?", [min(names), max(names)])
        if all(match is not None for _, match in matches):
            return _Sql().add(f"SELECT {self.columns} FROM (").extend(sql).add(") WHERE m <> 0")
        return sql


def _step_rows(plan: _Plan) -> _Sql:
    """`ev`: every step event as (u, t, m[, d]), one scan per table and event type."""
    steps = plan.definition.steps
    by_type: dict[str | None, list[int]] = {}
    for index, step in enumerate(steps):
        key = None if isinstance(step, LeadStep) else _event_type(step)
        by_type.setdefault(key, []).append(index)
    scans: list[_Sql] = []
    for type_, indexes in by_type.items():
        table = "leads" if type_ is None else "events"
        if type_ == _PAGEVIEW and plan.dim in (None, "device"):
            # A page view is a row of page_loads, a twelfth of the events (which alone
            # carry the channel).
            table = "page_loads"
            if plan.definition.unit is Unit.VISITOR:
                # Views without a session belong to no load but still count for the visitor.
                scans.append(plan.scan("events", indexes, type_, " AND session_id = 0"))
        scans.append(plan.scan(table, indexes, type_))
    sql = _Sql().add("ev AS MATERIALIZED (")
    for n, scan in enumerate(scans):
        sql.add(" UNION ALL " if n else "").extend(scan)
    return sql.add(")")


def _prefix(definition: FunnelDefinition) -> int:
    """How many leading steps each imply the one before (at least 1). In strict order their
    chains are their events themselves: a unit reaches step j <= prefix at its first
    step-j event, which is also the previous step's event."""
    steps, prefix = definition.steps, 1
    if definition.order is Order.STRICT:
        while prefix < len(steps) and implies(steps[prefix], steps[prefix - 1]):
            prefix += 1
    return prefix


def _strict_ctes(definition: FunnelDefinition) -> tuple[list[str], list[str], str]:
    """In-order chains: CTEs, per-unit columns (e.., p..) and the query of e_n per unit."""
    steps, window, prefix, n = (
        definition.steps,
        definition.window_ms,
        _prefix(definition),
        len(definition.steps),
    )
    ctes, columns, joins = [], [], []
    if prefix < n:
        # Layer j: per step-j event with a chain inside the window, the chain's latest start
        # r (the best for any later step) and p, the step j-1 event it follows.
        bit = 1 << (prefix - 1)
        ctes.append(f"l{prefix} AS (SELECT u, t, m, t AS r, t AS p FROM ev WHERE m & {bit} <> 0)")
    for j in range(prefix, n):
        bit = 1 << j
        if implies(steps[j], steps[j - 1]):
            ctes.append(f"l{j + 1} AS (SELECT u, t, m, r, t AS p FROM l{j} WHERE m & {bit} <> 0)")
        else:
            ctes.append(
                f"l{j + 1} AS MATERIALIZED (SELECT e.u, e.t, e.m, max(q.r) AS r, max(q.t) AS p"
                f" FROM (SELECT u, t, m FROM ev WHERE m & {bit} <> 0) e"
                f" JOIN l{j} q ON e.u = q.u AND q.t <= e.t AND q.t >= e.t - {window}"
                f" GROUP BY e.u, e.t, e.m HAVING e.t - max(q.r) <= {window})"
            )
        ctes.append(
            f"a{j + 1} AS (SELECT u, min(t) AS e, arg_min(p, t) AS p FROM l{j + 1} GROUP BY u)"
        )
        columns += [f"a{j + 1}.e AS e{j + 1}", f"a{j + 1}.p AS p{j + 1}"]
        joins.append(f"a{j + 1}")
    if n > prefix:
        last = f"SELECT u, e FROM a{n}"
        # A unit with a chain to step k+1 has one to step k: the later layers join the
        # (smaller and smaller) earlier ones, and only that joins the per-unit base.
        first, *rest = joins
        chained = "".join(f" LEFT JOIN {a} ON {a}.u = {first}.u" for a in rest)
        ctes.append(f"ax AS (SELECT {first}.u, {', '.join(columns)} FROM {first}{chained})")
        columns, joins = [f"ax.{c.split(' AS ')[1]}" for c in columns], ["ax"]
    else:
        last = f"SELECT u, min(t) AS e FROM ev WHERE m & {1 << (n - 1)} <> 0 GROUP BY u"
    gaps = [f"e{j} - {'e' if j <= prefix else 'p'}{j}" for j in range(2, n + 1)]
    return [*ctes, _per_unit(columns, joins)], gaps, last


def _required(steps: Sequence[FunnelStep], level: int) -> list[int]:
    """Steps (0-based) a window must hold to reach `level` (1-based) in any order: a step
    that a later step of the level implies is held whenever that one is."""
    return [
        i for i in range(level) if not any(implies(steps[k], steps[i]) for k in range(i + 1, level))
    ]


def _any_ctes(definition: FunnelDefinition) -> tuple[list[str], list[str], str]:
    """Any-order windows: CTEs, per-unit columns and the source of e_n."""
    steps, window = definition.steps, definition.window_ms
    required = {level: _required(steps, level) for level in range(2, len(steps) + 1)}
    needed = sorted({i for held in required.values() for i in held})
    # For each candidate window start (a needed step's event), the next event of each step.
    nexts = ", ".join(f"min(CASE WHEN m & {1 << i} <> 0 THEN t END) OVER w AS n{i}" for i in needed)
    ends = ", ".join(
        f"greatest({', '.join(f'coalesce(n{i}, {_FAR})' for i in held)}) AS c{level}"
        for level, held in required.items()
    )
    firsts = ", ".join(
        f"min(CASE WHEN c{level} - t <= {window} THEN c{level} END) AS e{level}"
        for level in required
    )
    ctes = [
        f"win AS (SELECT u, t, {nexts} FROM ev WHERE m & {sum(1 << i for i in needed)} <> 0"
        " WINDOW w AS (PARTITION BY u ORDER BY t DESC))",
        f"aw AS (SELECT u, {firsts} FROM (SELECT u, t, {ends} FROM win) GROUP BY u)",
    ]
    columns = [f"aw.e{level}" for level in required]
    gaps = [f"e{j} - e{j - 1}" for j in range(2, len(steps) + 1)]
    return [*ctes, _per_unit(columns, ["aw"])], gaps, f"SELECT u, e{len(steps)} AS e FROM aw"


def _per_unit(columns: list[str], joins: list[str]) -> str:
    joined = "".join(f" LEFT JOIN {a} ON {a}.u = base.u" for a in joins)
    return f"pu AS (SELECT {', '.join(['base.*', *columns])} FROM base{joined})"


def _breakdown(breakdown: str | None, experiment: str | None) -> Breakdown | None:
    if experiment is not None:
        _text(experiment, "experiment")
        if breakdown not in (None, Breakdown.VARIANT.value):
            raise AnalysisError(
                "experiment", f"only used with breakdown 'variant' (got {breakdown!r})"
            )
        return Breakdown.VARIANT
    if breakdown is None:
        return None
    if breakdown not in {b.value for b in Breakdown}:
        choices = ", ".join(b.value for b in Breakdown)
        raise AnalysisError("breakdown", f"must be one of {choices} (got {breakdown!r})")
    if breakdown == Breakdown.VARIANT.value:
        raise AnalysisError("experiment", "required with breakdown 'variant'")
    return Breakdown(breakdown)


def _funnel_sql(
    definition: FunnelDefinition, period: Period, by: Breakdown | None, experiment: str | None
) -> _Sql:
    n, window = len(definition.steps), definition.window_ms
    strict = definition.order is Order.STRICT
    dim = _DIMENSION_COLUMN.get(by) if by is not None else None
    plan = _Plan(definition, period, dim)
    ctes, gaps, last = _strict_ctes(definition) if strict else _any_ctes(definition)
    prefix = _prefix(definition)
    sql = _Sql().add("WITH ").extend(_step_rows(plan))
    sql.add(",\n" + ",\n".join(ctes[:-1]) if ctes[:-1] else "")
    # Steps 2..prefix hold only events that also match step 1 (they imply it).
    firsts = ["min(f.t) FILTER (f.m & 1 <> 0) AS e1"] + [
        f"min(f.t) FILTER (f.m & {1 << j} <> 0) AS e{j + 1}" for j in range(1, prefix)
    ]
    segment = "arg_min(f.d, f.t) FILTER (f.m & 1 <> 0)" if dim else "NULL"
    # One pass over the step events gives each unit that reached step 1 its entry, its
    # segment and, for a converted unit, the earliest step-1 event that starts a chain
    # (window) converting it. It reads `ev` unfiltered, on purpose: see the docstring.
    sql.add(
        f",\nconv AS (SELECT u, e FROM ({last}) WHERE e IS NOT NULL),\n"
        f"base AS (SELECT f.u, {', '.join(firsts)}, {segment} AS d,"
        f" min(f.t) FILTER (f.m & 1 <> 0 AND f.t >= c.e - {window} AND f.t <= c.e) AS s"
        f" FROM ev f LEFT JOIN conv c ON c.u = f.u GROUP BY f.u"
        f" HAVING min(f.t) FILTER (f.m & 1 <> 0) IS NOT NULL),\n"
    )
    sql.add(ctes[-1])
    start = "s"
    if not strict:
        # In any order a window may open with any step's event, not only step 1's.
        sql.add(
            f",\nsx AS (SELECT c.u, min(x.t) AS s FROM conv c JOIN ev x ON x.u = c.u"
            f" AND x.t >= c.e - {window} AND x.t <= c.e GROUP BY c.u)"
        )
        start = "least(pu.s, sx.s)"
    segment, joined = "d", "" if strict else " LEFT JOIN sx ON sx.u = pu.u"
    if by is Breakdown.VARIANT:
        sql.add(
            f",\nvar AS (SELECT {plan.unit} AS u, arg_min(props->>'variant', ts) AS v"
            f" FROM events WHERE {PERIOD_FILTER}{plan.no_zero} AND type = 'exposure'"
            f" AND name = ? GROUP BY {plan.unit})",
            [*period.params, experiment],
        )
        segment = f"coalesce(var.v, '{NOT_EXPOSED}')"
        joined += " LEFT JOIN var ON var.u = pu.u"
    counts = ", ".join(f"count(e{j})" for j in range(1, n + 1))
    medians = ", ".join(f"median({gap})" for gap in gaps)
    if by is None:
        head, tail = "1 AS total, NULL AS seg", ""
    else:
        head, tail = "grouping(seg) AS total, seg", " GROUP BY GROUPING SETS ((), (seg))"
    sql.add(
        f"\nSELECT {head}, {counts}, {medians}, median(e{n} - start) FROM"
        f" (SELECT pu.*, {segment} AS seg, {start} AS start FROM pu{joined}){tail}"
    )
    return sql


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def funnel(
    reader: Reader,
    period: Period,
    definition: FunnelDefinition,
    *,
    breakdown: str | None = None,
    experiment: str | None = None,
) -> FunnelReport:
    """Units reaching each step of `definition` in `period`, with times and drop-offs.

    `breakdown` is "channel", "device" or "variant" (of `experiment`, which implies it).
    """
    by = _breakdown(breakdown, experiment)
    sql = _funnel_sql(definition, period, by, experiment)
    rows = reader.query(sql.sql(), sql.params)
    n = len(definition.steps)
    names = [step.name for step in definition.steps]
    total = _segment("(all)", names, [0] * n, [None] * (n - 1), None)
    segments = []
    for row in rows:
        counts = [int(c) for c in row[2 : 2 + n]]
        gaps = [_number(g) for g in row[2 + n : 2 * n + 1]]
        built = _segment(
            "(all)" if row[0] else str(row[1]), names, counts, gaps, _number(row[2 * n + 1])
        )
        if row[0]:
            total = built
        else:
            segments.append(built)
    segments.sort(key=lambda s: (-s.entered, s.value))
    return FunnelReport(definition, period, total, by, experiment, tuple(segments))
