"""Schemathesis fuzzes every endpoint from the app's own OpenAPI document: zero 5xx."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import LiveServer


@schemathesis.serializer("text/plain")
def _text_json(ctx: Any, value: Any) -> bytes:
    # Browsers send the JSON body as text/plain so sendBeacon needs no preflight.
    return value if isinstance(value, bytes) else msgspec.json.encode(value)


@pytest.fixture(scope="module")
def api_schema(shared_server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{shared_server.base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_server_errors(case: Any, shared_server: LiveServer) -> None:
    for headers in ({"Authorization": f"Bearer {shared_server.token}"}, {}):
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500, response.text
