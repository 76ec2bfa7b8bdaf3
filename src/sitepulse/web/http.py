"""Small HTTP helpers shared by the routes: bodies with limits, client addresses, JSON."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sitepulse.collect.ingest import Outcome, error

encode_json = msgspec.json.Encoder().encode

# Browsers post beacons and lead forms from the site's own origin.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


class BodyTooLarge(Exception):
    pass


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(encode_json(body), status, headers=headers, media_type="application/json")


def outcome_response(outcome: Outcome, extra: dict[str, str] | None = None) -> Response:
    headers = dict(outcome.headers or {})
    if extra:
        headers.update(extra)
    return json_response(outcome.status, outcome.body, headers)


def too_large(limit: int) -> Response:
    return outcome_response(
        error(413, "too_large", f"request body exceeds {limit} bytes", "(body)")
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class ClientAddress:
    """The end user's address: X-Forwarded-For is believed only from trusted proxies."""

    def __init__(self, trusted: Sequence[str]) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in trusted]
        # Sized for many distinct visitor addresses in X-Forwarded-For, not just peers.
        self.is_trusted = functools.lru_cache(maxsize=16384)(self._is_trusted)

    def _is_trusted(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self._networks)

    def __call__(self, request: Request) -> str:
        peer = request.client.host if request.client else ""
        return self.resolve(peer, request.headers.get("x-forwarded-for"))

    def resolve(self, peer: str, forwarded: str | None) -> str:
        """The client address given the TCP peer and its X-Forwarded-For header."""
        if not forwarded or not self.is_trusted(peer):
            return peer
        # Walk from the right: the last hop not ours is the client.
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop
        return hops[0] if hops else peer


class ForwardedProto:
    """ASGI: a request a trusted proxy says came over https (X-Forwarded-Proto) gets the
    scheme "https", so cookies and HSTS follow the scheme the browser used."""

    def __init__(self, app: ASGIApp, client_address: ClientAddress) -> None:
        self.app = app
        self.client_address = client_address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("scheme") == "http":
            peer = scope["client"][0] if scope.get("client") else ""
            if peer and self.client_address.is_trusted(peer):
                for name, value in scope["headers"]:
                    if name == b"x-forwarded-proto":
                        if value.split(b",")[0].strip().lower() == b"https":
                            scope = {**scope, "scheme": "https"}
                        break
        await self.app(scope, receive, send)
