"""The outbox against a real DuckDB file and a real webhook receiver on loopback."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import random
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import sitepulse
from sitepulse.alerting.delivery import (
    DeliveryPolicy,
    DeliveryWorker,
    backoff_ms,
    parse_retry_after,
)
from sitepulse.alerting.outbox import Message, Outbox, OutboxFull
from sitepulse.clock import ManualClock, system_clock
from sitepulse.store.duckdb.backend import DuckDBStore
from tests.conftest import free_port

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
SECRET = b"whsec_test_0123456789"
KIND = "lead_webhook"
NO_JITTER = DeliveryPolicy(jitter=0.0)


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on a fixed loopback port; down until started."""

    port: int
    requests: list[Received] = field(default_factory=list)
    # (status, headers, body) to answer with, in order; 200 once they run out.
    replies: deque[tuple[int, dict[str, str], bytes]] = field(default_factory=deque)
    got: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with lock:
                    receiver.requests.append(Received(self.path, headers, body))
                    reply = receiver.replies.popleft() if receiver.replies else (200, {}, b"ok")
                status, extra, content = reply
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
                receiver.got.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        # A short poll keeps shutdown() quick in each test's teardown.
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(free_port())
    yield found
    found.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    opened = DuckDBStore(tmp_path / "data")
    opened.migrate()
    yield opened
    opened.close()


@dataclass
class Rig:
    outbox: Outbox
    worker: DeliveryWorker
    clock: ManualClock
    registry: CollectorRegistry

    def record(self, key: str) -> Message:
        found = self.outbox.find(key)
        assert found is not None
        return found

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture
def make_rig(store: DuckDBStore) -> Iterator[Any]:
    workers: list[DeliveryWorker] = []

    def make(policy: DeliveryPolicy = NO_JITTER, seed: int = 7, max_pending: int = 100) -> Rig:
        clock = ManualClock(T0)
        registry = CollectorRegistry()
        cursor = store.cursor()
        outbox = Outbox(cursor, clock=clock, max_pending=max_pending, registry=registry)
        worker = DeliveryWorker(outbox, policy=policy, clock=clock, seed=seed, secrets={})
        workers.append(worker)
        return Rig(outbox, worker, clock, registry)

    yield make
    for worker in workers:
        worker.close()


def signed_worker(rig: Rig, receiver: Receiver, policy: DeliveryPolicy, seed: int) -> Rig:
    rig.worker.close()
    rig.worker = DeliveryWorker(
        rig.outbox,
        policy=policy,
        clock=rig.clock,
        seed=seed,
        secrets={receiver.url(): SECRET},
    )
    return rig


@pytest.mark.parametrize(
    ("attempts", "u", "expected_ms"),
    [
        (1, 0.0, 5_000),
        (2, 0.0, 10_000),
        (3, 0.0, 20_000),
        (10, 0.0, 2_560_000),
        (11, 0.0, 3_600_000),  # 5120 s capped at 1 h
        (100, 0.0, 3_600_000),
        (1, 0.5, 4_500),  # 5 s less 0.2 * 0.5 of it
        (1, 1.0, 4_000),
        (12, 0.25, 3_420_000),
    ],
)
def test_backoff_doubles_from_5s_to_a_1h_cap_less_jitter(
    attempts: int, u: float, expected_ms: int
) -> None:
    assert backoff_ms(DeliveryPolicy(), attempts, u) == expected_ms


@pytest.mark.parametrize(
    ("header", "expected_ms"),
    [
        ("120", 120_000),
        (" 7 ", 7_000),
        ("0", 0),
        ("Wed, 15 Nov 2023 22:15:20 GMT", 86_520_000),  # a day and two minutes after T0
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0),  # already past
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("\u0663", None),  # a non-ASCII digit
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected_ms: int | None) -> None:
    assert parse_retry_after(header, T0) == expected_ms


