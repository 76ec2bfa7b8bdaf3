"""Funnels over the events table: how many visitors (or sessions) reach each ordered step.

A funnel is 2..20 steps, each matched by page views (a path glob or a page group), by an
event (type, name, props) or by a stored lead (the leads table, test leads excluded); bots
never count. A *unit* is a visitor or a session.

Order "strict" (steps in order), the default. A unit reaches step k when it has step
events at times t1 <= t2 <= ... <= tk with tk - t1 <= window (both ends inclusive). Ties
count as in order and one event may satisfy several consecutive steps: a landing on
/services/seo is both "any page view" and "a service page". This is exactly ClickHouse's
`windowFunnel(window)(ts, cond1, ...)` in its default mode (it sorts a unit's events by
(time, condition index)), not its 'strict_order' mode, which breaks a chain at any
out-of-order step event.
Order "any": a unit reaches step k when steps 1..k all happen within one window of
`window` length, in any order. Only events and leads inside the period count, so a chain
must complete inside it.

Times (over units that reached the step; medians are DuckDB's, the mean of the two middle
values for an even count):
- a unit *reaches* step k at E_k, the earliest time any chain (or window) completes step k.
- from previous, strict: E_k minus the latest step k-1 event at or before E_k (the gap
  inside the tightest chain ending at E_k; 0 when the same event matched both steps).
  any: E_k - E_(k-1), as the steps have no order.
- time to convert (last step): E_n minus the earliest event of step 1 (any: of any step)
  at or after E_n - window, i.e. from the start of the longest chain that first converted.

Breakdowns give each unit one value, so segments sum to the totals: channel and device as
of the unit's first step-1 event in the period; variant of an experiment as of the unit's
first exposure to it in the period, "(not exposed)" without one.

Speed: one SQL statement, two scans of the events. One reads the step-1 events (most page
views, usually) straight into a per-unit aggregate; the other reads the events of later
steps into (unit, time, step bitmask) rows, materialized once (holding every page view
too would spill to disk under the default 128 MB memory limit). Step k's chains come
from step k-1's by an equi-join on the unit bounded by the window, keeping per step-k
event only the latest chain start (all a later step needs, as in windowFunnel's scan).
When step k's match implies step k-1's (a service page is a page view) the chain passes
through the same event and needs no join at all. Any order instead sorts the later steps'
rows per unit once (a window function giving, from each event, the next event of every
step).

Form failures (`form_failures`): a `form`/`submit` event that no stored lead of the same
visitor and form followed within `within_ms`, with the last `submit_error` of that visitor
and form within `within_ms` either side of the submit as its reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Final

from sitepulse.analyse.base import (
    DAY_MS,
    LEAD_FILTER,
    PERIOD_FILTER,
    AnalysisError,
    Period,
    Reader,
)

MIN_STEPS: Final = 2
MAX_STEPS: Final = 20
MAX_WINDOW_MS: Final = 366 * DAY_MS
DEFAULT_WINDOW_MS: Final = DAY_MS
DEFAULT_FAILURE_WINDOW_MS: Final = 600_000
NOT_EXPOSED: Final = "(not exposed)"
# Event types a step may match; a stored lead is `LeadStep`, which drops test leads.
EVENT_TYPES: Final = frozenset(
    {"pageview", "engagement", "vital", "form", "click", "exposure", "custom"}
)
_PROP_KEY = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_FAR: Final = 1 << 62  # "never" for a step with no event after a window start


class Order(StrEnum):
    """How steps must follow each other; see the module docstring."""

    STRICT = "strict"
    ANY = "any"


class Unit(StrEnum):
    """What a funnel counts."""

    VISITOR = "visitor"
    SESSION = "session"


class Breakdown(StrEnum):
    """What a funnel's segments are."""

    CHANNEL = "channel"
    DEVICE = "device"
    VARIANT = "variant"


