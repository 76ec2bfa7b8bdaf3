"""The single writer: a bounded queue, group commit, idempotency.

Request handlers submit batches and await a future; one thread drains the
queue, drops duplicates, commits everything it took in one transaction and
then resolves the futures. A 2xx therefore always follows a commit, and one
fsync serves every request that arrived while the previous commit ran.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sitepulse.clock import Clock
from sitepulse.model.records import StoredEvent, StoredLead
from sitepulse.store.base import Store, StoreError

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The bounded ingest queue cannot take this batch now; retry later."""


class WriterStopped(Exception):
    """The writer is shutting down and accepts nothing more."""


@dataclass(slots=True)
class WriteResult:
    """What became of a submitted batch once its commit finished."""

    stored_events: list[StoredEvent] = field(default_factory=list)
    duplicate_events: int = 0
    stored_leads: list[StoredLead] = field(default_factory=list)
    duplicate_leads: int = 0


@dataclass(slots=True)
class _Pending:
    events: Sequence[StoredEvent]
    leads: Sequence[StoredLead]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[WriteResult]


class RecentIds:
    """Event ids seen within a time window, bounded in count (oldest forgotten first)."""

    def __init__(self, window_ms: int, max_ids: int) -> None:
        self.window_ms = window_ms
        self.max_ids = max_ids
        self._seen: dict[bytes, int] = {}

    def __contains__(self, event_id: bytes) -> bool:
        return event_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, event_id: bytes, received_at: int) -> None:
        self._seen[event_id] = received_at

    def expire(self, now_ms: int) -> None:
        seen = self._seen
        horizon = now_ms - self.window_ms
        # Insertion order is arrival order, so the oldest entries are at the front.
        while seen:
            oldest = next(iter(seen))
            if len(seen) <= self.max_ids and seen[oldest] >= horizon:
                break
            del seen[oldest]


CommitObserver = Callable[[WriteResult, float], None]


