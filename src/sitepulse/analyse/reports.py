"""The analyses by name, with their parameters parsed in one place.

`GET /api/v1/<report>` and `sitepulse report <report>` both come through
`run_report`, so a parameter means the same and fails the same way in both:
an `AnalysisError` naming it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sitepulse.analyse import funnels, kpis, vitals
from sitepulse.analyse.attribution import Dimension
from sitepulse.analyse.base import DAY_MS, AnalysisError, Period, Reader
from sitepulse.analyse.definitions import all_experiments, all_funnels
from sitepulse.analyse.touchpoints import attribution_report
from sitepulse.clock import MAX_EPOCH_MS, iso_ms
from sitepulse.config.models import Settings, SiteConfig

MAX_SPAN_DAYS = 400
DEFAULT_DAYS = 30


@dataclass(frozen=True, slots=True)
class Request:
    """One report request: the site, its parameters (strings, as from a URL) and now."""

    settings: Settings
    site: SiteConfig
    params: Mapping[str, str]
    now_ms: int

    def text(self, name: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.params.get(name, default)
        if choices is not None and value not in choices:
            raise AnalysisError(name, f"must be one of {', '.join(choices)} (got {value!r})")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise AnalysisError(name, f"must be a number (got {raw!r})") from None
        if not low <= value <= high:
            raise AnalysisError(name, f"must be between {low:g} and {high:g} (got {raw!r})")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.number(name, default, low, high)
        if value != int(value):
            raise AnalysisError(name, f"must be a whole number (got {self.params[name]!r})")
        return int(value)

    def _moment(self, name: str, zone: zoneinfo.ZoneInfo) -> int | None:
        raw = self.params.get(name)
        if raw is None or raw == "":
            return None
        try:
            if raw.isascii() and raw.isdigit():
                ms = int(raw)
            elif len(raw) == 10:  # a date: midnight in the site's time zone
                day = dt.date.fromisoformat(raw)
                ms = int(dt.datetime.combine(day, dt.time(), zone).timestamp() * 1000)
            else:
                moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=zone)
                ms = int(moment.timestamp() * 1000)
        except (ValueError, OverflowError, OSError):
            raise AnalysisError(
                name, f"must be a date (2026-11-01), an ISO time or epoch ms (got {raw!r})"
            ) from None
        if not 0 <= ms <= MAX_EPOCH_MS:
            raise AnalysisError(name, f"must be between 1970 and 3000 (got {raw!r})")
        return ms

    def period(self) -> Period:
        """`from`/`to` (dates are midnights in the site's zone; `to` is exclusive) or `days`."""
        zone = zoneinfo.ZoneInfo(self.site.timezone)
        end = self._moment("to", zone)
        start = self._moment("from", zone)
        days = self.integer("days", DEFAULT_DAYS, 1, MAX_SPAN_DAYS)
        if end is None:
            end = self.now_ms
        if start is None:
            start = end - days * DAY_MS
        if end <= start:
            raise AnalysisError("to", "must be after from")
        if end - start > MAX_SPAN_DAYS * DAY_MS:
            raise AnalysisError("from", f"the period may span at most {MAX_SPAN_DAYS} days")
        return Period(self.site.id, start, end)


Report = Callable[[Reader, Request], dict[str, Any]]


def _with_period(period: Period, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "site": period.site,
        "from": iso_ms(period.start_ms),
        "to": iso_ms(period.end_ms),
    } | body


def _kpis(reader: Reader, req: Request) -> dict[str, Any]:
    period = req.period()
    top = req.integer("top", 10, 1, 100)
    return _with_period(period, kpis.kpi_report(reader, period, top=top).to_dict())


def _vitals(reader: Reader, req: Request) -> dict[str, Any]:
    period = req.period()
    by = req.text("by", "page_group", ("page_group", "device", "none"))
    grouping: vitals.By | None = "device" if by == "device" else None
    if by == "page_group":
        grouping = "page_group"
    report = vitals.vitals_summary(reader, period, by=grouping)
    return _with_period(period, report.to_dict())


def _funnel(reader: Reader, req: Request) -> dict[str, Any]:
    period = req.period()
    breakdown = req.text("breakdown", "none", ("none", "channel", "device", "variant"))
    experiment = req.params.get("experiment") or None
    if breakdown == "variant" and experiment is None:
        raise AnalysisError("experiment", "is needed for a breakdown by variant")
    # The built-in lead funnel, then sitepulse.yaml's, then those defined in the UI.
    known = {e.definition.name: e.definition for e in all_funnels(req.settings, reader)}
    name = req.text("name", "lead", tuple(known))
    definition = known[name]
    report = funnels.funnel(
        reader,
        period,
        definition,
        breakdown=None if breakdown == "none" else breakdown,
        experiment=experiment,
    )
    return _with_period(period, report.to_dict())


def _form_failures(reader: Reader, req: Request) -> dict[str, Any]:
    period = req.period()
    within = req.integer("within_secs", 600, 10, 86_400) * 1000
    return _with_period(period, funnels.form_failures(reader, period, within_ms=within).to_dict())


def _attribution(reader: Reader, req: Request) -> dict[str, Any]:
    period = req.period()
    dimension = Dimension(req.text("dimension", "channel", tuple(d.value for d in Dimension)))
    report = attribution_report(reader, period, req.settings.attribution, dimension)
    return _with_period(period, report.to_dict())


def _experiments(reader: Reader, req: Request) -> dict[str, Any]:
    # scipy costs ~65 MB of memory: loaded on the first experiment question, not at start.
    from sitepulse.analyse.experiments import experiments_report

    period = req.period()
    defined = [entry.settings for entry in all_experiments(req.settings, reader)]
    found = experiments_report(reader, period, defined)
    wanted = req.params.get("name")
    if wanted is not None:
        found = [e for e in found if e.name == wanted]
        if not found:
            raise AnalysisError("name", f"no experiment {wanted!r} in this period")
    return _with_period(period, {"experiments": [e.to_dict() for e in found]})


def _sample_size(reader: Reader, req: Request) -> dict[str, Any]:
    from sitepulse.analyse.sequential import minimum_detectable_effect, sample_size

    baseline = req.number("baseline", 0.03, 1e-6, 0.999)
    alpha = req.number("alpha", 0.05, 1e-6, 0.5)
    power = req.number("power", 0.8, 0.5, 0.999)
    body: dict[str, Any] = {}
    if "visitors" in req.params:
        visitors = req.number("visitors", 0, 1, 1e12)
        mde = minimum_detectable_effect(baseline, visitors, alpha=alpha, power=power)
        body["minimum_detectable_effect"] = mde.to_dict()
    lift = req.number("mde", 0.10, 1e-4, 10)
    plan = sample_size(baseline, lift, alpha=alpha, power=power)
    return body | {"sample_size": plan.to_dict()}


_LEADS = """
SELECT lead_id::VARCHAR, epoch_ms(ts), email, name, company, channel, source, campaign,
       score, tier, epoch_ms(follow_up_due), is_test,
       (follow_up_due IS NOT NULL AND follow_up_due < make_timestamp(?::BIGINT * 1000)) AS overdue
FROM leads
WHERE site = ? AND ts >= make_timestamp(?::BIGINT * 1000) AND ts < make_timestamp(?::BIGINT * 1000)
  AND NOT is_bot {tier}
ORDER BY overdue DESC, follow_up_due NULLS LAST, score DESC NULLS LAST, ts DESC
LIMIT ?
"""


def _leads(reader: Reader, req: Request) -> dict[str, Any]:
    period = req.period()
    limit = req.integer("limit", 100, 1, 10_000)
    tiers = {t.name for t in req.settings.scoring.tiers}
    tier = req.params.get("tier")
    if tier is not None and tier not in tiers:
        raise AnalysisError("tier", f"must be one of {', '.join(sorted(tiers))} (got {tier!r})")
    args: list[Any] = [req.now_ms, *period.params[:3]]
    sql = _LEADS.format(tier="AND tier = ?" if tier else "")
    if tier:
        args.append(tier)
    rows = reader.query(sql, [*args, limit])
    names = (
        "lead_id",
        "ts",
        "email",
        "name",
        "company",
        "channel",
        "source",
        "campaign",
        "score",
        "tier",
        "follow_up_due",
        "is_test",
        "overdue",
    )
    leads = []
    for row in rows:
        item = dict(zip(names, row, strict=True))
        item["ts"] = iso_ms(item["ts"])
        item["follow_up_due"] = iso_ms(item["follow_up_due"])
        leads.append(item)
    return _with_period(period, {"leads": leads})


REPORTS: dict[str, Report] = {
    "kpis": _kpis,
    "vitals": _vitals,
    "funnel": _funnel,
    "form-failures": _form_failures,
    "attribution": _attribution,
    "experiments": _experiments,
    "sample-size": _sample_size,
    "leads": _leads,
}


def run_report(name: str, reader: Reader, request: Request) -> dict[str, Any]:
    """Run the named report; AnalysisError names a bad parameter."""
    report = REPORTS.get(name)
    if report is None:
        raise AnalysisError("report", f"must be one of {', '.join(REPORTS)} (got {name!r})")
    try:
        return report(reader, request)
    except AnalysisError:
        raise
    except ValueError as exc:
        # The statistics validate their own inputs; those come from parameters here.
        raise AnalysisError("parameters", str(exc)) from exc
