"""The analyses through the JSON API and `sitepulse report`, on demo traffic in a live server."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sitepulse.demo.traffic import TrafficConfig, backfill
from tests.conftest import LiveServer, _factory

PRICING_FUNNEL = {
    "name": "pricing",
    "window_ms": 3_600_000,
    "steps": [
        {"name": "pricing page", "path": "/pricing"},
        {"name": "contact page", "path": "/contact*"},
        {"name": "lead", "lead": True},
    ],
}


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server holding three days of the demo's traffic (with leads and experiments)."""
    make, servers = _factory(tmp_path_factory.mktemp("reports"))
    server = make({"analysis": {"kpi_refresh_secs": 5}, "funnels": [PRICING_FUNNEL]})
    cfg = TrafficConfig(
        base_url=server.base_url,
        site_key=server.site_key,
        site_token=server.token,
        seed=5,
        backfill_days=3,
        backfill_visits_per_day=400,
    )

    async def run() -> None:
        async with httpx.AsyncClient(timeout=60.0) as client:
            stats = await backfill(cfg, now_ms=time.time_ns() // 1_000_000, client=client)
        assert not stats.events_rejected and not stats.leads_rejected and stats.leads_accepted

    asyncio.run(run())
    yield server
    for each in servers:
        each.stop()


def _get(server: LiveServer, path: str, **params: Any) -> httpx.Response:
    with server.client() as c:
        return c.get(path, params=params, headers={"Authorization": f"Bearer {server.token}"})


def test_kpis(demo_server: LiveServer) -> None:
    resp = _get(demo_server, "/api/v1/kpis", days=7)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    kpis = {k["name"]: k for k in body["kpis"]}
    assert kpis["visitors"]["overall"]["value"] > 100
    assert 0 < kpis["conversion_rate"]["overall"]["value"] < 0.5
    assert kpis["avg_lead_score"]["overall"]["value"] is not None  # leads were scored
    assert body["top_paths"] and body["drop_offs"]


def test_vitals(demo_server: LiveServer) -> None:
    body = _get(demo_server, "/api/v1/vitals", days=7, by="device").json()
    lcp = next(m for m in body["overall"]["metrics"] if m["metric"] == "LCP")
    assert lcp["samples"] > 100 and 500 < lcp["p75"] < 8000
    assert {g["key"] for g in body["groups"]} >= {"desktop", "mobile"}
    assert body["overall"]["compliance"]["page_loads"] > 0


def test_funnel_and_form_failures(demo_server: LiveServer) -> None:
    body = _get(demo_server, "/api/v1/funnel", days=7, breakdown="channel").json()
    counts = [step["units"] for step in body["steps"]]
    assert counts[0] > counts[-1] > 0
    assert counts == sorted(counts, reverse=True)
    failures = _get(demo_server, "/api/v1/form-failures", days=7)
    assert failures.status_code == 200, failures.text
    pricing = _get(demo_server, "/api/v1/funnel", days=7, name="pricing").json()
    assert [s["name"] for s in pricing["steps"]] == ["pricing page", "contact page", "lead"]
    assert pricing["steps"][0]["units"] >= pricing["steps"][-1]["units"] > 0


def test_attribution_and_experiments(demo_server: LiveServer) -> None:
    body = _get(demo_server, "/api/v1/attribution", days=7, dimension="source").json()
    assert body["lead_count"] > 0 and len(body["models"]) == 6
    total = body["total"]["leads"]
    assert all(abs(v - body["lead_count"]) < 1e-6 for v in total.values())
    found = _get(demo_server, "/api/v1/experiments", days=7).json()["experiments"]
    assert found and all(e["readout"] or e["problem"] for e in found)
    assert any(e["readout"] and e["readout"]["variants"][0]["verdict"] for e in found)


def test_leads_come_scored_with_deadlines(demo_server: LiveServer) -> None:
    leads = _get(demo_server, "/api/v1/leads", days=7).json()["leads"]
    assert leads and all(lead["score"] is not None and lead["tier"] for lead in leads)
    premium = _get(demo_server, "/api/v1/leads", days=7, tier="poor").json()["leads"]
    assert all(lead["tier"] == "poor" for lead in premium)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/kpis", {"days": "zero"}, "days"),
        ("/api/v1/kpis", {"from": "yesterday"}, "from"),
        ("/api/v1/kpis", {"from": "2026-02-01", "to": "2026-01-01"}, "to"),
        ("/api/v1/vitals", {"by": "browser"}, "by"),
        ("/api/v1/funnel", {"breakdown": "variant"}, "experiment"),
        ("/api/v1/funnel", {"name": "checkout"}, "name"),
        ("/api/v1/attribution", {"dimension": "planet"}, "dimension"),
        ("/api/v1/leads", {"tier": "gold"}, "tier"),
        ("/api/v1/sample-size", {"baseline": "2"}, "baseline"),
    ],
)
def test_bad_parameters_get_400_naming_them(
    demo_server: LiveServer, path: str, params: dict[str, str], field: str
) -> None:
    resp = _get(demo_server, path, **params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field


def test_reports_need_the_token(demo_server: LiveServer) -> None:
    with demo_server.client() as c:
        assert c.get("/api/v1/kpis").status_code == 401
        bad = c.get("/api/v1/kpis", headers={"Authorization": "Bearer nope-nope-nope-nope"})
        assert bad.status_code == 403


def _cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sitepulse", "report", *args, "-c", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(server.config_path).parent,
    )


