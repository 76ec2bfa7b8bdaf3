"""What happens on one page view: paint, vitals, scrolling, clicks, experiments and the form.

Event names and props follow what `/sp.js` sends, so generated and real traffic look alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from sitepulse.collect.payloads import BrowserEvent, EventType, LeadSubmission, PropValue
from sitepulse.demo.catalog import (
    CASE_STUDY_PDF,
    FORM_FIELDS,
    FORM_ID,
    OUTBOUND_LINKS,
    PAGES,
    POST_PAGES,
    SERVICE_PAGES,
)
from sitepulse.demo.draw import event_id, lognormal, weighted
from sitepulse.demo.leads import plan_lead, plan_spam_lead
from sitepulse.demo.vitals import rating, sample_inp, sample_vitals

SCROLL_MILESTONES = (25, 50, 75, 90)


@dataclass
class PageContext:
    """What every page of one visit needs to know about the visit."""

    rng: random.Random
    host: str
    device: str
    country: str
    channel: str
    service: str
    variants: dict[str, str]
    converts: bool
    form_failed: bool = False
    is_test: bool = False
    automation: bool = False
    runs_js: bool = True


@dataclass
class PageResult:
    """The page's events, when the visitor left it, and the lead it produced if any."""

    events: list[BrowserEvent] = field(default_factory=list)
    leave_ms: int = 0
    lead: LeadSubmission | None = None


class _Page:
    """Collects one page view's events, stamping each with a fresh id and the page URL."""

    def __init__(self, ctx: PageContext, url: str) -> None:
        self.ctx = ctx
        self.url = url
        self.events: list[BrowserEvent] = []
        self.pageview_id = ""

    def add(
        self,
        ts: float,
        type_: EventType,
        name: str = "",
        *,
        value: float | None = None,
        props: Mapping[str, PropValue] | None = None,
        referrer: str = "",
        title: str = "",
    ) -> None:
        self.events.append(
            BrowserEvent(
                event_id=event_id(self.ctx.rng),
                ts=int(ts),
                type=type_,
                url=self.url,
                name=name,
                value=value,
                referrer=referrer,
                title=title,
                props=dict(props or {}),
            )
        )

    def vital(self, ts: float, metric: str, value: float) -> None:
        props: dict[str, PropValue] = {
            "rating": rating(metric, value),
            "navigation_type": "navigate",
        }
        self.add(ts, "vital", metric, value=value, props=props)

    def form(self, ts: float, name: str, **props: PropValue) -> None:
        self.add(ts, "form", name, props={"form": FORM_ID, **props})

    def link(self, ts: float, name: str, href: str) -> None:
        # sp.js reports host + path only, so query strings never leak into the data.
        self.add(ts, "click", name, props={"href": href.split("://", 1)[-1].split("?")[0]})


def dwell_median_ms(path: str) -> float:
    """Typical time on a page before moving on, before device and bounce adjustments."""
    if path.startswith("/blog/"):
        return 95_000
    return {
        "/": 24_000,
        "/services": 32_000,
        "/pricing": 65_000,
        "/case-studies": 75_000,
        "/contact": 40_000,
        "/blog": 20_000,
    }.get(path, 55_000)


def scroll_depth(rng: random.Random, dwell_ms: float, length: float) -> float:
    """How far down the page (0..1) a visitor gets in `dwell_ms`."""
    return min(1.0, math.sqrt(dwell_ms / (70_000 * length)) * rng.uniform(0.55, 1.3))


