"""Full page loads of the UI in real headless Chromium, timed by the browser itself.

A load counts from the navigation's start (`performance.timeOrigin`) until both the `load`
event has ended and every chart is drawn: charts.js marks `<html data-charts="drawn">`
after its last chart, and every `[data-chart]` container must then hold Plotly's SVG
(`svg.main-svg`) or the "no data" note charts.js puts there instead. That is `ready`, the
figure the target is read on. Beside it, `first_view` is the moment the load event has
ended and every chart in the first viewport (the window before any scrolling) is drawn:
what a user sees complete; charts.js draws those first. Every chart is still drawn
without scrolling, so `ready` needs no scroll either.

The page times itself: a script installed before any page script watches for the mark,
checks the charts there, records the moment and then logs one console line, which is all
Python waits for. Nothing is evaluated in the page until then (Playwright's polling would
inject its own script, whose compilation lands on the main thread among the charts).
The breakdown comes from the browser's own entries afterwards: the HTML's response end,
plotly.min.js's response end (Resource Timing), the "sitepulse:charts" mark charts.js sets
when it starts (Plotly has been evaluated by then: deferred scripts run in order), and the
"sitepulse:chart:<id>" measure of each chart's drawing.

Cold: a new browser context per load (empty cache, no connections: a first visit). Warm: a
returning user's browser, a profile on disk with its HTTP cache and V8's code cache (which
spares re-compiling plotly.min.js), two loads to fill it, then the counted loads.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    ViewportSize,
    sync_playwright,
)

from bench.analyses import Timing

CHROMIUM = "/usr/bin/chromium"
# As tests/collect/test_browser_e2e.py launches the Debian Chromium.
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
TIMEOUT_MS = 60_000

READY_LINE = "sitepulse-bench:ready"
# Installed before any page script. On the `data-charts` mark, and after the load event,
# it checks that the load event has ended and every chart holds Plotly's SVG or the
# no-data note, then records the moment and logs READY_LINE; until then it looks again
# every 50 ms (nothing is drawn later than the mark, so this only covers a load event
# that ends after the mark).
_WATCH = """
(() => {
  let done = false;
  const charted = () => Array.from(document.querySelectorAll("[data-chart]")).every(
    (div) => div.querySelector("svg.main-svg") !== null || div.querySelector(".empty") !== null);
  const check = () => {
    if (done || !document.documentElement) return;
    if (window.__chartsDrawnAt === undefined
        && document.documentElement.getAttribute("data-charts") === "drawn") {
      window.__chartsDrawnAt = performance.now();
    }
    const nav = performance.getEntriesByType("navigation")[0];
    if (!nav || nav.loadEventEnd <= 0 || window.__chartsDrawnAt === undefined) return;
    if (!charted()) { setTimeout(check, 50); return; }
    done = true;
    console.debug("READY_LINE");
  };
  new MutationObserver(check).observe(document, {
    attributes: true, subtree: true, attributeFilter: ["data-charts"]
  });
  addEventListener("load", () => setTimeout(check, 0));
})();
""".replace("READY_LINE", READY_LINE)
_FIGURES = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const charts = Array.from(document.querySelectorAll("[data-chart]"));
  const server = (nav.serverTiming || []).reduce((sum, t) => sum + t.duration, 0);
  const plotly = performance.getEntriesByType("resource").find(
    (r) => new URL(r.name).pathname.endsWith("/plotly.min.js"));
  const started = performance.getEntriesByName("sitepulse:charts")[0];
  const drawn = {};
  for (const m of performance.getEntriesByType("measure")) {
    if (m.name.startsWith("sitepulse:chart:")) {
      drawn[m.name.slice("sitepulse:chart:".length)] = m.startTime + m.duration;
    }
  }
  const draws = performance.getEntriesByType("measure")
    .filter((m) => m.name.startsWith("sitepulse:chart:"));
  // Charts in the window as first shown (the page has not been scrolled).
  const inView = charts.filter((div) => {
    const box = div.getBoundingClientRect();
    return box.top < innerHeight && box.bottom > 0;
  });
  const firstView = inView.map((div) => drawn[div.id || div.getAttribute("data-chart")]);
  return {
    status: nav.responseStatus || 0,
    response_end_ms: nav.responseEnd,
    plotly_loaded_ms: plotly ? plotly.responseEnd : 0,
    charts_start_ms: started ? started.startTime : 0,
    chart_drawing_ms: draws.reduce((sum, m) => sum + m.duration, 0),
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    load_ms: nav.loadEventEnd,
    charts_drawn_ms: window.__chartsDrawnAt,
    ready_ms: Math.max(nav.loadEventEnd, window.__chartsDrawnAt),
    first_view_ms: firstView.some((t) => t === undefined)
      ? Math.max(nav.loadEventEnd, window.__chartsDrawnAt)
      : Math.max(nav.loadEventEnd, ...firstView),
    server_timing_ms: server,
    transfer_bytes: performance.getEntriesByType("resource").reduce(
      (sum, r) => sum + (r.transferSize || 0), nav.transferSize || 0),
    charts: charts.length,
    first_view_charts: inView.length,
    empty_charts: charts.filter((div) => div.querySelector(".empty") !== null).length,
    path: location.pathname,
  };
}
"""


