"""Every route of the real app, walked from its route table: what anonymous callers, viewers
and admins may do. A route added later without a decision here fails `test_every_route_is_
classified`, so nothing becomes public by accident."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from sitepulse.auth import default_is_public
from sitepulse.clock import ManualClock
from tests.web.ui.ui_server import SITE_TOKEN, UiServer, ui_settings

NOW = 1_767_225_600_000

# Routes anyone may call (the route itself checks a site key or token where it needs one).
PUBLIC = {
    ("GET", "/sp.js"),
    ("OPTIONS", "/api/v1/collect"),
    ("POST", "/api/v1/events"),
    ("POST", "/api/v1/leads"),
    ("OPTIONS", "/api/v1/leads"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/static/{name}"),
    ("GET", "/static/plotly.min.js"),
}
# Changes only an admin may make (viewers get 403), with a body that would otherwise pass.
ADMIN_ONLY = {
    ("POST", "/funnels/new"),
    ("POST", "/funnels/{name}/edit"),
    ("POST", "/funnels/{name}/delete"),
    ("POST", "/experiments/new"),
    ("POST", "/experiments/{name}/edit"),
    ("POST", "/experiments/{name}/delete"),
    ("GET", "/settings/users"),
    ("POST", "/settings/users"),
    ("POST", "/settings/users/{username}/role"),
    ("POST", "/settings/users/{username}/disable"),
    ("POST", "/settings/users/{username}/enable"),
    ("POST", "/settings/users/{username}/password"),
    ("GET", "/settings/audit"),
}


def _routes(app: object) -> Iterator[tuple[str, str]]:
    """(method, path) of every route under the middleware stack."""
    while not hasattr(app, "routes"):
        app = app.app  # type: ignore[attr-defined]
    for route in app.routes:
        if isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path
        elif isinstance(route, Mount):
            yield "GET", route.path + "/{rest}"


def _concrete(path: str) -> str:
    """A path with its parameters filled in with plausible values."""
    return re.sub(r"\{[^}]+\}", "x1", path).replace("x1:int", "1")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    folder: Path = tmp_path_factory.mktemp("access")
    ui = UiServer(ui_settings(folder), lambda runtime: [], clock=ManualClock(NOW)).start()
    yield ui
    ui.stop()


def _table(server: UiServer) -> list[tuple[str, str]]:
    from sitepulse.web.app import create_app

    return sorted(set(_routes(create_app(server.runtime))))


def test_every_route_is_classified(server: UiServer) -> None:
    for method, path in _table(server):
        public = default_is_public(method, _concrete(path)) or path == "/openapi.json"
        assert public == ((method, path) in PUBLIC), (method, path)


def test_anonymous_callers_are_refused_everywhere_else(server: UiServer) -> None:
    refused = []
    with server.client(None) as anonymous:
        for method, path in _table(server):
            if (method, path) in PUBLIC or path.startswith("/site"):
                continue
            url = _concrete(path.replace("{id:int}", "1"))
            response = anonymous.request(method, url, follow_redirects=False)
            expected = 401 if url.startswith("/api/") else 303
            if response.status_code != expected:
                refused.append((method, url, response.status_code))
            elif expected == 303:
                assert response.headers["location"].startswith("/login")
    assert not refused


def test_a_site_token_opens_only_the_query_api(server: UiServer) -> None:
    bearer = {"Authorization": f"Bearer {SITE_TOKEN}"}
    with server.client(None) as anonymous:
        assert anonymous.get("/api/v1/kpis", headers=bearer).status_code == 200
        page = anonymous.get("/leads", headers=bearer, follow_redirects=False)
        assert page.status_code == 303  # pages want a signed-in person
        assert anonymous.get("/api/v1/tokens", headers=bearer).status_code == 401


@pytest.mark.parametrize(("method", "path"), sorted(ADMIN_ONLY))
def test_a_viewer_cannot_do_an_admins_actions(server: UiServer, method: str, path: str) -> None:
    url = _concrete(path).replace("/x1/", "/admin-user/") if "username" in path else path
    url = _concrete(url)
    with server.client("viewer") as viewer:
        data = {"csrf_token": server.csrf["viewer"], "name": "x1", "role": "admin"}
        response = viewer.request(method, url, data=data if method == "POST" else None)
    assert response.status_code == 403, (method, url, response.status_code)


def test_admin_only_routes_exist(server: UiServer) -> None:
    assert set(_table(server)) >= ADMIN_ONLY


def test_csrf_is_enforced_on_the_real_app(server: UiServer) -> None:
    body = {"name": "signups", "window_hours": "1", "step_name": "home", "step_path": "/"}
    with server.client("admin") as admin:
        assert admin.post("/funnels/new", data=body).status_code == 403
        forged = admin.post("/funnels/new", data=body | {"csrf_token": "forged"})
        assert forged.status_code == 403
