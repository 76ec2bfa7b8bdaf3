"""The dashboard archive: each dashboard's last answer per view, kept fresh in the background.

A dashboard over millions of events costs hundreds of milliseconds to compute (the
marketing one runs six analyses), and the people who watch one open it many times a
day or leave it on a wall screen with auto-refresh. Like Matomo's report archives and
PostHog's cached insights, sitepulse serves a dashboard from its last computed answer
and recomputes it off the request path:

- A view is one dashboard for one site, range (as asked: "the last 30 days", or dates),
  comparison and value model. Its archived answer is served while younger than
  `analysis.dashboard_max_age_secs` (default 60; 0 turns the archive off).
- When the data has changed since (the loader has made more rows visible to the
  analyses), the archived answer is still served, and a
  recompute of that view starts at once on the archive's thread: the next view or
  auto-refresh shows it. This is stale-while-revalidate, bounded by the maximum age.
- Older answers are not served: the request computes, as without an archive.
- Views asked for in the last `keep_secs` are recomputed in the background once half
  their maximum age has passed, so a watched dashboard is always served from an
  answer well under the maximum age, and one nobody watches costs nothing.

Every answer says when it was computed (`generated_at`) and how it was served
(`archive`: "computed", "fresh" or "stale" with its age), so nothing looks newer than
it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

Status = Literal["computed", "fresh", "stale"]
ViewKey = tuple[Hashable, ...]
Compute = Callable[[ViewKey], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A dashboard's data as served, and how it was served."""

    data: dict[str, Any]
    status: Status
    age_secs: float
    lookup_ms: float  # the request's own cost when served from the archive


@dataclass(slots=True)
class _Entry:
    data: dict[str, Any]
    version: Hashable
    at: float  # monotonic seconds when its computation started
    asked: float  # when a request last asked for this view


class DashboardArchive:
    """Last answers by view key; `answer` serves or computes, a thread keeps them fresh.

    `compute(key)` must give the view's data as of now; `version()` must change whenever
    what the analyses read changes. Both run on request threads and on the archive's own
    thread, so `compute` must be safe to call concurrently for different keys.
    """

    def __init__(
        self,
        compute: Compute,
        version: Callable[[], Hashable],
        *,
        max_age_secs: float,
        keep_secs: float = 600.0,
        capacity: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self._version = version
        self.max_age = max_age_secs
        self._keep = keep_secs
        self._capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[ViewKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        # One computation per view at a time: a request that finds one under way waits
        # for its answer instead of computing the same thing beside it.
        self._computing: dict[ViewKey, threading.Lock] = {}
        self._wanted: set[ViewKey] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._epoch = 0  # bumped by `forget`: answers computed across it are not kept
        self.computed = 0  # computations, on requests and in the background

    @property
    def enabled(self) -> bool:
        return self.max_age > 0

    def answer(self, key: ViewKey, before_compute: Callable[[], object] | None = None) -> Answer:
        """The view's data: archived if young enough, else computed now (and archived).

        `before_compute` runs only when the request computes (a read-your-writes flush,
        which a served answer does not need).
        """
        started = self._clock()
        if self.enabled:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.asked = started
                    self._entries.move_to_end(key)
            if entry is not None and started - entry.at < self.max_age:
                current = entry.version == self._current_version()
                if not current:
                    self._revalidate(key)
                lookup_ms = (self._clock() - started) * 1000
                status: Status = "fresh" if current else "stale"
                return Answer(entry.data, status, started - entry.at, lookup_ms)
        else:
            entry = None
        if before_compute is not None:
            before_compute()
        data = self._computed(key, asked=started, replacing=entry)
        return Answer(data, "computed", 0.0, (self._clock() - started) * 1000)

    def forget(self) -> None:
        """Drop every archived answer (a definition changed: the next view computes)."""
        with self._lock:
            self._entries.clear()
            self._wanted.clear()
            self._computing.clear()  # one in use stays with its holder; none is needed after
            self._epoch += 1

    def start(self) -> None:
        """Start the thread that recomputes watched views (no-op when disabled)."""
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="sitepulse-dashboards", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _current_version(self) -> Hashable:
        return self._version()

    def _computed(
        self, key: ViewKey, *, asked: float | None = None, replacing: _Entry | None = None
    ) -> dict[str, Any]:
        with self._lock:
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:
            if asked is not None:
                # A request that waited for another computation of its view takes its answer.
                with self._lock:
                    entry = self._entries.get(key)
                if entry is not None and entry is not replacing:
                    return entry.data
            at = self._clock()
            version, epoch = self._current_version(), self._epoch
            try:
                data = self._compute(key)
            except BaseException:
                self._drop_gate(key)
                raise
            self.computed += 1
            if not self.enabled:
                self._drop_gate(key)
            else:
                with self._lock:
                    if epoch != self._epoch:
                        self._computing.pop(key, None)
                        return data
                    old = self._entries.get(key)
                    asked_at = asked if asked is not None else (old.asked if old else at)
                    self._entries[key] = _Entry(data, version, at, asked_at)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._capacity:
                        gone, _ = self._entries.popitem(last=False)
                        self._computing.pop(gone, None)
            return data

    def _drop_gate(self, key: ViewKey) -> None:
        # Gates live as long as their view's answer: view keys come from query strings.
        with self._lock:
            if key not in self._entries:
                self._computing.pop(key, None)

    def _revalidate(self, key: ViewKey) -> None:
        with self._lock:
            self._wanted.add(key)
        self._wake.set()

    def refresh_due(self) -> int:
        """Recompute the views that are due: watched ones at least half their maximum age
        old (a relative range moves on even when no row arrives), and those a request
        found out of date. The archive's thread calls this; returns how many it computed."""
        now = self._clock()
        with self._lock:
            due = [
                key
                for key, entry in self._entries.items()
                if key in self._wanted
                or (now - entry.asked <= self._keep and now - entry.at >= self.max_age / 2)
            ]
            self._wanted.clear()
        done = 0
        for key in due:
            if self._stop.is_set():
                break
            try:
                self._computed(key)
                done += 1
            except Exception:  # a failing view must not stop the others' refresh
                log.exception("recomputing dashboard %r failed", key)
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.max_age / 4)
            self._wake.clear()
            if not self._stop.is_set():
                self.refresh_due()
