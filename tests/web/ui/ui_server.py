"""The real sitepulse app with extra UI routes, served in-process on loopback, for page tests.

`Runtime.build` + `create_app(extra_routes=...)`, so requests pass the real auth middleware
(sessions, CSRF, security headers). Two users exist, "admin-user" and "viewer-user", each
with a live session; `client(role)` sends that session's cookie, `csrf[role]` is its token.
uvicorn serves the app on a free port from a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import uvicorn
from starlette.routing import BaseRoute

from sitepulse.auth import SESSION_COOKIE, Sessions, Users
from sitepulse.clock import Clock
from sitepulse.config.models import Settings, SiteConfig, StorageConfig
from sitepulse.runtime import Runtime
from sitepulse.web.app import create_app
from tests.conftest import free_port

SITE_TOKEN = "sk_ui_test_0123456789abcdef"
ROLES = ("admin", "viewer")


def ui_settings(data_dir: Path, **extra: object) -> Settings:
    """Settings for the test site "acme" (the journeys builder's), data in `data_dir`."""
    site = SiteConfig(id="acme", name="ACME", public_key="pk_acme", token=SITE_TOKEN)
    return Settings.model_validate(
        {"storage": StorageConfig(path=data_dir), "sites": (site,), **extra}
    )


class UiServer:
    """A runtime and its app with the given routes, served on 127.0.0.1."""

    def __init__(
        self,
        settings: Settings,
        routes: Callable[[Runtime], Sequence[BaseRoute]],
        *,
        clock: Clock,
    ) -> None:
        self.runtime = Runtime.build(settings, clock=clock)
        app = create_app(self.runtime, extra_routes=list(routes(self.runtime)))
        users, sessions = Users(self.runtime.auth), Sessions(self.runtime.auth)
        self.cookies: dict[str, str] = {}
        self.csrf: dict[str, str] = {}
        for role in ROLES:
            name = f"{role}-user"
            users.add(name, "correct horse battery staple", role, actor="test")
            session = sessions.create(name)
            self.cookies[role] = session.cookie_value
            self.csrf[role] = session.principal.csrf
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> UiServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the UI test server did not start")
            time.sleep(0.01)  # start-up poll, bounded by the deadline
        return self

    def client(self, role: str | None) -> httpx.Client:
        """A client signed in as `role` ("admin", "viewer"; None: signed out)."""
        cookies = {SESSION_COOKIE: self.cookies[role]} if role else {}
        return httpx.Client(base_url=self.base_url, cookies=cookies, timeout=20.0)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)
