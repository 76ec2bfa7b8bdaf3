"""Server-side sessionization: cookieless, bounded, explainable.

A visitor's events belong to one session until 30 minutes pass without an
event, the UTC day changes (the visitor id changes with the salt anyway), or
a page view arrives from a new traffic source (external referrer or campaign
parameters that differ from the session's) — the rule Universal Analytics
used, which keeps campaign attribution honest.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from sitepulse.enrich.channel import ChannelDecision
from sitepulse.enrich.landing import Landing
from sitepulse.model.records import SEQUENTIAL_SESSION_IDS

# A session remembers this many of its page-view ids, enough for every tab a
# visitor plausibly keeps sending engagement from.
_PAGE_IDS_KEPT = 32
_MAX_PAGE_SEQ = 65_535


@dataclass(slots=True)
class SessionState:
    """What later events of a session inherit from its landing."""

    session_id: int
    last_ts: int
    day: int
    decision: ChannelDecision
    landing: Landing
    source_key: tuple[str, ...]
    pages: int = 0
    # Hashes of the latest page-view ids, oldest first: the last one is page `pages`.
    # A short list of ints, not a dict of UUID strings: a tracker holds up to
    # session_cache_max of these (a dict cost ~250 bytes more per session).
    page_ids: list[int] = field(default_factory=list)

    def new_page(self, page_id: str) -> int:
        """Number a page view of this session (1, 2, ...) and remember its id."""
        if self.pages < _MAX_PAGE_SEQ:
            self.pages += 1
        ids = self.page_ids
        ids.append(hash(page_id.lower()))
        if len(ids) > _PAGE_IDS_KEPT:
            del ids[0]
        return self.pages

    def page_of(self, page_id: object) -> int:
        """The number of the page view an event names; the latest one when it names none."""
        if not isinstance(page_id, str):
            return self.pages
        ids = self.page_ids
        try:
            index = ids.index(hash(page_id.lower()))
        except ValueError:
            return 0
        return max(self.pages - (len(ids) - 1 - index), 1)


class SessionTracker:
    """Maps visitors (or explicit session ids) to their open session; LRU-bounded."""

    def __init__(self, timeout_ms: int, max_entries: int, last_id: int = 0) -> None:
        self.timeout_ms = timeout_ms
        self.max_entries = max_entries
        self._open: OrderedDict[tuple[str, int], SessionState] = OrderedDict()
        # session id -> its key, so a backend can name a session sitepulse issued.
        self._keys: dict[int, tuple[str, int]] = {}
        self.last_id = last_id

    def resume_after(self, last_id: int) -> None:
        """Continue numbering after `last_id` (the highest id already stored)."""
        self.last_id = max(self.last_id, last_id)

    def __len__(self) -> int:
        return len(self._open)

    def get(self, key: tuple[str, int]) -> SessionState | None:
        return self._open.get(key)

    def by_id(self, site: str, session_id: int) -> SessionState | None:
        """The open session of `site` with this id (as /api/v1/collect returned it)."""
        key = self._keys.get(session_id)
        if key is None or key[0] != site:
            return None
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
        """Open a session; it gets the next sequential id unless one is given."""
        if session_id is None:
            # Numbers in arrival order bit-pack to a byte or two per event; a
            # random 64-bit hash costs eight.
            self.last_id += 1
            if self.last_id >= SEQUENTIAL_SESSION_IDS:
                self.last_id = 1
            session_id = self.last_id
        sid = session_id
        state = SessionState(sid, ts, ts // 86_400_000, decision, landing, source_key)
        old = self._open.get(key)
        if old is not None:
            self._keys.pop(old.session_id, None)
        self._open[key] = state
        self._open.move_to_end(key)
        self._keys[sid] = key
        while len(self._open) > self.max_entries:
            _, evicted = self._open.popitem(last=False)
            self._keys.pop(evicted.session_id, None)
        return state
