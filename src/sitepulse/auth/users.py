"""Users: who may sign in, with which role. Every change is audited in its transaction."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Final, cast

from argon2 import PasswordHasher

from sitepulse.auth import audit
from sitepulse.auth.db import AuthDB
from sitepulse.auth.errors import Conflict, InvalidInput, NotFound
from sitepulse.auth.passwords import DEFAULT_HASHER, hash_password, verify_password
from sitepulse.auth.principal import ROLES, Role
from sitepulse.auth.sessions import end_sessions_in

USERNAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    created_at: int
    disabled: bool


def check_username(username: str) -> str:
    """The username if valid, else InvalidInput("username", ...)."""
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidInput(
            "username", f"must be 1-64 of letters, digits and _ . @ - (got {username!r})"
        )
    return username


def check_role(role: str) -> Role:
    """The role if it is one of ROLES, else InvalidInput("role", ...)."""
    if role not in ROLES:
        raise InvalidInput("role", f"must be one of {', '.join(ROLES)} (got {role!r})")
    return role


def _user(row: tuple[Any, ...]) -> User:
    return User(row[0], cast(Role, row[1]), int(row[2]), bool(row[3]))


_COLUMNS: Final = "username, role, created_at, disabled"


class Users:
    """Add, change and remove users; check passwords at sign-in."""

    def __init__(self, db: AuthDB, *, hasher: PasswordHasher = DEFAULT_HASHER) -> None:
        self._db = db
        self._hasher = hasher

    def get(self, username: str) -> User | None:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM users WHERE username = ?", (username,))
        return _user(rows[0]) if rows else None

    def all(self) -> list[User]:
        return [_user(r) for r in self._db.query(f"SELECT {_COLUMNS} FROM users ORDER BY 1")]

    def add(
        self, username: str, password: str, role: str, *, actor: str, address: str = ""
    ) -> User:
        """Create a user; Conflict if the name is taken (in any letter case)."""
        check_username(username)
        checked_role = check_role(role)
        password_hash = hash_password(password, self._hasher)
        now = self._db.clock()
        try:
            with self._db.transaction() as conn:
                conn.execute(
                    "INSERT INTO users (username, password_hash, role, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (username, password_hash, checked_role, now),
                )
                audit.record_in(
                    conn, now, actor, audit.USER_ADD, username, {"role": checked_role}, address
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"user {username!r} already exists") from exc
        return User(username, checked_role, now, False)

    def remove(self, username: str, *, actor: str, address: str = "") -> None:
        """Delete a user, their sessions and tokens; the last enabled admin stays."""
        with self._db.transaction() as conn:
            user = self._existing(conn, username)
            self._keep_an_admin(conn, user, "remove")
            end_sessions_in(conn, user.username)
            conn.execute("DELETE FROM users WHERE username = ?", (user.username,))
            audit.record_in(
                conn, self._db.clock(), actor, audit.USER_REMOVE, user.username, None, address
            )

    def set_password(self, username: str, password: str, *, actor: str, address: str = "") -> int:
        """Change a password and end the user's sessions; returns how many ended."""
        password_hash = hash_password(password, self._hasher)
        with self._db.transaction() as conn:
            user = self._existing(conn, username)
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE username = ?",
                (password_hash, user.username),
            )
            ended = end_sessions_in(conn, user.username)
            audit.record_in(
                conn,
                self._db.clock(),
                actor,
                audit.USER_PASSWD,
                user.username,
                {"sessions_ended": ended},
                address,
            )
        return ended

    def set_role(self, username: str, role: str, *, actor: str, address: str = "") -> None:
        """Change a user's role; it applies to their sessions and tokens at once."""
        checked_role = check_role(role)
        with self._db.transaction() as conn:
            user = self._existing(conn, username)
            if checked_role != "admin":
                self._keep_an_admin(conn, user, "demote")
            conn.execute(
                "UPDATE users SET role = ? WHERE username = ?", (checked_role, user.username)
            )
            audit.record_in(
                conn,
                self._db.clock(),
                actor,
                audit.USER_ROLE,
                user.username,
                {"from": user.role, "to": checked_role},
                address,
            )

    def set_disabled(self, username: str, disabled: bool, *, actor: str, address: str = "") -> None:
        """Disable (ending sessions; tokens stop working) or re-enable a user."""
        with self._db.transaction() as conn:
            user = self._existing(conn, username)
            if disabled:
                self._keep_an_admin(conn, user, "disable")
                end_sessions_in(conn, user.username)
            conn.execute(
                "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), user.username)
            )
            action = audit.USER_DISABLE if disabled else audit.USER_ENABLE
            audit.record_in(conn, self._db.clock(), actor, action, user.username, None, address)

    def authenticate(self, username: str, password: str) -> User | None:
        """The enabled user whose password this is, else None; upgrades an outdated hash.

        Slow on purpose (argon2): call it from a worker thread, never the event loop.
        """
        rows = self._db.query(
            f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = ?", (username,)
        )
        if not rows or rows[0][3]:
            # Unknown or disabled: spend the same time as a real check.
            verify_password(None, password, self._hasher)
            return None
        user, stored_hash = _user(rows[0]), str(rows[0][4])
        ok, new_hash = verify_password(stored_hash, password, self._hasher)
        if not ok:
            return None
        if new_hash is not None:
            # Compare-and-set: a password changed meanwhile is not overwritten.
            self._db.execute(
                "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
                (new_hash, user.username, stored_hash),
            )
        return user

    def _existing(self, conn: sqlite3.Connection, username: str) -> User:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM users WHERE username = ?", (username,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no user {username!r}")
        return _user(row)

    @staticmethod
    def _keep_an_admin(conn: sqlite3.Connection, user: User, verb: str) -> None:
        if user.role != "admin" or user.disabled:
            return
        others = conn.execute(
            "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND username != ?",
            (user.username,),
        ).fetchone()[0]
        if not others:
            raise Conflict(
                f"cannot {verb} {user.username!r}: it is the last enabled admin;"
                " add another admin first"
            )
