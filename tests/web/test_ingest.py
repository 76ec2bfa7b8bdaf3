"""Ingest endpoints against a real server on loopback writing a real DuckDB file."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import CHROME_UA, SITE_HOST, SITE_KEY, LiveServer, new_id, now_ms, pageview

BEACON = {"Content-Type": "text/plain"}


def test_pageview_is_stored_enriched_and_anonymous(live_server: LiveServer) -> None:
    event = pageview(
        f"https://{SITE_HOST}/services/seo?utm_source=google&utm_medium=cpc"
        "&utm_campaign=spring&gclid=Cj0KCQ",
        referrer="https://www.google.com/",
    )
    with live_server.client() as c:
        resp = c.post(
            "/api/v1/collect",
            content=httpx.Request(
                "POST", "/", json={"site_key": SITE_KEY, "events": [event]}
            ).content,
            headers=BEACON | {"X-Forwarded-For": "81.2.69.160"},
        )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["accepted"] == 1 and len(body["visitor_id"]) == 16
    (row,) = live_server.events("pageview")
    assert row["event_id"] == event["event_id"]
    assert row["channel"] == "Paid Search" and row["channel_rule"]
    assert row["utm_campaign"] == "spring" and row["click_id_kind"] == "google"
    assert row["url"] == f"https://{SITE_HOST}/services/seo"  # tracking parameters removed
    assert row["page_group"] == "/services"
    assert row["country"] == "GB"
    assert row["browser"] == "Chrome" and row["device"] == "desktop" and row["is_bot"] is False
    live_server.stop()
    # The full address never reaches the store, in any column.
    dump = live_server.db_query("SELECT * FROM events")
    assert "81.2.69.160" not in repr(dump)


def test_resent_event_is_stored_once(live_server: LiveServer) -> None:
    event = pageview()
    batch = {"site_key": SITE_KEY, "events": [event]}
    with live_server.client() as c:
        first = c.post("/api/v1/collect", json=batch)
        second = c.post("/api/v1/collect", json=batch)
    assert first.json()["accepted"] == 1
    assert second.status_code == 202 and second.json() == second.json() | {
        "accepted": 0,
        "duplicates": 1,
    }
    assert len(live_server.events()) == 1


def test_clock_skew_is_corrected_with_sent_at(live_server: LiveServer) -> None:
    skew = 3 * 3600 * 1000  # the browser's clock runs three hours behind
    client_now = now_ms() - skew
    event = pageview() | {"ts": client_now - 1000}
    with live_server.client() as c:
        resp = c.post(
            "/api/v1/collect", json={"site_key": SITE_KEY, "sent_at": client_now, "events": [event]}
        )
    assert resp.status_code == 202
    (row,) = live_server.events()
    assert abs(row["received_at"] - 1000 - row["ts"]) < 5_000


def test_lead_with_journey(live_server: LiveServer) -> None:
    headers = {"X-Forwarded-For": "81.2.69.160"}
    with live_server.client() as c:
        c.post(
            "/api/v1/collect",
            headers=headers,
            json={
                "site_key": SITE_KEY,
                "events": [
                    pageview(
                        f"https://{SITE_HOST}/?utm_source=newsletter&utm_medium=email"
                        "&utm_campaign=nov"
                    )
                ],
            },
        )
        resp = c.post(
            "/api/v1/leads",
            headers=headers,
            json={
                "site_key": SITE_KEY,
                "email": "ada@example.org",
                "name": "Ada",
                "phone": "+44 1",
                "company": "Analytical Engines",
                "company_size": "11-50",
                "industry": "Software",
                "country": "GB",
                "budget": "20k-50k",
                "timeline": "1-3 months",
                "message": "Call me",
                "consent": True,
                "fields": {"service": "seo"},
                "form": "contact",
                "url": f"https://{SITE_HOST}/contact",
            },
        )
    assert resp.status_code == 201, resp.text
    lead = resp.json()
    live_server.stop()
    (row,) = live_server.db_query(
        "SELECT email, company_size, budget, channel, campaign, fields, session_id,"
        " (SELECT count(*) FROM events WHERE type = 'lead'),"
        " (SELECT count(DISTINCT session_id) FROM events) FROM leads"
    )
    assert row[:5] == ("ada@example.org", "11-50", "20k-50k", "Email", "nov")
    assert '"service"' in row[5]
    assert f"{row[6]:016x}" == lead["session_id"]
    assert row[7] == 1 and row[8] == 1  # the lead joined the visit's session


def test_server_events_with_token(live_server: LiveServer) -> None:
    events = [
        {
            "type": "custom",
            "name": "invoice_paid",
            "value": 1200.0,
            "visitor_id": "crm-42",
            "ts": now_ms() - 86_400_000 * 30,
        }
    ]
    with live_server.client() as c:
        missing = c.post("/api/v1/events", json={"events": events})
        wrong = c.post(
            "/api/v1/events",
            json={"events": events},
            headers={"Authorization": "Bearer sk_wrong_wrong_wrong"},
        )
        ok = c.post(
            "/api/v1/events",
            json={"events": events},
            headers={"Authorization": f"Bearer {live_server.token}"},
        )
    assert (missing.status_code, wrong.status_code, ok.status_code) == (401, 403, 202)
    assert missing.json()["field"] == "authorization"
    (row,) = live_server.events()
    assert row["name"] == "invoice_paid" and row["value"] == 1200.0


def _batch(**changes: Any) -> dict[str, Any]:
    event = pageview()
    event.update(changes.pop("event", {}))
    return {"site_key": SITE_KEY, "events": [event]} | changes


# (case id, body, expected status, expected field)
BAD_BEACONS: list[tuple[str, Any, int, str]] = [
    ("not json", b"{nope", 400, "(body)"),
    ("empty body", b"", 400, "(body)"),
    ("array body", b"[]", 400, "(body)"),
    ("missing site_key", {"events": [pageview()]}, 400, "site_key"),
    ("unknown site", _batch(site_key="pk_nobody"), 404, "site_key"),
    ("no events", {"site_key": SITE_KEY, "events": []}, 400, "events"),
    (
        "event without id",
        {"site_key": SITE_KEY, "events": [{"ts": 1, "type": "pageview", "url": "x"}]},
        400,
        "events[0].event_id",
    ),
    ("bad uuid", _batch(event={"event_id": "123"}), 400, "events[0].event_id"),
    ("string ts", _batch(event={"ts": "yesterday"}), 400, "events[0].ts"),
    ("negative ts", _batch(event={"ts": -5}), 400, "events[0].ts"),
    ("future ts", _batch(event={"ts": now_ms() + 86_400_000}), 400, "events[0].ts"),
    ("ancient ts", _batch(event={"ts": 1_000_000}), 400, "events[0].ts"),
    ("unknown type", _batch(event={"type": "purchase!"}), 400, "events[0].type"),
    ("unknown field", _batch(event={"colour": "red"}), 400, "events[0].colour"),
    ("url too long", _batch(event={"url": "https://x/" + "a" * 3000}), 400, "events[0].url"),
    ("value not number", _batch(event={"value": "fast"}), 400, "events[0].value"),
    ("nested props", _batch(event={"props": {"a": {"b": 1}}}), 400, "events[0].props[...]"),
    (
        "too many events",
        {"site_key": SITE_KEY, "events": [pageview() for _ in range(101)]},
        400,
        "events",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "field"), BAD_BEACONS, ids=[c[0] for c in BAD_BEACONS]
)
def test_bad_beacons_get_4xx_naming_the_field(
    shared_server: LiveServer, case: str, body: Any, status: int, field: str
) -> None:
    with shared_server.client() as c:
        if isinstance(body, bytes):
            resp = c.post("/api/v1/collect", content=body, headers=BEACON)
        else:
            resp = c.post("/api/v1/collect", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["field"] == field, resp.json()
    assert resp.json()["message"]


BAD_LEADS: list[tuple[str, dict[str, Any], int, str]] = [
    ("no contact", {"site_key": SITE_KEY, "name": "x"}, 400, "email"),
    ("bad email", {"site_key": SITE_KEY, "email": "not-an-email"}, 400, "email"),
    ("no site key", {"email": "a@b.example"}, 400, "site_key"),
    ("unknown site", {"site_key": "pk_nobody", "email": "a@b.example"}, 404, "site_key"),
    (
        "consent not bool",
        {"site_key": SITE_KEY, "email": "a@b.example", "consent": "yes"},
        400,
        "consent",
    ),
    (
        "message too long",
        {"site_key": SITE_KEY, "email": "a@b.example", "message": "x" * 10001},
        400,
        "message",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "field"), BAD_LEADS, ids=[c[0] for c in BAD_LEADS]
)
def test_bad_leads_get_4xx_naming_the_field(
    shared_server: LiveServer, case: str, body: dict[str, Any], status: int, field: str
) -> None:
    with shared_server.client() as c:
        resp = c.post("/api/v1/leads", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["field"] == field


def test_oversized_bodies_get_413(shared_server: LiveServer) -> None:
    big = b'{"site_key":"pk_test","events":[' + b" " * 70_000 + b"]}"
    with shared_server.client() as c:
        assert c.post("/api/v1/collect", content=big, headers=BEACON).status_code == 413
        resp = c.post(
            "/api/v1/events",
            content=b"x" * 2_000_000,
            headers={"Authorization": f"Bearer {shared_server.token}"},
        )
    assert resp.status_code == 413 and resp.json()["field"] == "(body)"


def test_bots_are_flagged_and_counted(live_server: LiveServer) -> None:
    bot_ua = "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"
    with live_server.client() as c:
        c.post("/api/v1/collect", json=_batch(), headers={"User-Agent": bot_ua})
        c.post("/api/v1/collect", json=_batch(automation=True), headers={"User-Agent": CHROME_UA})
        metrics = c.get("/metrics").text
    rows = live_server.events()
    assert {r["is_bot"] for r in rows} == {True}
    assert {r["bot_reason"].split(":")[0] for r in rows} == {"ua_spider", "automation_flag"}
    assert 'sitepulse_bot_events_total{action="flagged",kind="ua_spider"} 1.0' in metrics


def test_bots_dropped_when_configured(server_factory: Any) -> None:
    server = server_factory({"bots": {"action": "drop"}})
    with server.client() as c:
        resp = c.post("/api/v1/collect", json=_batch(), headers={"User-Agent": "curl/8.0"})
        metrics = c.get("/metrics").text
    assert resp.status_code == 202 and resp.json()["accepted"] == 0
    assert server.events() == []
    assert 'sitepulse_dropped_events_total{reason="bot"} 1.0' in metrics


def test_cors_allows_beacons_from_the_site(shared_server: LiveServer) -> None:
    with shared_server.client() as c:
        pre = c.options(
            "/api/v1/leads",
            headers={"Origin": f"https://{SITE_HOST}", "Access-Control-Request-Method": "POST"},
        )
        resp = c.post("/api/v1/collect", json=_batch())
    assert pre.status_code == 204
    assert resp.headers["access-control-allow-origin"] == "*"


def test_event_ids_are_unique_per_event(live_server: LiveServer) -> None:
    ids = [new_id() for _ in range(50)]
    events = [pageview() | {"event_id": i} for i in ids]
    with live_server.client() as c:
        resp = c.post("/api/v1/collect", json={"site_key": SITE_KEY, "events": events})
    assert resp.json()["accepted"] == 50
    assert sorted(r["event_id"] for r in live_server.events()) == sorted(ids)
