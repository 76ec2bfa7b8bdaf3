"""Form failures: `form`/`submit` events that no stored lead of the same visitor and form
followed within `within_ms`, with the last `submit_error` of that visitor and form within
`within_ms` either side of the submit as its reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from sitepulse.analyse.base import PERIOD_FILTER, AnalysisError, Period, Reader
from sitepulse.analyse.funnels.report import _ratio

DEFAULT_FAILURE_WINDOW_MS: Final = 600_000


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