def test_delivers_once_the_receiver_comes_up(make_rig: Any, receiver: Receiver) -> None:
    policy = DeliveryPolicy()  # default jitter: the delay depends on the seed
    rig = signed_worker(make_rig(policy), receiver, policy, seed=11)
    payload = {"lead_id": "L1", "tier": "hot", "score": 87.5, "email": "ana@example.com"}
    assert rig.outbox.enqueue(KIND, receiver.url(), payload, "L1:crm")

    assert rig.worker.run_once(T0) == {"retried": 1}
    first = rig.record("L1:crm")
    expected_delay = round(5_000 * (1 - 0.2 * random.Random(11).random()))
    assert 4_000 <= expected_delay <= 5_000
    assert (first.status, first.attempts, first.last_status) == ("pending", 1, None)
    assert first.last_error is not None and "ConnectError" in first.last_error
    assert first.next_attempt_ms == T0 + expected_delay

    receiver.start()
    assert rig.worker.run_once(first.next_attempt_ms - 1) == {}
    assert receiver.requests == []
    assert rig.worker.run_once(first.next_attempt_ms) == {"delivered": 1}
    assert rig.worker.run_once(first.next_attempt_ms + 86_400_000) == {}

    done = rig.record("L1:crm")
    assert (done.status, done.attempts, done.last_status, done.last_error) == (
        "delivered",
        2,
        200,
        None,
    )
    assert done.delivered_at_ms == first.next_attempt_ms
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert json.loads(request.body) == payload
    assert request.headers["idempotency-key"] == done.id
    expected_signature = "sha256=" + hmac.new(SECRET, request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-sitepulse-signature"] == expected_signature
    assert request.headers["user-agent"] == f"sitepulse/{sitepulse.__version__}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-sitepulse-kind"] == KIND
    deliveries = "sitepulse_outbox_deliveries_total"
    assert rig.metric(deliveries, kind=KIND, outcome="retried") == 1
    assert rig.metric(deliveries, kind=KIND, outcome="delivered") == 1
    assert rig.metric("sitepulse_outbox_enqueued_total", kind=KIND, outcome="queued") == 1
    assert rig.metric("sitepulse_outbox_pending") == 0


def test_no_signature_without_a_secret(make_rig: Any, receiver: Receiver) -> None:
    rig = make_rig()
    receiver.start()
    rig.outbox.enqueue(KIND, receiver.url(), {"a": 1}, "k")
    rig.worker.run_once(T0)
    (request,) = receiver.requests
    assert "x-sitepulse-signature" not in request.headers


@pytest.mark.parametrize(
    ("status", "record_status", "outcome"),
    [
        (200, "delivered", "delivered"),
        (204, "delivered", "delivered"),
        (400, "failed", "rejected"),
        (404, "failed", "rejected"),
        (301, "failed", "rejected"),
        (408, "pending", "retried"),
        (429, "pending", "rate_limited"),
        (500, "pending", "retried"),
        (503, "pending", "retried"),
    ],
)
def test_status_decides_delivered_permanent_or_retry(
    make_rig: Any, receiver: Receiver, status: int, record_status: str, outcome: str
) -> None:
    rig = make_rig()
    receiver.start()
    body = b"" if status == 204 else b'{"error": "bad field: email"}'
    receiver.replies.append((status, {}, body))
    rig.outbox.enqueue(KIND, receiver.url(), {"lead_id": "L1"}, "k")

    assert rig.worker.run_once(T0) == {outcome: 1}
    found = rig.record("k")
    assert (found.status, found.attempts, found.last_status) == (record_status, 1, status)
    if record_status == "failed":
        assert found.last_error == f'HTTP {status}: {{"error": "bad field: email"}}'
        rig.worker.run_once(T0 + 86_400_000)
        assert len(receiver.requests) == 1  # never tried again
    if record_status == "pending":
        assert found.next_attempt_ms == T0 + 5_000
    assert rig.metric("sitepulse_outbox_deliveries_total", kind=KIND, outcome=outcome) == 1


