"""Every UI page in real headless Chromium, over the demo's traffic, signed in at /login.

One `sitepulse serve` subprocess holds three days of the demo's backfill. An admin added
with the real CLI (`sitepulse user add`) signs in through the login form, defines a funnel,
an experiment and an API token with the UI's own forms, then opens every page at laptop
and phone sizes: no console error, uncaught exception, failed request, dialog or CSP
violation; every panel, chart and table filled. Full-page screenshots of each page land in
test-artifacts/ui/<page>-<viewport>.png.

The helpers (`Watch` and `unsafe_markup` for what went wrong on a page, `open_profile`,
`sign_in`, `submit`, the CLI's `add_user`) are shared with test_injection.py.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Playwright,
    Request,
    Response,
    ViewportSize,
    sync_playwright,
)

from sitepulse.analyse.dashboards import EXECUTIVE_PANELS, MARKETING_PANELS
from sitepulse.demo.traffic import TrafficConfig, backfill
from tests.collect.test_browser_e2e import ARGS, ARTIFACTS, CHROMIUM
from tests.conftest import SITE_HOST, LiveServer, _factory

SHOTS = ARTIFACTS / "ui"
ADMIN = "ada"
PASSWORD = "correct horse battery staple"
LAPTOP: ViewportSize = {"width": 1366, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
# Runs before any script of every document. A CSP violation is an event, not an exception
# or (always) a console message, so it is recorded where the test can read it.
CSP_RECORDER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`
    + ` at ${e.sourceFile}:${e.lineNumber} (${(e.sample || "").slice(0, 80)})`);
});
"""
# Markup a visitor's text must never become: inline handlers, javascript: URLs, scripts
# other than the app's own files and JSON blocks, frames and objects, foreign images.
UNSAFE_MARKUP = """
() => {
  const found = [];
  const say = (el, what) => found.push(`<${el.tagName.toLowerCase()}> ${what}`);
  const URLS = ["href", "src", "action", "formaction", "xlink:href", "data"];
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      if (attr.name.startsWith("on")) say(el, `${attr.name}=${attr.value}`);
      if (URLS.includes(attr.name) && /^\\s*javascript:/i.test(attr.value)) {
        say(el, `${attr.name}=${attr.value}`);
      }
    }
  }
  for (const s of document.querySelectorAll("script")) {
    const own = s.src && new URL(s.src).origin === location.origin;
    if (!own && s.type !== "application/json") say(s, s.src || s.textContent.slice(0, 80));
  }
  for (const el of document.querySelectorAll("iframe, frame, object, embed, base")) {
    say(el, el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll("img, image")) {
    const src = new URL(el.getAttribute("src") || el.getAttribute("href") || "", location.href);
    const own = src.origin === location.origin && src.pathname.startsWith("/static/");
    if (!own && src.protocol !== "data:") say(el, src.href);
  }
  return found;
}
"""
NUMBER = re.compile(r"[−+-]?\d[\d,]*(?:\.\d+)?")
# Python's None printed as text: a template showing a missing value it should leave out.
PYTHON_NONE = re.compile(r"\bNone\b")


def add_user(server: LiveServer, username: str, password: str, role: str = "admin") -> None:
    """`sitepulse user add` against the server's config, while the server runs."""
    cli = ["user", "add", username, "--role", role, "--password-stdin"]
    done = subprocess.run(
        [sys.executable, "-m", "sitepulse", *cli, "-c", str(server.config_path)],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.config_path.parent,
    )
    assert done.returncode == 0, done.stderr
    assert f"added {role} '{username}'" in done.stderr


def chromium_exists() -> None:
    """A missing Chromium fails the test, never skips it."""
    assert Path(CHROMIUM).exists(), "Debian chromium is required (make test installs it)"


def launch(pw: Playwright) -> Browser:
    """The Debian Chromium, headless, for throwaway profiles (`new_context`)."""
    chromium_exists()
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def new_context(browser: Browser) -> BrowserContext:
    """A fresh in-memory profile at laptop size that records CSP violations."""
    context = browser.new_context(viewport=LAPTOP)
    context.add_init_script(CSP_RECORDER)
    return context


def open_profile(pw: Playwright, folder: Path) -> BrowserContext:
    """Headless Chromium on a profile kept in `folder`, at laptop size, recording CSP
    violations. On disk, the profile keeps V8's code cache: plotly.js (4 MB) compiles once
    rather than on every page, so each dashboard loads in about half the time."""
    chromium_exists()
    context = pw.chromium.launch_persistent_context(
        str(folder), executable_path=CHROMIUM, headless=True, args=ARGS, viewport=LAPTOP
    )
    context.add_init_script(CSP_RECORDER)
    return context


def path_of(url: str) -> str:
    return urlsplit(url).path