def _text(value: object, field_: str, *, max_len: int = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AnalysisError(field_, f"must be a non-empty string (got {value!r})")
    if len(value) > max_len:
        raise AnalysisError(field_, f"must be at most {max_len} characters (got {len(value)})")
    return value


@dataclass(frozen=True, slots=True)
class PageStep:
    """Page views of `path` (exact, or a glob with `*` and `?`) or of `page_group`; any
    page view when neither is given."""

    name: str
    path: str | None = None
    page_group: str | None = None

    def check(self, where: str) -> None:
        _text(self.name, f"{where}.name")
        if self.path is not None and self.page_group is not None:
            raise AnalysisError(f"{where}.path", "give path or page_group, not both")
        if self.path is not None:
            path = _text(self.path, f"{where}.path", max_len=2048)
            if not path.startswith(("/", "*")):
                raise AnalysisError(f"{where}.path", f"must start with '/' or '*' (got {path!r})")
        if self.page_group is not None:
            group = _text(self.page_group, f"{where}.page_group", max_len=2048)
            if not group.startswith("/"):
                raise AnalysisError(f"{where}.page_group", f"must start with '/' (got {group!r})")


@dataclass(frozen=True, slots=True)
class EventStep:
    """Events of `type`, optionally of name `event` and with every `props` key=value."""

    name: str
    type: str
    event: str | None = None
    props: tuple[tuple[str, str], ...] = ()

    def check(self, where: str) -> None:
        _text(self.name, f"{where}.name")
        if self.type == "lead":
            raise AnalysisError(
                f"{where}.type", "'lead' events include test leads: use a lead step"
            )
        if not isinstance(self.type, str) or self.type not in EVENT_TYPES:
            raise AnalysisError(
                f"{where}.type",
                f"must be one of {', '.join(sorted(EVENT_TYPES))} (got {self.type!r})",
            )
        if self.event is not None:
            _text(self.event, f"{where}.event")
        seen = set()
        for key, value in self.props:
            if not isinstance(key, str) or not _PROP_KEY.match(key):
                raise AnalysisError(
                    f"{where}.props", f"keys are letters, digits, _ or - (got {key!r})"
                )
            if key in seen:
                raise AnalysisError(f"{where}.props.{key}", "repeated")
            if not isinstance(value, str):
                raise AnalysisError(f"{where}.props.{key}", f"must be a string (got {value!r})")
            seen.add(key)


@dataclass(frozen=True, slots=True)
class LeadStep:
    """A lead stored (not a test lead), optionally from form `form`."""

    name: str
    form: str | None = None

    def check(self, where: str) -> None:
        _text(self.name, f"{where}.name")
        if self.form is not None:
            _text(self.form, f"{where}.form")


FunnelStep = PageStep | EventStep | LeadStep


@dataclass(frozen=True, slots=True)
class FunnelDefinition:
    """A named funnel; construction validates it (errors name the field and the value)."""

    name: str
    steps: tuple[FunnelStep, ...]
    window_ms: int = DEFAULT_WINDOW_MS
    order: Order = Order.STRICT
    unit: Unit = Unit.VISITOR

    def __post_init__(self) -> None:
        _text(self.name, "name")
        if not isinstance(self.steps, tuple) or not MIN_STEPS <= len(self.steps) <= MAX_STEPS:
            count = len(self.steps) if isinstance(self.steps, Sequence) else self.steps
            raise AnalysisError(
                "steps", f"must be {MIN_STEPS} to {MAX_STEPS} steps (got {count!r})"
            )
        names: set[str] = set()
        for i, step in enumerate(self.steps):
            where = f"steps[{i}]"
            if not isinstance(step, PageStep | EventStep | LeadStep):
                raise AnalysisError(where, f"must be a page, event or lead step (got {step!r})")
            step.check(where)
            if step.name in names:
                raise AnalysisError(f"{where}.name", f"repeated step name {step.name!r}")
            names.add(step.name)
        window = self.window_ms
        if (
            isinstance(window, bool)
            or not isinstance(window, int)
            or not 0 < window <= MAX_WINDOW_MS
        ):
            raise AnalysisError(
                "window_ms", f"must be an integer in 1..{MAX_WINDOW_MS} (got {window!r})"
            )
        if not isinstance(self.order, Order):
            raise AnalysisError("order", f"must be one of strict, any (got {self.order!r})")
        if not isinstance(self.unit, Unit):
            raise AnalysisError("unit", f"must be one of visitor, session (got {self.unit!r})")

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict form that `parse_funnel` reads."""
        return {
            "name": self.name,
            "steps": [_step_dict(step) for step in self.steps],
            "window_ms": self.window_ms,
            "order": self.order.value,
            "unit": self.unit.value,
        }


def _step_dict(step: FunnelStep) -> dict[str, Any]:
    out: dict[str, Any] = {"name": step.name}
    if isinstance(step, PageStep):
        if step.path is not None:
            out["path"] = step.path
        if step.page_group is not None:
            out["page_group"] = step.page_group
    elif isinstance(step, EventStep):
        out["type"] = step.type
        if step.event is not None:
            out["event"] = step.event
        if step.props:
            out["props"] = dict(step.props)
    else:
        out["lead"] = True
        if step.form is not None:
            out["form"] = step.form
    return out


_DEFINITION_KEYS = frozenset({"name", "steps", "window_ms", "order", "unit"})
_PAGE_KEYS = frozenset({"name", "path", "page_group"})
_EVENT_KEYS = frozenset({"name", "type", "event", "props"})
_LEAD_KEYS = frozenset({"name", "lead", "form"})


def parse_funnel(data: Mapping[str, Any]) -> FunnelDefinition:
    """A funnel from config/API data; unknown keys and bad values raise AnalysisError."""
    if not isinstance(data, Mapping):
        raise AnalysisError("funnel", f"must be a mapping (got {type(data).__name__})")
    _no_unknown(data, _DEFINITION_KEYS, "")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, Sequence) or isinstance(raw_steps, str):
        raise AnalysisError("steps", f"must be a list of steps (got {raw_steps!r})")
    steps = tuple(_parse_step(raw, f"steps[{i}]") for i, raw in enumerate(raw_steps))
    order = data.get("order", Order.STRICT.value)
    unit = data.get("unit", Unit.VISITOR.value)
    if order not in {o.value for o in Order}:
        raise AnalysisError("order", f"must be one of strict, any (got {order!r})")
    if unit not in {u.value for u in Unit}:
        raise AnalysisError("unit", f"must be one of visitor, session (got {unit!r})")
    name: Any = data.get("name")  # the definition validates it
    return FunnelDefinition(
        name=name,
        steps=steps,
        window_ms=data.get("window_ms", DEFAULT_WINDOW_MS),
        order=Order(order),
        unit=Unit(unit),
    )


def _no_unknown(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            raise AnalysisError(name, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _parse_step(raw: object, where: str) -> FunnelStep:
    if not isinstance(raw, Mapping):
        raise AnalysisError(where, f"must be a mapping (got {raw!r})")
    name: Any = raw.get("name")  # each step validates its own fields
    if "lead" in raw:
        _no_unknown(raw, _LEAD_KEYS, where)
        if raw["lead"] is not True:
            raise AnalysisError(f"{where}.lead", f"must be true (got {raw['lead']!r})")
        return LeadStep(name, form=raw.get("form"))
    if "type" in raw:
        _no_unknown(raw, _EVENT_KEYS, where)
        props = raw.get("props") or {}
        if not isinstance(props, Mapping):
            raise AnalysisError(f"{where}.props", f"must be a mapping (got {props!r})")
        pairs = tuple(
            (key, _prop_text(value, f"{where}.props.{key}")) for key, value in props.items()
        )
        return EventStep(name, type=raw["type"], event=raw.get("event"), props=pairs)
    _no_unknown(raw, _PAGE_KEYS, where)
    return PageStep(name, path=raw.get("path"), page_group=raw.get("page_group"))


def _prop_text(value: object, where: str) -> str:
    # Props hold JSON scalars; `->>` renders them as text, so compare with that text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    raise AnalysisError(where, f"must be a string, integer or boolean (got {value!r})")


DEFAULT_LEAD_FUNNEL: Final = FunnelDefinition(
    name="lead",
    steps=(
        PageStep("landing"),
        PageStep("service page", path="/services*"),
        PageStep("contact page", path="/contact*"),
        EventStep("form start", type="form", event="form_start"),
        EventStep("form submit", type="form", event="submit"),
        LeadStep("lead stored"),
    ),
)


def _literal_prefix(pattern: str) -> str:
    cut = min((i for i, ch in enumerate(pattern) if ch in "*?"), default=len(pattern))
    return pattern[:cut]


def implies(later: FunnelStep, earlier: FunnelStep) -> bool:
    """Whether every event matching `later` also matches `earlier` (sound, not complete)."""
    if later == earlier or (
        type(later) is type(earlier) and _match_key(later) == _match_key(earlier)
    ):
        return True
    if isinstance(later, PageStep) and isinstance(earlier, PageStep):
        if earlier.path is None and earlier.page_group is None:
            return True
        pattern = earlier.path
        if pattern is not None and later.path is not None and pattern.endswith("*"):
            prefix = pattern[:-1]
            return (
                "*" not in prefix
                and "?" not in prefix
                and (_literal_prefix(later.path).startswith(prefix))
            )
        return False
    if isinstance(later, EventStep) and isinstance(earlier, EventStep):
        return (
            later.type == earlier.type
            and earlier.event in (None, later.event)
            and set(earlier.props) <= set(later.props)
        )
    if isinstance(later, LeadStep) and isinstance(earlier, LeadStep):
        return earlier.form in (None, later.form)
    return False


def _match_key(step: FunnelStep) -> tuple[object, ...]:
    if isinstance(step, PageStep):
        return (step.path, step.page_group)
    if isinstance(step, EventStep):
        return (step.type, step.event, frozenset(step.props))
    return (step.form,)


# --- results -----------------------------------------------------------------------------


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of a funnel (or of one segment of it)."""

    step: int  # 1-based
    name: str
    units: int
    conversion_from_first: float | None
    conversion_from_previous: float | None
    drop_off: int  # units that reached the previous step but not this one; 0 for step 1
    drop_off_rate: float | None
    median_ms_from_previous: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FunnelSegment:
    """The funnel for the units with one breakdown value (or for all of them)."""

    value: str
    steps: tuple[StepResult, ...]
    median_time_to_convert_ms: float | None

    @property
    def entered(self) -> int:
        return self.steps[0].units

    @property
    def converted(self) -> int:
        return self.steps[-1].units

    @property
    def conversion_rate(self) -> float | None:
        return _ratio(self.converted, self.entered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "entered": self.entered,
            "converted": self.converted,
            "conversion_rate": self.conversion_rate,
            "median_time_to_convert_ms": self.median_time_to_convert_ms,
            "steps": [step.to_dict() for step in self.steps],
        }


def _segment(
    value: str,
    names: Sequence[str],
    counts: Sequence[int],
    gaps: Sequence[float | None],
    to_convert: float | None,
) -> FunnelSegment:
    steps = []
    for i, (name, units) in enumerate(zip(names, counts, strict=True)):
        previous = counts[i - 1] if i else units
        steps.append(
            StepResult(
                step=i + 1,
                name=name,
                units=units,
                conversion_from_first=_ratio(units, counts[0]),
                conversion_from_previous=_ratio(units, previous),
                drop_off=previous - units,
                drop_off_rate=_ratio(previous - units, previous),
                median_ms_from_previous=gaps[i - 1] if i else None,
            )
        )
    return FunnelSegment(value, tuple(steps), to_convert)


@dataclass(frozen=True, slots=True)
class FunnelReport:
    """A funnel over one period: the totals, and segments when broken down."""

    definition: FunnelDefinition
    period: Period
    total: FunnelSegment
    breakdown: Breakdown | None = None
    experiment: str | None = None
    segments: tuple[FunnelSegment, ...] = field(default=())

    @property
    def steps(self) -> tuple[StepResult, ...]:
        return self.total.steps

    @property
    def median_time_to_convert_ms(self) -> float | None:
        return self.total.median_time_to_convert_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "funnel": self.definition.to_dict(),
            "site": self.period.site,
            "start_ms": self.period.start_ms,
            "end_ms": self.period.end_ms,
            "breakdown": None if self.breakdown is None else self.breakdown.value,
            "experiment": self.experiment,
            **self.total.to_dict(),
            "segments": [segment.to_dict() for segment in self.segments],
        }


