"""`sitepulse demo` as a new user runs it: a real process on a free port with its own data
folder; it prints the sign-in, backfills history, and has both dashboards computed before
the first sign-in."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

READY = "dashboards ready for sign-in"


@dataclass
class Demo:
    process: subprocess.Popen[str]
    base_url: str
    data: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None, f"the demo exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()}"
            time.sleep(0.2)  # polling the demo's log, bounded by the deadline


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEPULSE_")}
    env["COLUMNS"] = "200"  # Rich wraps its panel at the terminal's width
    log = folder / "demo.log"
    command = [
        sys.executable, "-m", "sitepulse", "demo", "--port", str(port), "--data",
        str(folder / "data"), "--backfill-days", "1", "--visits-per-minute", "20",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    running = Demo(process, f"http://127.0.0.1:{port}", folder / "data", log)
    try:
        running.wait_for(READY)
        yield running
    finally:
        process.terminate()
        process.wait(60)


@pytest.fixture(scope="module")
def token(demo: Demo) -> str:
    """An API token made with the CLI while the demo runs (auth lives beside the store)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEPULSE_")}
    env["SITEPULSE_DATA"] = str(demo.data)
    done = subprocess.run(
        [sys.executable, "-m", "sitepulse", "token", "create", "test", "--user", "admin"],
        env=env,
        cwd=demo.data.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_the_demo_prints_the_sign_in_it_saved(demo: Demo) -> None:
    password = (demo.data / "demo-credentials.txt").read_text(encoding="utf-8").strip()
    printed = demo.output()
    assert "sign in as    admin" in printed and password in printed
    assert oct((demo.data / "demo-credentials.txt").stat().st_mode & 0o777) == "0o600"
    assert "backfilled 1 days" in printed


@pytest.mark.parametrize("name", ["executive", "marketing"])
def test_the_first_sign_in_finds_the_dashboards_computed(demo: Demo, token: str, name: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=demo.base_url, headers=headers, timeout=60) as client:
        response = client.get(f"/api/v1/dashboards/{name}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    assert data["archive"]["status"] in ("fresh", "stale")
    assert response.headers["server-timing"].startswith("archive;")
    panels = data["panels"]
    if name == "executive":
        visitors = next(r for r in panels["kpi_summary"]["rows"] if r["name"] == "visitors")
        assert visitors["value"] > 0
    else:
        assert panels["funnel"]["entered"] > 0
        assert panels["attribution"]["rows"]