def submit(page: Page, button: str) -> None:
    """Click the submit button named `button` and wait for the page it leads to."""
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def sign_in(context: BrowserContext, base_url: str, wanted: str = "/") -> Page:
    """Open `wanted` signed out, get sent to /login, type the admin's name and password,
    submit, and land on `wanted`."""
    page = context.new_page()
    page.goto(base_url + wanted)
    assert path_of(page.url) == "/login", page.url
    page.locator("#username").press_sequentially(ADMIN)
    page.locator("#password").press_sequentially(PASSWORD)
    submit(page, "Sign in")
    assert page.url == base_url + wanted, page.url
    return page


class Watch:
    """What went wrong on a page while watched: console errors, uncaught exceptions,
    failed requests (4xx/5xx or network errors) and dialogs. `expected` maps a URL path to
    the error status the test asked for on purpose."""

    def __init__(self, page: Page, expected: Mapping[str, int] | None = None) -> None:
        self.page = page
        self.expected = dict(expected or {})
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught {exc}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("dialog", self._dialog)

    def _deliberate(self, url: str, status: int | None = None) -> bool:
        wanted = self.expected.get(path_of(url))
        return wanted is not None and status in (None, wanted)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # The browser logs every 4xx response too; the deliberate ones are no problem.
        url = message.location.get("url", "")
        if message.text.startswith("Failed to load resource") and self._deliberate(url):
            return
        self.problems.append(f"console error: {message.text} at {message.location}")

    def _failed(self, request: Request) -> None:
        # Leaving a page cancels what it was still fetching (say, the favicon): not a fault.
        if request.failure == "net::ERR_ABORTED":
            return
        self.problems.append(f"request failed: {request.method} {request.url} {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and not self._deliberate(response.url, response.status):
            method = response.request.method
            self.problems.append(f"HTTP {response.status}: {method} {response.url}")

    def _dialog(self, dialog: Dialog) -> None:
        self.problems.append(f"dialog {dialog.type}: {dialog.message}")
        dialog.dismiss()

    def check(self) -> None:
        """Fail with everything seen so far, CSP violations and unsafe markup included."""
        found = list(self.problems)
        found += [f"CSP violation: {v}" for v in self.page.evaluate("window.__csp || []")]
        found += [f"unsafe markup: {m}" for m in unsafe_markup(self.page)]
        assert not found, "\n".join(found)


def unsafe_markup(page: Page) -> list[str]:
    """Elements and attributes in the live DOM that could run or fetch a visitor's code."""
    found: list[str] = page.evaluate(UNSAFE_MARKUP)
    return found


def wait_for_charts(page: Page) -> None:
    """Until charts.js has drawn every chart (it then marks <html data-charts=drawn>)."""
    if page.locator("[data-chart]").count():
        page.wait_for_selector("html[data-charts=drawn]", state="attached", timeout=30_000)


def fill_with_demo_traffic(server: LiveServer, *, days: int, visits_per_day: float) -> None:
    """The demo's backfill (events, then leads) ending now, through the real ingest API."""
    cfg = TrafficConfig(
        base_url=server.base_url,
        site_key=server.site_key,
        site_token=server.token,
        seed=11,
        backfill_days=days,
        backfill_visits_per_day=visits_per_day,
        host=SITE_HOST,
    )

    async def run() -> None:
        async with httpx.AsyncClient(timeout=60.0) as client:
            stats = await backfill(cfg, now_ms=time.time_ns() // 1_000_000, client=client)
        assert not stats.events_rejected and not stats.leads_rejected, stats
        assert stats.leads_accepted > 5, stats

    asyncio.run(run())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`sitepulse serve` with three days of demo traffic and an admin added by the CLI."""
    make, servers = _factory(tmp_path_factory.mktemp("ui-browser"))
    try:
        live = make()
        with ThreadPoolExecutor(1) as pool:  # the CLI starts up while the traffic goes in
            added = pool.submit(add_user, live, ADMIN, PASSWORD)
            fill_with_demo_traffic(live, days=3, visits_per_day=250)
            added.result()
        yield live
    finally:
        for each in servers:
            each.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


FUNNEL = "Pricing to lead"
# (name, kind, path or form) per step, as typed into the form's rows.
FUNNEL_STEPS = (
    ("pricing page", "page", "/pricing"),
    ("contact page", "page", "/contact*"),
    ("lead", "lead", ""),
)
EXPERIMENT = "hero_copy"  # the demo's three-way test of the home page's headline
EXPERIMENT_FORM = {
    "name": EXPERIMENT,
    "control": "control",
    "split": "control=1, outcomes=1, social_proof=1",
    "metric": "lead",
}
TOKEN = "weekly report"


@dataclass(frozen=True)
class Session:
    """The admin's signed-in profile and the pages `session` reached in it."""

    context: BrowserContext
    base_url: str
    paths: Mapping[str, str]


def define_funnel(page: Page, base_url: str) -> str:
    """FUNNEL through the new-funnel form; returns the page it leads to."""
    page.goto(f"{base_url}/funnels/new")
    page.fill("#name", FUNNEL)
    page.fill("#window", "1")
    page.select_option("select[name=window_unit]", "hours")
    for i, (name, kind, pattern) in enumerate(FUNNEL_STEPS):
        page.fill(f"input[name=steps-{i}-name]", name)
        page.select_option(f"select[name=steps-{i}-kind]", kind)
        page.fill(f"input[name=steps-{i}-pattern]", pattern)
    submit(page, "Save funnel")
    assert path_of(page.url) == "/funnels/Pricing%20to%20lead", page.url
    return path_of(page.url)


def define_experiment(page: Page, base_url: str) -> None:
    """EXPERIMENT, with its planned split, through the new-experiment form."""
    page.goto(f"{base_url}/experiments/new")
    for key, value in EXPERIMENT_FORM.items():
        page.fill(f"#f-{key}", value)
    submit(page, "Save experiment")
    assert path_of(page.url) == f"/experiments/{EXPERIMENT}", page.url


def create_token(page: Page, base_url: str) -> None:
    """A viewer API token through the settings form; its secret is shown once."""
    page.goto(f"{base_url}/settings/tokens")
    page.fill("#token-name", TOKEN)
    page.select_option("#token-role", "viewer")
    submit(page, "Create token")
    assert page.inner_text("code.secret").startswith("spt_")


@pytest.fixture(scope="module")
def session(
    server: LiveServer, playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    """Signed in through the form; a funnel, an experiment and a token made through the
    UI's forms; a lead picked from the list page's links."""
    context = open_profile(playwright, tmp_path_factory.mktemp("chromium-profile"))
    page = sign_in(context, server.base_url)
    watch = Watch(page)
    funnel = define_funnel(page, server.base_url)
    define_experiment(page, server.base_url)
    create_token(page, server.base_url)
    page.goto(f"{server.base_url}/leads?days=7")
    lead = page.locator("table.leads tbody a[href^='/leads/']").first.get_attribute("href")
    assert lead, "the list links to no lead"
    watch.check()
    page.close()
    yield Session(context, server.base_url, {"funnel": funnel, "lead": lead})
    context.close()


@dataclass(frozen=True)
class Screen:
    """A page and what must be on it: each `filled` selector matches and every match shows
    text; each `positive` selector matches and every match starts with a number above 0;
    no `absent` text shows."""

    name: str
    path: str  # "{lead}" and "{funnel}" are the pages `session` reached
    filled: tuple[str, ...] = ()
    positive: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


SCREENS = [
    Screen(
        "executive",
        "/?days=7&compare=1",
        (*(f"section#{panel}" for panel in EXECUTIVE_PANELS), "#kpi_summary tbody tr"),
        (
            "#conversion_rate-body .figure",
            "#avg_lead_score-body .figure",
            "#cwv_compliance-body .figure",
            "#leads_trend-body .panel-note",
        ),
    ),
    Screen(
        "marketing",
        "/marketing?days=7",
        (
            *(f"section#{panel}" for panel in MARKETING_PANELS),
            "#channel_performance-body tbody tr",
            "#top_paths-body tbody tr",
            "#vitals_by_page-body tbody tr",
            "#experiments-body .exp-name",
        ),
        (
            "#funnel-table tbody tr:first-child td:nth-child(2)",
            "#attribution-body .panel-note",
            "#top_paths-body tbody td:nth-child(2)",
        ),
        # The experiment defined through the form is the one the dashboard reads.
        (f"{EXPERIMENT} (lead, not configured)",),
    ),
    Screen(
        "leads",
        "/leads?days=7",
        ("table.leads tbody tr", "table.leads tbody td:nth-child(2) a"),
        (".lead-count",),
    ),
    Screen(
        "lead",
        "{lead}",
        ("h1", "dl.facts dd", "ol.journey > li", "table.credits tbody tr"),
        ("p.figure",),
    ),
    Screen(
        "funnels",
        "/funnels?days=7",
        ("#funnel-list tbody tr td:first-child a",),
        ("#funnel-list tbody td:nth-child(4)",),
    ),
    Screen(
        "funnel",
        "{funnel}?days=7&compare=1",
        ("#funnel-steps tbody tr", "#funnel-segments tbody tr", "#funnel-steps .panel-note"),
        ("#funnel-steps tbody tr td:nth-child(2)",),
    ),
    Screen(
        "experiments",
        "/experiments?days=7",
        ("#experiment-list tbody tr", "#experiment-list td[data-label=Verdict]"),
    ),
    Screen(
        "experiment",
        f"/experiments/{EXPERIMENT}?days=7",
        ("#verdict .verdict", "#variant-table tbody tr", "#looks-table tbody tr"),
        ("#variant-table tbody td:nth-child(2)",),
    ),
    Screen("funnel-new", "/funnels/new", ("form.def-form label", "table.step-rows tbody tr")),
    Screen("experiment-new", "/experiments/new", ("form.def-form label", "form.def-form .hint")),
    Screen("settings-tokens", "/settings/tokens", ("table.tokens tbody tr", "form.def-form label")),
    Screen("settings-users", "/settings/users", ("table.users tbody tr", "form.def-form label")),
    Screen("settings-audit", "/settings/audit", ("table.audit tbody tr", "#audit-action option")),
]
# What an empty panel, list or table shows instead of data.
EMPTY_STATES = ".empty, tbody tr > td.muted[colspan]:only-child"


def number(text: str) -> float:
    """The first number in `text` ("1,234 leads" → 1234.0); 0 when there is none."""
    found = NUMBER.search(text)
    return float(found.group().replace(",", "").replace("−", "-")) if found else 0.0


def check_filled(page: Page, screen: Screen) -> None:
    """Every chart drawn by Plotly, no empty state, every table with rows, the screen's
    selectors filled and its figures above zero, nothing `absent`, no None printed."""
    charts = page.eval_on_selector_all(
        "[data-chart]", "ds => ds.map(d => [d.id, !!d.querySelector('svg.main-svg')])"
    )
    assert all(drawn for _, drawn in charts), charts
    empty = page.eval_on_selector_all(EMPTY_STATES, "es => es.map(e => e.textContent.trim())")
    assert not empty, empty
    rowless = page.eval_on_selector_all(
        "main table", "ts => ts.filter(t => !t.querySelector('tbody tr')).map(t => t.className)"
    )
    assert not rowless, rowless
    for selector in screen.filled:
        texts = page.locator(selector).all_inner_texts()
        assert texts and all(text.strip() for text in texts), (selector, texts)
    for selector in screen.positive:
        texts = page.locator(selector).all_inner_texts()
        assert texts and all(number(text) > 0 for text in texts), (selector, texts)
    shown = page.inner_text("main")
    assert not PYTHON_NONE.search(shown), shown
    assert not [text for text in screen.absent if text in shown], screen.absent


def check_phone_layout(page: Page) -> None:
    """One column: the nav folded behind its button, charts and page within the screen."""
    page.set_viewport_size(PHONE)
    # charts.js draws the charts again at the new width, a moment after the resize event.
    page.wait_for_function(
        "w => [...document.querySelectorAll('[data-chart]')].every(d => {"
        " const svg = d.querySelector('svg.main-svg'); return svg && svg.clientWidth <= w; })",
        arg=PHONE["width"],
    )
    assert page.is_visible(".nav-toggle") and not page.is_visible("#nav")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (f"the page scrolls sideways: {width} px wide", wide(page))


def wide(page: Page) -> list[str]:
    """The innermost elements reaching past the screen's right edge, to name in a failure."""
    return list(
        page.evaluate(
            "w => [...document.querySelectorAll('main *')]"
            ".filter(e => e.getBoundingClientRect().right > w"
            " && ![...e.children].some(c => c.getBoundingClientRect().right > w))"
            ".map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 80))",
            PHONE["width"],
        )
    )


@pytest.mark.parametrize("screen", SCREENS, ids=[s.name for s in SCREENS])
def test_every_page_shows_its_data_cleanly(session: Session, screen: Screen) -> None:
    page = session.context.new_page()
    watch = Watch(page)
    response = page.goto(session.base_url + screen.path.format_map(session.paths))
    assert response is not None and response.status == 200, screen.path
    assert response.headers["content-type"].startswith("text/html")
    wait_for_charts(page)
    check_filled(page, screen)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{screen.name}-laptop.png"), full_page=True)
    check_phone_layout(page)
    check_filled(page, screen)
    page.screenshot(path=str(SHOTS / f"{screen.name}-phone.png"), full_page=True)
    watch.check()
    page.close()


def test_signing_out_ends_the_session(server: LiveServer, playwright: Playwright) -> None:
    browser = launch(playwright)
    context = new_context(browser)
    page = sign_in(context, server.base_url, "/leads")
    watch = Watch(page)
    submit(page, "Sign out")
    assert path_of(page.url) == "/login"
    page.goto(f"{server.base_url}/funnels")
    assert path_of(page.url) == "/login" and "next=%2Ffunnels" in page.url
    assert page.locator("#username").is_visible()
    watch.check()
    browser.close()
