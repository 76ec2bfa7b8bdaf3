"""The data behind the built-in dashboards: one function per dashboard gathers every panel.

`executive(reader, request)` and `marketing(reader, request)` read the period from the
request as every report does (`days`, `from`, `to`), plus `compare` (1: add the previous
period of the same length) and `model` (the attribution model behind "value"). Each
returns `{"site", "from", "to", "compare", "previous_from", "previous_to", "panels",
"timings_ms"}`; `panels` maps the panel ids shared with the Grafana export to plain JSON.

Readings. A number with a history is `{"value", "previous", "change", "change_ratio",
"status"}`: previous and change only with `compare` (None otherwise), status from
`kpis.Target.status` where the seed gives a target (conversion rate >= 3 %, average lead
score > 70, Core Web Vitals pass rate >= 90 %), else None.

Value. A channel's value is the lead-score points credited to it: each lead's score (0-100)
is shared among its touchpoints by the attribution model (`attribution.report`), so value
weighs leads by quality. Unscored leads count as leads with value 0.

New queries (in `dashboard_queries`; the rest reuse kpis, vitals, funnels, attribution and
experiments): leads today against the same time yesterday; leads per day by the site's
local date; the score distribution by channel; conversion by the landing page's LCP.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from sitepulse.analyse import funnels, kpis, vitals
from sitepulse.analyse.attribution import (
    ALL_MODELS,
    AttributionModel,
    AttributionReport,
    Dimension,
)
from sitepulse.analyse.base import Period, Reader
from sitepulse.analyse.dashboard_queries import (
    conversion_by_landing_lcp,
    daily_leads,
    leads_today,
    score_distribution,
)
from sitepulse.analyse.definitions import all_experiments
from sitepulse.analyse.reports import Request
from sitepulse.analyse.touchpoints import attribution_report
from sitepulse.clock import iso_ms

EXECUTIVE_PANELS: Final = (
    "conversion_rate",
    "leads_today",
    "leads_trend",
    "uptime",
    "leads_by_channel",
    "value_by_channel",
    "cwv_compliance",
    "avg_lead_score",
    "kpi_summary",
)
MARKETING_PANELS: Final = (
    "funnel",
    "attribution",
    "lead_quality_by_source",
    "experiments",
    "channel_performance",
    "top_paths",
    "vitals_by_page",
    "conversion_by_lcp",
)
UPTIME_SLO: Final = 0.9995
CWV_TARGET: Final = kpis.Target(vitals.CWV_TARGET)
DEFAULT_MODEL: Final = AttributionModel.POSITION_BASED
KPI_LABELS: Final[Mapping[str, str]] = {
    "visitors": "Visitors",
    "sessions": "Sessions",
    "conversion_rate": "Conversion rate",
    "leads": "Leads",
    "leads_per_day": "Leads per day",
    "avg_lead_score": "Average lead score",
    "email_signup_rate": "Email sign-up rate",
    "engaged_time_per_session": "Engaged time per session",
}

Panels = dict[str, Any]


class _Timings:
    """Milliseconds spent per step, so the dashboards can be profiled and optimised."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.ms: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = self._clock()
        try:
            yield
        finally:
            self.ms[name] = round((self._clock() - start) * 1000, 2)


def _compare(req: Request) -> bool:
    return req.text("compare", "0", ("0", "1", "true", "false", "")) in ("1", "true")


def _model(req: Request) -> AttributionModel:
    return AttributionModel(
        req.text("model", DEFAULT_MODEL.value, tuple(m.value for m in ALL_MODELS))
    )


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def reading(
    value: float | None,
    previous: float | None,
    compare: bool,
    target: kpis.Target | None = None,
) -> dict[str, Any]:
    """A number, its previous-period value and change (with `compare`) and its status."""
    before = previous if compare else None
    change = None if value is None or before is None else value - before
    return {
        "value": value,
        "previous": before,
        "change": change,
        "change_ratio": None if change is None or before is None else _ratio(change, before),
        "status": target.status(value) if target is not None else None,
    }