def page_events(
    ctx: PageContext,
    path: str,
    t0: int,
    *,
    url: str,
    referrer: str,
    next_path: str,
    single_page: bool,
    dwell_ms: int | None = None,
) -> PageResult:
    """Every event one view of `path` produces, starting at `t0` (epoch ms)."""
    rng, page = ctx.rng, PAGES[path]
    out = _Page(ctx, url)
    out.add(t0, "pageview", referrer=referrer, title=page.title)
    out.pageview_id = str(out.events[0].event_id)
    if not ctx.runs_js:
        return PageResult(out.events, t0 + (dwell_ms or 1000))
    vitals = sample_vitals(
        rng,
        ctx.device,
        lcp_factor=page.lcp_factor,
        layout_shift_prone=path == "/" and ctx.device == "mobile",
    )
    if dwell_ms is None:
        median = dwell_median_ms(path) * (0.45 if single_page else 1.0)
        median *= 0.85 if ctx.device == "mobile" else 1.0
        dwell_ms = int(min(max(lognormal(rng, median, 0.8), 2_500), 900_000))
    dwell_ms = max(dwell_ms, int(vitals["LCP"]) + 300)
    ready = t0 + vitals["FCP"]
    out.vital(t0 + vitals["TTFB"], "TTFB", vitals["TTFB"])
    out.vital(ready, "FCP", vitals["FCP"])
    leave = float(t0 + dwell_ms)
    interacted = _page_actions(ctx, out, path, ready, leave, next_path) or rng.random() < 0.65
    result = PageResult()
    if path == "/contact":
        leave, result.lead = _contact_form(ctx, out, ready, leave, referrer)
        interacted = True

    depth = scroll_depth(rng, leave - t0, page.length)
    view = {"pageview_id": out.pageview_id}
    for mark in SCROLL_MILESTONES:
        if mark / 100 > depth:
            break
        reached = ready + (leave - ready) * (mark / 100 / depth) * rng.uniform(0.4, 0.9)
        out.add(reached, "engagement", "scroll", value=mark, props={"milestone": True, **view})
    out.vital(min(leave, t0 + vitals["LCP"] + rng.uniform(800, 6_000)), "LCP", vitals["LCP"])
    if interacted:
        out.vital(leave, "INP", sample_inp(rng, ctx.device))
    out.vital(leave, "CLS", vitals["CLS"])
    out.add(leave, "engagement", "scroll", value=round(depth * 100), props=view)
    out.add(
        leave,
        "engagement",
        "engaged_time",
        value=int((leave - t0) * rng.uniform(0.45, 0.95)),
        props=view,
    )
    out.add(leave, "engagement", "page_leave", value=int(leave - t0), props=view)
    result.events = out.events
    result.leave_ms = int(leave)
    return result


def _page_actions(
    ctx: PageContext, out: _Page, path: str, ready: float, leave: float, next_path: str
) -> bool:
    """Experiments, custom events and link clicks on this page; True if the visitor clicked."""
    rng = ctx.rng
    clicked = False
    if path == "/":
        out.add(
            ready + rng.randrange(20, 120),
            "exposure",
            "hero_copy",
            props={"variant": ctx.variants["hero_copy"]},
        )
        if rng.random() < 0.06:
            out.add(
                ready + rng.uniform(2_000, (leave - ready) * 0.6 + 2_000),
                "custom",
                "video_play",
                props={"video": "intro-90s"},
            )
            clicked = True
    elif path == "/pricing":
        variant = ctx.variants["pricing_cta"]
        out.add(
            ready + rng.randrange(20, 120), "exposure", "pricing_cta", props={"variant": variant}
        )
        if rng.random() < 0.22:
            out.add(
                ready + rng.uniform(3_000, 20_000),
                "custom",
                "pricing_toggle",
                props={"billing": rng.choice(("annual", "monthly"))},
            )
            clicked = True
        if next_path == "/contact" and rng.random() < (0.8 if variant == "bold" else 0.65):
            out.add(
                leave - rng.randrange(150, 600),
                "custom",
                "cta_click",
                props={"cta": "pricing_get_started", "variant": variant},
            )
            clicked = True
    elif path in SERVICE_PAGES and next_path == "/contact" and rng.random() < 0.6:
        out.add(
            leave - rng.randrange(150, 600),
            "custom",
            "cta_click",
            props={"cta": "book_a_call", "location": "service"},
        )
        clicked = True
    elif path == "/case-studies" and rng.random() < (0.35 if ctx.converts else 0.12):
        out.link(
            ready + rng.uniform(5_000, max((leave - ready) * 0.8, 6_000)),
            "download",
            f"https://{ctx.host}{CASE_STUDY_PDF}",
        )
        clicked = True
    elif path in POST_PAGES and rng.random() < 0.03:
        out.add(
            leave - rng.randrange(2_000, 8_000),
            "custom",
            "newsletter_signup",
            props={"location": "post_footer"},
        )
        clicked = True
    if not next_path and path in ("/", "/case-studies", *POST_PAGES) and rng.random() < 0.08:
        out.link(leave - rng.randrange(100, 400), "outbound", rng.choice(OUTBOUND_LINKS))
        clicked = True
    return clicked


