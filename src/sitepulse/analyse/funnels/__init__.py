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

Modules: `definition` (steps, validation, `parse_funnel`, `implies`), `query` (the SQL and
`funnel`, and how it is kept fast), `report` (the answer), `failures` (`form_failures`:
form submits that no stored lead followed).
"""

from sitepulse.analyse.funnels.definition import (
    DEFAULT_LEAD_FUNNEL,
    DEFAULT_WINDOW_MS,
    EVENT_TYPES,
    MAX_STEPS,
    MAX_WINDOW_MS,
    MIN_STEPS,
    NOT_EXPOSED,
    Breakdown,
    EventStep,
    FunnelDefinition,
    FunnelStep,
    LeadStep,
    Order,
    PageStep,
    Unit,
    implies,
    parse_funnel,
)
from sitepulse.analyse.funnels.failures import (
    DEFAULT_FAILURE_WINDOW_MS,
    FailureReason,
    FormFailureReport,
    FormFailures,
    form_failures,
)
from sitepulse.analyse.funnels.query import funnel
from sitepulse.analyse.funnels.report import FunnelReport, FunnelSegment, StepResult

__all__ = [
    "DEFAULT_FAILURE_WINDOW_MS",
    "DEFAULT_LEAD_FUNNEL",
    "DEFAULT_WINDOW_MS",
    "EVENT_TYPES",
    "MAX_STEPS",
    "MAX_WINDOW_MS",
    "MIN_STEPS",
    "NOT_EXPOSED",
    "Breakdown",
    "EventStep",
    "FailureReason",
    "FormFailureReport",
    "FormFailures",
    "FunnelDefinition",
    "FunnelReport",
    "FunnelSegment",
    "FunnelStep",
    "LeadStep",
    "Order",
    "PageStep",
    "StepResult",
    "Unit",
    "form_failures",
    "funnel",
    "implies",
    "parse_funnel",
]
