"""The loader: moves journalled batches into the store in large transactions.

It runs on its own thread so that a slow DuckDB transaction never delays an
acknowledgement; it also keeps the derived sessions table up to date.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sitepulse.clock import Clock, system_clock
from sitepulse.model.records import StoredEvent, StoredLead
from sitepulse.store.base import Store, StoreError
from sitepulse.store.journal import Journal

log = logging.getLogger(__name__)


class LoadObserver(Protocol):
    """Work that must run on the store's writer thread, right after rows are loaded."""

    def after_load(self, events: Sequence[StoredEvent], leads: Sequence[StoredLead]) -> None: ...

    def after_refresh(self) -> None:
        """The derived tables (sessions, page_loads) now cover every loaded row."""
        ...

    def periodic(self) -> None: ...


@dataclass(slots=True)
class _Chunk:
    offset: int
    events: list[StoredEvent]
    leads: list[StoredLead]
    at: float


class Loader:
    """Buffers journalled rows and loads them every `interval_ms` or `max_events`."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        *,
        interval_ms: int = 500,
        max_events: int = 20_000,
        session_refresh_ms: int = 5000,
        housekeeping_ms: int = 60_000,
        id_window_ms: int = 86_400_000,
        clock: Clock = system_clock,
        observers: Sequence[LoadObserver] = (),
        on_load: Callable[[int, float], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._store = store
        self._journal = journal
        self._interval = interval_ms / 1000
        self._max_events = max_events
        self._refresh = session_refresh_ms / 1000
        self._housekeeping = housekeeping_ms / 1000
        self._id_window_ms = id_window_ms
        self._clock = clock
        self._observers = tuple(observers)
        self._last_housekeeping = time.monotonic()
        self._on_load = on_load
        self._on_error = on_error
        self._cond = threading.Condition()
        self._chunks: list[_Chunk] = []
        self._buffered = 0
        self._loaded = store.journal_offset()
        self._wanted = 0  # a flush asks for everything up to this offset
        self._sessions_wanted = 0  # ... and for the sessions table to cover it
        self._sessions_through = self._loaded  # the sessions table covers rows up to here
        self._stopping = False
        self._touched: dict[int, int] = {}
        self._last_refresh = time.monotonic()
        self._thread: threading.Thread | None = None

    @property
    def loaded_offset(self) -> int:
        return self._loaded

    @property
    def buffered_events(self) -> int:
        return self._buffered

    @property
    def analysed_offset(self) -> int:
        """The journal offset the derived tables (and lead scores) cover: it moves exactly
        when what the analyses read has changed."""
        return self._sessions_through

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def recover(
        self, decode: Callable[[bytes], tuple[list[StoredEvent], list[StoredLead]]], since_ms: int
    ) -> int:
        """Load journal frames the store has not seen (after a crash); returns the row count."""
        replayed = 0
        events: list[StoredEvent] = []
        leads: list[StoredLead] = []
        end = self._loaded
        for end, payload in self._journal.read_from(self._loaded):
            chunk_events, chunk_leads = decode(payload)
            events.extend(chunk_events)
            leads.extend(chunk_leads)
            if len(events) + len(leads) >= self._max_events:
                self._store.load(events, leads, end)
                replayed += len(events) + len(leads)
                events, leads = [], []
        if events or leads or end != self._loaded:
            self._store.load(events, leads, end)
            replayed += len(events) + len(leads)
        if replayed:
            log.warning("replayed %d rows from the ingest journal", replayed)
        self._loaded = end
        self._journal.forget_before(end)
        for session_id, first_ts in self._store.sessions_received_since(since_ms):
            self._touched[session_id] = first_ts
        return replayed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sitepulse-loader", daemon=True)
        self._thread.start()

    def add(self, offset: int, events: list[StoredEvent], leads: list[StoredLead]) -> None:
        with self._cond:
            self._chunks.append(_Chunk(offset, events, leads, time.monotonic()))
            self._buffered += len(events) + len(leads)
            if self._buffered >= self._max_events:
                self._cond.notify_all()

    def flush(self, offset: int, timeout: float, *, sessions: bool = False) -> bool:
        """Wait until everything journalled up to `offset` is in the store.

        With `sessions`, also until the derived sessions table covers it (what
        the analyses read), instead of the next periodic refresh.
        """
        deadline = time.monotonic() + timeout

        def done() -> bool:
            return self._loaded >= offset and (not sessions or self._sessions_through >= offset)

        with self._cond:
            self._wanted = max(self._wanted, offset)
            if sessions:
                self._sessions_wanted = max(self._sessions_wanted, offset)
            self._cond.notify_all()
            while not done() and self.alive:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return done()

    def stop(self, timeout: float = 60.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _due(self) -> bool:
        if not self._chunks:
            return False
        return (
            self._stopping
            or self._buffered >= self._max_events
            or self._wanted > self._loaded
            or time.monotonic() - self._chunks[0].at >= self._interval
        )

    def _run(self) -> None:
        # Loading can wait a few milliseconds; acknowledgements should not. On
        # Linux a thread has its own nice value, so the scheduler favours the
        # request thread when both want the same core.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while True:
            with self._cond:
                while not self._due() and not self._stopping:
                    wait = self._interval
                    if self._touched:
                        wait = min(wait, self._refresh)
                    self._cond.wait(wait)
                    if self._touched and time.monotonic() - self._last_refresh >= self._refresh:
                        break
                    if self._sessions_wanted > self._sessions_through:
                        break
                chunks, self._chunks = self._chunks, []
                self._buffered = 0
                stopping = self._stopping
            if chunks:
                self._load(chunks)
            wanted = self._sessions_wanted > self._sessions_through
            if self._touched and (
                stopping or wanted or time.monotonic() - self._last_refresh >= self._refresh
            ):
                self._refresh_sessions()
            if not self._touched and self._sessions_through < self._loaded:
                # Before flush(sessions=True) returns: what observers derive from the
                # sessions and page loads (lead scores) is part of "up to date".
                for observer in self._observers:
                    self._observe(observer.after_refresh)
                with self._cond:
                    self._sessions_through = self._loaded
                    self._cond.notify_all()
            if stopping and not chunks:
                return
            if time.monotonic() - self._last_housekeeping >= self._housekeeping:
                self._tidy()

    def _load(self, chunks: list[_Chunk]) -> None:
        events = [e for c in chunks for e in c.events]
        leads = [lead for c in chunks for lead in c.leads]
        offset = chunks[-1].offset
        started = time.perf_counter()
        while True:
            try:
                self._store.load(events, leads, offset)
                break
            except StoreError as exc:
                # The rows are safe in the journal; keep trying rather than lose order.
                log.error("%s; retrying", exc)
                if self._on_error is not None:
                    self._on_error(exc)
                time.sleep(1.0)
        elapsed = time.perf_counter() - started
        # Before the offset moves: a flush returns once observers (lead scoring)
        # have seen the rows, so a lead's answer can carry its score.
        for observer in self._observers:
            self._observe(functools.partial(observer.after_load, events, leads))
        touched = self._touched
        for event in events:
            sid = event.session_id
            if sid and (sid not in touched or event.ts < touched[sid]):
                touched[sid] = event.ts
        with self._cond:
            self._loaded = offset
            self._cond.notify_all()
        self._journal.forget_before(offset)
        self._journal.prepare_next()
        if self._on_load is not None:
            self._on_load(len(events) + len(leads), elapsed)

    def _observe(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # an observer's failure must never stop loading
            log.exception("load observer failed")
            if self._on_error is not None:
                self._on_error(exc)

    def _tidy(self) -> None:
        for observer in self._observers:
            self._observe(observer.periodic)
        self._last_housekeeping = time.monotonic()
        try:
            self._store.housekeeping(self._clock(), self._id_window_ms)
        except StoreError as exc:
            log.error("%s", exc)
            if self._on_error is not None:
                self._on_error(exc)

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