def _fill(ctx: PageContext, out: _Page, t: float, fields: list[tuple[str, bool]]) -> float:
    """Focus and blur each field in turn; returns when the last blur happened."""
    rng = ctx.rng
    speed = 0.04 if ctx.automation else 1.0  # form bots fill everything in a blink
    for name, filled in fields:
        kind, low, high = next((k, lo, hi) for f, k, lo, hi in FORM_FIELDS if f == name)
        out.form(t, "field_focus", field=name, field_type=kind)
        t += rng.uniform(low, high) * 1000 * speed * (1.0 if filled else 0.3)
        out.form(t, "field_blur", field=name, field_type=kind, filled=filled)
        t += rng.uniform(250, 1500) * speed
    return t


def _filled(lead: LeadSubmission, name: str) -> bool:
    if name in lead.fields:
        return bool(lead.fields[name])
    return bool(getattr(lead, name, False))


def _contact_form(
    ctx: PageContext, out: _Page, ready: float, leave: float, referrer: str
) -> tuple[float, LeadSubmission | None]:
    """The contact form funnel; returns the new leave time and the lead, if one is sent."""
    rng = ctx.rng
    start = ready + (rng.uniform(200, 1_000) if ctx.automation else rng.uniform(3_000, 15_000))
    if ctx.converts:
        if ctx.automation:
            lead = plan_spam_lead(rng, ts_ms=0, url=out.url)
        else:
            lead = plan_lead(
                rng,
                ts_ms=0,
                country=ctx.country,
                channel=ctx.channel,
                service=ctx.service,
                url=out.url,
                referrer=referrer,
                is_test=ctx.is_test,
            )
        fields = [(name, _filled(lead, name)) for name, _, _, _ in FORM_FIELDS]
        # People tab past the optional fields they leave empty about half the time.
        fields = [(n, f) for n, f in fields if f or rng.random() < 0.5]
        out.form(start - rng.randrange(5, 40), "form_start")
        t = _fill(ctx, out, start, fields)
        if not ctx.automation and rng.random() < 0.12:
            # The browser blocks a mistyped address; the visitor fixes it and submits again.
            out.form(t, "submit_error", field="email", field_type="email", reason="invalid")
            t = _fill(ctx, out, t + rng.uniform(800, 3_000), [("email", True)])
        out.form(t, "submit")
        if ctx.form_failed:
            # Most failures are visible to sp.js (an error answer or a dropped connection);
            # the rest die silently, e.g. when the visitor closes the tab mid-request.
            if rng.random() < 0.6:
                out.form(
                    t + rng.uniform(300, 8_000),
                    "submit_error",
                    reason=rng.choice(("network", "503", "500")),
                )
            return t + rng.uniform(10_000, 40_000), None
        submitted = int(t + rng.uniform(150, 900))
        lead = msgspec.structs.replace(lead, ts=submitted, lead_id=event_id(rng))
        return submitted + rng.uniform(4_000, 25_000), lead

    outcome = weighted(rng, [("none", 0.58), ("abandon", 0.30), ("error", 0.12)])
    if outcome == "none":
        return leave, None
    out.form(start - rng.randrange(5, 40), "form_start")
    names = [name for name, _, _, _ in FORM_FIELDS]
    if outcome == "abandon":
        # Long forms lose people at the phone, budget and message fields.
        stop = weighted(rng, [(1, 3), (2, 2), (3, 2), (4, 3), (8, 2), (9, 3), (12, 2)])
        t = _fill(ctx, out, start, [(n, rng.random() < 0.9) for n in names[:stop]])
    else:
        t = _fill(ctx, out, start, [(n, n == "email" or rng.random() < 0.7) for n in names])
        out.form(t, "submit_error", field="email", field_type="email", reason="invalid")
    return max(leave, t + rng.uniform(2_000, 30_000)), None
