"""Delivery of outbox messages: one worker thread, backoff with jitter, Retry-After, HMAC.

See alerting/outbox.py for the table and its states.
"""

from __future__ import annotations

import email.utils
import enum
import hashlib
import hmac
import logging
import random
import threading
import urllib.parse
from collections import Counter as Counter_
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

import httpx

from sitepulse import __version__
from sitepulse.alerting.outbox import (
    MIN_RETRY_MS,
    PRUNE_EVERY_MS,
    Message,
    Outbox,
    Outcome,
)
from sitepulse.clock import Clock, system_clock

log = logging.getLogger(__name__)

USER_AGENT = f"sitepulse/{__version__}"
SIGNATURE_HEADER = "X-Sitepulse-Signature"
_SNIPPET_BYTES = 512


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard and how long the worker tries."""

    timeout_secs: float = 10.0
    base_delay_secs: float = 5.0
    max_delay_secs: float = 3600.0
    # A retry waits between (1 - jitter) and 1 times its backoff.
    jitter: float = 0.2
    # Backoff reaches its 1 h cap after ~10 attempts (~1.4 h), so 100 attempts
    # outlast the 3-day max_age: age, not count, is what normally ends retries.
    max_attempts: int = 100
    max_age_secs: float = 3 * 86_400.0
    batch_size: int = 100
    poll_interval_secs: float = 30.0
    keep_records_secs: float = 30 * 86_400.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter}")
        for name in ("timeout_secs", "base_delay_secs", "max_delay_secs", "max_age_secs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.max_attempts < 1 or self.batch_size < 1:
            raise ValueError("max_attempts and batch_size must be at least 1")


def backoff_ms(policy: DeliveryPolicy, attempts: int, u: float) -> int:
    """Wait after `attempts` failed attempts: base doubling to the cap, less jitter * u."""
    raw = policy.base_delay_secs * 2.0 ** min(attempts - 1, 64)
    return round(min(raw, policy.max_delay_secs) * (1.0 - policy.jitter * u) * 1000)


def parse_retry_after(value: str | None, now_ms: int) -> int | None:
    """Milliseconds to wait from a Retry-After header (seconds or HTTP-date); None if invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return int(value) * 1000
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP-dates are UTC
        when = when.replace(tzinfo=UTC)
    return max(0, round(when.timestamp() * 1000) - now_ms)


def sign(secret: str | bytes, body: bytes) -> str:
    """The signature header value: `sha256=` + hex HMAC-SHA256 of the body."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def redact(url: str) -> str:
    """Scheme and host only: chat webhook URLs carry their secret in the path."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…"


