"""Grafana export: the dashboard model, provisioning, and every query against a real Prometheus."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import math
import re
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from sitepulse.analyse.kpis import TARGETS, Target
from sitepulse.analyse.vitals import THRESHOLDS
from sitepulse.cli.export import export_app
from sitepulse.demo.traffic import TrafficConfig, backfill
from sitepulse.export.dashboards import DASHBOARDS, EXECUTIVE, MARKETING, SITE_VARIABLE_QUERY
from sitepulse.export.grafana import DEFAULT_DATASOURCE_UID, SCHEMA_VERSION, export_grafana
from sitepulse.export.panels import (
    KINDS,
    Dashboard,
    Panel,
    Thresholds,
    layout,
    rating_bands,
    target_bands,
)
from tests.conftest import LiveServer, _factory
from tests.export.prometheus import PROMETHEUS, PROMTOOL, RealPrometheus, require_binaries, version

ROOT = Path(__file__).resolve().parents[2]
PROM_URL = "http://prometheus.internal:9090"
# Grafana's dashboard model: what a dashboard and a panel must carry to load.
DASHBOARD_FIELDS = ("uid", "title", "schemaVersion", "panels", "time", "templating", "tags")
PANEL_FIELDS = ("id", "type", "title", "gridPos", "fieldConfig", "options")


def _export(out: Path, uid: str = DEFAULT_DATASOURCE_UID) -> dict[str, Path]:
    written = export_grafana(out, prometheus_url=PROM_URL, datasource_uid=uid)
    return {str(path.relative_to(out.absolute())): path for path in written}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _export(tmp_path_factory.mktemp("grafana"))


def test_export_writes_provisioning_and_dashboards(exported: dict[str, Path]) -> None:
    assert sorted(exported) == [
        "dashboards/sitepulse-executive.json",
        "dashboards/sitepulse-marketing.json",
        "provisioning/dashboards/sitepulse.yaml",
        "provisioning/datasources/sitepulse.yaml",
    ]
    sources = yaml.safe_load(exported["provisioning/datasources/sitepulse.yaml"].read_text())
    assert sources["apiVersion"] == 1
    [source] = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == DEFAULT_DATASOURCE_UID and source["url"] == PROM_URL
    providers = yaml.safe_load(exported["provisioning/dashboards/sitepulse.yaml"].read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    folder = Path(provider["options"]["path"])
    assert folder.is_absolute()
    assert folder == exported["dashboards/sitepulse-executive.json"].parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "sitepulse-executive.json",
        "sitepulse-marketing.json",
    ]


@pytest.mark.parametrize("name", ["sitepulse-executive", "sitepulse-marketing"])
def test_dashboard_model(exported: dict[str, Path], name: str) -> None:
    board = _load(exported[f"dashboards/{name}.json"])
    for key in DASHBOARD_FIELDS:
        assert key in board, f"{name}: no {key}"
    assert board["uid"] == name and board["schemaVersion"] == SCHEMA_VERSION
    assert set(board["time"]) == {"from", "to"}
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["site"]["query"] == SITE_VARIABLE_QUERY
    # Panels name the data source through the variable, whose value is the provisioned one.
    chosen = variables["datasource"]["current"]["value"]
    assert chosen == DEFAULT_DATASOURCE_UID

    def source_uid(ref: dict[str, str]) -> str:
        assert ref["type"] == "prometheus"
        return chosen if ref["uid"] == "${datasource}" else ref["uid"]

    assert source_uid(variables["site"]["datasource"]) == DEFAULT_DATASOURCE_UID
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids {ids}"
    cells: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        where = f"{name} panel {panel.get('title')!r}"
        for key in PANEL_FIELDS:
            assert key in panel, f"{where}: no {key}"
        assert panel["type"] in KINDS, where
        pos = panel["gridPos"]
        assert set(pos) == {"h", "w", "x", "y"}, where
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["y"] >= 0, where
        assert pos["x"] + pos["w"] <= 24, where
        for cell in itertools.product(
            range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])
        ):
            assert cell not in cells, f"{where} overlaps {cells[cell]} at {cell}"
            cells[cell] = panel["title"]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[0]["value"] is None, f"{where}: the first threshold step must be the base"
        if panel["type"] == "text":
            assert panel["options"]["content"], where
            continue
        assert source_uid(panel["datasource"]) == DEFAULT_DATASOURCE_UID, where
        assert panel["targets"], f"{where}: no queries"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs), where
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], where
            assert source_uid(target["datasource"]) == DEFAULT_DATASOURCE_UID, where


def test_reexport_is_byte_identical(tmp_path: Path) -> None:
    first = {name: path.read_bytes() for name, path in _export(tmp_path / "a").items()}
    again = {name: path.read_bytes() for name, path in _export(tmp_path / "a").items()}
    assert first == again
    elsewhere = {name: path.read_bytes() for name, path in _export(tmp_path / "b").items()}
    # Only the provider's folder (an absolute path) depends on where the export goes.
    assert {n for n in first if first[n] != elsewhere[n]} == {
        "provisioning/dashboards/sitepulse.yaml"
    }


@pytest.mark.parametrize(
    ("dashboard", "builtins"),
    [
        (
            EXECUTIVE,
            "conversion_rate leads_today avg_lead_score uptime leads_trend cwv_compliance "
            "leads_by_channel value_by_channel kpi_summary",
        ),
        (
            MARKETING,
            "funnel attribution lead_quality_by_source channel_performance vitals_by_page "
            "conversion_by_lcp experiments top_paths",
        ),
    ],
)
def test_every_builtin_panel_has_its_grafana_panel(dashboard: Dashboard, builtins: str) -> None:
    assert sorted(p.builtin for p in dashboard.panels) == sorted(builtins.split())


def _grafana_colour(steps: tuple[tuple[str, float | None], ...], value: float) -> str:
    """How Grafana colours `value`: the last step whose value it reaches."""
    colour = steps[0][0]
    for name, start in steps[1:]:
        if start is not None and value >= start:
            colour = name
    return colour


def _google(metric: str) -> Callable[[float], str]:
    scale = 1.0 if metric == "CLS" else 1000.0
    names = {"good": "green", "needs-improvement": "yellow", "poor": "red"}
    return lambda seconds: names[THRESHOLDS[metric].rate(seconds * scale)]


def _kpi(target: Target) -> Callable[[float], str]:
    return lambda value: str(target.status(value))


# Each colour rule of the dashboards against the embedded evaluator's, on and around edges.
COLOUR_CASES = [
    ("conversion_rate", target_bands(TARGETS["conversion_rate"]), _kpi(TARGETS["conversion_rate"]),
     [0.0, 0.02, 0.023999, 0.024, 0.0299, 0.03, 0.031]),
    ("avg_lead_score", target_bands(TARGETS["avg_lead_score"]), _kpi(TARGETS["avg_lead_score"]),
     [0.0, 55.9, 56.0, 69.99, 70.0, 70.0000001, 100.0]),
    ("engaged_time", target_bands(TARGETS["engaged_time_per_session"]),
     _kpi(TARGETS["engaged_time_per_session"]), [95.9, 96.0, 120.0, 120.5]),
    ("email_signup_rate", target_bands(TARGETS["email_signup_rate"]),
     _kpi(TARGETS["email_signup_rate"]), [0.039, 0.04, 0.05]),
    ("LCP", rating_bands("LCP"), _google("LCP"), [0.4, 2.5, 2.5000001, 4.0, 4.0000001, 9.0]),
    ("INP", rating_bands("INP"), _google("INP"), [0.05, 0.2, 0.2001, 0.5, 0.5001]),
    ("CLS", rating_bands("CLS"), _google("CLS"), [0.0, 0.1, 0.1001, 0.25, 0.2501]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "bands", "evaluator", "values"), COLOUR_CASES)
def test_colours_agree_with_the_embedded_evaluator(
    name: str, bands: Thresholds, evaluator: Callable[[float], str], values: list[float]
) -> None:
    for value in values:
        expected = evaluator(value)
        assert bands.status(value) == expected, (name, value)
        assert _grafana_colour(bands.steps(), value) == expected, (name, value)


@pytest.mark.parametrize(
    ("widths", "expected"),
    [
        ([6, 6, 6, 6], [(0, 0), (6, 0), (12, 0), (18, 0)]),
        ([12, 12, 8], [(0, 0), (12, 0), (0, 5)]),
        ([24, 1], [(0, 0), (0, 5)]),
        ([20, 4, 5], [(0, 0), (20, 0), (0, 5)]),
    ],
)
def test_layout_fills_rows(widths: list[int], expected: list[tuple[int, int]]) -> None:
    panels = [Panel(builtin=f"p{i}", title="", kind="text", description="", width=w)
              for i, w in enumerate(widths)]  # fmt: skip
    assert [(p.x, p.y) for p in layout(panels)] == expected


def test_cli_writes_and_rejects_a_bad_url(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(export_app, ["grafana", str(tmp_path / "out"), "--datasource-uid", "p1"])
    assert done.exit_code == 0, done.output
    assert "sitepulse-marketing.json" in done.output.replace("\n", "")
    board = _load(tmp_path / "out" / "dashboards" / "sitepulse-executive.json")
    assert board["templating"]["list"][0]["current"]["value"] == "p1"
    bad = runner.invoke(export_app, ["grafana", str(tmp_path / "x"), "--prometheus-url", "ftp://x"])
    assert bad.exit_code == 2 and "prometheus_url" in bad.output
    assert not (tmp_path / "x").exists()


def test_docs_name_every_panel_and_metric() -> None:
    text = (ROOT / "docs" / "GRAFANA.md").read_text()
    for board in DASHBOARDS:
        for panel in board.panels:
            assert f"`{panel.builtin}`" in text, panel.builtin
            for query in panel.queries:
                for metric in re.findall(r"\bsitepulse_[a-z_]+", query.expr):
                    base = re.sub(r"_(bucket|total)$", "", metric)
                    assert base in text, (panel.builtin, metric)


# --- a real Prometheus scraping a real sitepulse -------------------------------------------

# Grafana's built-in variables, as Grafana would fill them in for a 10-minute view.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "5s", "__range": "10m"}


def substitute(expr: str, site: str) -> str:
    """`expr` with Grafana's variables replaced, as Grafana sends it to Prometheus."""
    values = GRAFANA_VARIABLES | {"site": site}
    out = re.sub(r"\$(\w+)", lambda m: values.get(m.group(1), m.group(0)), expr)
    assert "$" not in out, f"unknown variable left in {out}"
    return out


