"""`sitepulse user ...` and `sitepulse token ...`: manage sign-in users and API tokens.

They write the auth database in the data folder directly (SQLite allows it while the
server runs) and record every change in the audit log as "cli:<os user>".
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sitepulse.auth.db import AuthDB, AuthDBError
from sitepulse.auth.errors import AuthError, InvalidInput
from sitepulse.auth.passwords import check_password
from sitepulse.auth.tokens import Tokens
from sitepulse.auth.users import Users, check_role, check_username
from sitepulse.cli.options import ConfigOption, settings_or_exit
from sitepulse.clock import iso_ms

user_app = typer.Typer(no_args_is_help=True, help="Manage the users who sign in to the UI.")
token_app = typer.Typer(no_args_is_help=True, help="Manage API tokens for the JSON API.")

err = Console(stderr=True, emoji=False, highlight=False)

RoleOption = Annotated[str, typer.Option("--role", "-r", help="viewer or admin")]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin"),
]


def cli_actor() -> str:
    """How the audit log names a change made from the command line."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment or passwd database
        who = "unknown"
    return f"cli:{who}"


@contextmanager
def _auth_db(config: Path | None) -> Iterator[AuthDB]:
    settings = settings_or_exit(config, err)
    try:
        db = AuthDB.in_folder(settings.storage.path)
    except AuthDBError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from exc
    try:
        yield db
    except InvalidInput as exc:
        err.print(f"{exc.field}: {exc.message}", markup=False)
        raise typer.Exit(2) from exc
    except AuthError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from exc
    finally:
        db.close()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
    except InvalidInput as exc:
        err.print(f"{exc.field}: {exc.message}", markup=False)
        raise typer.Exit(2) from exc
    return password


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="1-64 of letters, digits and _ . @ -")],
    role: RoleOption = "viewer",
    password_stdin: PasswordStdin = False,
    config: ConfigOption = None,
) -> None:
    """Add a user; the password is asked for twice (hidden) unless --password-stdin."""
    try:
        check_username(username)
        check_role(role)
    except InvalidInput as exc:
        err.print(f"{exc.field}: {exc.message}", markup=False)
        raise typer.Exit(2) from exc
    with _auth_db(config) as db:
        users = Users(db)
        if users.get(username) is not None:
            err.print(f"user {username!r} already exists", markup=False)
            raise typer.Exit(1)
        password = _read_password(password_stdin)
        user = users.add(username, password, role, actor=cli_actor())
    err.print(f"added {user.role} {user.username!r}", markup=False)


@user_app.command("list")
def user_list(config: ConfigOption = None) -> None:
    """List users with their role and state."""
    with _auth_db(config) as db:
        found = Users(db).all()
    table = Table("username", "role", "state", "created")
    for user in found:
        state = "disabled" if user.disabled else "enabled"
        table.add_row(user.username, user.role, state, iso_ms(user.created_at))
    Console(emoji=False, highlight=False).print(table)


@user_app.command("remove")
def user_remove(
    username: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    config: ConfigOption = None,
) -> None:
    """Remove a user, ending their sessions and deleting their API tokens."""
    if not yes:
        typer.confirm(f"Remove {username!r} and their API tokens?", abort=True)
    with _auth_db(config) as db:
        Users(db).remove(username, actor=cli_actor())
    err.print(f"removed {username!r}", markup=False)


@user_app.command("passwd")
def user_passwd(
    username: str, password_stdin: PasswordStdin = False, config: ConfigOption = None
) -> None:
    """Set a user's password; their sessions end."""
    with _auth_db(config) as db:
        users = Users(db)
        if users.get(username) is None:
            err.print(f"no user {username!r}", markup=False)
            raise typer.Exit(1)
        password = _read_password(password_stdin)
        ended = users.set_password(username, password, actor=cli_actor())
    err.print(f"password changed for {username!r}; {ended} session(s) ended", markup=False)


@user_app.command("role")
def user_role(
    username: str,
    role: Annotated[str, typer.Argument(help="viewer or admin")],
    config: ConfigOption = None,
) -> None:
    """Change a user's role (it applies to their sessions and tokens at once)."""
    with _auth_db(config) as db:
        Users(db).set_role(username, role, actor=cli_actor())
    err.print(f"{username!r} is now a {role}", markup=False)


@user_app.command("disable")
def user_disable(username: str, config: ConfigOption = None) -> None:
    """Stop a user from signing in; ends their sessions and suspends their tokens."""
    with _auth_db(config) as db:
        Users(db).set_disabled(username, True, actor=cli_actor())
    err.print(f"disabled {username!r}", markup=False)


@user_app.command("enable")
def user_enable(username: str, config: ConfigOption = None) -> None:
    """Let a disabled user sign in again."""
    with _auth_db(config) as db:
        Users(db).set_disabled(username, False, actor=cli_actor())
    err.print(f"enabled {username!r}", markup=False)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A label, unique among the user's live tokens")],
    user: Annotated[str, typer.Option("--user", "-u", help="The owner")],
    role: RoleOption = "viewer",
    config: ConfigOption = None,
) -> None:
    """Create a token and print it (only this once) on stdout."""
    with _auth_db(config) as db:
        new = Tokens(db).create(user, name, role, actor=cli_actor())
    err.print(
        f"token {new.info.name!r} (id {new.info.id}, {new.info.role}) for {new.info.username!r};"
        " it is shown only now:",
        markup=False,
    )
    typer.echo(new.secret)


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this owner's")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include revoked tokens")] = False,
    config: ConfigOption = None,
) -> None:
    """List tokens (never the secret: only its first characters)."""
    with _auth_db(config) as db:
        found = Tokens(db).all(user, include_revoked=all_)
    table = Table("id", "name", "user", "role", "prefix", "created", "last used", "revoked")
    for token in found:
        table.add_row(
            str(token.id),
            token.name,
            token.username,
            token.role,
            token.prefix + "…",
            iso_ms(token.created_at),
            iso_ms(token.last_used_at) or "never",
            iso_ms(token.revoked_at) or "",
        )
    Console(emoji=False, highlight=False, width=200).print(table)


@token_app.command("revoke")
def token_revoke(
    name_or_id: Annotated[str, typer.Argument(help="The token's id, or its name")],
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="The owner, when names clash")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a token; requests using it are refused from now on."""
    with _auth_db(config) as db:
        tokens = Tokens(db)
        found = tokens.find(name_or_id, user)
        tokens.revoke(found.id, actor=cli_actor())
    err.print(f"revoked token {found.name!r} (id {found.id}) of {found.username!r}", markup=False)
