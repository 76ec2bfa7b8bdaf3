"""The durable outbox: every webhook is a row first, then one worker delivers it.

Anything sitepulse posts to another system (leads to a CRM or chat webhook,
later alert notifications) is enqueued as a row of the `outbox` table and sent
by a single DeliveryWorker thread. A receiver that is down, slow or rate
limiting only delays delivery: the row stays pending, is retried with
exponential backoff (or when Retry-After says), survives restarts, and ends as
`delivered`, or as `failed` with the reason. Every outcome is counted by kind.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from sitepulse.clock import Clock, system_clock
from sitepulse.errors import SitepulseError

log = logging.getLogger(__name__)

STATUSES = ("pending", "delivered", "failed")
# A Retry-After of 0 (or a date in the past) would otherwise retry in a hot loop.
MIN_RETRY_MS = 1000
PRUNE_EVERY_MS = 3_600_000


class OutboxError(SitepulseError):
    """The outbox table could not be read or written."""


class OutboxFull(OutboxError):
    """`max_pending` messages are waiting; this one was not stored (and was counted)."""


class Outcome(enum.StrEnum):
    """What happened to an enqueue call or a delivery attempt; the metrics' outcome label."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    FULL = "full"
    DELIVERED = "delivered"
    RETRIED = "retried"
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"
    GAVE_UP_ATTEMPTS = "gave_up_attempts"
    GAVE_UP_AGE = "gave_up_age"
    DEFERRED = "deferred"  # held back behind a failing target; no attempt, not counted


_ENQUEUE_OUTCOMES = frozenset({Outcome.QUEUED, Outcome.DUPLICATE, Outcome.FULL})
_FINAL_OUTCOMES = frozenset(
    {Outcome.DELIVERED, Outcome.REJECTED, Outcome.GAVE_UP_ATTEMPTS, Outcome.GAVE_UP_AGE}
)


@dataclass(frozen=True, slots=True)
class Message:
    """One outbox row: the message and its delivery record."""

    id: str
    kind: str
    target: str
    body: str
    dedupe_key: str
    status: str
    attempts: int
    created_at_ms: int
    next_attempt_ms: int
    last_status: int | None
    last_error: str | None
    delivered_at_ms: int | None


