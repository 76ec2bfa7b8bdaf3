"""The single writer: a bounded queue, group commit to the journal, idempotency.

Request handlers submit batches and await a future; one thread drains the
queue, drops duplicates, appends everything it took to the journal as one
fsync'd frame, and then resolves the futures. A 2xx therefore always follows
a durable write, and one fsync serves every request that arrived meanwhile.
The loader (store/loader.py) moves the frames into the store in large
transactions on its own thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from sitepulse.clock import Clock
from sitepulse.model.records import StoredEvent, StoredLead
from sitepulse.store.base import Store
from sitepulse.store.journal import Journal, JournalError
from sitepulse.store.loader import Loader, LoadObserver

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
    """Event ids seen within a time window, in bounded memory.

    Two generations: ids go into the current one; when it holds half the
    bound or spans half the window it becomes the previous one and the old
    previous one is dropped. An id is remembered for at least half the window
    (and half the bound), at most all of it. Ids are kept as 64-bit ints taken
    from the UUID (random bits for v4): ~45 bytes each instead of ~190 for
    bytes keys in a dict, and a chance of a false duplicate around 1e-9 even
    at the full bound.
    """

    def __init__(self, window_ms: int, max_ids: int) -> None:
        self.window_ms = window_ms
        self.max_ids = max_ids
        self._current: set[int] = set()
        self._previous: set[int] = set()
        self._current_since = -1

    @staticmethod
    def _key(event_id: bytes) -> int:
        return int.from_bytes(event_id[8:], "little") ^ int.from_bytes(event_id[:8], "little")

    def __contains__(self, event_id: bytes) -> bool:
        key = self._key(event_id)
        return key in self._current or key in self._previous

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def add(self, event_id: bytes, received_at: int) -> None:
        if self._current_since < 0:
            self._current_since = received_at
        self._current.add(self._key(event_id))

    def expire(self, now_ms: int) -> None:
        if len(self._current) >= self.max_ids // 2 or (
            self._current_since >= 0 and now_ms - self._current_since >= self.window_ms // 2
        ):
            self._previous = self._current
            self._current = set()
            self._current_since = -1


CommitObserver = Callable[[WriteResult, float], None]


class Writer:
    """Owns all writes. Thread-safe `submit`; one journal thread, one loader thread."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        *,
        clock: Clock,
        max_queue_events: int,
        commit_max_events: int,
        dedupe_window_ms: int,
        dedupe_max_ids: int,
        on_commit: CommitObserver | None = None,
        on_error: Callable[[Exception], None] | None = None,
        load_interval_ms: int = 500,
        session_refresh_ms: int = 5000,
        on_load: Callable[[int, float], None] | None = None,
        observers: Sequence[LoadObserver] = (),
    ) -> None:
        self._store = store
        self._journal = journal
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
        self._loader = Loader(
            store,
            journal,
            interval_ms=load_interval_ms,
            max_events=commit_max_events,
            session_refresh_ms=session_refresh_ms,
            id_window_ms=dedupe_window_ms,
            clock=clock,
            observers=observers,
            on_load=on_load,
            on_error=on_error,
        )
        self.commits = 0
        self._recovered = False

    @property
    def queued_events(self) -> int:
        return self._queued_events

    @property
    def unloaded_events(self) -> int:
        return self._loader.buffered_events

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._loader.alive

    def recover(self) -> None:
        """Replay what the store missed and load recent ids for idempotency."""
        if self._recovered:
            return
        now = self._clock()
        self._loader.recover(_decode_frame, now - 15 * 60_000)
        for event_id, received_at in reversed(
            self._store.recent_event_ids(now - self._recent.window_ms, self._recent.max_ids)
        ):
            self._recent.add(event_id, received_at)
        self._recovered = True

    def start(self) -> None:
        """Recover (if not done yet), then start the journal and loader threads."""
        self.recover()
        self._loader.start()
        self._thread = threading.Thread(target=self._run, name="sitepulse-writer", daemon=True)
        self._thread.start()

    def submit(
        self, events: Sequence[StoredEvent], leads: Sequence[StoredLead] = ()
    ) -> asyncio.Future[WriteResult]:
        """Queue a batch; the returned future resolves once it is durable."""
        loop = asyncio.get_running_loop()
        size = len(events) + len(leads)
        with self._cond:
            if self._stopping:
                raise WriterStopped("the writer is stopping")
            # The bound covers rows waiting for the journal and rows waiting for
            # the store: a stalled loader turns into 429s, never into memory.
            pending = self._queued_events + self._loader.buffered_events
            if pending + size > self.max_queue_events and pending > 0:
                raise QueueFull(f"{pending} events are waiting to be written")
            future: asyncio.Future[WriteResult] = loop.create_future()
            self._queue.append(_Pending(events, leads, loop, future))
            self._queued_events += size
            self._cond.notify()
        return future

    @property
    def analysed_offset(self) -> int:
        """Moves when rows become visible to the analyses (see `Loader.analysed_offset`)."""
        return self._loader.analysed_offset

    def flush(self, timeout: float = 10.0, *, sessions: bool = False) -> bool:
        """Block until everything acknowledged so far is visible to queries.

        With `sessions`, the derived sessions table is brought up to date too.
        """
        return self._loader.flush(self._journal.end, timeout, sessions=sessions)

    def stop(self, timeout: float = 60.0) -> None:
        """Journal what is queued, load everything, then stop both threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._loader.stop(timeout)
        self._journal.close()

    def _take(self) -> list[_Pending]:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            taken: list[_Pending] = []
            count = 0
            while self._queue and (not taken or count < self._commit_max):
                item = self._queue.popleft()
                taken.append(item)
                count += len(item.events) + len(item.leads)
            self._queued_events -= count
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if not taken:
                return  # stopping and drained
            self._commit(taken)

    def _commit(self, taken: list[_Pending]) -> None:
        results = [WriteResult() for _ in taken]
        events: list[StoredEvent] = []
        leads: list[StoredLead] = []
        batch_ids: set[bytes] = set()
        seen_leads: set[bytes] = set()
        recent = self._recent
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
                # Its `lead` event carries the same id, so `recent` knows sent leads.
                if lead.lead_id in recent or lead.lead_id in seen_leads:
                    result.duplicate_leads += 1
                    continue
                seen_leads.add(lead.lead_id)
                leads.append(lead)
                result.stored_leads.append(lead)
        started = time.perf_counter()
        if events or leads:
            try:
                offset = self._journal.append(_encode_frame((events, leads)))
            except JournalError as exc:
                self._fail(taken, exc)
                return
            self._loader.add(offset, events, leads)
        elapsed = time.perf_counter() - started
        self.commits += 1
        now = self._clock()
        for event in events:
            recent.add(event.event_id, event.received_at)
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


_encode_frame = msgspec.msgpack.Encoder().encode
_decode_frame = msgspec.msgpack.Decoder(tuple[list[StoredEvent], list[StoredLead]]).decode


def _resolve(future: asyncio.Future[WriteResult], result: WriteResult) -> None:
    if not future.done():
        future.set_result(result)


def _reject(future: asyncio.Future[WriteResult], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
