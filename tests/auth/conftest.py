"""A small Starlette app behind the auth middleware, served by uvicorn on loopback.

The server runs in a thread of the test process so the tests share its clock (a
ManualClock) and rate limiter: time moves when a test says so, never by sleeping.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from sitepulse.auth import (
    ACCESS_HANDLERS,
    AuditLog,
    AuthDB,
    AuthMiddleware,
    SignInLimiter,
    Tokens,
    Users,
    auth_routes,
    require_role,
    token_routes,
)
from sitepulse.clock import ManualClock
from tests.conftest import free_port

# Real argon2id with small parameters, so that sign-ins take milliseconds in tests.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
START_MS = 1_800_000_000_000
PASSWORD = "correct horse battery"
SITE_TOKEN = "sk_test_0123456789abcdef"
DEFAULT_ADDRESS = "198.51.100.7"


async def home(request: Request) -> Response:
    who = require_role(request)
    return JSONResponse({"user": who.username, "role": who.role, "csrf": who.csrf})


async def admin_action(request: Request) -> Response:
    who = require_role(request, "admin")
    body = await request.body()
    return JSONResponse({"done": True, "by": who.actor, "body": body.decode()})


async def api_thing(request: Request) -> Response:
    who = require_role(request)
    return JSONResponse({"user": who.username, "role": who.role, "via": who.via})


async def stream(request: Request) -> Response:
    require_role(request)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"chunk{i};".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def own_headers(request: Request) -> Response:
    require_role(request)
    return PlainTextResponse("mine", headers={"X-Frame-Options": "SAMEORIGIN"})


async def events(request: Request) -> Response:
    # Stands in for the JSON API routes that check a site token themselves.
    if request.headers.get("authorization") != f"Bearer {SITE_TOKEN}":
        return JSONResponse({"error": "forbidden"}, 403)
    return JSONResponse({"events": [], "by": "site token"})


async def public_text(request: Request) -> Response:
    return PlainTextResponse(f"public {request.url.path}")


async def sp_js(request: Request) -> Response:
    return Response("/* collector */", media_type="text/javascript")


def build_app(db: AuthDB, limiter: SignInLimiter, secure_cookies: bool | None = None) -> ASGIApp:
    routes = [
        Route("/", home),
        Route("/admin-action", admin_action, methods=["POST"]),
        Route("/api/v1/thing", api_thing, methods=["GET", "POST"]),
        Route("/stream", stream),
        Route("/own-headers", own_headers),
        Route("/api/v1/events", events, methods=["GET"]),
        Route("/api/v1/events", public_text, methods=["POST"]),
        Route("/api/v1/collect", public_text, methods=["POST", "OPTIONS"]),
        Route("/api/v1/leads", public_text, methods=["POST", "OPTIONS"]),
        Route("/sp.js", sp_js),
        Route("/healthz", public_text),
        Route("/readyz", public_text),
        Route("/metrics", public_text),
        Route("/static/app.css", public_text),
        Route("/site/index", public_text),
        *auth_routes(db, limiter, hasher=FAST_HASHER),
        *token_routes(db),
    ]
    app = Starlette(routes=routes, exception_handlers=ACCESS_HANDLERS)
    return AuthMiddleware(app, db=db, secure_cookies=secure_cookies)


def cookies_set(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Set-Cookie headers by cookie name: {"value": ..., "path": ..., "httponly": "", ...}."""
    found = {}
    for line in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in line.split(";")]
        name, _, value = first.partition("=")
        attrs = {"value": value}
        for attribute in attributes:
            key, _, content = attribute.partition("=")
            attrs[key.lower()] = content
        found[name] = attrs
    return found


@dataclass
class Browser:
    """A signed-in browser: its session cookie and the CSRF token its pages carry."""

    server: AuthServer
    session: str
    csrf: str
    address: str = DEFAULT_ADDRESS

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        cookies = {"sitepulse_session": self.session} | kwargs.pop("cookies", {})
        return self.server.request(method, path, cookies=cookies, address=self.address, **kwargs)


