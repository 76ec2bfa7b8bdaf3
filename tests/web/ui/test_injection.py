"""Script payloads in every visitor-supplied field, through the real ingest, onto every page.

Each payload shape fills every field a visitor (or a site backend relaying one) controls:
page URL and path, referrer, UTM tags, title, event names and props, form names, experiment
names and variants, the User-Agent, and every field of a lead, custom fields included. They
arrive the way real ones do: `/api/v1/collect` with the site key (as sp.js sends them),
leads with the site key (a form) and with the token (a backend), `/api/v1/events` with the
token. A stranger then fails to sign in as a payload, and an admin defines a funnel and an
experiment whose names, steps and variants carry payloads, through the UI's forms.

Every page then opens in headless Chromium under the production CSP and must run nothing:
`window.__pwned` stays undefined, no dialog opens, no CSP violation fires (a blocked inline
script is an injection all the same), no handler attribute, javascript: URL or foreign image
reaches the DOM, and no request fails. Each payload must also show as text where it belongs:
escaped, not dropped.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import CHROME_UA, SITE_HOST, LiveServer, _factory
from tests.web.ui.test_browser import (
    ADMIN,
    PASSWORD,
    PYTHON_NONE,
    Watch,
    add_user,
    open_profile,
    path_of,
    sign_in,
    submit,
    wait_for_charts,
)

PAYLOADS: Mapping[str, str] = {
    "script": "<script>window.__pwned=1</script>",
    "attribute": '"><img src=x onerror="window.__pwned=1">',
    "url": "javascript:window.__pwned=1",
    "string": "'-alert(1)-'",
    "json": "</script><script>window.__pwned=1</script>",
    "template": "{{7*7}}",
    "svg": "<svg onload=window.__pwned=1>",
    # A spreadsheet formula: harmless in a page, dangerous in the CSV export.
    "formula": '=HYPERLINK("https://evil.example","open")',
}
SVG, ATTRIBUTE = PAYLOADS["svg"], PAYLOADS["attribute"]
# The defined experiment: its name must be an identifier, its variants need not be.
LAB = "xss_lab"
LAB_CONTROL = "<b>control</b>"
LAB_VARIANT = "<script>alert(1)</script>"
LAB_FORM: Mapping[str, str] = {
    "name": LAB,
    "control": LAB_CONTROL,
    "split": f"{LAB_CONTROL}=1, {LAB_VARIANT}=1",
    "metric": "lead",
}
FUNNEL_NAME = '"><img src=x onerror="window.__pwned=1"> {{7*7}}'
# (name, kind, path/event/form, props) per step, as typed into the form's rows.
FUNNEL_STEPS = (
    ("<script>window.__pwned=1</script>", "page", "/x<svg onload=window.__pwned=1>", ""),
    ("<svg onload=window.__pwned=1>", "event", "'-alert(1)-'", "k=</script><b>x</b>"),
    ("{{7*7}}", "lead", '"><img src=x onerror=alert(1)>', ""),
)
INTRUDER = '"><svg onload=alert(1)>'  # a username typed into the sign-in form


def fit(payload: str, limit: int) -> str:
    """The payload, shortened to a field's length limit without losing its shape."""
    short = payload.replace("window.", "").replace("https://evil.example", "")
    text = payload if len(payload) <= limit else short
    assert len(text) <= limit, (payload, limit)
    return text


def email(payload: str) -> str:
    """An address the ingest accepts (no spaces, one @) that still carries the payload."""
    return payload.replace(" ", "/").replace("@", "") + "@evil.example"


def page_url(key: str, payload: str) -> str:
    """A landing URL: the payload raw in the path (any client can send that) and encoded
    in every UTM tag (as a browser sends it; the server decodes the tags)."""
    if key == "url":
        return payload
    tags = "&".join(
        f"utm_{tag}={quote(payload, safe='')}"
        for tag in ("source", "medium", "campaign", "term", "content")
    )
    return f"https://{SITE_HOST}/{key}/{payload}?{tags}"