# --- SQL ---------------------------------------------------------------------------------


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


def _condition(step: FunnelStep) -> _Sql:
    """The step's match over `events` rows (over `leads` rows for a lead step)."""
    if isinstance(step, LeadStep):
        return _Sql().add("TRUE") if step.form is None else _Sql().add("form = ?", [step.form])
    if isinstance(step, PageStep):
        sql = _Sql().add("type = 'pageview'")
        if step.page_group is not None:
            sql.add(" AND page_group = ?", [step.page_group])
        elif step.path is not None and ("*" in step.path or "?" in step.path):
            sql.add(" AND path LIKE ? ESCAPE '\\'", [_like(step.path)])
        elif step.path is not None:
            sql.add(" AND path = ?", [step.path])
        return sql
    sql = _Sql().add("type = ?", [step.type])
    if step.event is not None:
        sql.add(" AND name = ?", [step.event])
    for key, value in step.props:
        sql.add(" AND props->>? = ?", [f'$."{key}"', value])
    return sql


_UNIT_COLUMN = {Unit.VISITOR: "visitor_id", Unit.SESSION: "session_id"}
_DIMENSION_COLUMN = {Breakdown.CHANNEL: "channel", Breakdown.DEVICE: "device"}


@dataclass(frozen=True, slots=True)
class _Plan:
    """The shape of one funnel query."""

    definition: FunnelDefinition
    period: Period
    dim: str | None  # the events/leads column of the breakdown, if any
    firsts_in_ev: bool  # whether `ev` must also hold events that match step 1 only

    @property
    def unit(self) -> str:
        return _UNIT_COLUMN[self.definition.unit]

    @property
    def no_zero(self) -> str:
        # Session 0 means "unknown", not one session.
        return " AND session_id <> 0" if self.definition.unit is Unit.SESSION else ""

    def rows(self, table: str, steps: Sequence[int], *, where: int | None = None) -> _Sql:
        """(u, t, m[, d]) rows of `table`, m the bit mask of `steps` they match; only rows
        matching step `where`, if given."""
        sql = _Sql().add(f"SELECT {self.unit} AS u, epoch_ms(ts) AS t, ")
        for n, index in enumerate(steps):
            sql.add(" | " if n else "").add("CASE WHEN ")
            sql.extend(_condition(self.definition.steps[index]))
            sql.add(f" THEN {1 << index} ELSE 0 END")
        sql.add(" AS m")
        if self.dim:
            sql.add(f", {self.dim} AS d")
        filter_ = LEAD_FILTER if table == "leads" else PERIOD_FILTER
        sql.add(f" FROM {table} WHERE {filter_}{self.no_zero}", self.period.params)
        if table == "events":
            # A range of types is pushed into the scan (an IN list or the CASE conditions
            # would not be); the mask then drops the other types inside the range.
            types = sorted(
                {
                    "pageview" if isinstance(s, PageStep) else s.type
                    for s in (self.definition.steps[i] for i in steps)
                    if not isinstance(s, LeadStep)
                }
            )
            sql.add(" AND type BETWEEN ? AND ?", [types[0], types[-1]])
        if where is not None:
            sql.add(" AND ").extend(_condition(self.definition.steps[where]))
        return sql


