"""Real headless Chromium loads the sample site with /sp.js; events land in the store."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import LiveServer, ServerFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian chromium is required (make test installs it)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def _wait_for(server: LiveServer, check: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows = server.events()
    while not check(rows) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the store until the browser's beacons land
        rows = server.events()
    return rows


def _names(rows: list[dict[str, Any]], type_: str) -> set[str]:
    return {r["name"] for r in rows if r["type"] == type_}


def test_browser_journey_is_collected(server_factory: ServerFactory, browser: Browser) -> None:
    server = server_factory({"server": {"sample_site": True}})
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page: Page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{server.base_url}/site/?utm_source=newsletter&utm_medium=email&utm_campaign=e2e")
    page.wait_for_load_state("networkidle")
    page.mouse.wheel(0, 2500)
    page.mouse.click(5, 5)  # a trusted input finalises LCP
    page.wait_for_timeout(300)
    page.click("a[href$='/site/contact']")
    page.wait_for_load_state("networkidle")

    form = page.locator("form[data-sp-lead]")
    page.fill("input[name=email]", "grace@example.org")
    page.fill("input[name=name]", "Grace Hopper")
    page.fill("input[name=company]", "Navy Labs")
    page.fill("textarea[name=message]", "We need help with our site")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-e2e-contact.png"))
    form.locator("[type=submit]").click()
    page.wait_for_timeout(500)
    page.goto("about:blank")  # page leave: engagement and the last vitals are sent

    expected = {("vital", name) for name in ("LCP", "CLS", "FCP", "TTFB")} | {
        ("form", "submit"),
        ("engagement", "page_leave"),
        ("engagement", "engaged_time"),
        ("lead", "contact"),
    }

    def complete(rows: list[dict[str, Any]]) -> bool:
        return expected <= {(r["type"], r["name"]) for r in rows}

    # The context stays open until the page-leave beacons have landed: closing it
    # at once can cancel a beacon still in flight on a busy host.
    rows = _wait_for(server, complete)
    context.close()
    assert complete(rows), ("missing", expected - {(r["type"], r["name"]) for r in rows})
    assert not errors

    views = [r for r in rows if r["type"] == "pageview"]
    assert {v["path"] for v in views} >= {"/site/", "/site/contact"}
    landing = min(views, key=lambda v: v["ts"])
    assert landing["channel"] == "Email" and landing["utm_campaign"] == "e2e"
    assert len({r["session_id"] for r in rows}) == 1  # one visit, one session

    vitals = {r["name"]: r["value"] for r in rows if r["type"] == "vital"}
    assert 0 < vitals["LCP"] < 20_000
    assert 0 < vitals["FCP"] < 20_000
    assert 0 <= vitals["TTFB"] < 10_000
    assert 0 <= vitals["CLS"] < 1
    assert _names(rows, "form") >= {"form_start", "field_focus", "field_blur", "submit"}
    for row in rows:
        if row["type"] == "form":
            assert "Grace" not in (row["props"] or ""), "field values must never be sent"
    scroll = [r["value"] for r in rows if r["type"] == "engagement" and r["name"] == "scroll"]
    assert scroll and max(scroll) > 0
    # Playwright sets navigator.webdriver: the automation is seen and flagged, not hidden.
    assert all(r["is_bot"] for r in rows)
    server.stop()
    ((email, name, channel),) = server.db_query("SELECT email, name, channel FROM leads")
    assert (email, name, channel) == ("grace@example.org", "Grace Hopper", "Email")
