"""The executive and marketing dashboards: their data on known journeys, and the live pages.

Data: `analyse.dashboards` over a small hand-built store, against values worked out by
hand from the journeys below (see `build`). Live: the app with the UI on loopback, filled
with the demo's traffic plus visitor payloads meant to break out of HTML; then the pages
in real headless Chromium under the production Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest

from sitepulse.analyse.base import AnalysisError
from sitepulse.analyse.dashboards import (
    EXECUTIVE_PANELS,
    MARKETING_PANELS,
    executive,
    marketing,
)
from sitepulse.analyse.reports import Request
from sitepulse.config.models import Settings, SiteConfig
from sitepulse.demo.traffic import TrafficConfig, backfill
from sitepulse.store.duckdb.backend import DuckDBStore
from sitepulse.web.ui import View, formats, parse_view, ui_routes
from sitepulse.web.ui.figures import plot_text
from tests.analyse.journeys import DAY, HOUR, MINUTE, SITE, T0, Journeys, Visit
from tests.collect.test_browser_e2e import ARGS, ARTIFACTS, CHROMIUM
from tests.conftest import CHROME_UA, SITE_KEY, SITE_TOKEN
from tests.web.ui.harness import CSP, UiServer, settings_for

# 2026-01-11T15:00Z: 10:00 in New York, so local dates differ from UTC ones at night.
NOW = T0 + 10 * DAY + 15 * HOUR
ZONE = "America/New_York"
SETTINGS = Settings(sites=(SiteConfig(id=SITE, timezone=ZONE),))


def build() -> tuple[Journeys, dict[int, tuple[float, str]]]:
    """Known sessions; returns the book and (score, tier) by session id.

    Current period (7 days to NOW), sessions by start, New York time in brackets:
      A v1 Organic Search, Jan 10 14:00Z (09:00): / LCP 1.8 s CLS .05, /contact, lead 80 high
      B v2 Paid Search,    Jan 6 02:00Z:          /pricing LCP 3.0 s
      C v3 Paid Search,    Jan 11 03:00Z (Jan 10 22:00): / LCP 5.0 s, /contact, lead 40 low
      D v4 Direct,         Jan 11 06:00Z (01:00): /services/a LCP 0.9 s INP 300 ms
      E v5 Email,          Jan 11 14:00Z (09:00): /, lead (unscored)
      T v7 Email: a test lead; a bot session with a lead. Neither counts as a lead.
    Experiment "hero": v1, v2 see control, v3, v4 see bold. Previous period: P v8
    Organic Search, / LCP 2.0 s, lead 90 premium; Q v9 Direct, / only.
    """
    book = Journeys()
    scores: dict[int, tuple[float, str]] = {}
    organic = ("Organic Search", "google", "organic")
    paid = ("Paid Search", "google", "cpc")
    email = ("Email", "newsletter", "email")

    def visit(visitor: int, via: tuple[str, str, str]) -> Visit:
        channel, source, medium = via
        return book.visit(visitor, channel=channel, source=source, medium=medium)

    t = T0 + 9 * DAY + 14 * HOUR
    a = visit(1, organic).page(t, "/").vital(t + 1000, "LCP", 1800)
    a.vital(t + 2000, "CLS", 0.05).exposure(t + 3000, "hero", "control")
    a.page(t + MINUTE, "/contact").lead(t + 2 * MINUTE)
    scores[a.session_id] = (80.0, "high")

    t = T0 + 5 * DAY + 2 * HOUR
    b = visit(2, paid).page(t, "/pricing").vital(t + 1000, "LCP", 3000)
    b.vital(t + 2000, "CLS", 0.02).exposure(t + 3000, "hero", "control")

    t = T0 + 10 * DAY + 3 * HOUR
    c = visit(3, paid).page(t, "/").vital(t + 1000, "LCP", 5000)
    c.exposure(t + 3000, "hero", "bold").page(t + MINUTE, "/contact").lead(t + 2 * MINUTE)
    scores[c.session_id] = (40.0, "low")

    t = T0 + 10 * DAY + 6 * HOUR
    d = book.visit(4).page(t, "/services/a").vital(t + 1000, "LCP", 900)
    d.vital(t + 5000, "INP", 300).exposure(t + 3000, "hero", "bold")

    t = T0 + 10 * DAY + 14 * HOUR
    visit(5, email).page(t, "/").lead(t + MINUTE)

    t = T0 + 8 * DAY
    test = visit(7, email).page(t, "/").lead(t + MINUTE, is_test=True)
    scores[test.session_id] = (95.0, "premium")
    bot = book.visit(6, is_bot=True).page(t, "/").vital(t + 1000, "LCP", 100)
    bot.lead(t + MINUTE)
    scores[bot.session_id] = (99.0, "premium")

    t = T0 + DAY
    p = visit(8, organic).page(t, "/").vital(t + 1000, "LCP", 2000).lead(t + MINUTE)
    scores[p.session_id] = (90.0, "premium")
    book.visit(9).page(T0 + 2 * DAY, "/")
    return book, scores


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    book, scores = build()
    db = book.save(tmp_path_factory.mktemp("dashboards"))
    for session_id, (score, tier) in scores.items():  # what lead scoring does later
        db.query(
            "UPDATE leads SET score = ?, tier = ? WHERE session_id = ?", [score, tier, session_id]
        )
    yield db
    db.close()


def _request(compared: bool, **params: str) -> Request:
    wanted = {"days": "7"} | ({"compare": "1"} if compared else {}) | params
    return Request(SETTINGS, SETTINGS.sites[0], wanted, NOW)


@pytest.fixture(scope="module")
def dashboards(store: DuckDBStore) -> dict[tuple[str, bool], dict[str, Any]]:
    return {
        (name, compare): fn(store, _request(compare))
        for name, fn in (("executive", executive), ("marketing", marketing))
        for compare in (False, True)
    }


def dig(data: Any, path: str) -> Any:
    """`data` followed along a dotted path; list items by index, rows by `key=value`."""
    for part in path.split("."):
        if "=" in part:
            key, value = part.split("=", 1)
            data = next(row for row in data if str(row[key]) == value)
        elif isinstance(data, list):
            data = data[int(part)]
        else:
            data = data[part]
    return data


# (dashboard, compare, path under "panels", expected), worked out from `build`'s docstring.
CASES: list[tuple[str, bool, str, Any]] = [
    # 6 human sessions started in the period (A-E and T); A, C and E produced a lead.
    ("executive", False, "conversion_rate.value", 0.5),
    ("executive", False, "conversion_rate.sessions", 6),
    ("executive", False, "conversion_rate.converting_sessions", 3),
    ("executive", False, "conversion_rate.status", "green"),
    ("executive", False, "conversion_rate.previous", None),
    ("executive", True, "conversion_rate.previous", 0.5),  # P of P, Q
    ("executive", True, "conversion_rate.change", 0.0),
    # Today in New York began at 05:00Z: E. By 10:00 yesterday: A; all yesterday: A, C.
    ("executive", False, "leads_today.value", 1),
    ("executive", False, "leads_today.previous", 1),
    ("executive", False, "leads_today.yesterday_total", 2),
    ("executive", False, "leads_today.date", "2026-01-11"),
    # Local dates: A and C fall on Jan 10 in New York (C is Jan 11 in UTC).
    ("executive", False, "leads_trend.days.date=2026-01-10.leads", 2),
    ("executive", False, "leads_trend.days.date=2026-01-11.leads", 1),
    ("executive", False, "leads_trend.days.0.date", "2026-01-04"),
    ("executive", False, "leads_trend.previous", None),
    ("executive", True, "leads_trend.previous.date=2026-01-01.leads", 1),  # P, Jan 1 NY
    ("executive", False, "uptime.status", "no_checks"),
    ("executive", False, "uptime.value", None),
    ("executive", False, "leads_by_channel.total", 3),
    ("executive", False, "leads_by_channel.rows.channel=Email.value", 1),
    ("executive", True, "leads_by_channel.rows.channel=Organic Search.previous", 1),
    ("executive", True, "leads_by_channel.rows.channel=Organic Search.change", 0),
    # One touchpoint per lead: its channel gets the whole score.
    ("executive", False, "value_by_channel.rows.channel=Organic Search.value", 80.0),
    ("executive", False, "value_by_channel.rows.channel=Paid Search.value", 40.0),
    ("executive", False, "value_by_channel.rows.channel=Email.value", 0.0),
    ("executive", False, "value_by_channel.total", 120.0),
    ("executive", False, "value_by_channel.model", "position_based"),
    ("executive", True, "value_by_channel.rows.channel=Organic Search.previous", 90.0),
    # Loads: A passes; B, C (LCP) and D (INP) fail.
    ("executive", False, "cwv_compliance.page_loads", 4),
    ("executive", False, "cwv_compliance.passing", 1),
    ("executive", False, "cwv_compliance.value", 0.25),
    ("executive", False, "cwv_compliance.status", "red"),
    ("executive", True, "cwv_compliance.previous", 1.0),
    # (80 + 40) / 2 = 60: within 20 % of 70, so yellow.
    ("executive", False, "avg_lead_score.value", 60.0),
    ("executive", False, "avg_lead_score.status", "yellow"),
    ("executive", True, "avg_lead_score.previous", 90.0),
    ("executive", False, "kpi_summary.rows.name=leads.value", 3),
    ("executive", False, "kpi_summary.rows.name=cwv_pass_rate.status", "red"),
    ("executive", False, "kpi_summary.rows.name=conversion_rate.target", 0.03),
    # Marketing. The lead funnel: six visitors land, only v4 sees a service page.
    ("marketing", False, "funnel.entered", 6),
    ("marketing", False, "funnel.steps.1.units", 1),
    ("marketing", False, "funnel.converted", 0),
    ("marketing", True, "funnel.steps.0.previous_units", 2),
    ("marketing", False, "attribution.lead_count", 3),
    ("marketing", False, "attribution.rows.key=Paid Search.leads.first_touch", 1.0),
    ("marketing", False, "lead_quality_by_source.rows.channel=Organic Search.histogram.8", 1),
    ("marketing", False, "lead_quality_by_source.rows.channel=Organic Search.tiers.high", 1),
    ("marketing", False, "lead_quality_by_source.rows.channel=Paid Search.avg_score", 40.0),
    ("marketing", False, "lead_quality_by_source.rows.channel=Paid Search.status", "red"),
    ("marketing", False, "lead_quality_by_source.rows.channel=Email.tiers.unscored", 1),
    ("marketing", False, "lead_quality_by_source.rows.channel=Email.avg_score", None),
    ("marketing", False, "experiments.experiments.name=hero.arms.name=control.visitors", 2),
    ("marketing", False, "experiments.experiments.name=hero.arms.name=control.conversions", 1),
    ("marketing", False, "experiments.experiments.name=hero.arms.name=bold.conversions", 1),
    ("marketing", False, "experiments.experiments.name=hero.variants.0.decision", "inconclusive"),
    # Sessions: Email E+T, Paid Search B+C, Direct D, Organic Search A.
    ("marketing", False, "channel_performance.rows.0.channel", "Email"),
    ("marketing", False, "channel_performance.rows.channel=Paid Search.sessions.value", 2),
    ("marketing", False, "channel_performance.rows.channel=Paid Search.conversion_rate.value", 0.5),
    ("marketing", False, "channel_performance.rows.channel=Direct.conversion_rate.status", "red"),
    ("marketing", False, "channel_performance.rows.channel=Organic Search.value", 80.0),
    ("marketing", False, "channel_performance.rows.channel=Direct.value", 0.0),
    ("marketing", False, "top_paths.converting_sessions", 3),
    ("marketing", False, "top_paths.paths.0.steps", ["/", "/contact"]),
    ("marketing", False, "top_paths.paths.0.sessions", 2),
    ("marketing", False, "vitals_by_page.rows.page_group=/pricing.metrics.LCP.p75", 3000.0),
    (
        "marketing",
        False,
        "vitals_by_page.rows.page_group=/services.metrics.INP.rating",
        "needs-improvement",
    ),
    ("marketing", False, "vitals_by_page.rows.page_group=/services.cwv_pass_rate", 0.0),
    # Landing LCP: A 1.8 s and D 0.9 s good (A converts), B 3.0 s, C 5.0 s (converts).
    ("marketing", False, "conversion_by_lcp.by_rating.bucket=good.sessions", 2),
    ("marketing", False, "conversion_by_lcp.by_rating.bucket=good.conversion_rate", 0.5),
    ("marketing", False, "conversion_by_lcp.by_rating.bucket=needs-improvement.sessions", 1),
    ("marketing", False, "conversion_by_lcp.by_rating.bucket=poor.converting_sessions", 1),
    ("marketing", False, "conversion_by_lcp.by_range.bucket=0-1 s.sessions", 1),
    ("marketing", False, "conversion_by_lcp.by_range.bucket=1-2 s.converting_sessions", 1),
]


@pytest.mark.parametrize(("name", "compare", "path", "expected"), CASES)
def test_dashboard_values(
    dashboards: dict[tuple[str, bool], dict[str, Any]],
    name: str,
    compare: bool,
    path: str,
    expected: Any,
) -> None:
    got = dig(dashboards[name, compare]["panels"], path)
    if isinstance(expected, float):
        assert got == pytest.approx(expected, abs=1e-9), path
    else:
        assert got == expected, path


def test_envelope_and_panel_ids(dashboards: dict[tuple[str, bool], dict[str, Any]]) -> None:
    for (name, compare), data in dashboards.items():
        ids = EXECUTIVE_PANELS if name == "executive" else MARKETING_PANELS
        assert tuple(data["panels"]) == ids
        assert (
            data["from"] == "2026-01-04T15:00:00.000Z" and data["to"] == "2026-01-11T15:00:00.000Z"
        )
        assert data["previous_from"] == ("2025-12-28T15:00:00.000Z" if compare else None)
        assert set(data["timings_ms"]) and all(ms >= 0 for ms in data["timings_ms"].values())
        json.dumps(data, allow_nan=False)  # plain JSON, no NaN


@pytest.mark.parametrize(
    ("params", "field"), [({"compare": "maybe"}, "compare"), ({"model": "magic"}, "model")]
)
def test_bad_parameters_name_the_field(
    store: DuckDBStore, params: dict[str, str], field: str
) -> None:
    with pytest.raises(AnalysisError) as caught:
        executive(store, _request(False, **params))
    assert caught.value.field == field


# The live app.

PAYLOAD = '"><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
HEADERS = {"User-Agent": CHROME_UA, "X-Forwarded-For": "81.2.69.161"}


def _hostile_visit(server: UiServer, now_ms: int) -> None:
    """A visit whose path, referrer, UTM values, experiment variant and form are attacks."""
    tags = "&".join(f"utm_{k}={quote(PAYLOAD)}" for k in ("source", "medium", "campaign"))
    url = f"https://www.acme.example/x{PAYLOAD}?{tags}"
    referrer = f"https://evil.example/{PAYLOAD}"

    def event(offset: int, type_: str, **extra: Any) -> dict[str, Any]:
        base = {"event_id": str(uuid.uuid4()), "ts": now_ms + offset, "type": type_, "url": url}
        return base | extra

    events = [
        event(-60_000, "pageview", referrer=referrer),
        event(-59_000, "vital", name="LCP", value=1234.0),
        event(-58_000, "exposure", name="pricing_cta", props={"variant": PAYLOAD}),
    ]
    lead = {
        "site_key": SITE_KEY,
        "email": "mallory@example.com",
        "name": PAYLOAD,
        "company": PAYLOAD,
        "message": PAYLOAD,
        "url": url,
        "referrer": referrer,
        "fields": {"note": PAYLOAD},
        "consent": True,
    }
    with server.client(headers=HEADERS) as c:
        batch = json.dumps({"site_key": SITE_KEY, "events": events})
        sent = c.post("/api/v1/collect", content=batch, headers={"Content-Type": "text/plain"})
        assert sent.status_code == 202, sent.text
        stored = c.post("/api/v1/leads", json=lead)
        assert stored.status_code in (200, 201, 202), stored.text


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """The app with the UI and two days of demo traffic plus one hostile visit."""
    server = UiServer(settings_for(tmp_path_factory.mktemp("ui") / "data"))
    server.start()
    now = time.time_ns() // 1_000_000
    cfg = TrafficConfig(
        base_url=server.base_url,
        site_key=SITE_KEY,
        site_token=SITE_TOKEN,
        seed=11,
        backfill_days=1,
        backfill_visits_per_day=500,
    )

    async def run() -> None:
        async with httpx.AsyncClient(timeout=60.0) as client:
            stats = await backfill(cfg, now_ms=now, client=client)
        assert not stats.events_rejected and stats.leads_accepted

    asyncio.run(run())
    _hostile_visit(server, now)
    yield server
    server.stop()


def _nonempty(name: str, panel: dict[str, Any]) -> bool:
    """Whether a panel holds real data, by what each panel is for."""
    checks: dict[str, Callable[[dict[str, Any]], object]] = {
        "conversion_rate": lambda p: p["value"] is not None and p["sessions"] > 0,
        "leads_today": lambda p: p["value"] is not None and p["date"],
        "leads_trend": lambda p: sum(d["leads"] for d in p["days"]) > 0,
        "uptime": lambda p: p["status"] == "no_checks" and p["value"] is None,
        "cwv_compliance": lambda p: p["page_loads"] > 0,
        "avg_lead_score": lambda p: p["value"] is not None,
        "funnel": lambda p: p["entered"] > 0,
        "attribution": lambda p: p["lead_count"] > 0 and p["rows"],
        "experiments": lambda p: any(e["arms"] for e in p["experiments"]),
        "top_paths": lambda p: p["paths"],
        "conversion_by_lcp": lambda p: sum(r["sessions"] for r in p["by_rating"]) > 0,
    }
    check: Callable[[dict[str, Any]], object] = checks.get(name, lambda p: p["rows"])
    return bool(check(panel))


@pytest.mark.parametrize("name", ["executive", "marketing"])
def test_pages_show_every_panel_with_data(live: UiServer, name: str) -> None:
    with live.client() as c:
        data = c.get(f"/api/v1/dashboards/{name}", params={"days": 7, "compare": 1})
        page = c.get("/" if name == "executive" else "/marketing", params={"days": 7})
    assert data.status_code == 200, data.text
    assert "Server-Timing" in data.headers and data.headers["Cache-Control"] == "no-store"
    panels = data.json()["panels"]
    ids = EXECUTIVE_PANELS if name == "executive" else MARKETING_PANELS
    empty = [panel for panel in ids if not _nonempty(panel, panels[panel])]
    assert not empty, empty
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for panel in ids:
        assert f'id="{panel}"' in page.text, panel
    # The header: the user, their role, and a sign-out form carrying the CSRF token.
    assert "tester" in page.text and "admin" in page.text
    assert live.principal is not None
    assert 'action="/logout"' in page.text and f'value="{live.principal.csrf}"' in page.text


def test_visitor_data_is_escaped_everywhere(live: UiServer) -> None:
    with live.client() as c:
        pages = [c.get(p, params={"days": 7}).text for p in ("/", "/marketing")]
        shown = c.get("/api/v1/dashboards/marketing", params={"days": 7}).json()["panels"]
    # The payload did reach the dashboards: as an experiment variant and a page group.
    variants = [a["name"] for e in shown["experiments"]["experiments"] for a in e["arms"]]
    assert PAYLOAD in variants
    groups = [row["page_group"] for row in shown["vitals_by_page"]["rows"]]
    assert any("<img src=x onerror=" in group for group in groups), groups
    assert "&#34;&gt;&lt;img src=x onerror=&#34;window.__xss=1&#34;&gt;" in pages[1]
    for html in pages:
        assert "<img" not in html and "<script>window.__xss" not in html
        assert 'onerror="window' not in html
        # JSON for the charts: no raw < > & that could close the <script> block.
        for block in html.split('<script type="application/json"')[1:]:
            body = block.split(">", 1)[1].split("</script>", 1)[0]
            assert "<" not in body and ">" not in body


def test_static_files_are_cached_and_compressed(live: UiServer) -> None:
    with live.client() as c:
        page = c.get("/", params={"days": 7}).text
        src = page.split('src="/static/plotly.min.js', 1)[1].split('"', 1)[0]
        first = c.get(f"/static/plotly.min.js{src}", headers={"Accept-Encoding": "gzip"})
        assert first.status_code == 200
        assert first.headers["content-encoding"] == "gzip"
        assert "immutable" in first.headers["cache-control"]
        assert len(first.content) > 1_000_000 and b"plotly" in first.content[:2000].lower()
        etag = first.headers["etag"]
        again = c.get(f"/static/plotly.min.js{src}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and not again.content
        css = c.get("/static/app.css", headers={"Accept-Encoding": "identity"})
        assert css.status_code == 200 and "no-cache" not in css.headers["cache-control"]
        assert "must-revalidate" in css.headers["cache-control"]  # unversioned URL
        for bad in ("/static/nope.js", "/static/..%2Fapp.py", "/static/app.py"):
            assert c.get(bad).status_code == 404, bad
    raw = gzip.decompress(first.content) if first.content[:2] == b"\x1f\x8b" else first.content
    assert raw.startswith(b"/**") or b"plotly.js" in raw[:5000]


def test_without_a_principal_pages_and_data_are_refused(live: UiServer) -> None:
    with live.client(signed_in=False) as c:
        for path in ("/", "/marketing"):
            page = c.get(path)
            assert page.is_redirect and page.headers["location"].startswith("/login"), path
        assert c.get("/api/v1/dashboards/executive").status_code == 401
    # Behind a middleware that let an anonymous request through, the pages still refuse.
    assert live.runtime is not None
    bare = httpx.ASGITransport(app=Starlette(routes=ui_routes(live.runtime)))

    async def statuses() -> list[int]:
        async with httpx.AsyncClient(transport=bare, base_url="http://ui") as c:
            return [(await c.get(p)).status_code for p in ("/", "/api/v1/dashboards/marketing")]

    assert asyncio.run(statuses()) == [401, 401]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/", {"days": "zero"}, "days"),
        ("/marketing", {"until": "someday"}, "until"),
        ("/", {"site": "other"}, "site"),
        ("/", {"refresh": "7"}, "refresh"),
        ("/api/v1/dashboards/marketing", {"model": "magic"}, "model"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    live: UiServer, path: str, params: dict[str, str], field: str
) -> None:
    with live.client() as c:
        resp = c.get(path, params=params)
    assert resp.status_code == 400
    if path.startswith("/api/"):
        assert resp.json()["field"] == field
    else:
        assert f"<code>{field}</code>" in resp.text


@pytest.fixture(scope="module")
def browser_page(live: UiServer) -> Iterator[Page]:
    """One Chromium page for the module: its cache (and compiled Plotly) is shared."""
    assert Path(CHROMIUM).exists(), "Debian chromium is required (make test installs it)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context()
        context.add_cookies(
            [{"name": k, "value": v, "url": live.base_url} for k, v in live.cookies.items()]
        )
        page = context.new_page()
        yield page
        browser.close()


@pytest.mark.parametrize("path", ["/?days=7&compare=1", "/marketing?days=7&compare=1"])
def test_pages_in_chromium_under_the_csp(live: UiServer, browser_page: Page, path: str) -> None:
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
    resp = page.goto(live.base_url + path)
    assert resp is not None and resp.headers["content-security-policy"] == CSP
    page.wait_for_selector("html[data-charts=drawn]", timeout=30_000)
    charts = page.eval_on_selector_all(
        "[data-chart]", "ds => ds.map(d => [d.id, !!d.querySelector('svg.main-svg')])"
    )
    assert charts and all(drawn for _, drawn in charts), charts
    check_drawn_once_in_view_first(page)
    assert page.evaluate("window.__xss") is None
    ARTIFACTS.mkdir(exist_ok=True)
    name = path.strip("/").split("?")[0] or "executive"
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}-laptop.png"), full_page=True)
    # A phone: one column, the nav folded behind its button, charts resized to fit.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.is_visible(".nav-toggle") and not page.is_visible("#nav")
    widths = page.eval_on_selector_all("[data-chart]", "ds => ds.map(d => d.clientWidth)")
    assert all(0 < width <= 390 for width in widths), widths
    # charts.js draws them again at the new width, with margins worked out for it.
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-chart]')].every(d =>"
        " d.querySelector('svg.main-svg').getBoundingClientRect().width <= d.clientWidth)"
    )
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}-phone.png"))
    # Auto-refresh swaps the numbers in place: no navigation, the scroll position kept.
    page.evaluate("window.scrollTo(0, 400); window.__kept = 'yes'")
    page.evaluate(
        "new Promise(done => { document.addEventListener('sitepulse:refreshed', done,"
        " {once: true}); window.sitepulse.refresh(); })"
    )
    assert page.evaluate("window.__kept") == "yes"
    assert page.evaluate("window.scrollY") == 400
    page.remove_listener("console", console)
    assert not problems, problems


# Per chart: its id; whether it was in the first viewport; when its drawing started (the
# "sitepulse:chart:<id>" measure charts.js records); the margins charts.js gave Plotly and
# those Plotly drew with (its `_fullLayout._size`, the plot area's offsets); whether it is
# a gauge (drawn with the margins its spec sets).
DRAWN = """
() => [...document.querySelectorAll("[data-chart]")].map((d) => {
  const box = d.getBoundingClientRect();
  const measure = performance.getEntriesByName("sitepulse:chart:" + d.id, "measure")[0];
  const size = d._fullLayout._size;
  return {
    id: d.id,
    in_view: box.top < innerHeight && box.bottom > 0,
    started: measure ? measure.startTime : null,
    given: [d.layout.margin.l, d.layout.margin.r, d.layout.margin.t, d.layout.margin.b],
    drawn: [size.l, size.r, size.t, size.b],
    gauge: d.data[0].type === "indicator",
  };
})
"""


def check_drawn_once_in_view_first(page: Page) -> None:
    """Every chart timed, those in view drawn before the rest, and each one drawn with the
    margins charts.js worked out: Plotly's automargin found them wide enough, so it did not
    draw the chart a second time (which is what made the dashboards slow to load)."""
    charts = page.evaluate(DRAWN)
    assert all(c["started"] is not None for c in charts), charts
    seen = [c["started"] for c in charts if c["in_view"]]
    later = [c["started"] for c in charts if not c["in_view"]]
    assert seen and later and max(seen) < min(later), charts
    grown = [c for c in charts if not c["gauge"] and c["drawn"] != c["given"]]
    assert not grown, grown


# The rendering contract: what a query string means to every page.

VIEW_SETTINGS = Settings(
    sites=(
        SiteConfig(id="acme", public_key="pk_a", timezone=ZONE),
        SiteConfig(id="beta", public_key="pk_b", timezone="UTC"),
    )
)


def _view(query: str) -> View:
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": query.encode()}
    return parse_view(StarletteRequest(scope), VIEW_SETTINGS, NOW)


# query -> (site, preset, analyses' params, first day, last day, compare, refresh)
VIEWS: list[tuple[str, tuple[str, str, dict[str, str], str, str, bool, int]]] = [
    ("", ("acme", "30d", {}, "2025-12-12", "2026-01-11", False, 0)),
    ("days=7&compare=1", ("acme", "7d", {"days": "7"}, "2026-01-04", "2026-01-11", True, 0)),
    ("days=12", ("acme", "custom", {"days": "12"}, "2025-12-30", "2026-01-11", False, 0)),
    (
        "from=2026-01-11",
        ("acme", "today", {"from": "2026-01-11"}, "2026-01-11", "2026-01-11", False, 0),
    ),
    # `until` is the inclusive last day; the analyses get the exclusive `to`.
    (
        "from=2026-01-02&until=2026-01-05&refresh=60",
        (
            "acme",
            "custom",
            {"from": "2026-01-02", "to": "2026-01-06"},
            "2026-01-02",
            "2026-01-05",
            False,
            60,
        ),
    ),
    (
        "site=beta&days=90&compare=0",
        ("beta", "90d", {"days": "90"}, "2025-10-13", "2026-01-11", False, 0),
    ),
]


@pytest.mark.parametrize(("query", "expected"), VIEWS)
def test_views_read_the_query_string(
    query: str, expected: tuple[str, str, dict[str, str], str, str, bool, int]
) -> None:
    view = _view(query)
    got = (
        view.site.id,
        view.preset,
        dict(view.report_params),
        view.from_date,
        view.until_date,
        view.compare,
        view.refresh_secs,
    )
    assert got == expected


def test_links_keep_the_view_and_replace_the_range() -> None:
    view = _view("site=beta&from=2026-01-02&until=2026-01-05&compare=1&refresh=60")
    assert view.qs() == "?site=beta&from=2026-01-02&until=2026-01-05&compare=1&refresh=60"
    assert view.qs(days=30) == "?site=beta&days=30&compare=1&refresh=60"
    assert view.qs(compare=None, refresh=None) == "?site=beta&from=2026-01-02&until=2026-01-05"
    assert view.preset_query("today") == "?site=beta&from=2026-01-11&compare=1&refresh=60"
    assert view.preset_query("7d") == "?site=beta&days=7&compare=1&refresh=60"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('a<b>&"c"', 'a&lt;b&gt;&amp;"c"'),
        ("<a href='javascript:x'>", "&lt;a href='javascript:x'&gt;"),
        ("x" * 50, "x" * 39 + "…"),
    ],
)
def test_chart_labels_are_plain_text(value: str, expected: str) -> None:
    assert plot_text(value) == expected


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (formats.pct, 0.03125, "3.1 %"),
        (formats.pct, None, "–"),
        (formats.pct, float("nan"), "–"),
        (formats.num, 12345.6, "12,346"),
        (formats.signed, -3, "−3"),
        (formats.signed, 0, "±0"),
        (formats.signed_pct, 0.004, "+0.4 pp"),
        (formats.signed_ratio, -0.125, "−12.5 %"),
        (formats.ms, 850, "850 ms"),
        (formats.ms, 2400, "2.4 s"),
        (formats.duration, 269_343, "4 min"),
        (formats.status_label, "yellow", "Near target"),
        (formats.status_label, None, "No data"),
    ],
)
def test_number_formats(fn: Callable[[object], str], value: object, expected: str) -> None:
    assert fn(value) == expected
