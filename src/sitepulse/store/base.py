"""The storage protocol between ingest/analysis and a backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sitepulse.model.records import LeadScoreRow, StoredEvent, StoredLead


class StoreError(Exception):
    """A backend could not complete an operation."""


class Store(Protocol):
    """What ingest, analysis and the CLI need from a backend."""

    def migrate(self) -> list[str]:
        """Apply pending schema migrations; return the versions applied."""
        ...

    def write(self, events: Sequence[StoredEvent], leads: Sequence[StoredLead]) -> None:
        """Commit events and leads in one durable transaction."""
        ...

    def refresh_sessions(self, session_ids: Sequence[int], since_ms: int) -> None:
        """Recompute the derived sessions rows of `session_ids` from their events."""
        ...

    def sessions_received_since(self, since_ms: int) -> list[tuple[int, int]]:
        """(session_id, first ts) of sessions with events received since `since_ms`."""
        ...

    def load(
        self, events: Sequence[StoredEvent], leads: Sequence[StoredLead], journal_offset: int
    ) -> None:
        """Commit rows together with the journal offset they reach."""
        ...

    def journal_offset(self) -> int:
        """How far the ingest journal has been loaded."""
        ...

    def save_lead_scores(self, rows: Sequence[LeadScoreRow]) -> None:
        """Write scores back onto their leads (from the loader thread)."""
        ...

    def housekeeping(self, now_ms: int, id_window_ms: int) -> None:
        """Periodic upkeep from the loader: expire old event ids, checkpoint when due."""
        ...

    def last_session_seq(self) -> int:
        """The highest sequential session id stored, 0 for none."""
        ...

    def checkpoint(self) -> None:
        """Make everything committed part of the main file."""
        ...

    def recent_event_ids(self, since_ms: int, limit: int) -> list[tuple[bytes, int]]:
        """(event_id, received_at) of events received since `since_ms`, newest first."""
        ...

    def daily_salt(self, day: str, new_salt: bytes, keep_days: int) -> bytes:
        """The salt for `day` (ISO date), creating it from `new_salt`; forget older ones."""
        ...

    def site_token(self, site: str, new_token: str) -> str:
        """The stored secret token of `site`, creating it from `new_token`."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query on a reader connection."""
        ...

    def close(self) -> None: ...
