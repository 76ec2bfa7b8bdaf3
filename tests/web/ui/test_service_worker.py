"""The UI's service worker in real headless Chromium: installed from the sign-in page, it
holds plotly.min.js (and only that) in Cache Storage, and the first dashboard then gets
plotly from there, so Chromium's code cache spares compiling it.

The app (`tests/web/ui/harness.UiServer`) is served by uvicorn on loopback, behind the real
auth middleware and its Content-Security-Policy; an http://127.0.0.1 origin is a secure
context, so service workers run there as on https.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    sync_playwright,
)

from tests.collect.test_browser_e2e import ARGS, CHROMIUM
from tests.web.ui.harness import CSP, UiServer, settings_for

WORKER = "/static/sw.js"
# A name that is not loopback stands for the server's LAN address over plain http: no
# secure context, so no service worker API at all.
LAN_HOST = "sitepulse-lan.test"
PREFIX = "sitepulse-plotly "  # sw.js names its cache PREFIX + the plotly URL
# Runs before any script of every document: CSP violations are events, not exceptions.
CSP_RECORDER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI}`));
"""
# Resolves once a service worker is active and controls the page; fails after `ms`.
CONTROLLED = """
async (ms) => {
  const sw = navigator.serviceWorker;
  const late = new Promise((_, fail) => setTimeout(
    () => fail(new Error(`no service worker controls the page after ${ms} ms`)), ms));
  const controlled = (async () => {
    const registration = await sw.ready;
    if (!sw.controller) {
      await new Promise((done) => sw.addEventListener("controllerchange", done, { once: true }));
    }
    return { scope: registration.scope, script: sw.controller.scriptURL };
  })();
  return Promise.race([controlled, late]);
}
"""
CONTROLLED_WITHIN_MS = 20_000
# Every cache of the origin and the URLs each holds, in the order the caches were made.
CACHES = """
async () => {
  const out = [];
  for (const name of await caches.keys()) {
    const requests = await (await caches.open(name)).keys();
    out.push([name, requests.map((r) => r.url)]);
  }
  return out;
}
"""
PLOTLY_TIMING = """
() => {
  const entry = performance.getEntriesByType("resource")
    .find((r) => new URL(r.name).pathname === "/static/plotly.min.js");
  return entry ? { delivery: entry.deliveryType, workerStart: entry.workerStart } : null;
}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    server = UiServer(settings_for(tmp_path_factory.mktemp("ui-sw") / "data"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plotly(live: UiServer) -> str:
    """The plotly URL a dashboard links, read from its HTML (absolute)."""
    with live.client() as c:
        page = c.get("/").text
    found = re.search(r'<script src="(/static/plotly\.min\.js\?v=[0-9a-f]{16})"', page)
    assert found, "the dashboard links no versioned plotly.min.js"
    return live.base_url + found.group(1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian chromium is required (make test installs it)"
    with sync_playwright() as pw:
        args = [*ARGS, f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1"]
        launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield launched
        launched.close()


class Problems:
    """Console errors, uncaught exceptions, failed requests and CSP violations on pages;
    console errors starting with one of `expected` are none."""

    def __init__(self, expected: tuple[str, ...] = ()) -> None:
        self.expected = expected
        self.found: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.found.append(f"uncaught {exc}"))
        page.on("requestfailed", lambda r: self.found.append(f"failed {r.url} {r.failure}"))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(self.expected):
            self.found.append(f"console {message.text}")

    def check(self, *pages: Page) -> None:
        found = list(self.found)
        for page in pages:
            found += [f"CSP violation: {v}" for v in page.evaluate("window.__csp || []")]
        assert not found, "\n".join(found)


def new_context(browser: Browser) -> BrowserContext:
    """A fresh profile, signed out: an empty cache and no service worker."""
    context = browser.new_context()
    context.add_init_script(CSP_RECORDER)
    return context


def sign_in(context: BrowserContext, base_url: str, live: UiServer) -> None:
    """The session cookie for `base_url`, as POST /login sets it (the form itself is
    test_browser.py's)."""
    cookies: list[Any] = [{"name": k, "value": v, "url": base_url} for k, v in live.cookies.items()]
    context.add_cookies(cookies)


def test_the_worker_script_is_served_to_revalidate_with_its_scope(
    live: UiServer, plotly: str
) -> None:
    with live.client(signed_in=False) as c:
        resp = c.get(WORKER)
        again = c.get(WORKER, headers={"If-None-Match": resp.headers["etag"]})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/javascript; charset=utf-8"
    assert resp.headers["cache-control"] == "public, max-age=0, must-revalidate"
    assert resp.headers["service-worker-allowed"] == "/"
    assert resp.headers["content-security-policy"] == CSP
    assert resp.headers["x-content-type-options"] == "nosniff"
    # The dashboard's own plotly URL, written in as a string literal; no slot left unfilled.
    assert f'"{plotly.removeprefix(live.base_url)}"' in resp.text
    assert "__PLOTLY_URL__" not in resp.text
    assert again.status_code == 304 and not again.content


@pytest.mark.parametrize(
    "query",
    [
        "plotly=https%3A%2F%2Fevil.example%2Fx.js",
        "plotly=%2Fstatic%2Fplotly.min.js%3Fv%3D0000000000000000",
        "v=1",
    ],
)
def test_the_worker_script_takes_no_parameters(live: UiServer, query: str) -> None:
    with live.client(signed_in=False) as c:
        resp = c.get(f"{WORKER}?{query}")
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("text/plain")
    assert "addEventListener" not in resp.text


def test_sign_in_page_installs_it_and_the_dashboard_gets_plotly_from_it(
    live: UiServer, plotly: str, browser: Browser
) -> None:
    context = new_context(browser)
    problems = Problems()
    try:
        # A cache an older plotly version left behind, and one that is not the worker's,
        # made on a page in scope that registers nothing (a static file).
        first = problems.watch(context.new_page())
        first.goto(live.base_url + "/static/app.css")
        first.evaluate(
            "async (names) => { for (const n of names) await caches.open(n); }",
            [PREFIX + live.base_url + "/static/plotly.min.js?v=0123456789abcdef", "other"],
        )
        first.close()

        login = problems.watch(context.new_page())
        login.goto(live.base_url + "/login")
        controlled = login.evaluate(CONTROLLED, CONTROLLED_WITHIN_MS)
        assert controlled == {"scope": live.base_url + "/", "script": live.base_url + WORKER}
        # The old version's cache is gone, the foreign one kept, and the worker's holds
        # exactly the versioned plotly URL.
        assert login.evaluate(CACHES) == [["other", []], [PREFIX + plotly, [plotly]]]

        sign_in(context, live.base_url, live)
        dashboard = problems.watch(context.new_page())
        responses: list[Response] = []
        dashboard.on("response", lambda r: responses.append(r))
        page_response = dashboard.goto(live.base_url + "/")
        assert page_response is not None and page_response.status == 200
        dashboard.wait_for_selector("html[data-charts=drawn]", state="attached", timeout=30_000)
        # plotly.min.js came out of Cache Storage; the page itself, and every other file,
        # from the network, and nothing else was cached.
        assert dashboard.evaluate(PLOTLY_TIMING)["delivery"] == "cache-storage"
        assert not page_response.from_service_worker
        assert {r.url for r in responses if r.from_service_worker} == {plotly}
        assert dashboard.evaluate(CACHES) == [["other", []], [PREFIX + plotly, [plotly]]]
        problems.check(login, dashboard)
    finally:
        context.close()


def test_pages_work_where_no_worker_can_run(live: UiServer, browser: Browser) -> None:
    lan = f"http://{LAN_HOST}:{live.port}"
    context = new_context(browser)
    # Chromium says so of every page over plain http, with or without a worker.
    problems = Problems(expected=("The Cross-Origin-Opener-Policy header has been ignored",))
    try:
        sign_in(context, lan, live)
        page = problems.watch(context.new_page())
        page.goto(lan + "/marketing")
        page.wait_for_selector("html[data-charts=drawn]", state="attached", timeout=30_000)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("[window.isSecureContext, 'serviceWorker' in navigator]") == [
            False,
            False,
        ]
        assert page.evaluate(PLOTLY_TIMING)["delivery"] != "cache-storage"
        problems.check(page)
    finally:
        context.close()