def _is_ready(message: ConsoleMessage) -> bool:
    return message.text == READY_LINE


class ChromiumMissing(RuntimeError):
    """The Debian Chromium the benchmark drives is not installed."""


@dataclass(frozen=True, slots=True)
class Load:
    """One page load as the browser timed it, in ms from the navigation's start
    (`chart_drawing_ms` is a duration: the charts' drawing, summed)."""

    ready_ms: float
    first_view_ms: float
    load_ms: float
    charts_drawn_ms: float
    response_end_ms: float
    plotly_loaded_ms: float
    charts_start_ms: float
    chart_drawing_ms: float
    dom_content_loaded_ms: float
    server_timing_ms: float
    transfer_bytes: int
    charts: int
    first_view_charts: int
    empty_charts: int


def chromium_path() -> Path:
    """The Chromium binary, or ChromiumMissing."""
    found = Path(shutil.which("chromium") or CHROMIUM)
    if not found.exists():
        raise ChromiumMissing(
            f"Debian chromium is required at {CHROMIUM} (apt-get install chromium)"
        )
    return found


class PageTimer:
    """A headless Chromium signed in to one server by its session cookie."""

    def __init__(self, base_url: str, cookies: dict[str, str]) -> None:
        self.base_url = base_url
        self._cookies = [
            {"name": name, "value": value, "url": base_url, "httpOnly": True, "sameSite": "Lax"}
            for name, value in cookies.items()
        ]
        executable = chromium_path()
        self._executable = executable
        self._pw = sync_playwright().start()
        try:
            self._browser: Browser = self._pw.chromium.launch(
                executable_path=str(executable), headless=True, args=list(ARGS)
            )
            self.version = self._browser.version
        except BaseException:
            self._pw.stop()
            raise

    def _context(self) -> BrowserContext:
        context = self._browser.new_context(viewport=VIEWPORT)
        # Playwright exports no name for the cookie dict it takes (SetCookieParam).
        context.add_cookies(self._cookies)  # type: ignore[arg-type]
        context.add_init_script(_WATCH)
        return context

    def _load(self, context: BrowserContext, path: str) -> Load:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            with page.expect_event("console", _is_ready, timeout=TIMEOUT_MS):
                response = page.goto(self.base_url + path, wait_until="load", timeout=TIMEOUT_MS)
                if (
                    response is None
                    or response.status != 200
                    or page.url.split("?")[0].endswith("/login")
                ):
                    status = None if response is None else response.status
                    raise RuntimeError(f"GET {path} answered {status} at {page.url}")
            got: dict[str, Any] = page.evaluate(_FIGURES)
        finally:
            page.close()
        if errors:
            raise RuntimeError(f"{path}: script errors: {'; '.join(errors)}")
        return Load(
            ready_ms=float(got["ready_ms"]),
            first_view_ms=float(got["first_view_ms"]),
            load_ms=float(got["load_ms"]),
            charts_drawn_ms=float(got["charts_drawn_ms"]),
            response_end_ms=float(got["response_end_ms"]),
            plotly_loaded_ms=float(got["plotly_loaded_ms"]),
            charts_start_ms=float(got["charts_start_ms"]),
            chart_drawing_ms=float(got["chart_drawing_ms"]),
            dom_content_loaded_ms=float(got["dom_content_loaded_ms"]),
            server_timing_ms=float(got["server_timing_ms"]),
            transfer_bytes=int(got["transfer_bytes"]),
            charts=int(got["charts"]),
            first_view_charts=int(got["first_view_charts"]),
            empty_charts=int(got["empty_charts"]),
        )

    def cold(self, path: str, runs: int) -> list[Load]:
        """`runs` loads of `path`, each in a new context: nothing cached, no open connection."""
        loads = []
        for _ in range(runs):
            context = self._context()
            try:
                loads.append(self._load(context, path))
            finally:
                context.close()
        return loads

    def warm(self, path: str, runs: int) -> list[Load]:
        """A returning user's browser: a profile on disk (HTTP cache and V8's code cache,
        which Chromium fills once a script has run twice), two loads to fill it, then
        `runs` counted loads."""
        with tempfile.TemporaryDirectory(prefix="sitepulse-bench-profile-") as profile:
            context = self._pw.chromium.launch_persistent_context(
                profile,
                executable_path=str(self._executable),
                headless=True,
                args=list(ARGS),
                viewport=VIEWPORT,
            )
            try:
                context.add_cookies(self._cookies)  # type: ignore[arg-type]
                context.add_init_script(_WATCH)
                for _ in range(2):
                    self._load(context, path)
                return [self._load(context, path) for _ in range(runs)]
            finally:
                context.close()

    def close(self) -> None:
        try:
            self._browser.close()
        finally:
            self._pw.stop()