def lead_fields(payload: str) -> dict[str, Any]:
    """Every field of a lead set to the payload (within each field's length limit)."""
    return {
        "email": email(payload),
        "phone": fit(payload, 40),
        "name": payload,
        "company": payload,
        "company_size": fit(payload, 40),
        "industry": payload,
        "country": fit(payload, 60),
        "budget": fit(payload, 60),
        "timeline": fit(payload, 60),
        "message": f"{payload}\n{payload}",
        "fields": {payload: payload, "note": payload},
        "form": payload,
        "consent": True,
    }


@dataclass(frozen=True)
class Visit:
    """One browser visit to plant: whose, and which arm of each experiment it sees."""

    key: str
    visitor: str
    variant: str  # of the experiment named by the payload
    arm: str  # of LAB


def browser_batch(visit: Visit, site_key: str, now_ms: int) -> dict[str, Any]:
    """The visit as sp.js would send it, every visitor-controlled field a payload."""
    payload = PAYLOADS[visit.key]
    url = page_url(visit.key, payload)
    referrer = payload if visit.key == "url" else f"https://evil.example/{payload}"

    def event(offset: int, type_: str, name: str = "", **extra: Any) -> dict[str, Any]:
        body = {"event_id": str(uuid.uuid4()), "ts": now_ms - 60_000 + offset, "type": type_}
        return body | {"url": url, "name": name} | extra

    events = [
        event(0, "pageview", referrer=referrer, title=payload),
        event(900, "vital", "LCP", value=1800.0),
        event(1000, "exposure", payload, props={"variant": visit.variant}),
        event(1100, "exposure", LAB, props={"variant": visit.arm}),
        event(2000, "custom", payload, props={payload: payload, "label": payload}),
        event(3000, "click", payload, props={"href": PAYLOADS["url"], "text": payload}),
        event(4000, "form", "form_start", props={"form": payload, "field": payload}),
        event(5000, "form", "submit", props={"form": payload}),
    ]
    return {"site_key": site_key, "visitor_id": visit.visitor, "events": events}


def server_events(key: str, now_ms: int) -> list[dict[str, Any]]:
    """A backend's events about its own user, whose agent and ids it relays."""
    payload = PAYLOADS[key]
    common = {
        "url": page_url(key, payload),
        "referrer": f"https://evil.example/{payload}",
        "visitor_id": fit(payload, 64),
        "session_id": fit(payload, 64),
        "user_agent": payload,
        "ip": "81.2.69.161",
    }
    return [
        common | {"type": "pageview", "ts": now_ms - 50_000},
        common | {"type": "custom", "name": payload, "ts": now_ms - 49_000, "props": {payload: 1}},
    ]


@dataclass
class Planted:
    """The leads sent, by payload key: (lead id, the body sent)."""

    form_leads: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    backend_leads: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


def plant(server: LiveServer) -> Planted:
    """Every payload through the ingest paths a browser and a site backend use."""
    now_ms = time.time_ns() // 1_000_000
    planted = Planted()
    browser = {"User-Agent": CHROME_UA, "Origin": f"https://{SITE_HOST}"}
    backend = {"Authorization": f"Bearer {server.token}"}
    accepted = (200, 202)
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        for i, (key, payload) in enumerate(PAYLOADS.items()):
            visitor = f"{i + 1:016x}"
            arm = (LAB_CONTROL, LAB_VARIANT)[i % 2]
            # The second visitor has the payload for its agent and sees each control.
            for visit, agent in (
                (Visit(key, visitor, payload, arm), CHROME_UA),
                (Visit(key, visitor[::-1], "control", arm), payload),
            ):
                sent = client.post(
                    "/api/v1/collect",
                    content=json.dumps(browser_batch(visit, server.site_key, now_ms)),
                    headers=browser | {"User-Agent": agent, "Content-Type": "text/plain"},
                )
                assert sent.status_code in accepted, (key, sent.text)
            batch = {"events": server_events(key, now_ms)}
            sent = client.post("/api/v1/events", json=batch, headers=backend)
            assert sent.status_code in accepted, (key, sent.text)

            url = page_url(key, payload)
            form = lead_fields(payload) | {
                "site_key": server.site_key,
                "url": url,
                "referrer": f"https://evil.example/{payload}",
                "visitor_id": visitor,
            }
            relayed = lead_fields(payload) | {"user_agent": payload, "ip": "81.2.69.161"}
            for body, headers, kept in (
                (form, browser, planted.form_leads),
                (relayed | {"url": url}, backend, planted.backend_leads),
            ):
                lead = client.post("/api/v1/leads", json=body, headers=headers)
                assert lead.status_code == 201, (key, lead.text)
                kept[key] = (lead.json()["lead_id"], body)
    return planted


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Planted]]:
    """A fresh `sitepulse serve` holding the payloads, with an admin added by the CLI."""
    make, servers = _factory(tmp_path_factory.mktemp("ui-injection"))
    try:
        live = make()
        with ThreadPoolExecutor(1) as pool:  # the CLI starts up while the payloads go in
            added = pool.submit(add_user, live, ADMIN, PASSWORD)
            planted = plant(live)
            added.result()
        yield live, planted
    finally:
        for each in servers:
            each.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@dataclass(frozen=True)