def test_a_target_that_is_not_http_fails_at_once(make_rig: Any) -> None:
    rig = make_rig()
    rig.outbox.enqueue(KIND, "ftp://crm.example/hook", {"a": 1}, "k")
    assert rig.worker.run_once(T0) == {"rejected": 1}
    found = rig.record("k")
    assert found.status == "failed"
    assert found.last_error is not None and found.last_error.startswith("bad target URL")


@pytest.mark.parametrize(
    ("status", "retry_after", "wait_ms", "blocks_target"),
    [
        (429, "120", 120_000, True),
        (503, email.utils.formatdate(T0 / 1000 + 3600, usegmt=True), 3_600_000, True),
        (429, "0", 1_000, True),  # never a hot loop
        (429, "later", 5_000, True),  # unparseable: plain backoff
        (500, "120", 5_000, False),  # only 429 and 503 are asked to wait
    ],
)
def test_retry_after_is_honoured(
    make_rig: Any,
    receiver: Receiver,
    status: int,
    retry_after: str,
    wait_ms: int,
    blocks_target: bool,
) -> None:
    rig = make_rig()
    receiver.start()
    receiver.replies.extend([(status, {"Retry-After": retry_after}, b"")] * 2)
    rig.outbox.enqueue(KIND, receiver.url(), {"n": 1}, "first")
    rig.outbox.enqueue(KIND, receiver.url(), {"n": 2}, "second")

    rig.worker.run_once(T0)
    first, second = rig.record("first"), rig.record("second")
    assert (first.attempts, first.last_status) == (1, status)
    assert first.next_attempt_ms == T0 + wait_ms
    if blocks_target:
        # The receiver said "not now" for all messages: the second waits unsent.
        assert len(receiver.requests) == 1
        assert (second.attempts, second.next_attempt_ms) == (0, T0 + wait_ms)
    else:
        assert len(receiver.requests) == 2
        assert second.attempts == 1


def test_a_failing_target_does_not_hold_back_others(make_rig: Any, receiver: Receiver) -> None:
    rig = make_rig()
    receiver.start()
    down = f"http://127.0.0.1:{free_port()}/hook"
    rig.outbox.enqueue(KIND, down, {"n": 1}, "down-1")
    rig.outbox.enqueue(KIND, down, {"n": 2}, "down-2")
    rig.outbox.enqueue(KIND, receiver.url(), {"n": 3}, "up")
    assert rig.worker.run_once(T0) == {"retried": 1, "deferred": 1, "delivered": 1}
    assert rig.record("down-2").attempts == 0
    assert rig.record("down-2").next_attempt_ms == rig.record("down-1").next_attempt_ms


def test_a_message_held_behind_a_long_block_gets_a_final_try_at_its_deadline(
    make_rig: Any, receiver: Receiver
) -> None:
    rig = make_rig(DeliveryPolicy(jitter=0.0, max_age_secs=60.0))
    receiver.start()
    receiver.replies.append((429, {"Retry-After": "3600"}, b""))
    rig.outbox.enqueue(KIND, receiver.url(), {"n": 1}, "first")
    rig.outbox.enqueue(KIND, receiver.url(), {"n": 2}, "second")

    # An hour's wait is past the first message's 60 s life; the second is held.
    assert rig.worker.run_once(T0) == {"gave_up_age": 1, "deferred": 1}
    assert rig.record("second").next_attempt_ms == T0 + 60_000
    assert rig.worker.run_once(T0 + 60_000) == {"delivered": 1}
    assert [json.loads(r.body) for r in receiver.requests] == [{"n": 1}, {"n": 2}]