def _timing(loads: Sequence[Load], field: str) -> Timing:
    return Timing.of([float(getattr(load, field)) / 1000 for load in loads])


def summary(loads: Sequence[Load]) -> dict[str, Any]:
    """Time to ready and to the first viewport drawn (median, p95, max), and the medians
    of the steps before them."""
    # In order: the HTML is in, plotly.min.js is in, Plotly has run (charts.js starts), the
    # deferred scripts have run, load, charts drawn; then two durations.
    steps = (
        "response_end",
        "plotly_loaded",
        "charts_start",
        "dom_content_loaded",
        "load",
        "charts_drawn",
        "chart_drawing",
        "server_timing",
    )
    return {
        "ready": asdict(_timing(loads, "ready_ms")),
        "first_view": asdict(_timing(loads, "first_view_ms")),
        **{f"{step}_median_ms": _timing(loads, f"{step}_ms").median_ms for step in steps},
        "transfer_bytes": loads[-1].transfer_bytes,
        "charts": loads[-1].charts,
        "first_view_charts": loads[-1].first_view_charts,
        "empty_charts": loads[-1].empty_charts,
    }


def page_loads(
    base_url: str,
    cookies: dict[str, str],
    pages: Mapping[str, str],
    runs: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Cold and warm loads of each page (name → path): the Chromium version and summaries."""
    timer = PageTimer(base_url, cookies)
    try:
        out: dict[str, Any] = {"chromium": timer.version}
        for name, path in pages.items():
            out[name] = {"path": path}
            for kind in ("cold", "warm"):
                found = timer.cold(path, runs) if kind == "cold" else timer.warm(path, runs)
                out[name][kind] = summary(found)
                ready, first = out[name][kind]["ready"], out[name][kind]["first_view"]
                log(
                    f"  {name:10} {kind}: ready median {ready['median_ms']:7.1f} ms,"
                    f" p95 {ready['p95_ms']:7.1f} ms; first viewport median"
                    f" {first['median_ms']:7.1f} ms, p95 {first['p95_ms']:7.1f} ms"
                )
        return out
    finally:
        timer.close()