class Admin:
    """The admin's signed-in profile, the payload funnel's page and the planted leads."""

    context: BrowserContext
    base_url: str
    funnel: str
    planted: Planted


def fail_to_sign_in(context: BrowserContext, base_url: str) -> None:
    """A stranger types a payload as their username: the refusal echoes it escaped, and
    the audit log records it (see the settings-audit target)."""
    page = context.new_page()
    watch = Watch(page, {"/login": 400})
    page.goto(f"{base_url}/login")
    page.fill("#username", INTRUDER)
    page.fill("#password", "not the password at all")
    submit(page, "Sign in")
    assert page.input_value("#username") == INTRUDER
    assert page.evaluate("typeof window.__pwned") == "undefined"
    watch.check()
    page.close()


def define_funnel(page: Page, base_url: str) -> str:
    """A name the validator refuses comes back escaped beside its field; then the payload
    funnel is saved. Returns its page's path."""
    page.goto(f"{base_url}/funnels/new")
    refused = PAYLOADS["json"]  # "/" is not allowed in a funnel's name
    page.fill("#name", refused)
    page.fill("input[name=steps-0-pattern]", "/")
    submit(page, "Save funnel")
    assert page.input_value("#name") == refused
    assert refused in page.inner_text("#err-name")
    page.fill("#name", FUNNEL_NAME)
    for i, (name, kind, pattern, props) in enumerate(FUNNEL_STEPS):
        page.fill(f"input[name=steps-{i}-name]", name)
        page.select_option(f"select[name=steps-{i}-kind]", kind)
        page.fill(f"input[name=steps-{i}-pattern]", pattern)
        page.fill(f"input[name=steps-{i}-props]", props)
    submit(page, "Save funnel")
    assert path_of(page.url) == "/funnels/" + quote(FUNNEL_NAME, safe=""), page.url
    return path_of(page.url)


def define_experiment(page: Page, base_url: str) -> None:
    """As `define_funnel`, for LAB, whose variants carry payloads."""
    page.goto(f"{base_url}/experiments/new")
    page.fill("#f-name", ATTRIBUTE)  # experiment names are identifiers
    submit(page, "Save experiment")
    assert page.input_value("#f-name") == ATTRIBUTE
    assert ATTRIBUTE in page.inner_text("#err-name")
    for key, value in LAB_FORM.items():
        page.fill(f"#f-{key}", value)
    submit(page, "Save experiment")
    assert path_of(page.url) == f"/experiments/{LAB}", page.url


def refuse_token(page: Page, base_url: str) -> None:
    """A token named by a payload is refused, the name shown back as typed."""
    page.goto(f"{base_url}/settings/tokens")
    page.fill("#token-name", SVG)
    submit(page, "Create token")
    assert page.input_value("#token-name") == SVG
    assert page.locator("#err-name").is_visible()


