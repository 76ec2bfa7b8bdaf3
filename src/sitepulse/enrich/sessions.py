"""Server-side sessionization: cookieless, bounded, explainable.

A visitor's events belong to one session until 30 minutes pass without an
event, the UTC day changes (the visitor id changes with the salt anyway), or
a page view arrives from a new traffic source (external referrer or campaign
parameters that differ from the session's) — the rule Universal Analytics
used, which keeps campaign attribution honest.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sitepulse.enrich.channel import ChannelDecision
from sitepulse.enrich.landing import Landing
from sitepulse.enrich.privacy import hash64


@dataclass(slots=True)
class SessionState:
    """What later events of a session inherit from its landing."""

    session_id: int
    last_ts: int
    day: int
    decision: ChannelDecision
    landing: Landing
    source_key: tuple[str, ...]


class SessionTracker:
    """Maps visitors (or explicit session ids) to their open session; LRU-bounded."""

    def __init__(self, timeout_ms: int, max_entries: int) -> None:
        self.timeout_ms = timeout_ms
        self.max_entries = max_entries
        self._open: OrderedDict[tuple[str, int], SessionState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def get(self, key: tuple[str, int]) -> SessionState | None:
        return self._open.get(key)

    def current(
        self, key: tuple[str, int], ts: int, source_key: tuple[str, ...] | None
    ) -> SessionState | None:
        """The open session for `key` at `ts`, or None when a new one must start."""
        state = self._open.get(key)
        if state is None:
            return None
        if ts - state.last_ts > self.timeout_ms or ts // 86_400_000 != state.day:
            return None
        if source_key is not None and source_key != state.source_key:
            return None
        if ts > state.last_ts:
            state.last_ts = ts
        self._open.move_to_end(key)
        return state

    def start(
        self,
        key: tuple[str, int],
        ts: int,
        decision: ChannelDecision,
        landing: Landing,
        source_key: tuple[str, ...],
        session_id: int | None = None,
    ) -> SessionState:
        """Open a session; its id derives from the visitor and start time unless given."""
        sid = (
            session_id
            if session_id is not None
            else hash64(
                b"session", key[0].encode(), key[1].to_bytes(8, "little"), ts.to_bytes(8, "little")
            )
        )
        state = SessionState(sid, ts, ts // 86_400_000, decision, landing, source_key)
        self._open[key] = state
        self._open.move_to_end(key)
        while len(self._open) > self.max_entries:
            self._open.popitem(last=False)
        return state
