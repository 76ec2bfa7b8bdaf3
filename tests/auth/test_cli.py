"""`sitepulse user` and `sitepulse token`, against a config's data folder and a live server."""

from __future__ import annotations

import getpass
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from sitepulse.auth import AuditLog, AuthDB, SignInLimiter, audit
from sitepulse.cli.users import token_app, user_app
from sitepulse.clock import ManualClock, system_clock
from tests.auth.conftest import PASSWORD, AuthServer, build_app, serve
from tests.conftest import write_config

# The two sub-apps as `sitepulse` mounts them.
APP = typer.Typer()
APP.add_typer(user_app, name="user")
APP.add_typer(token_app, name="token")
SCRIPT = (
    "import typer\n"
    "from sitepulse.cli.users import token_app, user_app\n"
    "app = typer.Typer()\n"
    "app.add_typer(user_app, name='user')\n"
    "app.add_typer(token_app, name='token')\n"
    "app()\n"
)
ACTOR = f"cli:{getpass.getuser()}"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sitepulse.yaml"
    write_config(path, tmp_path / "data")
    return path


def cli(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(APP, [*args, "--config", str(config)], input=input)


def cli_process(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as an operator runs it beside the server."""
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def audit_rows(config: Path) -> list[tuple[str, str, str]]:
    db = AuthDB.in_folder(config.parent / "data")
    try:
        return [(e.actor, e.action, e.target) for e in reversed(AuditLog(db).recent(100))]
    finally:
        db.close()


def test_user_commands(config: Path) -> None:
    added = cli(config, "user", "add", "alice", "--role", "admin", input=f"{PASSWORD}\n" * 2)
    assert added.exit_code == 0, added.output
    assert "Repeat for confirmation" in added.output
    assert PASSWORD not in added.output  # typed without echo
    assert "added admin 'alice'" in added.stderr

    short = cli(config, "user", "add", "bob", "--password-stdin", input="short\n")
    assert short.exit_code == 2 and "at least 10 characters" in short.stderr
    bad = cli(config, "user", "add", "bob smith", "--password-stdin", input=f"{PASSWORD}\n")
    assert bad.exit_code == 2 and "username: must be 1-64" in bad.stderr
    role = cli(config, "user", "add", "bob", "--role", "owner", "--password-stdin", input="x\n")
    assert role.exit_code == 2 and "role: must be one of viewer, admin" in role.stderr
    ok = cli(config, "user", "add", "bob", "--password-stdin", input=f"{PASSWORD}\n")
    assert ok.exit_code == 0, ok.output
    twice = cli(config, "user", "add", "BOB", "--password-stdin", input=f"{PASSWORD}\n")
    assert twice.exit_code == 1 and "already exists" in twice.stderr

    listed = cli(config, "user", "list")
    assert listed.exit_code == 0
    rows = [line.split() for line in listed.stdout.splitlines() if "alice" in line or "bob" in line]
    assert [row[1:4] for row in rows] == [
        ["alice", "│", "admin"],
        ["bob", "│", "viewer"],
    ]

    assert cli(config, "user", "passwd", "bob", "--password-stdin", input="x" * 12).exit_code == 0
    assert cli(config, "user", "role", "bob", "admin").exit_code == 0
    assert cli(config, "user", "disable", "bob").exit_code == 0
    last = cli(config, "user", "remove", "alice", "--yes")
    assert last.exit_code == 1 and "last enabled admin" in last.stderr
    assert cli(config, "user", "enable", "bob").exit_code == 0
    assert cli(config, "user", "remove", "bob", input="n\n").exit_code == 1  # declined
    assert cli(config, "user", "remove", "bob", "--yes").exit_code == 0
    missing = cli(config, "user", "remove", "bob", "--yes")
    assert missing.exit_code == 1 and "no user 'bob'" in missing.stderr
    assert "bob" not in cli(config, "user", "list").stdout

    assert audit_rows(config) == [
        (ACTOR, audit.USER_ADD, "alice"),
        (ACTOR, audit.USER_ADD, "bob"),
        (ACTOR, audit.USER_PASSWD, "bob"),
        (ACTOR, audit.USER_ROLE, "bob"),
        (ACTOR, audit.USER_DISABLE, "bob"),
        (ACTOR, audit.USER_ENABLE, "bob"),
        (ACTOR, audit.USER_REMOVE, "bob"),
    ]


def test_bad_config_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "sitepulse.yaml"
    path.write_text("storage: {path: 3, colour: blue}\n")
    result = cli(path, "user", "list")
    assert result.exit_code == 2 and "storage.colour: unknown key" in result.stderr


@pytest.fixture
def live(config: Path, http_client: httpx.Client) -> Iterator[AuthServer]:
    """A server on the config's data folder; the CLI writes the same file meanwhile."""
    clock = ManualClock(system_clock())
    db = AuthDB.in_folder(config.parent / "data", clock=clock)
    limiter = SignInLimiter(clock=clock)
    with serve(build_app(db, limiter)) as port:
        yield AuthServer(port, db, clock, limiter, http_client)
    db.close()


def test_cli_tokens_work_against_a_running_server(config: Path, live: AuthServer) -> None:
    assert cli(config, "user", "add", "alice", "--password-stdin", input=PASSWORD).exit_code == 0
    browser = live.sign_in("alice")

    created = cli_process(config, "token", "create", "ci", "--user", "alice")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("spt_") and "shown only now" in created.stderr
    bearer = {"Authorization": f"Bearer {secret}"}
    thing = live.request("GET", "/api/v1/thing", headers=bearer)
    assert thing.json() == {"user": "alice", "role": "viewer", "via": "token"}

    too_high = cli(config, "token", "create", "ops", "--user", "alice", "--role", "admin")
    assert too_high.exit_code == 2 and "cannot exceed the owner's role" in too_high.stderr
    listed = cli(config, "token", "list")
    assert secret[:8] in listed.stdout and secret not in listed.stdout

    revoked = cli_process(config, "token", "revoke", "ci")
    assert revoked.returncode == 0, revoked.stderr
    assert live.request("GET", "/api/v1/thing", headers=bearer).status_code == 401
    assert "ci" not in cli(config, "token", "list").stdout
    assert "ci" in cli(config, "token", "list", "--all").stdout
    again = cli(config, "token", "revoke", "ci")
    assert again.exit_code == 1 and "no live token 'ci'" in again.stderr

    # A password changed from the CLI ends the browser's session on the server.
    assert browser.request("GET", "/").status_code == 200
    changed = cli(config, "user", "passwd", "alice", "--password-stdin", input="y" * 12)
    assert changed.exit_code == 0
    assert "1 session(s) ended" in changed.stderr
    assert browser.request("GET", "/").status_code == 303

    rows = audit_rows(config)
    assert (ACTOR, audit.TOKEN_CREATE, "alice/ci") in rows
    assert (ACTOR, audit.TOKEN_REVOKE, "alice/ci") in rows
    assert ("alice", audit.SIGNIN, "alice") in rows
