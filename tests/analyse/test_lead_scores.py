"""Scoring stored leads: facts gathered from a real DuckDB store, scores on the live server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sitepulse.analyse.lead_scores import ScoredLead, score_stored_leads
from sitepulse.config.models import Settings
from sitepulse.config.scoring import ScoringConfig
from tests.analyse.journeys import DAY, HOUR, MINUTE, T0, Journeys
from tests.conftest import SITE_HOST, SITE_KEY, LiveServer, ServerFactory, new_id, now_ms, pageview


def _hits(score: dict[str, Any], component: str) -> dict[str, int]:
    (found,) = [c for c in score["components"] if c["name"] == component]
    return {hit["rule"]: hit["count"] for hit in found["hits"]}


def test_facts_come_from_the_visitors_events(tmp_path: Path) -> None:
    book = Journeys()
    # Yesterday's visit, then today's: three page loads, two of them engaged >= 2 min
    # (running totals: only the largest value of a page load counts), one download.
    book.visit(7, channel="Organic Search").page(T0 - DAY, "/blog")
    today = book.visit(7, channel="Organic Search")
    today.page(T0, "/").engaged(T0 + MINUTE, 60_000).engaged(T0 + 3 * MINUTE, 150_000)
    today.page(T0 + 4 * MINUTE, "/services/seo").engaged(T0 + 5 * MINUTE, 30_000)
    today.event(T0 + 6 * MINUTE, "click", "download", props={"href": "x.pdf"})
    today.page(T0 + 7 * MINUTE, "/contact").engaged(T0 + 10 * MINUTE, 130_000)
    today.lead(T0 + 10 * MINUTE, phone="+1 555", company="Initech", budget="50k+")
    # Another visitor's activity must not leak into this lead's facts.
    book.visit(8).page(T0, "/").engaged(T0 + MINUTE, 900_000)
    store = book.save(tmp_path)
    (scored,) = score_stored_leads(store, Settings(), None, T0 + 11 * MINUTE)
    breakdown = scored.score.to_dict()
    engagement = _hits(breakdown, "engagement")
    assert engagement["engaged_page"] == 2
    assert engagement["extra_page"] == 2  # four page views, two beyond the first two
    assert engagement["download"] == 1
    assert engagement["return_visit"] == 1
    assert _hits(breakdown, "form_completion").keys() >= {"phone", "company", "budget"}
    assert scored.score.components[0].name == "traffic_source"
    assert scored.score.total == sum(c.contribution for c in scored.score.components)
    store.close()


def _lead(server: LiveServer, **fields: Any) -> dict[str, Any]:
    with server.client() as c:
        c.post(
            "/api/v1/collect",
            json={"site_key": SITE_KEY, "events": [pageview(f"https://{SITE_HOST}/pricing")]},
        )
        resp = c.post("/api/v1/leads", json={"site_key": SITE_KEY, **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


FULL = {
    "email": "grace@example.org",
    "name": "Grace Hopper",
    "phone": "+1 555 0100",
    "company": "Navy Labs",
    "company_size": "201-1000",
    "industry": "Software",
    "country": "US",
    "budget": "50k+",
    "timeline": "this quarter",
    "message": "We need help with our analytics stack before the next launch.",
}


def test_a_lead_is_answered_with_its_score_and_rescored_when_the_model_changes(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    thin = _lead(server, email="x@example.org")
    full = _lead(server, **FULL)
    assert thin["tier"] in {"low", "poor"} and full["score"] > thin["score"]
    assert full["tier"] in {"premium", "high", "standard"}
    assert full["follow_up_due"] is None or full["follow_up_due"].endswith("Z")
    server.stop()
    rows = server.db_query(
        "SELECT score, tier, score_model, score_breakdown::VARCHAR FROM leads ORDER BY score"
    )
    assert [r[0] for r in rows] == [thin["score"], full["score"]]
    assert {r[2] for r in rows} == {ScoringConfig().fingerprint}
    assert json.loads(rows[1][3])["total"] == full["score"]

    # A new model (form completion counts double) re-scores the stored leads at start-up.
    weights = {
        "traffic_source": 0.1,
        "engagement": 0.1,
        "form_completion": 0.6,
        "demographics": 0.2,
    }
    config = server.config_path.read_text()
    server.config_path.write_text(config + f"scoring:\n  weights: {json.dumps(weights)}\n")
    server.start()
    server.stop()
    rescored = server.db_query("SELECT score, score_model FROM leads ORDER BY score")
    new_model = ScoringConfig.model_validate({"weights": weights}).fingerprint
    assert {r[1] for r in rescored} == {new_model} != {ScoringConfig().fingerprint}
    assert rescored[1][0] > full["score"]


def test_later_engagement_raises_the_stored_score(live_server: LiveServer) -> None:
    first = _lead(live_server, **FULL)
    # Engagement that arrives after the lead (beacons come at page leave): 2.5 minutes
    # on a service page.
    page = pageview(f"https://{SITE_HOST}/services/data", ts=now_ms() - 200_000)
    events: list[dict[str, Any]] = [page]
    for value in (60_000, 150_000):  # running totals: 2.5 minutes engaged on the page
        events.append(
            {
                "event_id": new_id(),
                "ts": page["ts"] + value,
                "type": "engagement",
                "name": "engaged_time",
                "value": value,
                "url": page["url"],
                "props": {"pageview_id": page["event_id"]},
            }
        )
    with live_server.client() as c:
        assert c.post("/api/v1/collect", json={"site_key": SITE_KEY, "events": events}).is_success
        leads = c.get(
            "/api/v1/leads", headers={"Authorization": f"Bearer {live_server.token}"}
        ).json()["leads"]
    (later,) = [lead for lead in leads if lead["lead_id"] == first["lead_id"]]
    assert later["score"] > first["score"]


def _engagement_hits(scored: ScoredLead) -> dict[str, int]:
    return _hits(scored.score.to_dict(), "engagement")


def test_leads_of_several_sites_see_only_their_sites_events(tmp_path: Path) -> None:
    # The same visitor id on two sites: each lead's facts come from its own site only
    # (with one site the site is a scan filter, with several it is part of the join).
    book = Journeys()
    home = book.visit(7)
    home.page(T0, "/").page(T0 + MINUTE, "/a").page(T0 + 2 * MINUTE, "/b")
    home.lead(T0 + 3 * MINUTE)
    other = Journeys(site="other")
    other._next_session = 100
    away = other.visit(7)
    for i in range(6):
        away.page(T0 + i * MINUTE, f"/p{i}").engaged(T0 + i * MINUTE + 1000, 200_000)
    away.lead(T0 + 7 * MINUTE)
    book.events += other.events
    book.leads += other.leads
    store = book.save(tmp_path)
    both = {s.site: s for s in score_stored_leads(store, Settings(), None, T0 + HOUR)}
    assert _engagement_hits(both["acme"]) == {"extra_page": 1}  # three views, two free
    assert _engagement_hits(both["other"]) == {"engaged_page": 6, "extra_page": 4}
    # Scoring one site's lead alone (one site: the scan filter) agrees with the above.
    for site, scored in both.items():
        (alone,) = score_stored_leads(store, Settings(), [scored.lead_id], T0 + HOUR)
        assert alone == scored, site
    store.close()


@pytest.mark.parametrize(("min_secs", "reads"), [(120, 1), (60, 2), (30, 3), (1, 3)])
def test_engaged_pages_count_from_the_models_minimum(
    tmp_path: Path, min_secs: int, reads: int
) -> None:
    book = Journeys()
    visit = book.visit(3)
    # Running totals: each page load's largest value counts (150 s, 70 s, 30 s).
    visit.page(T0, "/").engaged(T0 + 1000, 40_000).engaged(T0 + 2000, 150_000)
    visit.page(T0 + MINUTE, "/a").engaged(T0 + MINUTE + 1000, 70_000)
    visit.page(T0 + 2 * MINUTE, "/b").engaged(T0 + 2 * MINUTE + 1000, 30_000)
    visit.lead(T0 + 3 * MINUTE)
    store = book.save(tmp_path)
    model = {"engagement": {"engaged_page": {"min_engaged_secs": min_secs}}}
    settings = Settings.model_validate({"scoring": model})
    (scored,) = score_stored_leads(store, settings, None, T0 + HOUR)
    assert _engagement_hits(scored).get("engaged_page", 0) == reads
    store.close()
