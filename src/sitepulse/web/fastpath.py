"""A raw ASGI path for browser beacons, in front of the Starlette app.

`POST /api/v1/collect` is the one endpoint whose request rate follows the
site's traffic. Routing, middleware and Request/Response objects cost more
than the ingest work itself, so beacons are handled here directly; the logic
is the same IngestService the other endpoints use. Everything else falls
through to the app.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from sitepulse.collect.ingest import IngestService, Outcome, error
from sitepulse.enrich.pipeline import Client
from sitepulse.web.http import CORS, ClientAddress, encode_json

COLLECT_PATH = "/api/v1/collect"
_BASE_HEADERS = [(b"content-type", b"application/json")] + [
    (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in CORS.items()
]


class BeaconFastPath:
    """Serves POST /api/v1/collect; passes every other request to `app`."""

    def __init__(
        self, app: ASGIApp, ingest: IngestService, client_ip: ClientAddress, limit: int
    ) -> None:
        self.app = app
        self.ingest = ingest
        self.client_ip = client_ip
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != COLLECT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        user_agent = forwarded = ""
        declared = -1
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared = int(value)
        body = await self._body(receive, declared)
        if body is None:
            self.ingest.metrics.requests.labels("collect", "413").inc()
            self.ingest.metrics.dropped.labels("too_large").inc()
            outcome = error(413, "too_large", f"request body exceeds {self.limit} bytes", "(body)")
        else:
            client = scope.get("client")
            peer = client[0] if client else ""
            ip = self.client_ip.resolve(peer, forwarded or None)
            outcome = await self.ingest.collect(body, Client(ip, user_agent))
        await _respond(send, outcome)

    async def _body(self, receive: Receive, declared: int) -> bytes | None:
        if declared > self.limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; an empty body answers 400
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(send: Send, outcome: Outcome) -> None:
    body = encode_json(outcome.body)
    headers = [*_BASE_HEADERS, (b"content-length", str(len(body)).encode())]
    for name, value in (outcome.headers or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