def _kpi_reading(r: kpis.Reading, compare: bool, target: kpis.Target | None) -> dict[str, Any]:
    return reading(r.value, r.previous, compare, target)


def _envelope(period: Period, compare: bool, panels: Panels, timings: _Timings) -> dict[str, Any]:
    before = period.previous()
    return {
        "site": period.site,
        "from": iso_ms(period.start_ms),
        "to": iso_ms(period.end_ms),
        "compare": compare,
        "previous_from": iso_ms(before.start_ms) if compare else None,
        "previous_to": iso_ms(before.end_ms) if compare else None,
        "panels": panels,
        "timings_ms": timings.ms,
    }


def _slope(ys: Sequence[float]) -> float | None:
    n = len(ys)
    if n < 2:
        return None
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((x - mx) * (y - my) for x, y in enumerate(ys)) / sum((x - mx) ** 2 for x in range(n))


def _trend(reader: Reader, period: Period, zone: str, compare: bool) -> dict[str, Any]:
    days = daily_leads(reader, period, zone)
    # The slope leaves out the first and last dates, which the period may only clip.
    inner = [float(d["leads"]) for d in days[1:-1]] if len(days) > 3 else []
    out: dict[str, Any] = {"days": days, "slope_per_day": _slope(inner), "previous": None}
    if compare:
        out["previous"] = daily_leads(reader, period.previous(), zone)
    return out


def _value_panel(
    report: AttributionReport,
    model: AttributionModel,
    compare: bool,
    before: AttributionReport | None,
) -> Panels:
    previous = {r.key: r.value[model] for r in before.rows} if before is not None else {}
    rows = [
        {"channel": r.key, "leads": r.leads[model]}
        | reading(r.value[model], previous.get(r.key, 0.0), compare)
        for r in report.rows
    ]
    return {
        "model": model.value,
        "rows": rows,
        "total": report.total.value[model],
        "definition": (
            "lead-score points credited to the channel: each lead's score is shared among "
            f"its touchpoints by the {model.value.replace('_', '-')} model"
        ),
    }


