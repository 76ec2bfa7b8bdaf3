"""DuckDB backend: one data folder, one file, Arrow inserts, versioned migrations."""

from __future__ import annotations

import importlib.resources
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from sitepulse.model.records import EVENT_COLUMNS, LEAD_COLUMNS, StoredEvent, StoredLead
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


def _column(values: list[Any], dtype: pa.DataType | None) -> pa.Array:
    if dtype is _UUID:
        return pa.ExtensionArray.from_storage(_UUID, pa.array(values, pa.binary(16)))
    if dtype is None:
        return pa.array(values, pa.string())
    return pa.array(values, dtype)


def _table(rows: Sequence[Any], columns: tuple[str, ...], types: dict[str, Any]) -> pa.Table:
    # Transposing tuples is several times faster than a getattr per cell.
    values = zip(*map(msgspec.structs.astuple, rows), strict=True)
    data = {
        name: _column(list(col), types.get(name)) for name, col in zip(columns, values, strict=True)
    }
    return pa.table(data)


_SESSION_UPSERT = """
INSERT INTO sessions
SELECT session_id, any_value(site), any_value(visitor_id), min(ts), max(ts),
       arg_min(url, ts), arg_min(path, ts), arg_min(referrer, ts), arg_min(channel, ts),
       arg_min(channel_rule, ts), arg_min(source, ts), arg_min(medium, ts),
       arg_min(utm_campaign, ts), arg_min(click_id_kind, ts), arg_min(country, ts),
       arg_min(device, ts), arg_min(browser, ts), arg_min(os, ts), bool_or(is_bot),
       count(*), count(*) FILTER (type = 'pageview'), count(*) FILTER (type = 'lead')
FROM batch_events GROUP BY session_id
ON CONFLICT (session_id) DO UPDATE SET
    started_at = least(sessions.started_at, excluded.started_at),
    last_seen = greatest(sessions.last_seen, excluded.last_seen),
    events = sessions.events + excluded.events,
    pageviews = sessions.pageviews + excluded.pageviews,
    leads = sessions.leads + excluded.leads,
    is_bot = sessions.is_bot OR excluded.is_bot
"""


class DuckDBStore:
    """The default store. The writer connection is used by one thread only."""

    def __init__(self, folder: Path, *, memory_limit_mb: int = 256, threads: int = 2) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / DB_FILE
        try:
            self._con = duckdb.connect(
                str(self.path),
                config={"memory_limit": f"{memory_limit_mb}MB", "threads": threads},
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
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            if events:
                batch_events = _table(events, EVENT_COLUMNS, _EVENT_TYPES)
                con.register("batch_events", batch_events)
                con.execute("INSERT INTO events SELECT * FROM batch_events")
                con.execute(_SESSION_UPSERT)
                con.unregister("batch_events")
            if leads:
                batch_leads = _table(leads, LEAD_COLUMNS, _LEAD_TYPES)
                con.register("batch_leads", batch_leads)
                cols = ", ".join(LEAD_COLUMNS)
                con.execute(f"INSERT INTO leads ({cols}) SELECT * FROM batch_leads")
                con.unregister("batch_leads")
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"write failed: {exc}") from exc

    def recent_event_ids(self, since_ms: int, limit: int) -> list[tuple[bytes, int]]:
        rows = self._con.execute(
            "SELECT event_id, epoch_ms(received_at) FROM events"
            " WHERE received_at >= make_timestamp(?::BIGINT * 1000)"
            " ORDER BY received_at DESC LIMIT ?",
            [since_ms, limit],
        ).fetchall()
        return [(row[0].bytes, int(row[1])) for row in rows]

    def existing_lead_ids(self, lead_ids: Sequence[bytes]) -> set[bytes]:
        if not lead_ids:
            return set()
        table = pa.table({"id": _column(list(lead_ids), _UUID)})
        self._con.register("probe_ids", table)
        try:
            rows = self._con.execute(
                "SELECT lead_id FROM leads WHERE lead_id IN (SELECT id FROM probe_ids)"
            ).fetchall()
        finally:
            self._con.unregister("probe_ids")
        return {row[0].bytes for row in rows}

    def daily_salt(self, day: str, new_salt: bytes, keep_days: int) -> bytes:
        with self._meta_lock:
            con = self._meta
            con.execute(
                "INSERT INTO salts VALUES (?::DATE, ?) ON CONFLICT DO NOTHING", [day, new_salt]
            )
            # Old salts are destroyed so past visitor hashes can never be recomputed.
            con.execute("DELETE FROM salts WHERE day < ?::DATE - ?::INTEGER", [day, keep_days])
            row = con.execute("SELECT salt FROM salts WHERE day = ?::DATE", [day]).fetchone()
        assert row is not None
        return bytes(row[0])

    def site_token(self, site: str, new_token: str) -> str:
        with self._meta_lock:
            con = self._meta
            con.execute(
                "INSERT INTO site_secrets VALUES (?, ?) ON CONFLICT DO NOTHING", [site, new_token]
            )
            row = con.execute("SELECT token FROM site_secrets WHERE site = ?", [site]).fetchone()
        assert row is not None
        return str(row[0])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._reader_lock:
            return self._reader.execute(sql, list(params)).fetchall()

    def checkpoint(self) -> None:
        """Fold the WAL into the file; skipped (not failed) while readers are busy."""
        try:
            self._con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.warning("checkpoint skipped: %s", exc)

    def close(self) -> None:
        self._meta.close()
        self._reader.close()
        self._con.close()
