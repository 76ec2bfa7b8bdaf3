"""`sitepulse import`: good lines stored, bad lines named by number and skipped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb

from tests.conftest import write_config


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sitepulse", "import", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_jsonl_import_reports_bad_lines_and_keeps_good(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "sitepulse.yaml"
    write_config(config, data)
    now = time.time_ns() // 1_000_000
    lines = []
    for i in range(1, 501):
        lines.append(
            json.dumps(
                {
                    "event_id": str(uuid.uuid4()),
                    "type": "pageview",
                    "ts": now - i * 60_000,
                    "url": f"https://www.acme.example/p{i % 7}",
                    "visitor_id": f"v{i % 40}",
                }
            )
        )
    lines[9] = "{not json"
    lines[99] = json.dumps({"type": "pageview", "ts": "noon"})
    lines[199] = json.dumps({"type": "teleport"})
    lines[299] = json.dumps({"type": "pageview", "ts": now + 10 * 86_400_000})
    lines.append("")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines))

    result = _run(config, str(path))
    assert result.returncode == 1, result.stderr
    assert f"{path}:10: invalid JSON" in result.stderr
    assert f"{path}:100: ts:" in result.stderr
    assert f"{path}:200: type:" in result.stderr
    assert f"{path}:300: ts: timestamp is in the future" in result.stderr
    assert "496 stored" in result.stderr and "4 skipped" in result.stderr

    again = _run(config, str(path))  # importing twice stores nothing twice
    assert "0 stored, 496 duplicates" in again.stderr
    con = duckdb.connect(str(data / "sitepulse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone() == (
        496,
        496,
    )
    con.close()


def test_csv_import(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "sitepulse.yaml"
    write_config(config, data)
    now = time.time_ns() // 1_000_000
    path = tmp_path / "events.csv"
    path.write_text(
        "type,name,ts,value,url,props.plan\n"
        f"custom,signup,{now - 1000},1,https://www.acme.example/pricing,pro\n"
        f"custom,signup,{now - 2000},x,https://www.acme.example/pricing,basic\n"
        f"custom,signup,{now - 3000},2,https://www.acme.example/pricing,basic\n"
    )
    result = _run(config, str(path))
    assert result.returncode == 1
    assert f"{path}:3: invalid value" in result.stderr
    assert "2 stored" in result.stderr