@pytest.fixture(scope="module")
def admin(
    server: tuple[LiveServer, Planted],
    playwright: Playwright,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Admin]:
    """A failed sign-in as a payload; then the admin, signed in through the form, defines
    a funnel and an experiment with payloads and is refused a payload-named token."""
    live, planted = server
    context = open_profile(playwright, tmp_path_factory.mktemp("chromium-profile"))
    fail_to_sign_in(context, live.base_url)
    page = sign_in(context, live.base_url)
    refused = {"/funnels/new": 400, "/experiments/new": 400, "/settings/tokens": 400}
    watch = Watch(page, refused)
    funnel = define_funnel(page, live.base_url)
    define_experiment(page, live.base_url)
    refuse_token(page, live.base_url)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    watch.check()
    page.close()
    yield Admin(context, live.base_url, funnel, planted)
    context.close()


def open_watched(admin: Admin, path: str, status: int = 200) -> Page:
    """`path` in a new tab, watched: it answers `status`, its charts are drawn, nothing ran
    and nothing went wrong."""
    page = admin.context.new_page()
    watch = Watch(page, {path_of(path): status} if status != 200 else None)
    response = page.goto(admin.base_url + path)
    assert response is not None and response.status == status, (path, response)
    wait_for_charts(page)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    watch.check()
    return page


@dataclass(frozen=True)
class Target:
    """A page, the payloads that must show on it as text, and the form inputs that must
    hold a payload as their value."""

    name: str
    path: str  # "{funnel}" is the payload funnel's page
    shows: tuple[str, ...] = ()
    values: Mapping[str, str] = field(default_factory=dict)
    status: int = 200


ALL = tuple(PAYLOADS.values())
# Top paths show each landing path; the javascript: URL has no path of its own.
PATHS = tuple(p for key, p in PAYLOADS.items() if key != "url")
TARGETS = [
    Target("executive", "/?days=7"),
    Target("marketing", "/marketing?days=7", (*PATHS, LAB_CONTROL, LAB_VARIANT)),
    Target("leads", "/leads?days=7", ALL),
    Target(
        "leads-search",
        f"/leads?days=7&q={quote(SVG)}&channel={quote(ATTRIBUTE)}",
        values={"input[name=q]": SVG},
    ),
    Target("funnels", "/funnels?days=7", (FUNNEL_NAME,)),
    Target("funnel", "{funnel}?days=7", (FUNNEL_NAME, *(step[0] for step in FUNNEL_STEPS))),
    Target(
        "funnel-edit",
        "{funnel}/edit",
        values={
            "#name": FUNNEL_NAME,
            **{f"input[name=steps-{i}-name]": step[0] for i, step in enumerate(FUNNEL_STEPS)},
            "input[name=steps-0-pattern]": FUNNEL_STEPS[0][2],
            "input[name=steps-1-props]": FUNNEL_STEPS[1][3],
        },
    ),
    Target("funnel-delete", "{funnel}/delete", (FUNNEL_NAME,)),
    Target("experiments", "/experiments?days=7", (LAB, LAB_CONTROL, LAB_VARIANT)),
    Target("experiment", f"/experiments/{LAB}?days=7", (LAB_CONTROL, LAB_VARIANT)),
    Target(
        "experiment-edit",
        f"/experiments/{LAB}/edit",
        values={f"#f-{key}": value for key, value in LAB_FORM.items()},
    ),
    Target(
        "experiment-define",
        f"/experiments/new?name={quote(SVG)}&control={quote(ATTRIBUTE)}",
        values={"#f-name": SVG, "#f-control": ATTRIBUTE},
    ),
    Target("settings-tokens", "/settings/tokens"),
    Target("settings-users", "/settings/users"),
    Target("settings-audit", "/settings/audit", (INTRUDER, FUNNEL_NAME, FUNNEL_STEPS[0][0])),
    Target("audit-filter", f"/settings/audit?action={quote(SVG)}", (SVG,), status=400),
    Target("no-such-funnel", f"/funnels/{quote(SVG, safe='')}", (SVG,), status=404),
    Target("no-such-lead", f"/leads/{quote(SVG, safe='')}", status=404),
    Target("bad-range", f"/?days={quote(ATTRIBUTE, safe='')}", (ATTRIBUTE,), status=400),
    Target("bad-breakdown", f"{{funnel}}?breakdown={quote(SVG)}", (SVG,), status=400),
]


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_no_payload_runs_and_each_shows_as_text(admin: Admin, target: Target) -> None:
    page = open_watched(admin, target.path.replace("{funnel}", admin.funnel), target.status)
    text = page.inner_text("body")
    missing = [p for p in target.shows if p not in text]
    assert not missing, f"not shown as text: {missing}"
    for selector, value in target.values.items():
        assert page.input_value(selector) == value, selector
    page.close()