@dataclass
class AuthServer:
    port: int
    db: AuthDB
    clock: ManualClock
    limiter: SignInLimiter
    # Shared by all tests: making an httpx client costs ~0.1 s (its TLS context).
    client: httpx.Client
    users: Users = field(init=False)
    tokens: Tokens = field(init=False)
    audit: AuditLog = field(init=False)

    def __post_init__(self) -> None:
        self.users = Users(self.db, hasher=FAST_HASHER)
        self.tokens = Tokens(self.db)
        self.audit = AuditLog(self.db)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        cookies: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        address: str = DEFAULT_ADDRESS,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request with exactly these cookies: the jar is emptied after each request
        (it would carry cookies between requests, and hold back Secure ones on http)."""
        sent = {"X-Forwarded-For": address} | (headers or {})
        if cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        try:
            return self.client.request(method, self.base_url + path, headers=sent, **kwargs)
        finally:
            self.client.cookies.clear()

    def add_user(self, username: str, role: str = "viewer", password: str = PASSWORD) -> None:
        self.users.add(username, password, role, actor="test")

    def login_form(self, address: str = DEFAULT_ADDRESS) -> tuple[str, str]:
        """(the login CSRF cookie, the token in the form)."""
        page = self.request("GET", "/login", address=address)
        assert page.status_code == 200, page.text
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match is not None, page.text
        return cookies_set(page)["sitepulse_login_csrf"]["value"], match.group(1)

    def post_login(
        self,
        username: str,
        password: str = PASSWORD,
        *,
        address: str = DEFAULT_ADDRESS,
        next_path: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        kept, token = self.login_form(address)
        fields = {"username": username, "password": password, "csrf_token": token}
        if next_path is not None:
            fields["next"] = next_path
        return self.request(
            "POST",
            "/login",
            cookies={"sitepulse_login_csrf": kept},
            data=fields,
            address=address,
            headers=headers,
        )

    def sign_in(self, username: str, password: str = PASSWORD, **kwargs: Any) -> Browser:
        response = self.post_login(username, password, **kwargs)
        assert response.status_code == 303, response.text
        session = cookies_set(response)["sitepulse_session"]["value"]
        browser = Browser(self, session, "", kwargs.get("address", DEFAULT_ADDRESS))
        page = browser.request("GET", "/")
        assert page.status_code == 200, page.text
        browser.csrf = page.json()["csrf"]
        return browser


@contextlib.contextmanager
def serve(app: ASGIApp) -> Iterator[int]:
    """Run `app` under uvicorn in a thread on a free loopback port until the caller ends."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        # As behind a TLS proxy: X-Forwarded-Proto/For from loopback set scheme and client.
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)  # start-up poll, bounded by the deadline
    try:
        yield port
    finally:
        # uvicorn spends 0.2 s shutting down; the next test need not wait for it.
        server.should_exit = True
        _stopping.append(thread)


_stopping: list[threading.Thread] = []


@pytest.fixture(scope="session", autouse=True)
def _join_servers() -> Iterator[None]:
    """Wait, once at the end, for every server stopped without waiting."""
    yield
    for thread in _stopping:
        thread.join(timeout=10)
        assert not thread.is_alive(), "a test server did not stop"


@pytest.fixture(scope="session")
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


@pytest.fixture
def auth_server(tmp_path: Path, http_client: httpx.Client) -> Iterator[AuthServer]:
    """A fresh auth database, clock and limiter, served by a fresh server."""
    clock = ManualClock(START_MS)
    db = AuthDB.in_folder(tmp_path / "data", clock=clock)
    limiter = SignInLimiter(clock=clock)
    with serve(build_app(db, limiter)) as port:
        yield AuthServer(port, db, clock, limiter, http_client)
    db.close()
