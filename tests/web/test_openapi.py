"""The OpenAPI document against the real app: it is valid OpenAPI 3.0.3, every API route of
`create_app` is in it (a new endpoint without a description fails here), each operation lets
in exactly the credentials it declares, each documented bound or choice of a query parameter
is where the endpoint draws its line, and periods at the edges of time get an answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from starlette.routing import Route

from sitepulse.auth import SESSION_COOKIE, Tokens
from sitepulse.clock import ManualClock
from sitepulse.web.app import create_app
from sitepulse.web.openapi import build_openapi
from tests.web.ui.ui_server import SITE_TOKEN, UiServer, ui_settings

NOW = 1_767_225_600_000
DOCUMENT = build_openapi()
OPERATIONS = [
    (method.upper(), path, operation)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
]
# Routes outside /api/ that the document describes too.
ALSO_DESCRIBED = {"/metrics", "/healthz", "/readyz", "/openapi.json"}
# POST /api/v1/collect is answered by BeaconFastPath, in front of the route table.
NOT_IN_ROUTE_TABLE = {("POST", "/api/v1/collect")}
SCHEMES = ("siteToken", "apiToken", "session", "csrfToken")
# Well-formed moments at the edges of what a date or an epoch-ms string can say.
EXTREME_PERIODS = (
    {"to": "99999999999999999999"},
    {"from": "9999-12-30", "to": "9999-12-31"},
    {"from": "0001-01-01", "to": "0001-01-03"},
    {"from": "²"},  # a digit to str.isdigit, not to int()
)


@dataclass(frozen=True)
class Keys:
    """A credential of each scheme the document names."""

    api_token: str
    cookie: str
    csrf: str

    def headers(self, schemes: frozenset[str]) -> dict[str, str]:
        headers: dict[str, str] = {}
        if "siteToken" in schemes:
            headers["Authorization"] = f"Bearer {SITE_TOKEN}"
        if "apiToken" in schemes:
            headers["Authorization"] = f"Bearer {self.api_token}"
        if "session" in schemes:
            headers["Cookie"] = f"{SESSION_COOKIE}={self.cookie}"
        if "csrfToken" in schemes:
            headers["X-CSRF-Token"] = self.csrf
        return headers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    folder: Path = tmp_path_factory.mktemp("openapi")
    ui = UiServer(ui_settings(folder), lambda runtime: [], clock=ManualClock(NOW)).start()
    yield ui
    ui.stop()


@pytest.fixture(scope="module")
def keys(server: UiServer) -> Keys:
    new = Tokens(server.runtime.auth).create("viewer-user", "openapi", "viewer", actor="test")
    return Keys(new.secret, server.cookies["viewer"], server.csrf["viewer"])


@pytest.fixture(scope="module")
def client(server: UiServer) -> Iterator[httpx.Client]:
    with server.client(None) as anonymous:
        yield anonymous


def test_the_document_is_valid_openapi_3_0() -> None:
    schemathesis.openapi.from_dict(DOCUMENT).validate()
    assert DOCUMENT["openapi"] == "3.0.3"


def test_every_json_route_is_described(server: UiServer) -> None:
    app: Any = create_app(server.runtime)
    while not hasattr(app, "routes"):
        app = app.app
    served = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in app.routes
        if isinstance(route, Route)
        and (route.path.startswith("/api/") or route.path in ALSO_DESCRIBED)
        # CORS preflights answer browsers, not API callers.
        for method in (route.methods or set()) - {"HEAD", "OPTIONS"}
    }
    described = {(method, path) for method, path, _ in OPERATIONS}
    assert sorted(served - described) == []
    assert described - served == NOT_IN_ROUTE_TABLE


def _security_cases() -> Iterator[Any]:
    offered = [frozenset(), *(frozenset({s}) for s in SCHEMES[:3])]
    offered.append(frozenset({"session", "csrfToken"}))
    for method, path, operation in OPERATIONS:
        security = operation.get("security", [{}])
        if {} in security:
            continue  # anyone may call it; the route checks what it is sent
        for schemes in offered:
            allowed = any(set(requirement) <= schemes for requirement in security)
            name = "+".join(sorted(schemes)) or "anonymous"
            yield pytest.param(method, path, schemes, allowed, id=f"{method} {path} {name}")


@pytest.mark.parametrize(("method", "path", "schemes", "allowed"), list(_security_cases()))
def test_an_operation_lets_in_what_it_declares(
    client: httpx.Client,
    keys: Keys,
    method: str,
    path: str,
    schemes: frozenset[str],
    allowed: bool,
) -> None:
    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
    url = path.replace("{token_id}", "999999")
    response = client.request(method, url, json=body, headers=keys.headers(schemes))
    assert response.status_code < 500, response.text
    assert (response.status_code not in (401, 403)) == allowed, response.text


def _outside(schema: dict[str, Any]) -> Iterator[tuple[str, bool]]:
    """(value, accepted?) at and just past each documented limit of one parameter."""
    step = 1 if schema["type"] == "integer" else None
    for key, sign in (("minimum", -1), ("maximum", 1)):
        if key in schema:
            edge = schema[key]
            past = edge + sign * (step or max(abs(edge), 1) / 2)
            yield str(edge), True
            yield str(past), False
    if "enum" in schema:
        yield from ((str(choice), True) for choice in schema["enum"])
        yield ("7" if schema["type"] == "integer" else "not-a-choice"), False
    if schema.get("format") or "anyOf" in schema:
        yield "not-a-date", False


def _bound_cases() -> Iterator[Any]:
    for method, path, operation in OPERATIONS:
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query" or method != "GET":
                continue
            name = parameter["name"]
            for value, accepted in _outside(parameter["schema"]):
                verdict = "ok" if accepted else "refused"
                yield pytest.param(
                    path, name, value, accepted, id=f"{path} {name}={value} {verdict}"
                )


@pytest.mark.parametrize(("path", "name", "value", "accepted"), list(_bound_cases()))
def test_a_documented_limit_is_the_endpoints(
    client: httpx.Client, keys: Keys, path: str, name: str, value: str, accepted: bool
) -> None:
    security = next(op for m, p, op in OPERATIONS if (m, p) == ("GET", path))["security"]
    schemes = frozenset({"siteToken"} if {"siteToken": []} in security else {"apiToken"})
    response = client.get(path, params={name: value}, headers=keys.headers(schemes))
    assert response.status_code < 500, response.text
    refused = response.status_code == 400 and response.json().get("field") == name
    assert refused != accepted, response.text


def _extreme_cases() -> Iterator[Any]:
    for _, path, operation in OPERATIONS:
        names = {parameter["name"] for parameter in operation.get("parameters", [])}
        if "from" not in names:
            continue
        rows: list[dict[str, str]] = list(EXTREME_PERIODS)
        if "until" in names:
            rows.append({"until": "9999-12-31"})
        if "compare" in names:
            # The previous period of one starting in year 1 would start before it.
            rows.append({"from": "0001-01-01", "to": "0001-01-03", "compare": "1"})
        for params in rows:
            yield pytest.param(path, params, id=f"{path}?{urlencode(params)}")


@pytest.mark.parametrize(("path", "params"), list(_extreme_cases()))
def test_a_period_at_the_edge_of_time_is_answered(
    client: httpx.Client, keys: Keys, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params, headers=keys.headers(frozenset({"apiToken"})))
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["field"] in {*params, "days"}, response.text
