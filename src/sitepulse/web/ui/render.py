"""Server-rendered pages: one Jinja2 environment, the common context, and what a page shows.

The contract every UI page relies on:

- `parse_view(request, settings, now_ms)` reads `site`, `days`, `from`, `to`, `until`,
  `compare` and `refresh` from the query string into a `View` (an `AnalysisError` names a
  bad parameter). `from`/`to`/`days` mean what they mean to `GET /api/v1/<report>`;
  `until` is the UI's inclusive last day (the date picker's "to"), turned into `to`.
- `render(request, template, context, status=200)` renders `template` with `context` plus
  the common names: `principal`, `csrf_token`, `view`, `site`, `sites`, `period`,
  `nav_active`, `qs`, `static_url`, `plotly_url`. `context` must hold `view` (a `View`)
  unless the page has no period; `nav_active` defaults to "". Number filters (`pct`,
  `num`, `signed`, `signed_pct`, `signed_ratio`, `ms`, `duration`, `status_label`) come
  from `formats`; panel macros (chip, delta, chart, panel) from partials/macros.html.
- Autoescape is on and undefined names raise: nothing visitors sent is ever marked safe.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from sitepulse.analyse.base import DAY_MS, AnalysisError, Period
from sitepulse.analyse.reports import DEFAULT_DAYS
from sitepulse.analyse.reports import Request as ReportRequest
from sitepulse.auth.principal import SCOPE_KEY, Principal
from sitepulse.config.models import Settings, SiteConfig
from sitepulse.web.ui.formats import FILTERS
from sitepulse.web.ui.static import plotly_url, static_url

PRESETS: Final[tuple[tuple[str, str], ...]] = (
    ("today", "Today"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("90d", "90 days"),
)
REFRESH_CHOICES: Final[tuple[int, ...]] = (0, 30, 60, 300, 900)
# The query parameters a view keeps in its links, in a stable order.
_KEPT: Final = ("site", "days", "from", "to", "until", "compare", "refresh")

ENV: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("sitepulse.web.ui", "templates"),
    autoescape=jinja2.select_autoescape(("html",), default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.globals.update(
    static_url=static_url, plotly_url=plotly_url, PRESETS=PRESETS, REFRESH_CHOICES=REFRESH_CHOICES
)
ENV.filters.update(FILTERS)


@dataclass(frozen=True, slots=True)
class View:
    """The site and period a page shows, and how (compare, refresh); links keep all of it."""

    site: SiteConfig
    sites: tuple[SiteConfig, ...]
    period: Period
    preset: str  # "today", "7d", "30d", "90d" or "custom"
    compare: bool
    refresh_secs: int
    from_date: str  # first day, in the site's zone
    until_date: str  # last day (inclusive), in the site's zone
    today_date: str  # today, in the site's zone
    params: Mapping[str, str] = field(default_factory=dict)  # the query, as kept in links
    report_params: Mapping[str, str] = field(default_factory=dict)  # for analyse.reports

    @property
    def days(self) -> float:
        return self.period.length_ms / DAY_MS

    def preset_query(self, key: str) -> str:
        """The query string of a range preset ("today", "7d", ...), keeping the rest."""
        if key == "today":
            return self.qs(from_=self.today_date)
        return self.qs(days=key.removesuffix("d"))

    def report_request(self, settings: Settings, now_ms: int) -> ReportRequest:
        """The analyses' request for this view (same site, same period parameters)."""
        return ReportRequest(settings, self.site, self.report_params, now_ms)

    def qs(self, **changes: object) -> str:
        """This view's query string with `changes` (None or False drops a parameter).

        Choosing a range (`days`, `from`, `to`, `until`) replaces the current one.
        """
        changes = {k.rstrip("_"): v for k, v in changes.items()}  # from_=... for "from"
        kept = dict(self.params)
        if any(k in changes for k in ("days", "from", "to", "until")):
            for key in ("days", "from", "to", "until"):
                kept.pop(key, None)
        for key, value in changes.items():
            if value is None or value is False:
                kept.pop(key, None)
            else:
                kept[key] = "1" if value is True else str(value)
        ordered = [(k, kept[k]) for k in _KEPT if k in kept]
        return "?" + urlencode(ordered) if ordered else ""


