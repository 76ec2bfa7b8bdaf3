"""The executive and marketing dashboards: pages (GET /, /marketing) and their JSON.

Both read the same parameters (`site`, `days`, `from`, `to`, `until`, `compare`, `model`)
and are served from the same dashboard archive (analyse/archive.py: the last answer of
the same `analyse.dashboards` function while young enough), so the page and
`GET /api/v1/dashboards/<name>` always show the same numbers. When a request computes,
it first waits for what was acknowledged to be analysable (read your writes), except
for an auto-refresh (header `X-Sitepulse-Refresh: 1`): it must not queue behind the
loader. The Server-Timing header gives the analyses' times when the request computed,
and `archive;desc=fresh|stale` with the look-up's time when it was served an answer.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sitepulse.analyse import kpis
from sitepulse.analyse.base import AnalysisError
from sitepulse.analyse.dashboards import DASHBOARDS
from sitepulse.runtime import Runtime
from sitepulse.web.http import json_response
from sitepulse.web.ui import figures
from sitepulse.web.ui.render import (
    View,
    error_page,
    parse_view,
    principal_of,
    render,
    unauthorized,
)

REFRESH_HEADER = "x-sitepulse-refresh"
Dashboard = Callable[..., dict[str, Any]]


def executive_charts(panels: dict[str, Any]) -> dict[str, figures.Spec]:
    """The executive dashboard's chart specs by panel id."""
    conversion = panels["conversion_rate"]
    cwv = panels["cwv_compliance"]
    score = panels["avg_lead_score"]
    target = conversion["target"]
    return {
        "conversion_rate": figures.gauge(
            conversion["value"], target, 2 * target, conversion["status"], pct=True
        ),
        "leads_trend": figures.leads_trend(panels["leads_trend"]),
        "leads_by_channel": figures.channel_bars(
            panels["leads_by_channel"]["rows"], "channel", "leads"
        ),
        "value_by_channel": figures.channel_bars(
            panels["value_by_channel"]["rows"], "channel", "score points", digits=1
        ),
        "cwv_compliance": figures.gauge(cwv["value"], cwv["target"], 1.0, cwv["status"], pct=True),
        "avg_lead_score": figures.gauge(
            score["value"], score["target"], 100.0, score["status"], pct=False
        ),
    }


def marketing_charts(panels: dict[str, Any]) -> dict[str, figures.Spec]:
    """The marketing dashboard's chart specs by panel id."""
    return {
        "funnel": figures.funnel(panels["funnel"]),
        "attribution": figures.attribution(panels["attribution"]),
        "lead_quality_by_source": figures.score_histogram(panels["lead_quality_by_source"]),
        "experiments": figures.experiments(panels["experiments"]),
        "channel_performance": figures.channel_conversion(
            panels["channel_performance"], kpis.TARGETS["conversion_rate"].value
        ),
        "vitals_by_page": figures.vitals_by_page(panels["vitals_by_page"]),
        "conversion_by_lcp": figures.conversion_by_lcp(panels["conversion_by_lcp"]),
    }


CHARTS: dict[str, Callable[[dict[str, Any]], dict[str, figures.Spec]]] = {
    "executive": executive_charts,
    "marketing": marketing_charts,
}
TEMPLATES = {"executive": "executive.html", "marketing": "marketing.html"}


def _server_timing(timings: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={ms}" for name, ms in timings.items())


def dashboard_routes(runtime: Runtime) -> list[Route]:
    """GET / and /marketing (HTML), GET /api/v1/dashboards/{executive,marketing} (JSON)."""
    settings = runtime.settings

    async def gather(request: Request, name: str) -> tuple[View, dict[str, Any], str]:
        """The view asked for, its data and the Server-Timing header that goes with it."""
        now = runtime.ingest.clock()
        view = parse_view(request, settings, now)
        params = dict(view.report_params)
        if view.compare:
            params["compare"] = "1"
        if request.query_params.get("model"):
            params["model"] = request.query_params["model"]
        flush = None
        if request.headers.get(REFRESH_HEADER) != "1":
            # Read your writes: what was acknowledged is in the tables the analyses read
            # (when this request computes; an archived answer is served as it is).
            flush = functools.partial(runtime.writer.flush, sessions=True)
        key = (name, view.site.id, tuple(sorted(params.items())))
        answer = await run_in_threadpool(runtime.archive.answer, key, flush)
        data = answer.data | {
            "archive": {"status": answer.status, "age_secs": round(answer.age_secs, 1)}
        }
        lookup = f"archive;desc={answer.status};dur={answer.lookup_ms:.2f}"
        timing = lookup if answer.status != "computed" else _server_timing(data["timings_ms"])
        return view, data, timing

    def page(name: str, nav: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if principal_of(request) is None:
                return unauthorized()
            try:
                view, data, timing = await gather(request, name)
            except AnalysisError as exc:
                return error_page(request, 400, exc)
            context = {
                "view": view,
                "nav_active": nav,
                "data": data,
                "panels": data["panels"],
                "charts": CHARTS[name](data["panels"]),
                "updated_at": data["generated_at"],
            }
            response = render(request, TEMPLATES[name], context)
            response.headers["Server-Timing"] = timing
            return response

        return handle

    def api(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if principal_of(request) is None:
                body = {"error": "unauthorized", "message": "sign in or send an API token"}
                return json_response(401, body)
            try:
                _, data, timing = await gather(request, name)
            except AnalysisError as exc:
                body = {"error": "invalid", "message": exc.message, "field": exc.field}
                return json_response(400, body)
            headers = {"Cache-Control": "no-store", "Server-Timing": timing}
            return json_response(200, data, headers)

        return handle

    return [
        Route("/", page("executive", "executive"), methods=["GET"]),
        Route("/marketing", page("marketing", "marketing"), methods=["GET"]),
        *(Route(f"/api/v1/dashboards/{name}", api(name), methods=["GET"]) for name in DASHBOARDS),
    ]
