"""Acknowledged means durable: SIGKILL during sustained ingest loses nothing acked."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import SITE_HOST, SITE_KEY, LiveServer, new_id, now_ms

BATCH = 5
KILL_AFTER_ACKS = 400
WORKERS = 8


def _batch() -> list[dict[str, object]]:
    return [
        {
            "event_id": new_id(),
            "ts": now_ms(),
            "type": "pageview",
            "url": f"https://{SITE_HOST}/p{i}",
        }
        for i in range(BATCH)
    ]


def test_sigkill_loses_no_acknowledged_event(live_server: LiveServer) -> None:
    acked: set[str] = set()
    sent: list[list[dict[str, object]]] = []
    lock = threading.Lock()
    enough = threading.Event()
    stop = threading.Event()

    def pump() -> None:
        with httpx.Client(base_url=live_server.base_url, timeout=5.0) as client:
            while not stop.is_set():
                events = _batch()
                with lock:
                    sent.append(events)
                try:
                    resp = client.post(
                        "/api/v1/collect", json={"site_key": SITE_KEY, "events": events}
                    )
                except httpx.TransportError:
                    return  # the server died under us
                if resp.status_code == 202:
                    with lock:
                        acked.update(str(e["event_id"]) for e in events)
                        if len(acked) >= KILL_AFTER_ACKS * BATCH:
                            enough.set()

    with ThreadPoolExecutor(WORKERS) as pool:
        for _ in range(WORKERS):
            pool.submit(pump)
        assert enough.wait(timeout=120), "server never acknowledged enough events"
        live_server.kill()  # SIGKILL while requests are in flight
        stop.set()

    live_server.start()
    # A client retries everything it is unsure of; idempotency must absorb it.
    with httpx.Client(base_url=live_server.base_url, timeout=30.0) as client:
        for events in sent:
            resp = client.post("/api/v1/collect", json={"site_key": SITE_KEY, "events": events})
            assert resp.status_code == 202
    live_server.stop()

    rows = live_server.db_query("SELECT event_id::VARCHAR, count(*) FROM events GROUP BY 1")
    counts = dict(rows)
    assert acked <= set(counts), f"{len(acked - set(counts))} acknowledged events lost"
    assert max(counts.values()) == 1, "an event was stored twice"
    assert len(counts) == sum(len(b) for b in sent)