def _local_date(ms: int, zone: zoneinfo.ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, zone).date()


def parse_view(request: Request, settings: Settings, now_ms: int) -> View:
    """The view the query string asks for; `AnalysisError` names a bad parameter."""
    query = request.query_params
    sites = settings.sites
    wanted = query.get("site") or sites[0].id
    site = next((s for s in sites if s.id == wanted), None)
    if site is None:
        raise AnalysisError("site", f"no site {wanted!r}")
    zone = zoneinfo.ZoneInfo(site.timezone)
    report: dict[str, str] = {k: query[k] for k in ("days", "from", "to") if query.get(k)}
    until = query.get("until")
    if until:
        try:
            day = dt.date.fromisoformat(until) + dt.timedelta(days=1)
        except (ValueError, OverflowError):
            raise AnalysisError("until", f"must be a date (2026-11-01), got {until!r}") from None
        report["to"] = day.isoformat()
    refresh_raw = query.get("refresh") or "0"
    if (
        not refresh_raw.isascii()
        or not refresh_raw.isdigit()
        or int(refresh_raw) not in REFRESH_CHOICES
    ):
        choices = ", ".join(map(str, REFRESH_CHOICES))
        raise AnalysisError("refresh", f"must be one of {choices} seconds (got {refresh_raw!r})")
    compare = query.get("compare", "") not in ("", "0", "false")
    period = ReportRequest(settings, site, report, now_ms).period()
    today = _local_date(now_ms, zone).isoformat()
    if "from" in report or "to" in report:
        plain_today = report.get("from") == today and "to" not in report
        preset = "today" if plain_today else "custom"
    else:
        days = report.get("days", str(DEFAULT_DAYS))
        preset = f"{days}d" if f"{days}d" in dict(PRESETS) else "custom"
    kept = {k: query[k] for k in _KEPT if query.get(k)}
    kept.pop("compare", None)
    if compare:
        kept["compare"] = "1"
    if kept.get("refresh") == "0":
        kept.pop("refresh")
    return View(
        site=site,
        sites=sites,
        period=period,
        preset=preset,
        compare=compare,
        refresh_secs=int(refresh_raw),
        from_date=_local_date(period.start_ms, zone).isoformat(),
        until_date=_local_date(period.end_ms - 1, zone).isoformat(),
        today_date=today,
        params=kept,
        report_params=report,
    )


def principal_of(request: Request) -> Principal | None:
    """The signed-in principal the auth middleware left in the scope, if any."""
    found = request.scope.get(SCOPE_KEY)
    return found if isinstance(found, Principal) else None


_SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def render(
    request: Request, template: str, context: Mapping[str, Any], status: int = 200
) -> HTMLResponse:
    """Render a page with the common context (see the module docstring); 401 without a user."""
    principal = principal_of(request)
    if principal is None:
        return unauthorized()
    view = context.get("view")
    names: dict[str, Any] = {
        "request": request,
        "principal": principal,
        "csrf_token": principal.csrf,
        "nav_active": "",
        "view": view,
        "site": view.site if isinstance(view, View) else None,
        "sites": view.sites if isinstance(view, View) else (),
        "period": view.period if isinstance(view, View) else None,
        "qs": view.qs if isinstance(view, View) else (lambda **_: ""),
    }
    names.update(context)
    html = ENV.get_template(template).render(names)
    return HTMLResponse(html, status, headers=_SECURITY_HEADERS)


def unauthorized() -> HTMLResponse:
    """The answer to a page request without a principal (the auth middleware normally
    redirects anonymous users before this is reached)."""
    html = ENV.get_template("unauthorized.html").render()
    return HTMLResponse(html, 401, headers=_SECURITY_HEADERS)


def error_page(request: Request, status: int, exc: AnalysisError) -> HTMLResponse:
    """A page explaining a bad parameter, with a link back to the defaults."""
    return render(
        request,
        "error.html",
        {"status": status, "field": exc.field, "message": exc.message, "path": request.url.path},
        status,
    )
