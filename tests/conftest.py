"""Shared fixtures: a real sitepulse server on loopback, writing a real DuckDB file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

SITE_KEY = "pk_test"
SITE_TOKEN = "sk_test_0123456789abcdef"
SITE_HOST = "www.acme.example"
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id() -> str:
    return str(uuid.uuid4())


def pageview(url: str = f"https://{SITE_HOST}/", **extra: Any) -> dict[str, Any]:
    return {"event_id": new_id(), "ts": now_ms(), "type": "pageview", "url": url} | extra


@dataclass
class LiveServer:
    """`sitepulse serve` in a child process, on a free loopback port."""

    data_dir: Path
    config_path: Path
    port: int
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    site_key = SITE_KEY
    token = SITE_TOKEN

    def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ, SITEPULSE_CONFIG=str(self.config_path))
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sitepulse",
                "serve",
                "--port",
                str(self.port),
                *self.extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir.parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # readiness poll, bounded by the deadline
        raise RuntimeError(f"server not ready after {timeout}s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0, headers={"User-Agent": CHROME_UA})

    def events(self, type: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if type:
            params["type"] = type
        with self.client() as c:
            resp = c.get(
                "/api/v1/events", params=params, headers={"Authorization": f"Bearer {self.token}"}
            )
        resp.raise_for_status()
        rows: list[dict[str, Any]] = resp.json()["events"]
        return rows

    def db_query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the DuckDB file directly; only while the server is stopped."""
        import duckdb

        assert self.proc is None, "stop the server first: DuckDB allows one process"
        con = duckdb.connect(str(self.data_dir / "sitepulse.duckdb"), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


ServerFactory = Callable[..., LiveServer]


def write_config(path: Path, data_dir: Path, overrides: dict[str, Any] | None = None) -> None:
    config: dict[str, Any] = {
        "storage": {"path": str(data_dir)},
        "sites": [
            {
                "id": "acme",
                "name": "ACME",
                "public_key": SITE_KEY,
                "token": SITE_TOKEN,
                "hosts": [SITE_HOST],
                "timezone": "Europe/London",
            }
        ],
    }
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path.write_text(yaml.safe_dump(config))


def _factory(root: Path) -> tuple[ServerFactory, list[LiveServer]]:
    servers: list[LiveServer] = []

    def make(overrides: dict[str, Any] | None = None, start: bool = True) -> LiveServer:
        data_dir = root / f"data{len(servers)}"
        data_dir.mkdir()
        config_path = root / f"sitepulse{len(servers)}.yaml"
        write_config(config_path, data_dir, overrides)
        server = LiveServer(data_dir, config_path, free_port())
        servers.append(server)
        if start:
            server.start()
        return server

    return make, servers


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Makes fresh servers for one test; each has its own data folder."""
    make, servers = _factory(tmp_path)
    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(server_factory: ServerFactory) -> LiveServer:
    """A fresh server for tests that count what was stored."""
    return server_factory()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for a module's tests that only look at responses."""
    make, servers = _factory(tmp_path_factory.mktemp("shared"))
    yield make()
    for server in servers:
        server.stop()