@dataclass
class Scraped:
    """A sitepulse fed with traffic, and a Prometheus that has scraped its final state."""

    server: LiveServer
    prometheus: RealPrometheus
    refreshed_ms: int  # when the KPI gauges Prometheus holds were computed

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        with self.server.client() as c:
            resp = c.get(
                f"/api/v1/{path}",
                params=params,
                headers={"Authorization": f"Bearer {self.server.token}"},
            )
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body


def _wave(server: LiveServer, seed: int) -> None:
    cfg = TrafficConfig(
        base_url=server.base_url,
        site_key=server.site_key,
        site_token=server.token,
        seed=seed,
        backfill_days=1,
        backfill_visits_per_day=500,
    )

    async def run() -> None:
        async with httpx.AsyncClient(timeout=60.0) as client:
            stats = await backfill(cfg, now_ms=time.time_ns() // 1_000_000, client=client)
        assert not stats.events_rejected and not stats.leads_rejected and stats.leads_accepted

    asyncio.run(run())


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    require_binaries()
    root = tmp_path_factory.mktemp("prometheus")
    make, servers = _factory(root)
    server = make({"analysis": {"kpi_refresh_secs": 5}})
    prometheus = RealPrometheus(root / "prom", f"127.0.0.1:{server.port}")
    prometheus.write_config()
    checked = prometheus.check_config()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    try:
        prometheus.start()
        prometheus.wait_for(prometheus.targets_up, 20, "the sitepulse target to be up")
        # Two waves with a scrape between them, so counters differ between samples.
        _wave(server, seed=11)
        prometheus.wait_for(
            lambda: bool(prometheus.vector("sitepulse_leads_total")), 20, "wave 1 scraped"
        )
        _wave(server, seed=12)
        with server.client() as c:
            # Backfilled leads follow the day's curve (none at night): a few arrive now.
            for i in range(3):
                lead = {"site_key": server.site_key, "email": f"now{i}@example.org"}
                assert c.post("/api/v1/leads", json=lead).status_code == 201
            # A report waits until stored rows and sessions are loaded.
            c.get("/api/v1/kpis", headers={"Authorization": f"Bearer {server.token}"})
        loaded_s = time.time()
        prometheus.wait_for(
            lambda: prometheus.scalar("sitepulse_kpi_last_refresh_timestamp_seconds") > loaded_s,
            30,
            "a KPI refresh after the traffic, scraped",
        )
        refreshed = prometheus.scalar("sitepulse_kpi_last_refresh_timestamp_seconds")
        yield Scraped(server, prometheus, round(refreshed * 1000))
    finally:
        prometheus.stop()
        for each in servers:
            each.stop()


def _queries() -> list[tuple[str, str, str]]:
    return [
        (board.uid, panel.builtin, query.expr)
        for board in DASHBOARDS
        for panel in board.panels
        for query in panel.queries
    ]


def test_prometheus_config_and_versions(scraped: Scraped) -> None:
    assert scraped.prometheus.check_config().returncode == 0
    assert "prometheus, version" in version(PROMETHEUS)
    assert "promtool, version" in version(PROMTOOL)
    match = re.fullmatch(r"label_values\((\w+), (\w+)\)", SITE_VARIABLE_QUERY)
    assert match is not None
    assert scraped.prometheus.label_values(match[2], match[1]) == ["acme"]


def test_every_expression_parses_and_returns_data(scraped: Scraped) -> None:
    problems = []
    for board, builtin, expr in _queries():
        sent = substitute(expr, "acme")
        body = scraped.prometheus.query(sent)
        where = f"{board} panel {builtin!r}: {sent}"
        if body.get("status") != "success":
            problems.append(f"{where}\n  does not parse: {body.get('error')}")
            continue
        values = [float(s["value"][1]) for s in body["data"]["result"]]
        if not any(math.isfinite(v) for v in values):
            problems.append(f"{where}\n  returned no finite value: {body['data']['result']}")
    assert not problems, "\n".join(problems)


Expected = Callable[[Scraped], dict[tuple[str, ...], float]]


def _kpi_value(name: str) -> Expected:
    def read(s: Scraped) -> dict[tuple[str, ...], float]:
        kpis = {k["name"]: k for k in s.api("kpis", days=7)["kpis"]}
        return {(): kpis[name]["overall"]["value"]}

    return read


def _leads_by_channel(s: Scraped) -> dict[tuple[str, ...], float]:
    leads = [x for x in s.api("leads", days=7, limit=10_000)["leads"] if not x["is_test"]]
    counts = Counter(x["channel"] or "(not set)" for x in leads)
    return {(channel,): n for channel, n in counts.items()}


def _leads_today(s: Scraped) -> dict[tuple[str, ...], float]:
    zone = zoneinfo.ZoneInfo("Europe/London")
    today = dt.datetime.fromtimestamp(s.refreshed_ms / 1000, zone).date()
    leads = [x for x in s.api("leads", days=7, limit=10_000)["leads"] if not x["is_test"]]
    days = [dt.datetime.fromisoformat(x["ts"]).astimezone(zone).date() for x in leads]
    return {(): sum(day == today for day in days)}


def _attribution(s: Scraped) -> dict[tuple[str, ...], float]:
    rows = s.api("attribution", days=7, dimension="channel")["rows"]
    return {(row["key"], model): x for row in rows for model, x in row["leads"].items()}


def _funnel(s: Scraped) -> dict[tuple[str, ...], float]:
    steps = s.api("funnel", days=7)["steps"]
    return {(f"{step['step']:02d}", step["name"]): step["units"] for step in steps}


def _channel_conversion(s: Scraped) -> dict[tuple[str, ...], float]:
    kpis = {k["name"]: k for k in s.api("kpis", days=7)["kpis"]}
    rows = kpis["conversion_rate"]["by_channel"]
    return {(r["channel"],): r["value"] for r in rows if r["value"] is not None}


def _cwv_pass_rate(s: Scraped) -> dict[tuple[str, ...], float]:
    return {(): s.api("vitals", days=7, by="none")["overall"]["compliance"]["share"]}


# (dashboard, panel, query number, labels that key a series, the API's answer for it)
VALUE_CASES: list[tuple[Dashboard, str, int, tuple[str, ...], Expected]] = [
    (EXECUTIVE, "leads_by_channel", 0, ("channel",), _leads_by_channel),
    (EXECUTIVE, "leads_today", 0, (), _leads_today),
    (EXECUTIVE, "conversion_rate", 0, (), _kpi_value("conversion_rate")),
    (EXECUTIVE, "avg_lead_score", 0, (), _kpi_value("avg_lead_score")),
    (EXECUTIVE, "cwv_compliance", 0, (), _cwv_pass_rate),
    (EXECUTIVE, "kpi_summary", 1, (), lambda s: {(): sum(_leads_by_channel(s).values())}),
    (MARKETING, "attribution", 0, ("channel", "model"), _attribution),
    (MARKETING, "funnel", 0, ("step", "step_name"), _funnel),
    (MARKETING, "channel_performance", 2, ("channel",), _channel_conversion),
]


@pytest.mark.parametrize(
    ("board", "builtin", "index", "keys", "expected"),
    VALUE_CASES,
    ids=[f"{case[0].uid}-{case[1]}-{case[2]}" for case in VALUE_CASES],
)
def test_panels_show_what_the_server_stored(
    scraped: Scraped,
    board: Dashboard,
    builtin: str,
    index: int,
    keys: tuple[str, ...],
    expected: Expected,
) -> None:
    panel = next(p for p in board.panels if p.builtin == builtin)
    expr = substitute(panel.queries[index].expr, "acme")
    got = {
        tuple(series["metric"].get(k, "") for k in keys): float(series["value"][1])
        for series in scraped.prometheus.vector(expr)
    }
    want = expected(scraped)
    assert want and any(want.values()), f"the test traffic gave {builtin} nothing to show"
    assert got.keys() == want.keys(), f"{builtin}: {expr}"
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (builtin, key, expr)