class OutboxMetrics:
    """The outbox's Prometheus metrics, registered on the registry given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.enqueued = Counter(
            "sitepulse_outbox_enqueued",
            "Messages offered to the outbox, by kind and outcome (full = lost)",
            ["kind", "outcome"],
            registry=registry,
        )
        self.deliveries = Counter(
            "sitepulse_outbox_deliveries",
            "Delivery attempts and give-ups, by kind and outcome (rejected, gave_up_* = lost)",
            ["kind", "outcome"],
            registry=registry,
        )
        self.pending = Gauge(
            "sitepulse_outbox_pending", "Messages waiting for delivery", registry=registry
        )
        self.round_errors = Counter(
            "sitepulse_outbox_round_errors",
            "Delivery rounds that failed before finishing (database errors)",
            registry=registry,
        )


_SELECT = (
    "SELECT id::VARCHAR, kind, target, payload, dedupe_key, status, attempts,"
    " epoch_ms(created_at), epoch_ms(next_attempt_at), last_status, last_error,"
    " epoch_ms(delivered_at) FROM outbox"
)
_TS = "make_timestamp(?::BIGINT * 1000)"


def _message(row: tuple[Any, ...]) -> Message:
    return Message(*row)


class Outbox:
    """The `outbox` table behind a lock; safe to share between threads."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        clock: Clock = system_clock,
        max_pending: int = 10_000,
        registry: CollectorRegistry | None = None,
    ) -> None:
        # `con` should be a cursor of its own: the store's writer connection
        # belongs to the writer thread.
        self._con = con
        self._lock = threading.Lock()
        self._clock = clock
        self.max_pending = max_pending
        self.metrics = OutboxMetrics(registry) if registry is not None else None
        # Set on every enqueue so a waiting worker sends at once.
        self.wakeup = threading.Event()
        with self._lock:
            self._update_gauge()

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # Always drained: an undrained result keeps a transaction open, and an
        # open transaction blocks the store's checkpoints.
        try:
            return self._con.execute(sql, list(params)).fetchall()
        except duckdb.Error as exc:
            raise OutboxError(f"outbox query failed: {exc}") from exc

    def _pending(self) -> int:
        ((count,),) = self._fetch("SELECT count(*) FROM outbox WHERE status = 'pending'")
        return int(count)

    def _update_gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.pending.set(self._pending())

    def _count(self, kind: str, outcome: Outcome) -> None:
        if self.metrics is None:
            return
        family = self.metrics.enqueued if outcome in _ENQUEUE_OUTCOMES else self.metrics.deliveries
        family.labels(kind, outcome.value).inc()

    def enqueue(self, kind: str, target: str, payload: Mapping[str, Any], dedupe_key: str) -> bool:
        """Store a message for delivery; False if `dedupe_key` is already there.

        Raises OutboxFull when `max_pending` messages are waiting.
        """
        body = msgspec.json.encode(payload).decode()
        now = self._clock()
        with self._lock:
            if self._fetch("SELECT 1 FROM outbox WHERE dedupe_key = ?", [dedupe_key]):
                outcome = Outcome.DUPLICATE
            elif self._pending() >= self.max_pending:
                outcome = Outcome.FULL
            else:
                inserted = self._fetch(
                    "INSERT INTO outbox (created_at, kind, target, payload, dedupe_key,"
                    f" next_attempt_at, updated_at) VALUES ({_TS}, ?, ?, ?, ?, {_TS}, {_TS})"
                    " ON CONFLICT DO NOTHING RETURNING id",
                    [now, kind, target, body, dedupe_key, now, now],
                )
                outcome = Outcome.QUEUED if inserted else Outcome.DUPLICATE
                self._update_gauge()
        self._count(kind, outcome)
        if outcome is Outcome.FULL:
            raise OutboxFull(f"{self.max_pending} messages are waiting for delivery")
        if outcome is Outcome.QUEUED:
            self.wakeup.set()
        return outcome is Outcome.QUEUED

    def due(self, now_ms: int, limit: int) -> list[Message]:
        """Pending messages whose next attempt is at or before `now_ms`, oldest due first."""
        # Among equally due messages the fewest-tried go first, so one message
        # a receiver keeps choking on cannot hold back the others; then FIFO.
        with self._lock:
            rows = self._fetch(
                f"{_SELECT} WHERE status = 'pending' AND next_attempt_at <= {_TS}"
                " ORDER BY next_attempt_at, attempts, created_at, rowid LIMIT ?",
                [now_ms, limit],
            )
        return [_message(row) for row in rows]

    def next_due_ms(self) -> int | None:
        """When the earliest pending message is due, or None when none is pending."""
        with self._lock:
            ((due,),) = self._fetch(
                "SELECT epoch_ms(min(next_attempt_at)) FROM outbox WHERE status = 'pending'"
            )
        return None if due is None else int(due)

    def find(self, dedupe_key: str) -> Message | None:
        """The message and its delivery record, by dedupe key."""
        with self._lock:
            rows = self._fetch(f"{_SELECT} WHERE dedupe_key = ?", [dedupe_key])
        return _message(rows[0]) if rows else None

    def _finish(self, msg: Message, outcome: Outcome, sql: str, params: Sequence[Any]) -> None:
        with self._lock:
            # Only pending rows change, so an outcome is never counted twice.
            sql += " WHERE id = ? AND status = 'pending'"
            ((changed,),) = self._fetch(sql, [*params, msg.id])
            if changed and outcome in _FINAL_OUTCOMES:
                self._update_gauge()
        if changed:
            self._count(msg.kind, outcome)

    def mark_delivered(self, msg: Message, now_ms: int, status: int) -> None:
        """Record a successful attempt."""
        self._finish(
            msg,
            Outcome.DELIVERED,
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, last_status = ?,"
            f" last_error = NULL, delivered_at = {_TS}, updated_at = {_TS}",
            [status, now_ms, now_ms],
        )

    def mark_retry(
        self,
        msg: Message,
        now_ms: int,
        next_attempt_ms: int,
        status: int | None,
        error: str,
        outcome: Outcome = Outcome.RETRIED,
    ) -> None:
        """Record a failed attempt and when to try again."""
        self._finish(
            msg,
            outcome,
            "UPDATE outbox SET attempts = attempts + 1, last_status = ?, last_error = ?,"
            f" next_attempt_at = {_TS}, updated_at = {_TS}",
            [status, error, next_attempt_ms, now_ms],
        )

    def mark_failed(
        self,
        msg: Message,
        now_ms: int,
        status: int | None,
        error: str,
        outcome: Outcome,
        *,
        attempted: bool = True,
    ) -> None:
        """Give up on a message: status 'failed', counted under `outcome`."""
        self._finish(
            msg,
            outcome,
            "UPDATE outbox SET status = 'failed', attempts = attempts + ?, last_status = ?,"
            f" last_error = ?, updated_at = {_TS}",
            [int(attempted), status, error, now_ms],
        )

    def defer(self, msg: Message, until_ms: int) -> None:
        """Move a message's next attempt to `until_ms` without counting an attempt."""
        with self._lock:
            self._fetch(
                f"UPDATE outbox SET next_attempt_at = {_TS} WHERE id = ? AND status = 'pending'",
                [until_ms, msg.id],
            )

    def stats(self) -> dict[str, int]:
        """Message counts by status (every status present)."""
        with self._lock:
            rows = self._fetch("SELECT status, count(*) FROM outbox GROUP BY status")
        return {status: 0 for status in STATUSES} | {str(s): int(n) for s, n in rows}

    def prune(self, before_ms: int) -> int:
        """Delete delivered and failed records finished before `before_ms`; returns how many."""
        with self._lock:
            ((deleted,),) = self._fetch(
                f"DELETE FROM outbox WHERE status <> 'pending' AND updated_at < {_TS}",
                [before_ms],
            )
        return int(deleted)