def test_gives_up_after_max_attempts(make_rig: Any) -> None:
    rig = make_rig(DeliveryPolicy(jitter=0.0, max_attempts=3))
    rig.outbox.enqueue(KIND, f"http://127.0.0.1:{free_port()}/hook", {"a": 1}, "k")
    tried_at: list[int] = []
    for _ in range(5):
        found = rig.record("k")
        if found.status != "pending":
            break
        tried_at.append(found.next_attempt_ms)
        rig.worker.run_once(found.next_attempt_ms)

    assert tried_at == [T0, T0 + 5_000, T0 + 15_000]
    found = rig.record("k")
    assert (found.status, found.attempts) == ("failed", 3)
    assert found.last_error is not None and found.last_error.startswith("gave up after 3")
    deliveries = "sitepulse_outbox_deliveries_total"
    assert rig.metric(deliveries, kind=KIND, outcome="retried") == 2
    assert rig.metric(deliveries, kind=KIND, outcome="gave_up_attempts") == 1
    assert rig.metric("sitepulse_outbox_pending") == 0


def test_gives_up_at_max_age_after_a_last_try_at_the_deadline(make_rig: Any) -> None:
    rig = make_rig(DeliveryPolicy(jitter=0.0, max_age_secs=12.0))
    rig.outbox.enqueue(KIND, f"http://127.0.0.1:{free_port()}/hook", {"a": 1}, "k")
    tried_at: list[int] = []
    while (found := rig.record("k")).status == "pending" and len(tried_at) < 5:
        tried_at.append(found.next_attempt_ms)
        rig.worker.run_once(found.next_attempt_ms)

    # 5 s, then 10 s cut short to the 12 s deadline, then no further wait fits.
    assert tried_at == [T0, T0 + 5_000, T0 + 12_000]
    assert (found.status, found.attempts) == ("failed", 3)
    assert rig.metric("sitepulse_outbox_deliveries_total", kind=KIND, outcome="gave_up_age") == 1


def test_a_message_past_max_age_is_not_sent(make_rig: Any, receiver: Receiver) -> None:
    rig = make_rig(DeliveryPolicy(max_age_secs=60.0))
    receiver.start()
    rig.outbox.enqueue(KIND, receiver.url(), {"a": 1}, "k")
    assert rig.worker.run_once(T0 + 60_001) == {"gave_up_age": 1}
    assert receiver.requests == []
    found = rig.record("k")
    assert (found.status, found.attempts) == ("failed", 0)


def test_dedupe_key_sends_a_message_once(make_rig: Any, receiver: Receiver) -> None:
    rig = make_rig()
    receiver.start()
    assert rig.outbox.enqueue(KIND, receiver.url(), {"score": 80}, "L1:crm")
    assert not rig.outbox.enqueue(KIND, receiver.url(), {"score": 90}, "L1:crm")  # re-scored
    assert rig.outbox.stats() == {"pending": 1, "delivered": 0, "failed": 0}
    rig.worker.run_once(T0)
    assert not rig.outbox.enqueue(KIND, receiver.url(), {"score": 95}, "L1:crm")
    rig.worker.run_once(T0 + 3_600_000)

    assert [json.loads(r.body) for r in receiver.requests] == [{"score": 80}]
    enqueued = "sitepulse_outbox_enqueued_total"
    assert rig.metric(enqueued, kind=KIND, outcome="queued") == 1
    assert rig.metric(enqueued, kind=KIND, outcome="duplicate") == 2


def test_a_full_outbox_refuses_and_counts(make_rig: Any, receiver: Receiver) -> None:
    rig = make_rig(max_pending=2)
    receiver.start()
    assert rig.outbox.enqueue(KIND, receiver.url(), {"n": 1}, "a")
    assert rig.outbox.enqueue(KIND, receiver.url(), {"n": 2}, "b")
    with pytest.raises(OutboxFull):
        rig.outbox.enqueue(KIND, receiver.url(), {"n": 3}, "c")
    assert not rig.outbox.enqueue(KIND, receiver.url(), {"n": 1}, "a")  # a duplicate, not a loss
    assert rig.metric("sitepulse_outbox_enqueued_total", kind=KIND, outcome="full") == 1
    assert rig.outbox.find("c") is None

    rig.worker.run_once(T0)
    assert rig.outbox.enqueue(KIND, receiver.url(), {"n": 3}, "c")


