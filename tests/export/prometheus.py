"""A real Prometheus (the Debian package) on loopback, scraping one sitepulse server."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def require_binaries() -> None:
    """Fail (never skip) when the Debian package is missing: the set-up installs it."""
    missing = [path for path in (PROMETHEUS, PROMTOOL) if shutil.which(path) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install the Debian package `prometheus` "
            "(apt-get install prometheus); the project set-up installs it"
        )


def version(binary: str) -> str:
    """The first line of `binary --version`."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    return (out.stdout or out.stderr).splitlines()[0]


Series = list[dict[str, Any]]


@dataclass
class RealPrometheus:
    """Prometheus with its own data folder, scraping `target` (host:port) every second."""

    root: Path
    target: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.root / "prometheus.yml"

    def write_config(self) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "sitepulse",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [self.target]}],
                }
            ],
        }
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=True))

    def check_config(self) -> subprocess.CompletedProcess[str]:
        """`promtool check config` on the written configuration."""
        return subprocess.run(
            [PROMTOOL, "check", "config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def start(self, timeout: float = 30.0) -> None:
        self.port = free_port()
        log = (self.root / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.wait_for(lambda: self._ready(), timeout, "Prometheus ready")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}: {self.log()}")
            if condition():
                return
            time.sleep(0.2)  # readiness poll, bounded by the deadline
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def log(self) -> str:
        path = self.root / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def query(self, expr: str) -> dict[str, Any]:
        """The JSON answer of /api/v1/query for `expr` at the current time."""
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10.0)
        body: dict[str, Any] = resp.json()
        return body

    def vector(self, expr: str) -> Series:
        """The instant vector of `expr`; raises on a query error."""
        body = self.query(expr)
        if body.get("status") != "success":
            raise AssertionError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        result: Series = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> float:
        """The single value of `expr`, NaN when it has none."""
        result = self.vector(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else math.nan

    def label_values(self, label: str, match: str) -> list[str]:
        resp = httpx.get(
            f"{self.url}/api/v1/label/{label}/values", params={"match[]": match}, timeout=10.0
        )
        values: list[str] = resp.json()["data"]
        return values

    def targets_up(self) -> bool:
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=5.0).json()
        active = body["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
