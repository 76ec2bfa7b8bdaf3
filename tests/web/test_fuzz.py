"""Schemathesis fuzzes every operation of the app's own OpenAPI document: each case goes out
anonymously and with one of the credentials the operation declares, and no answer is a 5xx.

The server holds a day of demo traffic first, so the analyses have rows to work on; the
credentials are minted in its auth database through `sitepulse.auth`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from sitepulse.auth import SESSION_COOKIE, AuthDB, NewToken, Role, Sessions, Tokens, Users
from sitepulse.demo.traffic import TrafficConfig, backfill
from tests.conftest import LiveServer

SITE_ID = "acme"  # the shared server's one site (tests.conftest.write_config)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Examples per operation for the fuzzing phase; the coverage phase adds each parameter's
# boundaries and wrong types on top. The token API is cheap and easy to get wrong.
MAX_EXAMPLES = 15
MAX_TOKEN_EXAMPLES = 60
SEED = 20260101

Headers = dict[str, str]


@schemathesis.serializer("text/plain")
def _text_json(ctx: Any, value: Any) -> bytes:
    # Browsers send the JSON body as text/plain so sendBeacon needs no preflight.
    return value if isinstance(value, bytes) else msgspec.json.encode(value)


@dataclass
class Credentials:
    """A credential of each scheme the document declares, valid on the shared server."""

    db: AuthDB
    site_token: str
    cookie: str
    csrf: str
    api: dict[Role, NewToken] = field(default_factory=dict)
    minted: Iterator[int] = field(default_factory=itertools.count)

    def mint(self, role: Role) -> None:
        name = f"fuzz-{role}-{next(self.minted)}"
        self.api[role] = Tokens(self.db).create(f"fuzz-{role}", name, role, actor="test")

    def renew_revoked(self) -> None:
        """A fuzzed DELETE /api/v1/tokens/{id} may revoke one of ours: mint it again."""
        tokens = Tokens(self.db)
        for role, new in list(self.api.items()):
            info = tokens.get(new.info.id)
            if info is None or not info.active:
                self.mint(role)

    def signed(self, method: str, security: list[dict[str, list[str]]]) -> list[Headers]:
        """Headers for each way the operation says it may be called."""
        out: list[Headers] = []
        for requirement in security:
            if "siteToken" in requirement:
                out.append({"Authorization": f"Bearer {self.site_token}"})
            if "apiToken" in requirement:
                # Roles differ only in what they may change, so reads go as a viewer.
                roles: tuple[Role, ...] = ("viewer", "admin") if method in UNSAFE else ("viewer",)
                out += [{"Authorization": f"Bearer {self.api[role].secret}"} for role in roles]
            if "session" in requirement:
                headers = {"Cookie": f"{SESSION_COOKIE}={self.cookie}"}
                if "csrfToken" in requirement:
                    headers["X-CSRF-Token"] = self.csrf
                out.append(headers)
        return out


def _seed(server: LiveServer) -> None:
    cfg = TrafficConfig(
        base_url=server.base_url,
        site_key=server.site_key,
        site_token=server.token,
        seed=11,
        backfill_days=1,
        backfill_visits_per_day=150,
    )

    async def run() -> None:
        async with httpx.AsyncClient(timeout=60.0) as client:
            stats = await backfill(cfg, now_ms=time.time_ns() // 1_000_000, client=client)
        assert stats.leads_accepted and not stats.events_rejected

    asyncio.run(run())


@pytest.fixture(scope="module")
def credentials(shared_server: LiveServer) -> Iterator[Credentials]:
    _seed(shared_server)
    db = AuthDB.in_folder(shared_server.data_dir)
    users = Users(db)
    for role in ("viewer", "admin"):
        users.add(f"fuzz-{role}", "a long fuzzing password", role, actor="test")
    session = Sessions(db).create("fuzz-admin")
    found = Credentials(db, shared_server.token, session.cookie_value, session.principal.csrf)
    found.mint("viewer")
    found.mint("admin")
    yield found
    db.close()


@pytest.fixture(scope="module")
def api_schema(shared_server: LiveServer) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES},
            "operations": [
                {
                    "include-path-regex": "^/api/v1/tokens",
                    "generation": {"max-examples": MAX_TOKEN_EXAMPLES},
                }
            ],
        }
    )
    return schemathesis.openapi.from_url(f"{shared_server.base_url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_server_errors(case: Any, credentials: Credentials) -> None:
    method = case.method.upper()
    signed = credentials.signed(method, case.operation.definition.raw.get("security", []))
    # One signed variant per case, picked by its data so that a replay sends the same.
    pick = zlib.crc32(repr((case.path_parameters, case.query, case.headers, case.body)).encode())
    if case.query and "site" in case.query and pick % 2:
        case.query["site"] = SITE_ID  # half get past the site look-up, into the analyses
    for headers in [{}, *([signed[pick % len(signed)]] if signed else [])]:
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500, response.text
    if method == "DELETE":
        credentials.renew_revoked()
