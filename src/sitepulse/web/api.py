"""Query endpoints: `GET /api/v1/<report>` runs an analysis for the token's site."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sitepulse.analyse.base import AnalysisError
from sitepulse.analyse.reports import REPORTS, run_report
from sitepulse.analyse.reports import Request as ReportRequest
from sitepulse.collect.ingest import Outcome, error
from sitepulse.config.models import SiteConfig
from sitepulse.runtime import Runtime
from sitepulse.web.http import json_response, outcome_response

Authenticate = Callable[[Request], SiteConfig | Outcome]


def report_routes(runtime: Runtime, authenticate: Authenticate) -> list[Route]:
    """One GET route per report in `analyse.reports.REPORTS`."""

    def endpoint(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            site = authenticate(request)
            if isinstance(site, Outcome):
                return outcome_response(site)
            wanted = ReportRequest(
                runtime.settings, site, dict(request.query_params), runtime.ingest.clock()
            )
            # Read your writes: what was acknowledged is in the tables the analyses read.
            await run_in_threadpool(functools.partial(runtime.writer.flush, sessions=True))
            try:
                body = await run_in_threadpool(run_report, name, runtime.store, wanted)
            except AnalysisError as exc:
                return outcome_response(error(400, "invalid", exc.message, exc.field))
            return json_response(200, body, {"Cache-Control": "no-store"})

        return handle

    return [Route(f"/api/v1/{name}", endpoint(name), methods=["GET"]) for name in REPORTS]
