"""Full page loads of the UI in real headless Chromium, timed by the browser itself.

A load counts from the navigation's start (`performance.timeOrigin`) until both the `load`
event has ended and every chart is drawn: charts.js marks `<html data-charts="drawn">`
after its last chart, and every `[data-chart]` container must then hold Plotly's SVG
(`svg.main-svg`) or the "no data" note charts.js puts there instead. The moment the mark
appears is taken in the page by a MutationObserver installed before any page script runs,
so polling from Python adds nothing to the figure.

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

from playwright.sync_api import Browser, BrowserContext, ViewportSize, sync_playwright

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

_MARK_DRAWN = """
(() => {
  const seen = () => {
    if (window.__chartsDrawnAt === undefined
        && document.documentElement
        && document.documentElement.getAttribute("data-charts") === "drawn") {
      window.__chartsDrawnAt = performance.now();
    }
  };
  new MutationObserver(seen).observe(document, {
    attributes: true, subtree: true, attributeFilter: ["data-charts"]
  });
})();
"""
_READY = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  if (!nav || nav.loadEventEnd <= 0 || window.__chartsDrawnAt === undefined) return false;
  return Array.from(document.querySelectorAll("[data-chart]")).every(
    (div) => div.querySelector("svg.main-svg") !== null || div.querySelector(".empty") !== null
  );
}
"""
_FIGURES = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const charts = Array.from(document.querySelectorAll("[data-chart]"));
  const server = (nav.serverTiming || []).reduce((sum, t) => sum + t.duration, 0);
  return {
    status: nav.responseStatus || 0,
    response_end_ms: nav.responseEnd,
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    load_ms: nav.loadEventEnd,
    charts_drawn_ms: window.__chartsDrawnAt,
    ready_ms: Math.max(nav.loadEventEnd, window.__chartsDrawnAt),
    server_timing_ms: server,
    transfer_bytes: performance.getEntriesByType("resource").reduce(
      (sum, r) => sum + (r.transferSize || 0), nav.transferSize || 0),
    charts: charts.length,
    empty_charts: charts.filter((div) => div.querySelector(".empty") !== null).length,
    path: location.pathname,
  };
}
"""


class ChromiumMissing(RuntimeError):
    """The Debian Chromium the benchmark drives is not installed."""


@dataclass(frozen=True, slots=True)
class Load:
    """One page load as the browser timed it, in ms from the navigation's start."""

    ready_ms: float
    load_ms: float
    charts_drawn_ms: float
    response_end_ms: float
    dom_content_loaded_ms: float
    server_timing_ms: float
    transfer_bytes: int
    charts: int
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
        context.add_init_script(_MARK_DRAWN)
        return context

    def _load(self, context: BrowserContext, path: str) -> Load:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            response = page.goto(self.base_url + path, wait_until="load", timeout=TIMEOUT_MS)
            if (
                response is None
                or response.status != 200
                or page.url.split("?")[0].endswith("/login")
            ):
                status = None if response is None else response.status
                raise RuntimeError(f"GET {path} answered {status} at {page.url}")
            page.wait_for_function(_READY, timeout=TIMEOUT_MS)
            got: dict[str, Any] = page.evaluate(_FIGURES)
        finally:
            page.close()
        if errors:
            raise RuntimeError(f"{path}: script errors: {'; '.join(errors)}")
        return Load(
            ready_ms=float(got["ready_ms"]),
            load_ms=float(got["load_ms"]),
            charts_drawn_ms=float(got["charts_drawn_ms"]),
            response_end_ms=float(got["response_end_ms"]),
            dom_content_loaded_ms=float(got["dom_content_loaded_ms"]),
            server_timing_ms=float(got["server_timing_ms"]),
            transfer_bytes=int(got["transfer_bytes"]),
            charts=int(got["charts"]),
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
                context.add_init_script(_MARK_DRAWN)
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
    """Time to ready (median, p95, max) and the medians of the steps before it."""
    # In order: the HTML is in, the deferred scripts (Plotly) have run, load, charts drawn.
    steps = ("response_end", "dom_content_loaded", "load", "charts_drawn", "server_timing")
    return {
        "ready": asdict(_timing(loads, "ready_ms")),
        **{f"{step}_median_ms": _timing(loads, f"{step}_ms").median_ms for step in steps},
        "transfer_bytes": loads[-1].transfer_bytes,
        "charts": loads[-1].charts,
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
                ready = out[name][kind]["ready"]
                log(
                    f"  {name:10} {kind}: ready median {ready['median_ms']:7.1f} ms,"
                    f" p95 {ready['p95_ms']:7.1f} ms"
                )
        return out
    finally:
        timer.close()
