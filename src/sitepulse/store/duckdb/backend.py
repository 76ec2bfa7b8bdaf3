"""DuckDB backend: one data folder, one file, Arrow inserts, versioned migrations."""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from sitepulse.model.records import (
    EVENT_COLUMNS,
    LEAD_COLUMNS,
    SEQUENTIAL_SESSION_IDS,
    LeadScoreRow,
    StoredEvent,
    StoredLead,
)
from sitepulse.store.base import StoreError

DB_FILE = "sitepulse.duckdb"
log = logging.getLogger(__name__)

_UUID = pa.uuid()
_TS = pa.timestamp("ms")
_EVENT_TYPES: dict[str, pa.DataType] = {
    "event_id": _UUID,
    "ts": _TS,
    "received_at": _TS,
    "value": pa.float64(),
    "visitor_id": pa.uint64(),
    "session_id": pa.uint64(),
    "is_bot": pa.bool_(),
    "page_seq": pa.uint16(),
}
_SCORE_TYPES: dict[str, pa.DataType] = {
    "lead_id": _UUID,
    "score": pa.float64(),
    "fit_score": pa.float64(),
    "engagement_score": pa.float64(),
    "scored_at": _TS,
    "follow_up_due": _TS,
}
_LEAD_TYPES: dict[str, pa.DataType] = {
    "lead_id": _UUID,
    "ts": _TS,
    "received_at": _TS,
    "visitor_id": pa.uint64(),
    "session_id": pa.uint64(),
    "consent": pa.bool_(),
    "is_bot": pa.bool_(),
    "is_test": pa.bool_(),
}