def _step_rows(plan: _Plan) -> _Sql:
    """`ev`: the step events as (u, t, m[, d]); events matching step 1 alone only when
    `plan.firsts_in_ev` (they are most page views, and most of the work)."""
    steps = plan.definition.steps
    keep = "m <> 0" if plan.firsts_in_ev else "m & ~1 <> 0"
    columns = "u, t, m, d" if plan.dim else "u, t, m"
    parts = []
    for table, is_lead in (("events", False), ("leads", True)):
        indexes = [i for i, s in enumerate(steps) if isinstance(s, LeadStep) == is_lead]
        if indexes:
            rows = plan.rows(table, indexes)
            parts.append(_Sql().add(f"SELECT {columns} FROM (").extend(rows).add(f") WHERE {keep}"))
    sql = _Sql().add("ev AS MATERIALIZED (")
    for n, part in enumerate(parts):
        sql.add(" UNION ALL " if n else "").extend(part)
    return sql.add(")")


def _first_rows(plan: _Plan, prefix: int) -> _Sql:
    """`firsts`: every step-1 event as (u, t, m[, d]); m holds at least steps 1..prefix."""
    columns = "u, t, m, d" if plan.dim else "u, t, m"
    if plan.firsts_in_ev:
        return _Sql().add(f"firsts AS (SELECT {columns} FROM ev WHERE m & 1 <> 0)")
    rows = plan.rows("events", range(prefix), where=0)
    return _Sql().add(f"firsts AS (SELECT {columns} FROM (").extend(rows).add("))")


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
    else:
        last = f"SELECT u, min(t) AS e FROM firsts WHERE m & {1 << (n - 1)} <> 0 GROUP BY u"
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
    steps, n, window = definition.steps, len(definition.steps), definition.window_ms
    strict = definition.order is Order.STRICT
    if isinstance(steps[0], LeadStep):
        firsts_in_ev = True
    elif strict:
        firsts_in_ev = not implies(steps[1], steps[0])
    else:
        firsts_in_ev = any(0 in _required(steps, level) for level in range(2, n + 1))
    dim = _DIMENSION_COLUMN.get(by) if by is not None else None
    plan = _Plan(definition, period, dim, firsts_in_ev)
    ctes, gaps, last = _strict_ctes(definition) if strict else _any_ctes(definition)
    prefix = _prefix(definition)
    sql = _Sql().add("WITH ").extend(_step_rows(plan)).add(",\n")
    sql.extend(_first_rows(plan, prefix))
    sql.add(",\n" + ",\n".join(ctes[:-1]) if ctes[:-1] else "")
    firsts = ["min(f.t) AS e1"] + [
        f"min(CASE WHEN f.m & {1 << j} <> 0 THEN f.t END) AS e{j + 1}" for j in range(1, prefix)
    ]
    # One pass over the step-1 events gives each unit its entry, its segment and, for a
    # converted unit, the earliest step-1 event that starts a chain (window) converting it.
    sql.add(
        f",\nconv AS (SELECT u, e FROM ({last}) WHERE e IS NOT NULL),\n"
        f"base AS (SELECT f.u, {', '.join(firsts)}, {'arg_min(f.d, f.t)' if dim else 'NULL'} AS d,"
        f" min(CASE WHEN f.t >= c.e - {window} AND f.t <= c.e THEN f.t END) AS s"
        f" FROM firsts f LEFT JOIN conv c ON c.u = f.u GROUP BY f.u),\n"
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


# --- form failures -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormFailures:
    """Submits of one form on one page and how many never became a stored lead."""

    form: str
    path: str
    submits: int
    became_leads: int
    failed: int
    failed_visitors: int

    @property
    def failure_rate(self) -> float | None:
        return _ratio(self.failed, self.submits)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"failure_rate": self.failure_rate}


