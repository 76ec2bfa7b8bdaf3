"""The ASGI application factory and its routes."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import importlib.resources
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from sitepulse.auth import (
    ACCESS_HANDLERS,
    AuthMiddleware,
    SignInLimiter,
    auth_routes,
    default_is_public,
    principal_of,
    token_routes,
)
from sitepulse.clock import MAX_EPOCH_MS
from sitepulse.collect.ingest import Outcome, error
from sitepulse.config.models import SiteConfig
from sitepulse.enrich.pipeline import Client
from sitepulse.runtime import Runtime
from sitepulse.web.api import report_routes
from sitepulse.web.fastpath import BeaconFastPath
from sitepulse.web.http import (
    CORS,
    BodyTooLarge,
    ClientAddress,
    ForwardedProto,
    json_response,
    outcome_response,
    read_body,
    too_large,
)
from sitepulse.web.openapi import build_openapi
from sitepulse.web.ui import ui_routes
from sitepulse.web.ui.experiments import experiment_routes
from sitepulse.web.ui.funnels import funnel_routes
from sitepulse.web.ui.leads import leads_routes
from sitepulse.web.ui.settings import settings_routes

log = logging.getLogger(__name__)


class Collector:
    """The built `/sp.js`, held in memory with its gzip form and ETag."""

    def __init__(self) -> None:
        source = importlib.resources.files("sitepulse.collect") / "static" / "sp.js"
        try:
            self.body: bytes | None = source.read_bytes()
        except (FileNotFoundError, OSError):
            self.body = None
        self.gzipped = gzip.compress(self.body, 9) if self.body else b""
        self.etag = '"' + hashlib.sha256(self.body or b"").hexdigest()[:16] + '"'

    def response(self, request: Request) -> Response:
        if self.body is None:
            return json_response(
                503,
                {
                    "error": "not_built",
                    "message": "sp.js is not built; run `make build`",
                },
            )
        headers = {
            "ETag": self.etag,
            "Cache-Control": "public, max-age=3600",
            "Vary": "Accept-Encoding",
            "Access-Control-Allow-Origin": "*",
        }
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(self.gzipped, headers=headers, media_type="text/javascript")
        return Response(self.body, headers=headers, media_type="text/javascript")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _is_public(method: str, path: str) -> bool:
    # The API's description is documentation, not data.
    return path == "/openapi.json" or default_is_public(method, path)


def create_app(runtime: Runtime, *, extra_routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    """Build the app around a runtime; the lifespan starts and stops it."""
    settings = runtime.settings
    ingest = runtime.ingest
    client_ip = ClientAddress(settings.server.trusted_proxies)
    beacon_limit = settings.server.max_beacon_bytes
    body_limit = settings.server.max_body_bytes
    collector = Collector()
    openapi = build_openapi()

    def client_of(request: Request) -> Client:
        return Client(client_ip(request), request.headers.get("user-agent", ""))

    sites_by_id = {site.id: site for site in settings.sites}

    def query_site(request: Request) -> SiteConfig | Outcome:
        """The site a query is about: a signed-in user's or API token's `site` parameter
        (default: the first site), or the site whose token is the Bearer."""
        if principal_of(request) is None:
            return authenticate(request)
        wanted = request.query_params.get("site")
        if wanted is None:
            return settings.sites[0]
        found = sites_by_id.get(wanted)
        if found is None:
            return error(404, "unknown_site", f"no site {wanted!r}", "site")
        return found

    def authenticate(request: Request) -> SiteConfig | Outcome:
        token = _bearer(request)
        if token is None:
            return error(
                401, "unauthorized", "send `Authorization: Bearer <site token>`", "authorization"
            )
        site = ingest.site_for_token(token)
        if site is None:
            return error(403, "forbidden", "this token belongs to no site", "authorization")
        return site

    async def sp_js(request: Request) -> Response:
        return collector.response(request)

    async def preflight(request: Request) -> Response:
        return Response(status_code=204, headers=CORS)

    async def post_events(request: Request) -> Response:
        site = authenticate(request)
        if isinstance(site, Outcome):
            ingest.metrics.requests.labels("events", str(site.status)).inc()
            return outcome_response(site)
        try:
            body = await read_body(request, body_limit)
        except BodyTooLarge:
            ingest.metrics.requests.labels("events", "413").inc()
            ingest.metrics.dropped.labels("too_large").inc()
            return too_large(body_limit)
        # The caller is a backend: its own address and agent say nothing of the user.
        return outcome_response(await ingest.server_events(body, site, Client("", "")))

    async def post_lead(request: Request) -> Response:
        try:
            body = await read_body(request, beacon_limit)
        except BodyTooLarge:
            ingest.metrics.requests.labels("leads", "413").inc()
            return too_large(beacon_limit)
        sub = ingest.decode_lead(body)
        if isinstance(sub, Outcome):
            return outcome_response(sub, CORS)
        client = client_of(request)
        if request.headers.get("authorization"):
            site_or_error = authenticate(request)
            if isinstance(site_or_error, Outcome):
                return outcome_response(site_or_error)
            site = site_or_error
            if sub.site_key and sub.site_key != site.public_key:
                return outcome_response(
                    error(400, "invalid", "site_key does not match the token's site", "site_key")
                )
            # A backend relays its user's address and agent; without them, leave unlinked.
            client = Client(sub.ip, sub.user_agent)
        else:
            found = ingest.sites_by_key.get(sub.site_key)
            if found is None:
                field_error = "site_key is required" if not sub.site_key else "no site has this key"
                status = 400 if not sub.site_key else 404
                return outcome_response(
                    error(
                        status,
                        "unknown_site" if sub.site_key else "invalid",
                        field_error,
                        "site_key",
                    ),
                    CORS,
                )
            site = found
        return outcome_response(await ingest.lead(sub, site, client), CORS)

    async def get_events(request: Request) -> Response:
        site = authenticate(request)
        if isinstance(site, Outcome):
            return outcome_response(site)
        params = request.query_params
        try:
            limit = int(params.get("limit", "100"))
            since = int(params.get("since", "0"))
        except ValueError:
            return outcome_response(error(400, "invalid", "must be an integer", "limit/since"))
        if not 1 <= limit <= 10_000:
            return outcome_response(error(400, "invalid", "must be 1..10000", "limit"))
        if not 0 <= since <= MAX_EPOCH_MS:
            return outcome_response(
                error(400, "invalid", "must be epoch ms in 0..year 3000", "since")
            )
        sql = (
            "SELECT event_id::VARCHAR, epoch_ms(ts), epoch_ms(received_at), type, name, value,"
            " printf('%016x', visitor_id), printf('%016x', session_id), page_seq, url, path,"
            " page_group,"
            " referrer, utm_source, utm_medium, utm_campaign, click_id_kind, channel,"
            " channel_rule, source, medium, country, region, device, browser, os, is_bot,"
            " bot_reason, props FROM events"
            " WHERE site = ? AND ts >= make_timestamp(?::BIGINT * 1000)"
        )
        args: list[Any] = [site.id, since]
        if params.get("type"):
            sql += " AND type = ?"
            args.append(params["type"])
        sql += " ORDER BY ts DESC LIMIT ?"
        args.append(limit)
        # Read your writes: what was acknowledged is loaded before we look.
        await run_in_threadpool(runtime.writer.flush)
        rows = await run_in_threadpool(runtime.store.query, sql, args)
        names = (
            "event_id",
            "ts",
            "received_at",
            "type",
            "name",
            "value",
            "visitor_id",
            "session_id",
            "page_seq",
            "url",
            "path",
            "page_group",
            "referrer",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "click_id_kind",
            "channel",
            "channel_rule",
            "source",
            "medium",
            "country",
            "region",
            "device",
            "browser",
            "os",
            "is_bot",
            "bot_reason",
            "props",
        )
        return json_response(200, {"events": [dict(zip(names, row, strict=True)) for row in rows]})

    async def metrics(request: Request) -> Response:
        return Response(
            generate_latest(runtime.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        problems = []
        if not runtime.writer.alive:
            problems.append("writer thread is not running")
        if runtime.writer.queued_events >= runtime.writer.max_queue_events:
            problems.append("ingest queue is full")
        try:
            await run_in_threadpool(runtime.store.query, "SELECT 1")
        except Exception as exc:  # readiness reports any store failure, whatever its type
            problems.append(f"store: {exc}")
        status = 503 if problems else 200
        return json_response(
            status,
            {
                "status": "ready" if not problems else "not ready",
                "problems": problems,
                "time": dt.datetime.now(dt.UTC).isoformat(),
            },
        )

    async def openapi_json(request: Request) -> Response:
        return json_response(200, openapi)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    if settings.server.sample_site:
        from sitepulse.demo.site import site_routes

        extra_routes = [
            *extra_routes,
            Mount("/site", routes=site_routes(settings.sites[0].public_key)),
        ]

    routes: list[BaseRoute] = [
        Route("/sp.js", sp_js, methods=["GET"]),
        # POST /api/v1/collect is served by BeaconFastPath in front of this app.
        Route("/api/v1/collect", preflight, methods=["OPTIONS"]),
        Route("/api/v1/events", post_events, methods=["POST"]),
        Route("/api/v1/events", get_events, methods=["GET"]),
        Route("/api/v1/leads", post_lead, methods=["POST"]),
        Route("/api/v1/leads", preflight, methods=["OPTIONS"]),
        *report_routes(runtime, query_site),
        *auth_routes(runtime.auth, SignInLimiter(), client_address=client_ip),
        *token_routes(runtime.auth, client_address=client_ip),
        *ui_routes(runtime),
        *leads_routes(runtime),
        *funnel_routes(runtime),
        *experiment_routes(runtime),
        *settings_routes(runtime, client_address=client_ip),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *extra_routes,
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=ACCESS_HANDLERS)
    # The beacon fast path stays in front: collect needs no sign-in and no page headers.
    guarded = ForwardedProto(
        AuthMiddleware(
            app,
            db=runtime.auth,
            is_public=_is_public,
            secure_cookies=settings.server.secure_cookies,
        ),
        client_ip,
    )
    return BeaconFastPath(guarded, ingest, client_ip, beacon_limit)