def _migrations() -> list[tuple[str, str]]:
    folder = importlib.resources.files("sitepulse.store.duckdb") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((entry.name.split("_", 1)[0], entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_migration() -> str:
    """The schema version this sitepulse brings a database to."""
    return _migrations()[-1][0]


def _column(values: Sequence[Any], dtype: pa.DataType | None) -> pa.Array:
    if dtype is _UUID:
        return pa.ExtensionArray.from_storage(_UUID, pa.array(values, pa.binary(16)))
    if dtype is None:
        return pa.array(values, pa.string())
    return pa.array(values, dtype)


def _table(rows: Sequence[Any], columns: tuple[str, ...], types: dict[str, Any]) -> pa.Table:
    # Transposing tuples is several times faster than a getattr per cell, and
    # pyarrow reads the transposed tuples as they are.
    values = zip(*map(msgspec.structs.astuple, rows), strict=True)
    data = {name: _column(col, types.get(name)) for name, col in zip(columns, values, strict=True)}
    return pa.table(data)


# Sessions are recomputed whole from their events, so a refresh is idempotent
# and can run as often as it likes; it never touches the acknowledgement path.
_SESSION_REFRESH = """
INSERT OR REPLACE INTO sessions
SELECT session_id, any_value(site), any_value(visitor_id), min(ts), max(ts),
       arg_min(url, ts), arg_min(path, ts), arg_min(referrer, ts), arg_min(channel, ts),
       arg_min(channel_rule, ts), arg_min(source, ts), arg_min(medium, ts),
       arg_min(utm_campaign, ts), arg_min(click_id_kind, ts), arg_min(country, ts),
       arg_min(device, ts), arg_min(browser, ts), arg_min(os, ts), bool_or(is_bot),
       count(*), count(*) FILTER (type = 'pageview'), count(*) FILTER (type = 'lead'),
       coalesce(any_value(pl.engaged_ms), 0),
       count(*) FILTER (type = 'custom' AND name = 'newsletter_signup'),
       coalesce(any_value(pl.exit_path), '')
FROM events
LEFT JOIN (
    -- the session's page loads, refreshed just before (see refresh_sessions)
    SELECT session_id, sum(engaged_ms) AS engaged_ms,
           arg_max(path, page_seq) FILTER (viewed) AS exit_path
    FROM page_loads WHERE session_id IN (SELECT id FROM touched)
    GROUP BY session_id
) AS pl USING (session_id)
WHERE ts >= make_timestamp(?::BIGINT * 1000) AND session_id IN (SELECT id FROM touched)
GROUP BY session_id
"""
# The page loads of the touched sessions, as migration 0007 first derived them (the
# migration keeps its own copy: a migration is history and must not change with this).
_PAGE_LOADS_REFRESH = """
INSERT INTO page_loads
SELECT session_id, page_seq, any_value(site), any_value(visitor_id),
       coalesce(min(ts) FILTER (type = 'pageview'), min(ts)),
       coalesce(arg_min(path, ts) FILTER (type = 'pageview'), arg_min(path, ts)),
       coalesce(arg_min(page_group, ts) FILTER (type = 'pageview'), arg_min(page_group, ts)),
       arg_min(device, ts),
       bool_or(is_bot),
       bool_or(type = 'pageview'),
       max(value) FILTER (type = 'vital' AND name = 'LCP' AND isfinite(value)),
       max(value) FILTER (type = 'vital' AND name = 'INP' AND isfinite(value)),
       max(value) FILTER (type = 'vital' AND name = 'CLS' AND isfinite(value)),
       max(value) FILTER (type = 'vital' AND name = 'FCP' AND isfinite(value)),
       max(value) FILTER (type = 'vital' AND name = 'TTFB' AND isfinite(value)),
       max(value) FILTER (type = 'engagement' AND name = 'engaged_time' AND isfinite(value)),
       arg_max(ts, value)
           FILTER (type = 'engagement' AND name = 'engaged_time' AND isfinite(value)),
       least(count(*) FILTER (type = 'click' AND name = 'download'), 65535)
FROM events
WHERE ts >= make_timestamp(?::BIGINT * 1000) AND session_id IN (SELECT id FROM touched)
  AND page_seq > 0
GROUP BY session_id, page_seq
ORDER BY session_id, page_seq
"""


# DuckDB's row-group size. Checkpointing when a whole row group has been
# appended writes each row group once; DuckDB's own WAL-size trigger fires
# mid-group, and every later checkpoint rewrites that partial group and leaves
# its old blocks free (a fifth of the file in the storage benchmark).
ROW_GROUP_ROWS = 122_880


class DuckDBStore:
    """The default store. The writer connection is used by one thread only."""

    def __init__(
        self,
        folder: Path,
        *,
        memory_limit_mb: int = 256,
        threads: int = 2,
        checkpoint_interval_secs: float = 300.0,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / DB_FILE
        self._checkpoint_interval = checkpoint_interval_secs
        self._appended = 0  # event rows since the last checkpoint
        self._last_checkpoint = time.monotonic()
        self._ids_cleared_before = 0
        try:
            self._con = duckdb.connect(
                str(self.path),
                config={
                    "memory_limit": f"{memory_limit_mb}MB",
                    "threads": threads,
                    # Checkpoints are the store's decision (see ROW_GROUP_ROWS);
                    # the WAL never grows past a row group plus the interval's rows.
                    "checkpoint_threshold": "1GB",
                },
            )
        except duckdb.IOException as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        self._reader_lock = threading.Lock()
        self._reader = self._con.cursor()
        # Salts and secrets are touched from the event loop while the writer
        # thread owns `_con`; a cursor of its own keeps them apart.
        self._meta_lock = threading.Lock()
        self._meta = self._con.cursor()

    def migrate(self) -> list[str]:
        con = self._con
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)"
        )
        done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
        applied = []
        for version, sql in _migrations():
            if version in done:
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations (version) VALUES (?)", [version])
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise StoreError(f"migration {version} failed: {exc}") from exc
            applied.append(version)
        return applied

    def write(self, events: Sequence[StoredEvent], leads: Sequence[StoredLead]) -> None:
        self._insert(events, leads, None)

    def load(
        self, events: Sequence[StoredEvent], leads: Sequence[StoredLead], journal_offset: int
    ) -> None:
        """Insert rows and record how far the journal is loaded, in one transaction."""
        self._insert(events, leads, journal_offset)

    def journal_offset(self) -> int:
        """How far the ingest journal has been loaded into this database."""
        ((loaded,),) = self._con.execute("SELECT loaded FROM journal_state").fetchall()
        return int(loaded)

    def _insert(
        self, events: Sequence[StoredEvent], leads: Sequence[StoredLead], offset: int | None
    ) -> None:
        con = self._con
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                if events:
                    con.register("batch_events", _table(events, EVENT_COLUMNS, _EVENT_TYPES))
                    con.execute("INSERT INTO events BY NAME SELECT * FROM batch_events")
                if leads:
                    con.register("batch_leads", _table(leads, LEAD_COLUMNS, _LEAD_TYPES))
                    # A lead re-sent after the idempotency window is still stored once.
                    con.execute(
                        f"INSERT OR IGNORE INTO leads ({', '.join(LEAD_COLUMNS)})"
                        " SELECT * FROM batch_leads"
                    )
                if offset is not None:
                    con.execute("UPDATE journal_state SET loaded = ?", [offset])
                con.execute("COMMIT")
                self._appended += len(events)
            except duckdb.Error:
                con.execute("ROLLBACK")
                raise
            finally:
                if events:
                    con.unregister("batch_events")
                if leads:
                    con.unregister("batch_leads")
        except duckdb.Error as exc:
            raise StoreError(f"write failed: {exc}") from exc
        if self._appended >= ROW_GROUP_ROWS:
            self.checkpoint()

    def housekeeping(self, now_ms: int, id_window_ms: int) -> None:
        """Clear event ids older than the dedupe window; checkpoint when one is due."""
        before = now_ms - id_window_ms
        # Clearing in ten-minute steps touches each row group a few times, not constantly.
        if before - self._ids_cleared_before >= 600_000:
            self.expire_event_ids(before)
        if self._appended and time.monotonic() - self._last_checkpoint >= self._checkpoint_interval:
            self.checkpoint()

    def expire_event_ids(self, before_ms: int) -> None:
        """Clear the idempotency key of events received before `before_ms`."""
        try:
            self._con.execute(
                "UPDATE events SET event_id = NULL"
                " WHERE received_at < make_timestamp(?::BIGINT * 1000) AND event_id IS NOT NULL",
                [before_ms],
            )
        except duckdb.Error as exc:
            raise StoreError(f"clearing old event ids failed: {exc}") from exc
        self._ids_cleared_before = before_ms

    def last_session_seq(self) -> int:
        """The highest sequential session id stored (see enrich/sessions.py)."""
        ((found,),) = self._con.execute(
            "SELECT coalesce(max(session_id), 0) FROM events WHERE session_id < ?",
            [SEQUENTIAL_SESSION_IDS],
        ).fetchall()
        return int(found)

    def save_lead_scores(self, rows: Sequence[LeadScoreRow]) -> None:
        """Write scores back onto their leads."""
        if not rows:
            return
        table = _table(rows, LeadScoreRow.__struct_fields__, _SCORE_TYPES)
        con = self._con
        con.register("scored", table)
        try:
            con.execute(
                "UPDATE leads SET score = s.score, tier = s.tier, fit_score = s.fit_score,"
                " engagement_score = s.engagement_score, score_breakdown = s.breakdown::JSON,"
                " score_model = s.model, scored_at = s.scored_at, follow_up_due = s.follow_up_due"
                " FROM scored s WHERE leads.lead_id = s.lead_id"
            )
        except duckdb.Error as exc:
            raise StoreError(f"saving lead scores failed: {exc}") from exc
        finally:
            con.unregister("scored")

    def refresh_sessions(self, session_ids: Sequence[int], since_ms: int) -> None:
        """Recompute the sessions and page_loads rows of `session_ids` from events at or after
        `since_ms`, in one transaction."""
        if not session_ids:
            return
        con = self._con
        con.register("touched", pa.table({"id": pa.array(session_ids, pa.uint64())}))
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM page_loads WHERE session_id IN (SELECT id FROM touched)")
            con.execute(_PAGE_LOADS_REFRESH, [since_ms])
            con.execute(_SESSION_REFRESH, [since_ms])
            con.execute("COMMIT")
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise StoreError(f"session refresh failed: {exc}") from exc
        finally:
            con.unregister("touched")

    def sessions_received_since(self, since_ms: int) -> list[tuple[int, int]]:
        """(session_id, first ts) of sessions with events received since `since_ms`."""
        rows = self._con.execute(
            "SELECT session_id, epoch_ms(min(ts)) FROM events"
            " WHERE received_at >= make_timestamp(?::BIGINT * 1000) AND session_id <> 0"
            " GROUP BY session_id",
            [since_ms],
        ).fetchall()
        return [(int(r[0]), int(r[1])) for r in rows]

    def recent_event_ids(self, since_ms: int, limit: int) -> list[tuple[bytes, int]]:
        rows = self._con.execute(
            "SELECT event_id, epoch_ms(received_at) FROM events"
            " WHERE received_at >= make_timestamp(?::BIGINT * 1000) AND event_id IS NOT NULL"
            " ORDER BY received_at DESC LIMIT ?",
            [since_ms, limit],
        ).fetchall()
        return [(row[0].bytes, int(row[1])) for row in rows]

    def daily_salt(self, day: str, new_salt: bytes, keep_days: int) -> bytes:
        with self._meta_lock:
            con = self._meta
            con.execute(
                "INSERT INTO salts VALUES (?::DATE, ?) ON CONFLICT DO NOTHING", [day, new_salt]
            )
            # Old salts are destroyed so past visitor hashes can never be recomputed.
            con.execute("DELETE FROM salts WHERE day < ?::DATE - ?::INTEGER", [day, keep_days])
            # fetchall drains the result: an undrained cursor keeps its transaction
            # open, and an open transaction blocks every checkpoint.
            (row,) = con.execute("SELECT salt FROM salts WHERE day = ?::DATE", [day]).fetchall()
        return bytes(row[0])

    def site_token(self, site: str, new_token: str) -> str:
        with self._meta_lock:
            con = self._meta
            con.execute(
                "INSERT INTO site_secrets VALUES (?, ?) ON CONFLICT DO NOTHING", [site, new_token]
            )
            (row,) = con.execute("SELECT token FROM site_secrets WHERE site = ?", [site]).fetchall()
        return str(row[0])

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for a component on another thread (e.g. the outbox)."""
        return self._con.cursor()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._reader_lock:
            return self._reader.execute(sql, list(params)).fetchall()

    def checkpoint(self) -> None:
        """Fold the WAL into the file; skipped (not failed) while readers are busy."""
        try:
            self._con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.warning("checkpoint skipped: %s", exc)
            return
        self._appended = 0
        self._last_checkpoint = time.monotonic()

    def close(self) -> None:
        self._meta.close()
        self._reader.close()
        self._con.close()
