"""Browser sessions: a random id in a cookie, its SHA-256 in the database."""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Final, cast

from sitepulse.auth.db import AuthDB
from sitepulse.auth.principal import Principal, Role

SESSION_COOKIE: Final = "sitepulse_session"
IDLE_TIMEOUT_MS: Final = 12 * 3_600_000
ABSOLUTE_LIFETIME_MS: Final = 7 * 86_400_000
# last_seen is written at most this often, so browsing is not one write per request.
TOUCH_INTERVAL_MS: Final = 60_000

# secrets.token_urlsafe(32) gives 43 characters; anything else is not one of ours.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just begun: the cookie value exists only here and in the browser."""

    cookie_value: str
    principal: Principal
    max_age_secs: int


def session_hash(cookie_value: str) -> str:
    # The id is 256 random bits: a fast hash suffices, and a stolen database holds no
    # usable cookie.
    return hashlib.sha256(cookie_value.encode()).hexdigest()


class Sessions:
    """Create, look up and end sessions; expiry by idle time and by absolute age."""

    def __init__(
        self,
        db: AuthDB,
        *,
        idle_timeout_ms: int = IDLE_TIMEOUT_MS,
        absolute_lifetime_ms: int = ABSOLUTE_LIFETIME_MS,
        touch_interval_ms: int = TOUCH_INTERVAL_MS,
    ) -> None:
        self._db = db
        self.idle_timeout_ms = idle_timeout_ms
        self.absolute_lifetime_ms = absolute_lifetime_ms
        self.touch_interval_ms = touch_interval_ms

    def create(
        self,
        username: str,
        *,
        address: str = "",
        user_agent: str = "",
        replaces: str | None = None,
    ) -> NewSession:
        """Begin a session for an existing, enabled user; `replaces` (an old cookie) ends."""
        cookie_value = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._db.clock()
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT username, role FROM users WHERE username = ? AND disabled = 0",
                (username,),
            ).fetchone()
            if row is None:
                raise LookupError(f"no enabled user {username!r}")
            if replaces:
                conn.execute("DELETE FROM sessions WHERE id_hash = ?", (session_hash(replaces),))
            self._purge_in(conn, now)
            conn.execute(
                "INSERT INTO sessions (id_hash, username, csrf, created_at, last_seen_at,"
                " address, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_hash(cookie_value), row[0], csrf, now, now, address, user_agent[:300]),
            )
        principal = Principal(row[0], cast(Role, row[1]), "session", csrf=csrf)
        return NewSession(cookie_value, principal, self.absolute_lifetime_ms // 1000)

    def lookup(self, cookie_value: str) -> Principal | None:
        """The principal of a live session, or None (unknown, expired, user disabled)."""
        if not _SESSION_ID.fullmatch(cookie_value):
            return None
        id_hash = session_hash(cookie_value)
        rows = self._db.query(
            "SELECT s.username, u.role, s.csrf, s.created_at, s.last_seen_at"
            " FROM sessions AS s JOIN users AS u ON u.username = s.username"
            " WHERE s.id_hash = ? AND u.disabled = 0",
            (id_hash,),
        )
        if not rows:
            return None
        username, role, csrf, created_at, last_seen_at = rows[0]
        now = self._db.clock()
        if (
            now - last_seen_at >= self.idle_timeout_ms
            or now - created_at >= self.absolute_lifetime_ms
        ):
            self._db.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
            return None
        if now - last_seen_at >= self.touch_interval_ms:
            self._db.execute(
                "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?", (now, id_hash)
            )
        return Principal(username, cast(Role, role), "session", csrf=csrf)

    def end(self, cookie_value: str) -> bool:
        """End one session (sign-out); True if it existed."""
        changed = self._db.execute(
            "DELETE FROM sessions WHERE id_hash = ?", (session_hash(cookie_value),)
        )
        return changed > 0

    def end_all(self, username: str) -> int:
        """End every session of a user; returns how many."""
        with self._db.transaction() as conn:
            return end_sessions_in(conn, username)

    def count(self, username: str) -> int:
        """How many sessions a user has, live or not yet purged."""
        rows = self._db.query("SELECT count(*) FROM sessions WHERE username = ?", (username,))
        return int(rows[0][0])

    def purge_expired(self) -> int:
        """Delete sessions past either timeout; returns how many."""
        with self._db.transaction() as conn:
            return self._purge_in(conn, self._db.clock())

    def _purge_in(self, conn: sqlite3.Connection, now: int) -> int:
        return conn.execute(
            "DELETE FROM sessions WHERE last_seen_at <= ? OR created_at <= ?",
            (now - self.idle_timeout_ms, now - self.absolute_lifetime_ms),
        ).rowcount


def end_sessions_in(conn: sqlite3.Connection, username: str) -> int:
    """End a user's sessions inside the caller's transaction (password change, removal)."""
    return conn.execute("DELETE FROM sessions WHERE username = ?", (username,)).rowcount
