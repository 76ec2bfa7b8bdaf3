"""The auth store: users, sessions, API tokens and the audit log in one small SQLite file.

SQLite rather than the DuckDB file because DuckDB lets only one process write its file,
and `sitepulse user add` / `sitepulse token revoke` must work while the server runs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from sitepulse.auth.errors import AuthError
from sitepulse.clock import Clock, system_clock

AUTH_DB_FILE: Final = "auth.sqlite3"

# Applied in order; PRAGMA user_version counts how many have run. Append, never edit.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        # Usernames are ASCII (see users.py) and unique regardless of case.
        """CREATE TABLE users (
            username TEXT PRIMARY KEY COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('viewer', 'admin')),
            created_at INTEGER NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE sessions (
            id_hash TEXT PRIMARY KEY,
            username TEXT NOT NULL COLLATE NOCASE
                REFERENCES users (username) ON DELETE CASCADE,
            csrf TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_seen_at INTEGER NOT NULL,
            address TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX sessions_by_user ON sessions (username)",
        """CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            username TEXT NOT NULL COLLATE NOCASE
                REFERENCES users (username) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('viewer', 'admin')),
            token_hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_used_at INTEGER,
            revoked_at INTEGER
        )""",
        # A name is reserved while its token is live; a revoked token's name can be reused.
        """CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (username, name)
            WHERE revoked_at IS NULL""",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            ts INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}',
            address TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX audit_log_by_ts ON audit_log (ts)",
    ),
)

BUSY_TIMEOUT_MS: Final = 5_000


class AuthDBError(AuthError):
    """The auth database cannot be opened or is newer than this sitepulse."""


def auth_db_path(data_folder: Path) -> Path:
    """Where the auth database lives inside a data folder (`storage.path`)."""
    return Path(data_folder) / AUTH_DB_FILE


class AuthDB:
    """One SQLite connection shared by all threads, guarded by a lock.

    Why one connection and a lock rather than one connection per thread: every auth query
    is a primary-key lookup or a one-row write (microseconds), so serialising them costs
    nothing measurable, while per-thread connections would pile up one open file per
    threadpool worker and could not be closed from the thread that shuts the server down.
    Other processes (the CLI) coordinate with us through SQLite's own locking (WAL mode
    and a busy timeout).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path
        self.clock = clock

    @classmethod
    def open(cls, path: Path, *, clock: Clock = system_clock) -> AuthDB:
        """Open (creating if needed, mode 0600) and migrate the database at `path`."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            # isolation_level=None: we issue BEGIN ourselves, so a write never waits
            # behind an implicit transaction left open by a read.
            conn = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            if created:
                # Password hashes live here: owner only, set before anything is written;
                # SQLite gives the -wal and -shm files the main file's mode. (chmod, not
                # open+close: closing any descriptor of the file would drop the POSIX
                # locks that other connections in this process hold on it.)
                os.chmod(path, 0o600)
        except (OSError, sqlite3.Error) as exc:
            raise AuthDBError(f"cannot open the auth database {path}: {exc}") from exc
        db = cls(conn, path, clock)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            db._migrate()
        except sqlite3.Error as exc:
            conn.close()
            raise AuthDBError(f"cannot prepare the auth database {path}: {exc}") from exc
        except AuthDBError:
            conn.close()
            raise
        return db

    @classmethod
    def in_folder(cls, data_folder: Path, *, clock: Clock = system_clock) -> AuthDB:
        """Open the auth database of a data folder (`Settings.storage.path`)."""
        return cls.open(auth_db_path(data_folder), clock=clock)

    @property
    def schema_version(self) -> int:
        return int(self.query("PRAGMA user_version")[0][0])

    def _migrate(self) -> None:
        with self.transaction() as conn:
            # Read inside the write transaction: two processes starting together apply once.
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise AuthDBError(
                    f"{self.path} has schema version {version}, newer than this sitepulse "
                    f"understands ({len(MIGRATIONS)}); upgrade sitepulse"
                )
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): committed on success, rolled back on error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one read statement."""
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; returns the rows changed."""
        with self._lock:
            return self._conn.execute(sql, args).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