class Writer:
    """Owns all writes to the store. Thread-safe `submit`, one commit thread."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        max_queue_events: int,
        commit_max_events: int,
        dedupe_window_ms: int,
        dedupe_max_ids: int,
        on_commit: CommitObserver | None = None,
        on_error: Callable[[Exception], None] | None = None,
        session_refresh_ms: int = 5000,
    ) -> None:
        self._store = store
        self._clock = clock
        self.max_queue_events = max_queue_events
        self._commit_max = commit_max_events
        self._queue: deque[_Pending] = deque()
        self._queued_events = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._recent = RecentIds(dedupe_window_ms, dedupe_max_ids)
        self._on_commit = on_commit
        self._on_error = on_error
        self.commits = 0
        # Sessions touched since the last refresh: id -> earliest event time seen.
        self._touched: dict[int, int] = {}
        self._refresh_ms = session_refresh_ms
        self._last_refresh = time.monotonic()

    @property
    def queued_events(self) -> int:
        return self._queued_events

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Load recent ids for idempotency across restarts, then start the thread."""
        now = self._clock()
        for event_id, received_at in reversed(
            self._store.recent_event_ids(now - self._recent.window_ms, self._recent.max_ids)
        ):
            self._recent.add(event_id, received_at)
        # Sessions of the last minutes may have missed their refresh before a crash.
        for session_id, first_ts in self._store.sessions_received_since(now - 15 * 60_000):
            self._touched[session_id] = first_ts
        self._thread = threading.Thread(target=self._run, name="sitepulse-writer", daemon=True)
        self._thread.start()

    def submit(
        self, events: Sequence[StoredEvent], leads: Sequence[StoredLead] = ()
    ) -> asyncio.Future[WriteResult]:
        """Queue a batch; the returned future resolves after its commit."""
        loop = asyncio.get_running_loop()
        size = len(events) + len(leads)
        with self._cond:
            if self._stopping:
                raise WriterStopped("the writer is stopping")
            if self._queued_events + size > self.max_queue_events and self._queued_events > 0:
                raise QueueFull(f"ingest queue holds {self._queued_events} events")
            future: asyncio.Future[WriteResult] = loop.create_future()
            self._queue.append(_Pending(events, leads, loop, future))
            self._queued_events += size
            self._cond.notify()
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> list[_Pending]:
        with self._cond:
            while not self._queue and not self._stopping:
                if self._touched and self._refresh_due():
                    return []
                self._cond.wait(timeout=self._refresh_ms / 1000 if self._touched else None)
            taken: list[_Pending] = []
            count = 0
            while self._queue and (not taken or count < self._commit_max):
                item = self._queue.popleft()
                taken.append(item)
                count += len(item.events) + len(item.leads)
            self._queued_events -= count
            return taken

    def _refresh_due(self) -> bool:
        return (time.monotonic() - self._last_refresh) * 1000 >= self._refresh_ms

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken:
                self._commit(taken)
            if self._touched and (self._refresh_due() or not taken or len(self._touched) > 50_000):
                self._refresh_sessions()
            if not taken and self._stopping and not self._queue:
                return  # stopping and drained

    def _refresh_sessions(self) -> None:
        touched, self._touched = self._touched, {}
        self._last_refresh = time.monotonic()
        # Sessions never span a UTC day, so a day before the earliest event covers them.
        since = min(touched.values()) - 86_400_000
        try:
            self._store.refresh_sessions(list(touched), since)
        except StoreError as exc:
            log.error("%s", exc)
            if self._on_error is not None:
                self._on_error(exc)
            for session_id, ts in touched.items():
                self._touched.setdefault(session_id, ts)

    def _commit(self, taken: list[_Pending]) -> None:
        results = [WriteResult() for _ in taken]
        events: list[StoredEvent] = []
        leads: list[StoredLead] = []
        batch_ids: set[bytes] = set()
        recent = self._recent
        lead_ids = [lead.lead_id for item in taken for lead in item.leads]
        try:
            known_leads = self._store.existing_lead_ids(lead_ids)
        except StoreError as exc:
            self._fail(taken, exc)
            return
        for item, result in zip(taken, results, strict=True):
            for event in item.events:
                eid = event.event_id
                if eid in recent or eid in batch_ids:
                    result.duplicate_events += 1
                    continue
                batch_ids.add(eid)
                events.append(event)
                result.stored_events.append(event)
            for lead in item.leads:
                if lead.lead_id in known_leads:
                    result.duplicate_leads += 1
                    continue
                known_leads.add(lead.lead_id)
                leads.append(lead)
                result.stored_leads.append(lead)
        started = time.perf_counter()
        try:
            if events or leads:
                self._store.write(events, leads)
        except StoreError as exc:
            self._fail(taken, exc)
            return
        elapsed = time.perf_counter() - started
        self.commits += 1
        now = self._clock()
        touched = self._touched
        for event in events:
            recent.add(event.event_id, event.received_at)
            sid = event.session_id
            if sid and (sid not in touched or event.ts < touched[sid]):
                touched[sid] = event.ts
        recent.expire(now)
        for item, result in zip(taken, results, strict=True):
            item.loop.call_soon_threadsafe(_resolve, item.future, result)
        if self._on_commit is not None:
            merged = WriteResult(
                events,
                sum(r.duplicate_events for r in results),
                leads,
                sum(r.duplicate_leads for r in results),
            )
            try:
                self._on_commit(merged, elapsed)
            except Exception:
                log.exception("commit observer failed")

    def _fail(self, taken: list[_Pending], exc: Exception) -> None:
        log.error("commit failed: %s", exc)
        if self._on_error is not None:
            self._on_error(exc)
        for item in taken:
            item.loop.call_soon_threadsafe(_reject, item.future, exc)


def _resolve(future: asyncio.Future[WriteResult], result: WriteResult) -> None:
    if not future.done():
        future.set_result(result)


def _reject(future: asyncio.Future[WriteResult], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