def test_report_cli_from_the_api_and_from_the_data_folder(demo_server: LiveServer) -> None:
    remote = _cli(demo_server, "attribution", "--days", "7", "--format", "json", "--url",
                  demo_server.base_url, "--token", demo_server.token)  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    from_api = json.loads(remote.stdout)
    table = _cli(demo_server, "kpis", "--url", demo_server.base_url, "--token", demo_server.token)
    assert table.returncode == 0 and "conversion_rate" in table.stdout, table.stderr
    demo_server.stop()
    try:
        local = _cli(demo_server, "attribution", "--days", "7", "--format", "csv")
        assert local.returncode == 0, local.stderr
        rows = list(csv.DictReader(io.StringIO(local.stdout)))
        assert {row["key"] for row in rows} == {row["key"] for row in from_api["rows"]}
        bad = _cli(demo_server, "funnel", "-p", "breakdown=variant")
        assert bad.returncode == 1 and "experiment" in bad.stderr
    finally:
        demo_server.start()


def test_kpis_reach_prometheus(demo_server: LiveServer) -> None:
    wanted = ("sitepulse_kpi_conversion_rate{", "sitepulse_kpi_average_lead_score{",
              "sitepulse_kpi_cwv_pass_rate{")  # fmt: skip
    # A bound on waiting, not a timing assertion: the gauges refresh every 5 s in this server,
    # each refresh computing the KPIs, attribution and funnel, which a loaded CI host slows.
    deadline = time.monotonic() + 120
    values: dict[str, float] = {}
    text = ""
    while time.monotonic() < deadline:
        with demo_server.client() as c:
            text = c.get("/metrics").text
        values = {
            line.split("{")[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(wanted)
        }
        if len(values) == 3 and all(v == v for v in values.values()):  # NaN until data
            break
        time.sleep(0.5)  # the gauges refresh every 5 s in this server
    refreshed = [ln for ln in text.splitlines() if ln.startswith("sitepulse_kpi_refreshed")]
    assert len(values) == 3 and all(v == v for v in values.values()), (
        values,
        refreshed,
        demo_server.log()[-3000:],
    )
    assert 0 < values["sitepulse_kpi_conversion_rate"] < 1
    assert 0 < values["sitepulse_kpi_average_lead_score"] <= 100
    assert 0 <= values["sitepulse_kpi_cwv_pass_rate"] <= 1
    tiers = [line for line in text.splitlines() if line.startswith("sitepulse_kpi_leads{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in tiers) > 0