def test_pending_messages_survive_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    folder = tmp_path / "data"
    store = DuckDBStore(folder)
    store.migrate()
    clock = ManualClock(T0)
    cursor = store.cursor()
    outbox = Outbox(cursor, clock=clock)
    worker = DeliveryWorker(outbox, policy=NO_JITTER, clock=clock)
    for n in (1, 2):
        outbox.enqueue(KIND, receiver.url(), {"n": n}, f"k{n}")
    assert worker.run_once(T0) == {"retried": 1, "deferred": 1}
    worker.close()
    cursor.close()
    store.close()

    store = DuckDBStore(folder)
    try:
        assert store.migrate() == []
        registry = CollectorRegistry()
        outbox = Outbox(store.cursor(), clock=clock, registry=registry)
        assert outbox.stats() == {"pending": 2, "delivered": 0, "failed": 0}
        assert registry.get_sample_value("sitepulse_outbox_pending") == 2
        receiver.start()
        worker = DeliveryWorker(outbox, policy=NO_JITTER, clock=clock)
        assert worker.run_once(T0 + 5_000) == {"delivered": 2}
        worker.close()
        records = [found for n in (1, 2) if (found := outbox.find(f"k{n}")) is not None]
        assert [(r.status, r.attempts) for r in records] == [("delivered", 2), ("delivered", 1)]
        keys = sorted(r.headers["idempotency-key"] for r in receiver.requests)
        assert keys == sorted(r.id for r in records)
    finally:
        store.close()


def test_stats_count_by_status(make_rig: Any, receiver: Receiver) -> None:
    rig = make_rig()
    receiver.start()
    receiver.replies.extend([(200, {}, b""), (400, {}, b""), (500, {}, b"")])
    for name in ("ok", "bad", "later"):
        # Separate targets, so the 500 cannot hold back anything.
        rig.outbox.enqueue(KIND, receiver.url(f"/{name}"), {"name": name}, name)
    assert rig.outbox.stats() == {"pending": 3, "delivered": 0, "failed": 0}
    rig.worker.run_once(T0)
    assert rig.outbox.stats() == {"pending": 1, "delivered": 1, "failed": 1}
    assert [r.path for r in receiver.requests] == ["/ok", "/bad", "/later"]
    assert rig.metric("sitepulse_outbox_pending") == 1


def test_finished_records_are_pruned_after_the_keep_period(
    make_rig: Any, receiver: Receiver
) -> None:
    rig = make_rig(DeliveryPolicy(keep_records_secs=30 * 86_400.0))
    receiver.start()
    rig.outbox.enqueue(KIND, receiver.url(), {"a": 1}, "old")
    rig.worker.run_once(T0)
    rig.clock.advance(29 * 86_400_000)
    rig.outbox.enqueue(KIND, f"http://127.0.0.1:{free_port()}/hook", {"b": 1}, "waiting")
    rig.worker.run_once(T0 + 29 * 86_400_000)
    assert rig.outbox.find("old") is not None

    rig.worker.run_once(T0 + 31 * 86_400_000)
    assert rig.outbox.find("old") is None
    assert rig.record("waiting").status == "pending"


def test_the_thread_sends_as_soon_as_a_message_is_enqueued(
    store: DuckDBStore, receiver: Receiver
) -> None:
    receiver.start()
    outbox = Outbox(store.cursor(), clock=system_clock)
    # A long poll interval: only the enqueue wake-up can make it send in time.
    worker = DeliveryWorker(outbox, policy=DeliveryPolicy(poll_interval_secs=600.0))
    worker.start()
    try:
        assert worker.alive
        outbox.enqueue(KIND, receiver.url(), {"a": 1}, "k")
        assert receiver.got.wait(timeout=10.0), "the worker did not deliver"
    finally:
        worker.stop()
    assert not worker.alive
    assert outbox.stats() == {"pending": 0, "delivered": 1, "failed": 0}