def facts(page: Page, heading: str) -> dict[str, str]:
    """The <dt>/<dd> pairs under the lead page's panel headed `heading`, as shown."""
    pairs: list[list[str]] = page.eval_on_selector_all(
        f"section:has(h2:text-is('{heading}')) dl.facts",
        "ds => ds.flatMap(d => [...d.querySelectorAll('dt')].map(dt =>"
        " [dt.innerText, dt.nextElementSibling.innerText]))",
    )
    return dict(pairs)


CONTACT = "name email phone company company_size industry country budget timeline message form"
LEADS = [("form", key) for key in PAYLOADS] + [("backend", "attribute"), ("backend", "json")]


@pytest.mark.parametrize(("via", "key"), LEADS, ids=[f"{v}-{k}" for v, k in LEADS])
def test_a_lead_page_shows_every_field_as_sent(admin: Admin, via: str, key: str) -> None:
    sent = admin.planted.form_leads if via == "form" else admin.planted.backend_leads
    lead_id, body = sent[key]
    page = open_watched(admin, f"/leads/{lead_id}?days=7")
    payload = PAYLOADS[key]
    assert page.inner_text("h1") == payload
    contact = facts(page, "Contact")  # with "Other form fields", in the same panel
    for name in CONTACT.split():
        assert contact[name.replace("_", " ")] == body[name], name
    for custom, value in body["fields"].items():
        assert contact[custom] == value, custom
    source = facts(page, "Where they came from")
    assert source["form page"] == body["url"].split("?")[0]  # shown without its query
    if key != "url":
        assert source["campaign"] == payload
        # Sources and mediums are compared lower-cased, so they are stored that way.
        assert source["source / medium"] == f"{payload} / {payload}".lower()
    if via == "form":
        assert source["referrer"] == body["referrer"]
        journey = page.inner_text("ol.journey")
        for step in (
            f"custom {payload}",
            f"{payload}={payload}",
            f"label={payload}",
            f"exposure {payload} variant={payload}",
            f"form submit form={payload}",
        ):
            assert step in journey, step
    page.close()


def test_a_missing_value_is_left_out_not_printed_as_none(admin: Admin) -> None:
    # A form lead from loopback: no place is known for its address.
    lead_id, _ = admin.planted.form_leads["template"]
    page = open_watched(admin, f"/leads/{lead_id}?days=7")
    source = facts(page, "Where they came from")
    assert "location" not in source, f"location shown as {source['location']!r}"
    assert not PYTHON_NONE.search(page.inner_text("main"))
    page.close()


def test_csv_export_is_a_formula_safe_attachment(admin: Admin) -> None:
    page = admin.context.new_page()
    got = page.request.get(f"{admin.base_url}/leads.csv?days=7")
    assert got.status == 200
    assert got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(got.text())))
    assert len(rows) == 2 * len(PAYLOADS)
    by_id = {row["lead_id"]: row for row in rows}
    for key, payload in PAYLOADS.items():
        # A cell a spreadsheet would run as a formula starts with an apostrophe instead.
        kept = "'" + payload if payload.startswith("=") else payload
        for lead_id, _ in (admin.planted.form_leads[key], admin.planted.backend_leads[key]):
            row = by_id[lead_id]
            assert (row["name"], row["company"], row["form"]) == (kept, kept, kept), key
    for row in rows:
        risky = [cell for cell in row.values() if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
        assert not risky, row
    page.close()