@dataclass(frozen=True, slots=True)
class FailureReason:
    """Failed submits of one form by the last `submit_error` seen ("" reason: none seen)."""

    form: str
    reason: str
    field: str
    failed: int
    failed_visitors: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FormFailureReport:
    """Form submits in a period that no stored lead followed within `within_ms`."""

    period: Period
    within_ms: int
    submits: int
    became_leads: int
    failed: int
    failed_visitors: int
    by_form: tuple[FormFailures, ...]
    by_reason: tuple[FailureReason, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.period.site,
            "start_ms": self.period.start_ms,
            "end_ms": self.period.end_ms,
            "within_ms": self.within_ms,
            "submits": self.submits,
            "became_leads": self.became_leads,
            "failed": self.failed,
            "failed_visitors": self.failed_visitors,
            "failure_rate": _ratio(self.failed, self.submits),
            "by_form": [row.to_dict() for row in self.by_form],
            "by_reason": [row.to_dict() for row in self.by_reason],
        }


_SPAN_FILTER = (
    "site = ? AND ts >= make_timestamp(?::BIGINT * 1000)"
    " AND ts < make_timestamp(?::BIGINT * 1000) AND NOT is_bot"
)

_FAILURES_SQL = f"""
WITH sub AS (
  SELECT row_number() OVER () AS id, visitor_id AS v, epoch_ms(ts) AS t,
         coalesce(props->>'form', '') AS form, path
  FROM events WHERE {PERIOD_FILTER} AND type = 'form' AND name = 'submit'),
ld AS (SELECT visitor_id AS v, epoch_ms(ts) AS t, form, is_test FROM leads WHERE {_SPAN_FILTER}),
err AS (
  SELECT visitor_id AS v, epoch_ms(ts) AS t, coalesce(props->>'form', '') AS form,
         {{'reason': coalesce(props->>'reason', ''), 'field': coalesce(props->>'field', '')}} AS why
  FROM events WHERE {_SPAN_FILTER} AND type = 'form' AND name = 'submit_error'),
outcome AS (
  SELECT s.id, s.v, s.t, s.form, s.path,
         coalesce(bool_or(NOT l.is_test), false) AS lead,
         coalesce(bool_or(l.is_test), false) AS test
  FROM sub s LEFT JOIN ld l ON l.v = s.v AND l.t >= s.t AND l.t <= s.t + $within
    AND (l.form = s.form OR l.form = '' OR s.form = '')
  GROUP BY s.id, s.v, s.t, s.form, s.path),
counted AS (SELECT * FROM outcome WHERE lead OR NOT test),
failed AS (
  SELECT o.id, o.v, o.form, coalesce(arg_max(e.why, e.t), {{'reason': '', 'field': ''}}) AS why
  FROM counted o LEFT JOIN err e ON e.v = o.v AND e.form = o.form
    AND e.t >= o.t - $within AND e.t <= o.t + $within
  WHERE NOT o.lead GROUP BY o.id, o.v, o.form)
SELECT 'form', grouping(form, path) = 0, form, path, NULL, NULL, count(*), count(*) FILTER (lead),
       count(*) FILTER (NOT lead), count(DISTINCT v) FILTER (NOT lead)
FROM counted GROUP BY GROUPING SETS ((), (form, path))
UNION ALL
SELECT 'reason', true, form, NULL, why.reason, why.field, NULL, NULL, count(*), count(DISTINCT v)
FROM failed GROUP BY form, why.reason, why.field
"""