class _Verdict(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class _Attempt:
    verdict: _Verdict
    status: int | None
    error: str
    retry_after_ms: int | None = None
    # The receiver as a whole is unavailable, not just this message.
    blocks_target: bool = False


def _verdict(status: int) -> _Verdict:
    if 200 <= status < 300:
        return _Verdict.DELIVERED
    if status in (408, 429) or status >= 500:
        return _Verdict.RETRY
    # Redirects and other 4xx will not change by trying again.
    return _Verdict.PERMANENT


class DeliveryWorker:
    """One thread that POSTs due outbox messages; `run_once` is one round of it.

    `secrets` maps a target URL to the key its messages are signed with.
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        policy: DeliveryPolicy | None = None,
        secrets: Mapping[str, str | bytes] | None = None,
        clock: Clock = system_clock,
        seed: int | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self._outbox = outbox
        self.policy = policy or DeliveryPolicy()
        self._secrets = dict(secrets or {})  # target URL -> HMAC secret
        self._clock = clock
        self._rng = random.Random(seed)
        self._own_client = client is None
        self._client = client or httpx.Client(
            timeout=self.policy.timeout_secs,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        self._blocked: dict[str, int] = {}  # target -> no attempts before (ms)
        self._failing: set[str] = set()  # targets whose last attempt failed, for logging
        self._pruned_at: int | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the delivery thread; pending messages from earlier runs go first."""
        self._thread = threading.Thread(target=self._run, name="sitepulse-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the attempt in flight, stop the thread and close the HTTP client."""
        self._stopping.set()
        self._outbox.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        """Close the HTTP client if the worker created it."""
        if self._own_client:
            self._client.close()

    def _run(self) -> None:
        wakeup = self._outbox.wakeup
        failing = False
        while not self._stopping.is_set():
            wakeup.clear()
            now = self._clock()
            wait = self.policy.poll_interval_secs
            try:
                self.run_once(now)
                due = self._outbox.next_due_ms()
                if due is not None:
                    wait = min(wait, max(0.0, (due - self._clock()) / 1000))
                if failing:
                    log.info("outbox delivery rounds work again")
                failing = False
            except Exception:
                if self._outbox.metrics is not None:
                    self._outbox.metrics.round_errors.inc()
                if not failing:
                    log.exception("outbox delivery round failed; retrying every poll interval")
                failing = True
            wakeup.wait(wait)

    def run_once(self, now_ms: int) -> dict[str, int]:
        """Attempt every message due at `now_ms` (up to batch_size); outcomes by name."""
        outcomes: Counter_[str] = Counter_()
        self._blocked = {t: until for t, until in self._blocked.items() if until > now_ms}
        max_age_ms = round(self.policy.max_age_secs * 1000)
        for msg in self._outbox.due(now_ms, self.policy.batch_size):
            if self._stopping.is_set():
                break  # the rest stay pending for the next start
            deadline = msg.created_at_ms + max_age_ms
            blocked_until = self._blocked.get(msg.target)
            if now_ms > deadline:
                error = f"expired after {msg.attempts} attempts; last error: {msg.last_error}"
                self._outbox.mark_failed(
                    msg, now_ms, msg.last_status, error, Outcome.GAVE_UP_AGE, attempted=False
                )
                outcomes[Outcome.GAVE_UP_AGE] += 1
            elif blocked_until is not None and now_ms < deadline:
                # Held until the block ends, or for a final try at its deadline.
                self._outbox.defer(msg, min(blocked_until, deadline))
                outcomes[Outcome.DEFERRED] += 1
            else:
                outcomes[self._deliver(msg, now_ms, deadline)] += 1
        self._prune(now_ms)
        return dict(outcomes)

    def _prune(self, now_ms: int) -> None:
        if self._pruned_at is not None and now_ms - self._pruned_at < PRUNE_EVERY_MS:
            return
        self._pruned_at = now_ms
        self._outbox.prune(now_ms - round(self.policy.keep_records_secs * 1000))

    def _deliver(self, msg: Message, now_ms: int, deadline: int) -> Outcome:
        try:
            attempt = self._send(msg, now_ms)
        except Exception as exc:  # a bug or an odd URL must not stop the other messages
            if msg.target not in self._failing:
                log.exception("posting outbox message %s failed unexpectedly", msg.id)
            attempt = _Attempt(_Verdict.RETRY, None, f"{type(exc).__name__}: {exc}")
        outbox = self._outbox
        where = redact(msg.target)
        if attempt.verdict is _Verdict.DELIVERED:
            assert attempt.status is not None
            outbox.mark_delivered(msg, now_ms, attempt.status)
            if msg.target in self._failing:
                self._failing.discard(msg.target)
                log.info("webhook target %s accepts deliveries again", where)
            return Outcome.DELIVERED
        if attempt.verdict is _Verdict.PERMANENT:
            log.warning("webhook %s to %s rejected: %s", msg.id, where, attempt.error)
            outbox.mark_failed(msg, now_ms, attempt.status, attempt.error, Outcome.REJECTED)
            return Outcome.REJECTED
        if msg.target not in self._failing:
            self._failing.add(msg.target)
            log.warning("webhook target %s failing (%s); retrying", where, attempt.error)
        attempts = msg.attempts + 1
        wait = attempt.retry_after_ms
        if wait is None:
            wait = backoff_ms(self.policy, attempts, self._rng.random())
        next_ms = now_ms + max(wait, MIN_RETRY_MS)
        gave_up: Outcome | None = None
        if attempts >= self.policy.max_attempts:
            gave_up = Outcome.GAVE_UP_ATTEMPTS
        elif next_ms > deadline:
            # Backoff is cut short for one last try at the deadline; a Retry-After
            # past it is the receiver saying it will not take the message in time.
            if now_ms >= deadline or attempt.retry_after_ms is not None:
                gave_up = Outcome.GAVE_UP_AGE
            else:
                next_ms = deadline
        if attempt.blocks_target:
            self._blocked[msg.target] = next_ms
        if gave_up is not None:
            error = f"gave up after {attempts} attempts: {attempt.error}"
            log.warning("webhook %s to %s: %s", msg.id, where, error)
            outbox.mark_failed(msg, now_ms, attempt.status, error, gave_up)
            return gave_up
        outcome = Outcome.RATE_LIMITED if attempt.status == 429 else Outcome.RETRIED
        outbox.mark_retry(msg, now_ms, next_ms, attempt.status, attempt.error, outcome)
        return outcome

    def _send(self, msg: Message, now_ms: int) -> _Attempt:
        body = msg.body.encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": msg.id,
            "X-Sitepulse-Kind": msg.kind,
        }
        secret = self._secrets.get(msg.target)
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        try:
            with self._client.stream("POST", msg.target, content=body, headers=headers) as resp:
                status = resp.status_code
                verdict = _verdict(status)
                snippet = "" if verdict is _Verdict.DELIVERED else _snippet(resp)
                retry_after = resp.headers.get("Retry-After")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return _Attempt(_Verdict.PERMANENT, None, f"bad target URL: {exc}")
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}: {exc}"
            return _Attempt(_Verdict.RETRY, None, error, blocks_target=True)
        error = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        return _Attempt(
            verdict,
            status,
            "" if verdict is _Verdict.DELIVERED else error,
            retry_after_ms=parse_retry_after(retry_after, now_ms) if status in (429, 503) else None,
            blocks_target=status in (429, 502, 503, 504),
        )


def _snippet(resp: httpx.Response) -> str:
    # The start of an error body explains most rejections; the rest may be huge.
    data = b""
    for chunk in resp.iter_bytes():
        data += chunk
        if len(data) >= _SNIPPET_BYTES:
            break
    return data[:_SNIPPET_BYTES].decode("utf-8", "replace").strip()
