"""Funnels and experiments defined in the UI: validation, storage, the analyses, the pages.

The traffic is built by hand (tests/analyse/journeys.py), so the funnel counts and the
experiment's arms below are known without running any analysis.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sitepulse.analyse import funnels
from sitepulse.analyse.base import DAY_MS, Period
from sitepulse.analyse.definitions import (
    DefinitionStore,
    InvalidDefinition,
    all_experiments,
    all_funnels,
    load_definition,
    validate_experiment,
    validate_funnel,
)
from sitepulse.analyse.experiment_looks import daily_looks
from sitepulse.analyse.experiments import experiment_report
from sitepulse.analyse.reports import Request, run_report
from sitepulse.auth.audit import AuditLog
from sitepulse.clock import ManualClock
from sitepulse.config.analysis import ExperimentSettings
from sitepulse.config.models import Settings
from sitepulse.store.duckdb.backend import DuckDBStore
from sitepulse.web.ui.experiments import ExperimentForm, experiment_routes
from sitepulse.web.ui.funnels import FunnelForm, StepRow, funnel_routes
from tests.analyse.journeys import HOUR, MINUTE, T0, Journeys
from tests.web.ui.ui_server import SITE_TOKEN, UiServer, ui_settings

NOW = T0 + 10 * DAY_MS
PERIOD = Period("acme", NOW - 30 * DAY_MS, NOW)
CONFIGURED_FUNNEL: dict[str, Any] = {
    "name": "configured",
    "steps": [{"name": "home", "path": "/"}, {"name": "lead", "lead": True}],
}
PRICING: dict[str, Any] = {
    "name": "pricing-to-lead",
    "window_ms": 6 * HOUR,
    "steps": [
        {"name": "pricing", "path": "/pricing"},
        {"name": "contact", "path": "/contact*"},
        {"name": "lead", "lead": True},
    ],
}
PRICING_UNITS = [30, 20, 10]  # see _traffic
ARMS = {"control": (100, 10), "bold": (100, 25)}  # visitors, conversions


def _settings(folder: Path) -> Settings:
    return ui_settings(
        folder,
        funnels=[CONFIGURED_FUNNEL],
        experiments=[{"name": "cfg_exp", "control": "a"}],
    )


def _traffic(folder: Path) -> None:
    book = Journeys("acme")
    day = T0 + 2 * DAY_MS
    for v in range(1, 36):
        t = day + v * MINUTE
        visit = book.visit(v, channel="Paid Search" if v % 2 else "Email")
        if v <= 30:
            visit.page(t, "/pricing")
        if v <= 20 or v > 30:
            visit.page(t + 10_000, "/contact")
        if v <= 10:
            visit.lead(t + 20_000)
    # hero_test: three days of exposures; the first `conversions` of each arm convert.
    for arm, (visitors, conversions) in ARMS.items():
        for n in range(visitors):
            visitor = (1000 if arm == "control" else 2000) + n
            t = T0 + (3 + n % 3) * DAY_MS + n * MINUTE
            visit = book.visit(visitor).exposure(t, "hero_test", arm)
            if n < conversions:
                visit.lead(t + MINUTE)
    book.save(folder).close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    folder = tmp_path_factory.mktemp("definitions")
    _traffic(folder)
    opened = DuckDBStore(folder)
    yield opened
    opened.close()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "steps": [{"name": "a"}]}, "steps"),
        ({"name": "", "steps": [{"name": "a"}, {"name": "b"}]}, "name"),
        (
            {"name": "x", "steps": [{"name": "a"}, {"name": "b", "path": "pricing"}]},
            "steps[1].path",
        ),
        ({"name": "x", "steps": [{"name": "a"}, {"name": "a"}]}, "steps[1].name"),
        ({"name": "x", "steps": [{"name": "a"}, {"name": "b", "type": "lead"}]}, "steps[1].type"),
        ({"name": "x", "steps": [{"name": "a"}, {"name": "b"}], "window_ms": 0}, "window_ms"),
        ({"name": "x", "steps": [{"name": "a"}, {"name": "b"}], "colour": "red"}, "colour"),
    ],
)
def test_funnel_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        validate_funnel(body)
    assert caught.value.field == field and field in caught.value.problems


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"metric": "clicks"}, "metric"),
        ({"alpha": 0.7}, "alpha"),
        ({"mde_relative": "lots"}, "mde_relative"),
        ({"baseline_rate": 2}, "baseline_rate"),
        ({"split": {"a": 1, "b": 1}}, "control"),  # control 'control' is not in the split
        ({"split": {"control": -1, "b": 1}}, "split"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_experiment_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        validate_experiment({"name": "hero", **changes})
    assert field in caught.value.problems, caught.value.problems


def test_funnel_form_round_trips_and_names_its_own_fields() -> None:
    cta = {"name": "cta", "type": "custom", "event": "cta_click", "props": {"cta": "x"}}
    definition = funnels.parse_funnel(PRICING | {"steps": [*PRICING["steps"], cta]})
    form = FunnelForm.of(definition)
    assert (form.window, form.window_unit) == ("6", "hours")
    assert funnels.parse_funnel(form.body()) == definition
    posted = FunnelForm.posted(
        {
            "name": " web ",
            "window": "30",
            "window_unit": "minutes",
            "steps-0-name": "home",
            "steps-0-kind": "page",
            "steps-0-pattern": "/",
            "steps-1-name": "",  # a blank row: ignored
            "steps-2-name": "signup",
            "steps-2-kind": "event",
            "steps-2-type": "custom",
            "steps-2-pattern": "signup",
            "steps-2-props": "plan=pro; seats=5",
        }
    )
    assert posted.body() == {
        "name": "web",
        "window_ms": 30 * MINUTE,
        "order": "strict",
        "unit": "visitor",
        "steps": [
            {"name": "home", "path": "/"},
            {"name": "signup", "type": "custom", "event": "signup",
             "props": {"plan": "pro", "seats": "5"}},
        ],
    }  # fmt: skip
    bad = FunnelForm(window="soon", steps=(StepRow("a"), StepRow("b", "event", props="oops")))
    with pytest.raises(InvalidDefinition) as caught:
        bad.body()
    assert set(caught.value.problems) == {"window_ms", "steps[1].props"}


def test_experiment_form_round_trips() -> None:
    settings = ExperimentSettings(name="hero", control="a", split={"a": 1, "b": 3}, alpha=0.01)
    assert validate_experiment(ExperimentForm.of(settings).body()) == settings
    with pytest.raises(InvalidDefinition) as caught:
        ExperimentForm(name="hero", split="a:1").body()
    assert caught.value.field == "split"


def test_store_round_trip_reserved_names_and_merging(store: DuckDBStore, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    defs = DefinitionStore(store.cursor(), settings)
    saved = defs.save("funnel", PRICING, actor="ann", now_ms=NOW)
    assert load_definition(defs, "funnel", PRICING["name"]) == saved
    assert saved.body == funnels.parse_funnel(PRICING).to_dict()
    with pytest.raises(InvalidDefinition, match="exists already"):
        defs.save("funnel", PRICING, actor="ann", now_ms=NOW)
    for name in ("configured", "lead"):
        with pytest.raises(InvalidDefinition, match=r"sitepulse\.yaml") as caught:
            defs.save("funnel", PRICING | {"name": name}, actor="ann", now_ms=NOW)
        assert caught.value.field == "name"
    with pytest.raises(InvalidDefinition, match=r"sitepulse\.yaml"):
        defs.save("experiment", {"name": "cfg_exp"}, actor="ann", now_ms=NOW)
    for url_name in ("new", "a/b"):  # /funnels/new is the form; a slash splits the URL
        with pytest.raises(InvalidDefinition) as caught:
            defs.save("funnel", PRICING | {"name": url_name}, actor="ann", now_ms=NOW)
        assert caught.value.field == "name"
    renamed = defs.save("funnel", PRICING | {"name": "renamed"}, actor="bob", now_ms=NOW + 5,
                        replacing=PRICING["name"])  # fmt: skip
    assert (renamed.created_by, renamed.created_ms) == ("ann", NOW)
    assert (renamed.updated_by, renamed.updated_ms) == ("bob", NOW + 5)
    assert load_definition(defs, "funnel", PRICING["name"]) is None
    entries = all_funnels(settings, defs)
    assert [(e.definition.name, e.source) for e in entries] == [
        ("lead", "built-in"),
        ("configured", "config"),
        ("renamed", "stored"),
    ]
    # A name the file takes later wins over the stored definition.
    later = _settings(tmp_path).model_copy(
        update={"funnels": (CONFIGURED_FUNNEL, CONFIGURED_FUNNEL | {"name": "renamed"})}
    )
    assert [e.source for e in all_funnels(later, defs)] == ["built-in", "config", "config"]
    defs.save("experiment", {"name": "hero_test", "control": "control"}, actor="ann", now_ms=NOW)
    assert [(e.settings.name, e.source) for e in all_experiments(settings, defs)] == [
        ("cfg_exp", "config"),
        ("hero_test", "stored"),
    ]
    removed = defs.delete("funnel", "renamed")
    assert removed is not None and removed.name == "renamed"
    assert defs.delete("funnel", "renamed") is None
    assert defs.delete("experiment", "hero_test") is not None


def test_reports_see_stored_definitions(store: DuckDBStore, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    defs = DefinitionStore(store.cursor(), settings)
    defs.save("funnel", PRICING, actor="ann", now_ms=NOW)
    defs.save("experiment", {"name": "hero_test", "control": "control", "alpha": 0.01},
              actor="ann", now_ms=NOW)  # fmt: skip
    try:
        site = settings.sites[0]
        body = run_report("funnel", store, Request(settings, site, {"name": PRICING["name"]}, NOW))
        assert [s["units"] for s in body["steps"]] == PRICING_UNITS
        found = run_report("experiments", store, Request(settings, site, {}, NOW))
        hero = next(e for e in found["experiments"] if e["name"] == "hero_test")
        assert hero["configured"] and hero["readout"]["alpha"] == 0.01
    finally:
        defs.delete("funnel", PRICING["name"])
        defs.delete("experiment", "hero_test")


def test_daily_looks_end_at_the_readout(store: DuckDBStore) -> None:
    plan = ExperimentSettings(name="hero_test", control="control")
    report = experiment_report(store, PERIOD, plan)
    assert report.readout is not None
    looks = daily_looks(store, PERIOD, plan, mixing_sd=report.readout.mixing_sd)
    assert len(looks) == 3 and looks == sorted(looks, key=lambda look: look.day_ms)
    last = {arm.name: (arm.visitors, arm.conversions) for arm in looks[-1].arms}
    assert last == ARMS
    (variant,) = report.readout.variants
    assert looks[-1].p_values["bold"] == pytest.approx(variant.sequential.p_value)
    visitors = [sum(arm.visitors for arm in look.arms) for look in looks]
    assert visitors == sorted(visitors) and visitors[-1] == 200


@dataclass
class Live:
    ui: UiServer
    folder: Path

    def audit(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """The audit log, newest first, as (actor, action, target, detail)."""
        entries = AuditLog(self.ui.runtime.auth).recent()
        return [(e.actor, e.action, e.target, e.detail) for e in entries]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("definitions-live")
    _traffic(folder)
    ui = UiServer(
        _settings(folder),
        lambda rt: [*funnel_routes(rt), *experiment_routes(rt)],
        clock=ManualClock(NOW),
    ).start()
    yield Live(ui, folder)
    ui.stop()


def _funnel_form(definition: dict[str, Any], csrf: str) -> dict[str, str]:
    form = FunnelForm.of(funnels.parse_funnel(definition))
    data = {"csrf_token": csrf, "name": form.name, "window": form.window,
            "window_unit": form.window_unit, "order": form.order, "unit": form.unit}  # fmt: skip
    for i, row in enumerate(form.steps):
        data |= {f"steps-{i}-name": row.name, f"steps-{i}-kind": row.kind,
                 f"steps-{i}-pattern": row.pattern, f"steps-{i}-type": row.event_type,
                 f"steps-{i}-props": row.props}  # fmt: skip
    return data


def _api(client: httpx.Client, report: str, **params: str) -> Any:
    resp = client.get(
        f"/api/v1/{report}", params=params, headers={"Authorization": f"Bearer {SITE_TOKEN}"}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_admin_defines_a_funnel_that_the_api_and_page_read(live: Live) -> None:
    token = live.ui.csrf["admin"]
    with live.ui.client("admin") as c:
        made = c.post("/funnels/new", data=_funnel_form(PRICING, token))
        assert made.status_code == 303, made.text
        assert made.headers["location"] == "/funnels/pricing-to-lead"
        api = _api(c, "funnel", name=PRICING["name"])
        assert [s["units"] for s in api["steps"]] == PRICING_UNITS
        page = c.get("/funnels/pricing-to-lead", params={"breakdown": "channel"})
        assert page.status_code == 200, page.text
        chart = re.search(r'id="funnel-chart">(.*?)</script>', page.text, re.S)
        assert chart is not None and '"x": [30, 20, 10]' in html.unescape(chart.group(1))
        assert "Paid Search" in page.text and "Email" in page.text
        listing = c.get("/funnels")
        assert "pricing-to-lead" in listing.text and 'href="/funnels/new"' in listing.text
        assert 'href="/funnels/configured/edit"' not in listing.text  # from the file: read-only
        edit = c.get("/funnels/pricing-to-lead/edit")
        assert edit.status_code == 200 and 'value="/contact*"' in edit.text
        renamed = c.post(
            "/funnels/pricing-to-lead/edit",
            data=_funnel_form(PRICING | {"name": "pricing-2"}, token),
        )
        assert renamed.status_code == 303
        assert c.get("/funnels/pricing-to-lead").status_code == 404
        gone = c.post("/funnels/pricing-2/delete", data={"csrf_token": token})
        assert gone.status_code == 303 and c.get("/funnels/pricing-2").status_code == 404
    actions = [(actor, action, target) for actor, action, target, _ in live.audit()]
    assert actions[:3] == [
        ("admin-user", "funnel.delete", "pricing-2"),
        ("admin-user", "funnel.save", "pricing-2"),
        ("admin-user", "funnel.save", "pricing-to-lead"),
    ]
    (rename,) = [d for _, a, t, d in live.audit() if t == "pricing-2" and a == "funnel.save"]
    assert rename["renamed_from"] == "pricing-to-lead"
    assert rename["body"] == funnels.parse_funnel(PRICING | {"name": "pricing-2"}).to_dict()


def test_a_bad_funnel_comes_back_with_the_message_by_the_field(live: Live) -> None:
    token = live.ui.csrf["admin"]
    data = _funnel_form(PRICING, token) | {"steps-1-pattern": "contact", "name": "typed-name"}
    with live.ui.client("admin") as c:
        page = c.post("/funnels/new", data=data)
        config_edit = c.post(
            "/funnels/configured/edit", data=_funnel_form(CONFIGURED_FUNNEL, token)
        )
    assert page.status_code == 400
    assert 'value="typed-name"' in page.text and 'value="contact"' in page.text
    row = page.text[page.text.index('name="steps-1-name"') :]
    message = "path: must start with &#39;/&#39; or &#39;*&#39; (got &#39;contact&#39;)"
    assert message in row[: row.index('name="steps-2-name"')]  # under step 2, not elsewhere
    assert config_edit.status_code == 400 and "sitepulse.yaml" in config_edit.text


def test_experiment_form_and_readout(live: Live) -> None:
    token = live.ui.csrf["admin"]
    form = {"csrf_token": token, "name": "hero_test", "control": "control",
            "split": "control=1, bold=1", "metric": "lead", "mde_relative": "0.2",
            "baseline_rate": "", "alpha": "0.7"}  # fmt: skip
    with live.ui.client("admin") as c:
        bad = c.post("/experiments/new", data=form)
        assert bad.status_code == 400
        field = bad.text[bad.text.index('id="f-alpha"') :]
        assert 'value="0.7"' in field[:200] and 'id="err-alpha"' in field
        assert 'value="control=1, bold=1"' in bad.text  # what was typed stays
        made = c.post("/experiments/new", data=form | {"alpha": "0.05"})
        assert made.status_code == 303, made.text
        api = _api(c, "experiments", name="hero_test")["experiments"][0]
        assert api["configured"] and api["readout"]["mde_relative"] == 0.2
        page = c.get("/experiments/hero_test")
        listing = c.get("/experiments")
        deleted = c.post("/experiments/hero_test/delete", data={"csrf_token": token})
    assert page.status_code == 200, page.text
    assert api["readout"]["verdict"] in html.unescape(page.text)
    assert [(a["name"], a["visitors"], a["conversions"]) for a in api["readout"]["arms"]] == [
        (name, *counts) for name, counts in sorted(ARMS.items())
    ]
    assert 'id="looks-chart"' in page.text and "hero_test" in listing.text
    assert deleted.status_code == 303
    assert [a for _, a, t, _ in live.audit() if t == "hero_test"][:2] == [
        "experiment.delete",
        "experiment.save",
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/funnels/new"),
        ("POST", "/funnels/anything/edit"),
        ("POST", "/funnels/anything/delete"),
        ("POST", "/experiments/new"),
        ("POST", "/experiments/anything/edit"),
        ("POST", "/experiments/anything/delete"),
        ("GET", "/funnels/new"),
        ("GET", "/experiments/new"),
    ],
)
def test_viewers_get_403_on_changes(live: Live, method: str, path: str) -> None:
    with live.ui.client("viewer") as c:
        data = _funnel_form(PRICING, live.ui.csrf["viewer"]) if method == "POST" else None
        resp = c.request(method, path, data=data)
    assert resp.status_code == 403


def test_viewers_see_no_edit_controls_and_forged_posts_fail(live: Live) -> None:
    token = live.ui.csrf["admin"]
    with live.ui.client("viewer") as c:
        listing = c.get("/funnels").text + c.get("/experiments").text
    assert "/funnels/new" not in listing and "/experiments/new" not in listing
    with live.ui.client("admin") as c:
        forged = c.post("/funnels/new", data=_funnel_form(PRICING, token) | {"csrf_token": "guess"})
        assert forged.status_code == 403
        assert c.get("/funnels/pricing-to-lead").status_code == 404
    with live.ui.client(None) as anonymous:
        signed_out = anonymous.get("/funnels")
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].startswith("/login")
        posted = anonymous.post("/funnels/new", data=_funnel_form(PRICING, token))
        assert posted.status_code == 303 and posted.headers["location"] == "/login"


def test_step_names_cannot_break_out_of_the_chart_block(live: Live) -> None:
    token = live.ui.csrf["admin"]
    hostile = "</script><script>alert(1)</script>"
    definition = PRICING | {
        "name": "hostile",
        "steps": [{"name": hostile, "path": "/pricing"}, {"name": "lead", "lead": True}],
    }
    with live.ui.client("admin") as c:
        assert c.post("/funnels/new", data=_funnel_form(definition, token)).status_code == 303
        page = c.get("/funnels/hostile").text
        c.post("/funnels/hostile/delete", data={"csrf_token": token})
    assert "<script>alert(1)" not in page
    assert hostile in html.unescape(page)
