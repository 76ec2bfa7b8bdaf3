"""The sitepulse app (with its UI and sign-in) served in-process by uvicorn on loopback.

`UiServer` builds the runtime and `create_app` as `sitepulse serve` does, then signs a test
admin in for real: a user and a session in the auth database, whose cookie the test
clients (httpx and Chromium) send. Pages therefore run behind the real auth middleware and
its Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sitepulse.auth import SESSION_COOKIE, Principal, Sessions, Users
from sitepulse.config.models import Settings
from sitepulse.runtime import Runtime
from sitepulse.web.app import create_app
from tests.conftest import SITE_HOST, SITE_KEY, SITE_TOKEN, free_port

# The policy the pages must work under (the brief's; the auth middleware sends it).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
TESTER = "tester"


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    """One site (the conftest's keys and host) storing into `data_dir`."""
    site = {
        "id": "acme",
        "name": "ACME",
        "public_key": SITE_KEY,
        "token": SITE_TOKEN,
        "hosts": [SITE_HOST, "www.northwind-consulting.example"],
        "timezone": "Europe/London",
    }
    config: dict[str, Any] = {"storage": {"path": str(data_dir)}, "sites": [site]}
    config.update(overrides)
    return Settings.model_validate(config)


@dataclass
class UiServer:
    """The app as `sitepulse serve` builds it, served by uvicorn in a thread, with an
    admin `tester` signed in: `cookies` and `principal` are the session's."""

    settings: Settings
    port: int = field(default_factory=free_port)
    runtime: Runtime | None = None
    principal: Principal | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.runtime = Runtime.build(self.settings)
        Users(self.runtime.auth).add(TESTER, "a long test password", "admin", actor="test")
        session = Sessions(self.runtime.auth).create(TESTER)
        self.principal = session.principal
        self.cookies = {SESSION_COOKIE: session.cookie_value}
        app = create_app(self.runtime)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve()) if self._server else None,
            name="ui-server",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the UI server did not start")
            time.sleep(0.02)  # bounded by the deadline

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(60)

    def client(
        self, *, signed_in: bool = True, headers: dict[str, str] | None = None
    ) -> httpx.Client:
        """An HTTP client, with the tester's session cookie unless `signed_in` is False."""
        return httpx.Client(
            base_url=self.base_url,
            timeout=60.0,
            headers=headers,
            cookies=self.cookies if signed_in else None,
        )
