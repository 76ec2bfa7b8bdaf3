"""The audit log: who changed what, when, and from where."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sitepulse.auth.db import AuthDB

# The actions the auth package itself records; the UI adds its own ("funnel.save", ...).
USER_ADD: Final = "user.add"
USER_REMOVE: Final = "user.remove"
USER_PASSWD: Final = "user.passwd"
USER_ROLE: Final = "user.role"
USER_DISABLE: Final = "user.disable"
USER_ENABLE: Final = "user.enable"
TOKEN_CREATE: Final = "token.create"
TOKEN_REVOKE: Final = "token.revoke"
SIGNIN: Final = "session.signin"
SIGNIN_FAILED: Final = "session.signin_failed"
SIGNOUT: Final = "session.signout"

# Targets and addresses may come from the request (a guessed username): keep rows small.
MAX_FIELD_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts: int
    actor: str
    action: str
    target: str
    address: str
    detail: dict[str, Any] = field(default_factory=dict)


class AuditLog:
    """Append and read audit entries."""

    def __init__(self, db: AuthDB) -> None:
        self._db = db

    def record(
        self,
        actor: str,
        action: str,
        target: str = "",
        detail: Mapping[str, Any] | None = None,
        address: str = "",
    ) -> None:
        """Append one entry, stamped with the database's clock."""
        with self._db.transaction() as conn:
            record_in(conn, self._db.clock(), actor, action, target, detail, address)

    def recent(
        self, limit: int = 100, offset: int = 0, *, action: str | None = None
    ) -> list[AuditEntry]:
        """Entries newest first; optionally only one action."""
        sql = "SELECT id, ts, actor, action, target, address, detail FROM audit_log"
        args: list[Any] = []
        if action is not None:
            sql += " WHERE action = ?"
            args.append(action)
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
        args += [max(0, limit), max(0, offset)]
        return [
            AuditEntry(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))
            for row in self._db.query(sql, args)
        ]

    def actions(self) -> list[str]:
        """Every action name the log holds."""
        return [str(row[0]) for row in self._db.query("SELECT DISTINCT action FROM audit_log")]

    def prune(self, before_ms: int) -> int:
        """Delete entries older than `before_ms`; returns how many."""
        return self._db.execute("DELETE FROM audit_log WHERE ts < ?", (before_ms,))


def record_in(
    conn: sqlite3.Connection,
    ts: int,
    actor: str,
    action: str,
    target: str = "",
    detail: Mapping[str, Any] | None = None,
    address: str = "",
) -> None:
    """Append one entry inside a transaction the caller holds, so change and record commit
    together."""
    conn.execute(
        "INSERT INTO audit_log (ts, actor, action, target, detail, address)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            ts,
            actor[:MAX_FIELD_CHARS],
            action[:MAX_FIELD_CHARS],
            target[:MAX_FIELD_CHARS],
            json.dumps(dict(detail or {}), sort_keys=True, default=str),
            address[:MAX_FIELD_CHARS],
        ),
    )
