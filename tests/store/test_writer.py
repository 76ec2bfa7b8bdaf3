"""The single writer against a real DuckDB file: group commit, idempotency, back pressure."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from sitepulse.clock import ManualClock
from sitepulse.config.models import Settings
from sitepulse.enrich.pipeline import Client
from sitepulse.model.records import StoredEvent
from sitepulse.runtime import Runtime
from sitepulse.store.duckdb import DuckDBStore
from sitepulse.store.journal import Journal
from sitepulse.store.writer import QueueFull, RecentIds, Writer

NOW = 1_795_000_000_000


def _event(i: int, eid: bytes | None = None) -> StoredEvent:
    return StoredEvent(
        event_id=eid or uuid.uuid4().bytes,
        ts=NOW + i,
        received_at=NOW + i,
        site="s",
        type="pageview",
        name="",
        value=None,
        visitor_id=1 + i % 3,
        session_id=10 + i % 3,
        url="https://x.example/",
        path="/",
        page_group="/",
        referrer="",
        referrer_host="",
        utm_source="",
        utm_medium="",
        utm_campaign="",
        utm_term="",
        utm_content="",
        click_id_kind="",
        click_id="",
        channel="Direct",
        channel_rule="no_referrer",
        source="(direct)",
        medium="(none)",
        country="GB",
        region="",
        device="desktop",
        browser="Chrome",
        os="Windows",
        is_bot=False,
        bot_reason="",
        props=None,
    )


def _writer(store: DuckDBStore, clock: ManualClock) -> Writer:
    return Writer(
        store,
        Journal(store.path.parent / "journal"),
        clock=clock,
        max_queue_events=1000,
        commit_max_events=500,
        dedupe_window_ms=3_600_000,
        dedupe_max_ids=10_000,
    )


def test_group_commit_dedupes_and_survives_restart(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    store = DuckDBStore(tmp_path)
    store.migrate()
    writer = _writer(store, clock)
    writer.start()
    events = [_event(i) for i in range(300)]

    async def send() -> list[int]:
        futures = [writer.submit(events[i : i + 10]) for i in range(0, 300, 10)]
        futures.append(writer.submit(events[:10]))  # a re-sent batch
        results = await asyncio.gather(*futures)
        return [len(r.stored_events) for r in results]

    stored = asyncio.run(send())
    assert sum(stored) == 300 and stored[-1] == 0
    assert writer.commits < 31  # batches that arrived together shared a commit
    writer.stop()
    sessions = store.query("SELECT session_id, events FROM sessions ORDER BY 1")
    assert sessions == [(10, 100), (11, 100), (12, 100)]
    store.close()

    reopened = DuckDBStore(tmp_path)
    writer = _writer(reopened, clock)
    writer.start()  # reloads recent ids: the re-send after a restart is still a duplicate

    async def resend() -> int:
        return (await writer.submit(events[:50])).duplicate_events

    assert asyncio.run(resend()) == 50
    writer.stop()
    assert reopened.query("SELECT count(*) FROM events") == [(300,)]
    reopened.close()


def test_full_queue_refuses_with_429(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "storage": {"path": str(tmp_path)},
            "ingest": {"queue_max_events": 100},
        }
    )
    runtime = Runtime.build(settings, clock=ManualClock(NOW))
    # The writer thread is not started, so nothing drains the queue.

    async def fill() -> tuple[int, dict[str, str] | None, str]:
        runtime.writer.submit([_event(i) for i in range(100)])
        with pytest.raises(QueueFull):
            runtime.writer.submit([_event(101)])
        body = (
            b'{"site_key":"pk_default","events":[{"event_id":"%s","ts":%d,'
            b'"type":"pageview","url":"https://x.example/"}]}' % (str(uuid.uuid4()).encode(), NOW)
        )
        out = await runtime.ingest.collect(body, Client("81.2.69.160", "Mozilla/5.0"))
        return out.status, out.headers, out.body["error"]

    status, headers, code = asyncio.run(fill())
    assert (status, code) == (429, "queue_full")
    assert headers == {"Retry-After": "1"}
    registry = runtime.metrics.registry
    assert (
        registry.get_sample_value("sitepulse_dropped_events_total", {"reason": "queue_full"}) == 1
    )
    runtime.store.close()


def test_recent_ids_forget_by_generation() -> None:
    recent = RecentIds(window_ms=60_000, max_ids=4)
    ids = [uuid.uuid4().bytes for _ in range(6)]
    recent.add(ids[0], 0)
    recent.add(ids[1], 0)
    recent.expire(1_000)  # half the bound reached: current becomes previous
    assert ids[0] in recent and len(recent) == 2
    recent.add(ids[2], 1_000)
    recent.expire(31_000)  # half the window passed: the first generation is dropped
    assert ids[0] not in recent and ids[2] in recent
    assert ids[5] not in recent
