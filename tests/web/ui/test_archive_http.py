"""The dashboard archive behind the real app: served answers, background recomputes,
read-your-writes when a request computes, and definitions that drop the archive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sitepulse.web.ui.editing import Editing
from tests.conftest import CHROME_UA, SITE_HOST, SITE_KEY, SITE_TOKEN
from tests.web.ui.harness import UiServer, settings_for


def _lead(client: httpx.Client, email: str) -> None:
    response = client.post(
        "/api/v1/leads",
        headers={"Authorization": f"Bearer {SITE_TOKEN}"},
        json={
            "site_key": SITE_KEY,
            # the visitor's browser, as a backend relays it (without, a bot's lead)
            "user_agent": CHROME_UA,
            "ip": "81.2.69.160",
            "email": email,
            "name": "Ada",
            "form": "contact",
            "url": f"https://{SITE_HOST}/contact",
        },
    )
    assert response.status_code == 201, response.text


def _executive(client: httpx.Client, **headers: str) -> tuple[dict[str, Any], str]:
    response = client.get("/api/v1/dashboards/executive", headers=headers)
    assert response.status_code == 200, response.text
    return response.json(), response.headers["server-timing"]


def _leads_today(data: dict[str, Any]) -> int:
    return int(data["panels"]["leads_today"]["value"])


def _server(folder: Path, max_age: int) -> UiServer:
    server = UiServer(settings_for(folder, analysis={"dashboard_max_age_secs": max_age}))
    server.start()
    return server


@pytest.fixture
def archived(tmp_path: Path) -> Iterator[UiServer]:
    server = _server(tmp_path / "data", 60)
    yield server
    server.stop()


def test_a_second_view_is_served_and_new_data_follows_in_the_background(
    archived: UiServer,
) -> None:
    with archived.client() as client:
        _lead(client, "first@example.org")
        first, timing = _executive(client)
        assert first["archive"]["status"] == "computed"
        assert _leads_today(first) == 1  # read your writes: the request computed
        assert "kpis;dur=" in timing or "leads_today;dur=" in timing

        again, timing = _executive(client)
        assert again["archive"]["status"] == "fresh"
        assert again["generated_at"] == first["generated_at"]
        assert timing.startswith("archive;desc=fresh;dur=")

        _lead(client, "second@example.org")  # answers once scored: the data moved on
        stale, timing = _executive(client)
        assert stale["archive"]["status"] == "stale"
        assert _leads_today(stale) == 1
        assert timing.startswith("archive;desc=stale;dur=")

        deadline = time.monotonic() + 30
        latest = stale
        while latest["archive"]["status"] != "fresh" and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for the archive's thread to recompute
            latest, _ = _executive(client)
        assert latest["archive"]["status"] == "fresh"
        assert _leads_today(latest) == 2
        assert latest["generated_at"] > first["generated_at"]


def test_each_view_is_archived_apart(archived: UiServer) -> None:
    with archived.client() as client:
        for query in ("", "?days=7", "?days=7&compare=1"):
            response = client.get(f"/api/v1/dashboards/executive{query}")
            assert response.json()["archive"]["status"] == "computed", query
            page = client.get(f"/{query}")  # the page shares its view's answer
            assert page.status_code == 200
            assert page.headers["server-timing"].startswith("archive;desc=fresh"), query


def test_saving_a_funnel_drops_the_archive(archived: UiServer) -> None:
    runtime = archived.runtime
    assert runtime is not None
    with archived.client() as client:
        assert _executive(client)[0]["archive"]["status"] == "computed"
        assert _executive(client)[0]["archive"]["status"] == "fresh"
        Editing.of(runtime).definitions.save(
            "funnel",
            {
                "name": "Pricing",
                "steps": [{"name": "home", "path": "/"}, {"name": "lead", "lead": True}],
            },
            actor="tester",
            now_ms=runtime.ingest.clock(),
        )
        assert _executive(client)[0]["archive"]["status"] == "computed"


def test_with_no_maximum_age_every_view_computes(tmp_path: Path) -> None:
    server = _server(tmp_path / "data", 0)
    try:
        with server.client() as client:
            statuses = [_executive(client)[0]["archive"]["status"] for _ in range(3)]
    finally:
        server.stop()
    assert statuses == ["computed"] * 3