def form_failures(
    reader: Reader, period: Period, *, within_ms: int = DEFAULT_FAILURE_WINDOW_MS
) -> FormFailureReport:
    """Form submits in `period` that never became a stored lead, by form/page and by reason.

    A submit failed when no non-test lead of the same visitor and form was stored within
    `within_ms` after it; submits that only became test leads are left out. Its reason is the
    last `submit_error` (props.reason, props.field) of that visitor and form within
    `within_ms` before or after it.
    """
    if isinstance(within_ms, bool) or not isinstance(within_ms, int) or within_ms <= 0:
        raise AnalysisError("within_ms", f"must be a positive integer (got {within_ms!r})")
    leads = [period.site, period.start_ms, period.end_ms + within_ms]
    errors = [period.site, period.start_ms - within_ms, period.end_ms + within_ms]
    sql = _FAILURES_SQL.replace("$within", str(within_ms))
    rows = reader.query(sql, [*period.params, *leads, *errors])
    totals = (0, 0, 0, 0)
    by_form: list[FormFailures] = []
    by_reason: list[FailureReason] = []
    for kind, grouped, form, path, reason, field_, submits, leads_, failed, visitors in rows:
        if kind == "reason":
            by_reason.append(FailureReason(form, reason, field_, int(failed), int(visitors)))
        elif grouped:
            by_form.append(
                FormFailures(form, path, int(submits), int(leads_), int(failed), int(visitors))
            )
        else:
            totals = (int(submits), int(leads_), int(failed), int(visitors))
    by_form.sort(key=lambda r: (-r.failed, -r.submits, r.form, r.path))
    by_reason.sort(key=lambda r: (-r.failed, r.form, r.reason, r.field))
    return FormFailureReport(period, within_ms, *totals, tuple(by_form), tuple(by_reason))
