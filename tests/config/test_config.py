"""Configuration: defaults, environment overrides, and errors that name key and value."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sitepulse.cli.main import app
from sitepulse.config import ConfigError, load_config


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_config(environ={})
    assert settings.storage.backend == "duckdb"
    assert settings.storage.path == Path("sitepulse-data")
    assert settings.server.port == 8000
    assert [s.id for s in settings.sites] == ["default"]


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "sitepulse.yaml"
    path.write_text("server:\n  port: 9000\ningest:\n  queue_max_events: 1000\n")
    settings = load_config(
        path,
        environ={
            "SITEPULSE_PORT": "8001",
            "SITEPULSE_INGEST__QUEUE_MAX_EVENTS": "2000",
            "SITEPULSE_DATA": "/srv/sp",
        },
    )
    assert settings.server.port == 8001
    assert settings.ingest.queue_max_events == 2000
    assert settings.storage.path == Path("/srv/sp")


BAD = [
    ("server:\n  port: 70000\n", "server.port", "70000"),
    ("server:\n  prot: 80\n", "server.prot", "unknown key"),
    ("storage:\n  backend: mysql\n", "storage.backend", "'mysql'"),
    ("sites:\n  - id: Bad Id\n", "sites.0.id", "'Bad Id'"),
    ("sites:\n  - timezone: Mars/Olympus\n", "sites.0.timezone", "Mars/Olympus"),
    ("sites:\n  - page_groups: {blog: '('}\n", "sites.0.page_groups", "bad regex"),
    ("server:\n  trusted_proxies: [not-a-net]\n", "server.trusted_proxies", "not-a-net"),
    ("bots:\n  action: shoot\n", "bots.action", "'shoot'"),
    ("scoring:\n  weights: {engagement: 0.5}\n", "scoring.weights", "sum to 1.0"),
    ("attribution:\n  lookback_days: 0\n", "attribution.lookback_days", "0"),
    ("experiments:\n  - {name: hero, metric: clicks}\n", "experiments.0.metric", "'clicks'"),
    ("lead_webhooks:\n  - {url: 'ftp://x'}\n", "lead_webhooks.0.url", "ftp://x"),
    ("lead_webhooks:\n  - {url: 'https://x', min_tier: gold}\n", "(top level)", "'gold'"),
    (
        "funnels:\n  - {name: f, steps: [{name: a, path: /x, colour: red}, {name: b}]}\n",
        "funnels",
        "funnels[0].steps[0].colour",
    ),
]


@pytest.mark.parametrize(("text", "key", "value"), BAD, ids=[b[1] for b in BAD])
def test_errors_name_key_and_value(tmp_path: Path, text: str, key: str, value: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    (problem,) = info.value.problems
    assert problem.startswith(f"{key}:") and value in problem, problem


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: -1\n  host: 5\nstorage:\n  colour: blue\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    keys = sorted(p.split(":")[0] for p in info.value.problems)
    assert keys == ["server.host", "server.port", "storage.colour"]


def test_bad_env_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"SITEPULSE_PORT": "eighty"})
    assert info.value.problems[0].startswith("server.port:")
    assert "eighty" in info.value.problems[0]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: 80\n bad: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "line 3" in info.value.problems[0]


def test_config_check_command(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("sites:\n  - id: shop\n    public_key: pk_shop\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: 0\n")
    dup = tmp_path / "dup.yaml"
    dup.write_text("sites:\n  - id: a\n  - id: a\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "check", str(good)])
    assert ok.exit_code == 0 and "1 site" in ok.output
    failed = runner.invoke(app, ["config", "check", str(bad)])
    assert failed.exit_code == 1
    assert "server.port" in failed.output and "(got 0)" in failed.output
    assert "duplicate site id 'a'" in runner.invoke(app, ["config", "check", str(dup)]).output
