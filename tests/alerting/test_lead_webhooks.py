"""Qualifying leads reach a webhook through the live server, even if it was down at first."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest

from tests.alerting.test_outbox import Receiver
from tests.conftest import SITE_HOST, SITE_KEY, ServerFactory, free_port, pageview

SECRET = "whsec_0123456789abcdef"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(free_port())
    yield found
    found.stop()


def test_a_qualifying_lead_is_delivered_once_the_receiver_is_up(
    server_factory: ServerFactory, receiver: Receiver
) -> None:
    server = server_factory(
        {
            "lead_webhooks": [
                {"url": receiver.url(), "min_tier": "standard", "secret": SECRET},
            ]
        }
    )
    with server.client() as c:
        c.post(
            "/api/v1/collect",
            json={"site_key": SITE_KEY, "events": [pageview(f"https://{SITE_HOST}/pricing")]},
        )
        full = {
            "email": "kay@example.org",
            "name": "Kay Ng",
            "phone": "+1 555 0101",
            "company": "Initech",
            "company_size": "201-1000",
            "industry": "Software",
            "country": "US",
            "budget": "50k+",
            "timeline": "this quarter",
            "message": "Please call me about a data platform project next week.",
        }
        qualified = c.post("/api/v1/leads", json={"site_key": SITE_KEY, **full}).json()
        thin = c.post("/api/v1/leads", json={"site_key": SITE_KEY, "email": "t@example.org"})
    assert qualified["tier"] in {"premium", "high", "standard"}
    assert thin.json()["tier"] in {"low", "poor"}
    # The receiver was down for the first attempt; the worker retries after ~5 s.
    receiver.start()
    assert receiver.got.wait(30), server.log()
    (got,) = receiver.requests
    body = json.loads(got.body)
    assert body["event"] == "lead.qualified"
    assert body["lead"]["lead_id"] == qualified["lead_id"]
    assert body["lead"]["email"] == "kay@example.org" and body["tier"] == qualified["tier"]
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-sitepulse-signature"] == f"sha256={expected}"
    server.stop()
    rows = server.db_query("SELECT status, attempts FROM outbox")
    assert rows == [("delivered", 2)]