def executive(
    reader: Reader, req: Request, *, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """Every panel of the executive dashboard for the request's site and period."""
    period, compare, model = req.period(), _compare(req), _model(req)
    zone = req.site.timezone
    timings = _Timings(clock)
    with timings.step("kpis"):
        report = kpis.kpi_report(reader, period, top=1, paths=False, previous=compare)
    with timings.step("vitals"):
        cwv = vitals.cwv_compliance(reader, period)
        cwv_before = vitals.cwv_compliance(reader, period.previous()) if compare else None
    with timings.step("attribution"):
        value = attribution_report(reader, period, req.settings.attribution, Dimension.CHANNEL)
        value_before = (
            attribution_report(
                reader, period.previous(), req.settings.attribution, Dimension.CHANNEL
            )
            if compare
            else None
        )
    with timings.step("leads_today"):
        today = leads_today(reader, period.site, zone, req.now_ms)
    with timings.step("leads_trend"):
        trend = _trend(reader, period, zone, compare)

    conversion = report.kpi("conversion_rate")
    score = report.kpi("avg_lead_score")
    leads = report.kpi("leads")
    summary = [
        {
            "name": k.name,
            "label": KPI_LABELS.get(k.name, k.name),
            "unit": k.unit,
            "target": None if k.target is None else k.target.value,
            "target_strict": None if k.target is None else k.target.strict,
            **_kpi_reading(k.overall, compare, k.target),
        }
        for k in report.kpis
    ]
    cwv_share = cwv.share
    summary.append(
        {
            "name": "cwv_pass_rate",
            "label": "Core Web Vitals pass rate",
            "unit": "ratio",
            "target": CWV_TARGET.value,
            "target_strict": False,
            **reading(cwv_share, cwv_before.share if cwv_before else None, compare, CWV_TARGET),
        }
    )
    panels: Panels = {
        "conversion_rate": {
            **_kpi_reading(conversion.overall, compare, conversion.target),
            "target": kpis.TARGETS["conversion_rate"].value,
            "sessions": report.kpi("sessions").overall.value,
            # rate = converting / sessions exactly, so the count comes back by rounding
            # (the paths query that counts them is not run for this dashboard)
            "converting_sessions": _converting(report),
        },
        "leads_today": {
            "date": today["date"],
            "timezone": today["timezone"],
            **reading(today["today"], today["by_this_time_yesterday"], True),
            "yesterday_total": today["yesterday_total"],
        },
        "leads_trend": trend,
        "uptime": {
            "status": "no_checks",
            "slo": UPTIME_SLO,
            "message": "No checks configured yet",
            "value": None,
        },
        "leads_by_channel": {
            "rows": [
                {"channel": r.channel} | _kpi_reading(r, compare, None) for r in leads.by_channel
            ],
            "total": leads.overall.value,
        },
        "value_by_channel": _value_panel(value, model, compare, value_before),
        "cwv_compliance": {
            **reading(cwv_share, cwv_before.share if cwv_before else None, compare, CWV_TARGET),
            "target": CWV_TARGET.value,
            "page_loads": cwv.page_loads,
            "passing": cwv.passing,
            "without_inp": cwv.without_inp,
            "met": cwv.met,
        },
        "avg_lead_score": {
            **_kpi_reading(score.overall, compare, score.target),
            "target": kpis.TARGETS["avg_lead_score"].value,
            "leads": leads.overall.value,
        },
        "kpi_summary": {"rows": summary, "yellow_band": report.yellow_band},
    }
    return _envelope(period, compare, panels, timings)


def _funnel_panel(current: funnels.FunnelReport, before: funnels.FunnelReport | None) -> Panels:
    body = current.to_dict()
    steps = body["steps"]
    if before is not None:
        for step, old in zip(steps, before.steps, strict=True):
            step["previous_units"] = old.units
    return {
        "name": current.definition.name,
        "unit": current.definition.unit.value,
        "window_ms": current.definition.window_ms,
        "entered": body["entered"],
        "converted": body["converted"],
        **reading(
            current.total.conversion_rate,
            before.total.conversion_rate if before is not None else None,
            before is not None,
        ),
        "median_time_to_convert_ms": body["median_time_to_convert_ms"],
        "steps": steps,
    }


def _experiments_panel(reader: Reader, req: Request, period: Period) -> Panels:
    # scipy costs ~65 MB of memory: loaded on the first experiment question, not at start.
    from sitepulse.analyse.experiments import experiments_report

    out = []
    # Those defined in the UI too, with their own settings (as the experiments report).
    defined = [entry.settings for entry in all_experiments(req.settings, reader)]
    for e in experiments_report(reader, period, defined):
        item: dict[str, Any] = {
            "name": e.name,
            "metric": e.metric,
            "configured": e.configured,
            "problem": e.problem,
            "verdict": None,
            "sample_ratio_mismatch": None,
            "control": None,
            "arms": [],
            "variants": [],
        }
        if e.readout is not None:
            r = e.readout
            item |= {
                "verdict": r.verdict,
                "sample_ratio_mismatch": r.sample_ratio.mismatch,
                "control": r.control,
                "arms": [arm.to_dict() for arm in r.arms],
                "variants": [
                    {
                        "name": v.name,
                        "decision": v.decision,
                        "verdict": v.verdict,
                        "relative_lift": v.frequentist.relative_lift,
                        "difference": v.frequentist.difference,
                        "ci_low": v.frequentist.ci_low,
                        "ci_high": v.frequentist.ci_high,
                        "p_value": v.sequential_p_adjusted,
                        "probability_better": v.bayesian.probability_variant_better,
                        "more_visitors_needed": v.more_visitors_needed,
                    }
                    for v in r.variants
                ],
            }
        out.append(item)
    return {"experiments": out}


def _channel_performance(
    report: kpis.KpiReport, value: AttributionReport, model: AttributionModel, compare: bool
) -> Panels:
    names = ("sessions", "leads", "conversion_rate", "avg_lead_score")
    by_name = {n: {r.channel: r for r in report.kpi(n).by_channel} for n in names}
    values = {r.key: r.value[model] for r in value.rows}
    sessions = {c: r.value or 0.0 for c, r in by_name["sessions"].items() if c is not None}
    channels = sorted(sessions.keys() | values.keys(), key=lambda c: (-sessions.get(c, 0.0), c))
    rows = []
    for channel in channels:
        row: dict[str, Any] = {"channel": channel, "value": values.get(channel, 0.0)}
        for n in names:
            found = by_name[n].get(channel)
            target = kpis.TARGETS.get(n)
            row[n] = (
                _kpi_reading(found, compare, target)
                if found is not None
                else reading(None, None, compare, target)
            )
        rows.append(row)
    return {"model": model.value, "rows": rows}


def _vitals_by_page(groups: Sequence[vitals.GroupVitals]) -> Panels:
    rows = []
    for group in groups:
        metrics = {
            m.metric: {"p75": m.p75, "rating": m.p75_rating, "samples": m.samples}
            for m in group.metrics
            if m.metric in vitals.CORE_METRICS
        }
        c = group.compliance
        rows.append(
            {
                "page_group": group.key,
                "metrics": metrics,
                "page_loads": c.page_loads,
                "cwv_pass_rate": c.share,
                "status": CWV_TARGET.status(c.share),
            }
        )
    thresholds = {
        m: {
            "good": vitals.THRESHOLDS[m].good,
            "poor": vitals.THRESHOLDS[m].poor,
            "unit": vitals.THRESHOLDS[m].unit,
        }
        for m in vitals.CORE_METRICS
    }
    return {"rows": rows, "thresholds": thresholds}


def marketing(
    reader: Reader, req: Request, *, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """Every panel of the marketing dashboard for the request's site and period."""
    period, compare, model = req.period(), _compare(req), _model(req)
    timings = _Timings(clock)
    with timings.step("kpis"):
        report = kpis.kpi_report(reader, period, top=10, previous=compare)
    with timings.step("funnel"):
        lead_funnel = funnels.funnel(reader, period, funnels.DEFAULT_LEAD_FUNNEL)
        before = (
            funnels.funnel(reader, period.previous(), funnels.DEFAULT_LEAD_FUNNEL)
            if compare
            else None
        )
    with timings.step("attribution"):
        attribution = attribution_report(
            reader, period, req.settings.attribution, Dimension.CHANNEL
        )
    with timings.step("lead_quality"):
        tiers = [t.name for t in sorted(req.settings.scoring.tiers, key=lambda t: -t.min_score)]
        quality = score_distribution(reader, period, tiers)
    with timings.step("experiments"):
        experiments = _experiments_panel(reader, req, period)
    with timings.step("vitals"):
        by_page = vitals.core_vitals_by(reader, period, "page_group")
    with timings.step("conversion_by_lcp"):
        by_lcp = conversion_by_landing_lcp(reader, period)

    def paths(items: Sequence[kpis.PathCount]) -> list[dict[str, Any]]:
        return [{"steps": list(p.steps), "sessions": p.sessions, "share": p.share} for p in items]

    panels: Panels = {
        "funnel": _funnel_panel(lead_funnel, before),
        "attribution": attribution.to_dict() | {"value_model": model.value},
        "lead_quality_by_source": quality,
        "experiments": experiments,
        "channel_performance": _channel_performance(report, attribution, model, compare),
        "top_paths": {
            "converting_sessions": report.converting_sessions,
            "paths": paths(report.top_paths),
            "page_group_paths": paths(report.top_page_group_paths),
        },
        "vitals_by_page": _vitals_by_page(by_page),
        "conversion_by_lcp": by_lcp,
    }
    return _envelope(period, compare, panels, timings)


DASHBOARDS: Final[Mapping[str, Callable[[Reader, Request], dict[str, Any]]]] = {
    "executive": executive,
    "marketing": marketing,
}


def _converting(report: kpis.KpiReport) -> int:
    sessions = report.kpi("sessions").overall.value or 0
    rate = report.kpi("conversion_rate").overall.value or 0
    return round(rate * sessions)
