"""The demo's generator against a real server: history lands, enriched and believable."""

from __future__ import annotations

import asyncio
import time

import httpx

from sitepulse.demo.traffic import TrafficConfig, backfill
from tests.conftest import ServerFactory


def test_backfill_through_a_live_server(server_factory: ServerFactory) -> None:
    server = server_factory({"server": {"sample_site": True}})
    cfg = TrafficConfig(
        base_url=server.base_url,
        site_key=server.site_key,
        site_token=server.token,
        seed=3,
        backfill_days=2,
    )

    async def run() -> int:
        async with httpx.AsyncClient(timeout=30.0) as client:
            stats = await backfill(cfg, now_ms=time.time_ns() // 1_000_000, client=client)
        assert not stats.events_rejected and not stats.leads_rejected
        # Each stored lead also stores its `lead` event, for funnels.
        return stats.events_accepted + stats.leads_accepted

    accepted = asyncio.run(run())
    server.stop()
    ((events, channels, countries, bots, sessions, leads, test_leads),) = server.db_query(
        "SELECT count(*), count(DISTINCT channel), count(DISTINCT country),"
        " count(*) FILTER (is_bot), count(DISTINCT session_id),"
        " (SELECT count(*) FROM leads), (SELECT count(*) FROM leads WHERE is_test)"
        " FROM events"
    )
    assert events == accepted > 1000
    assert channels >= 6 and countries >= 5
    assert 0 < bots < events * 0.2
    assert sessions > 100 and leads > 0
    assert leads > test_leads
    vitals = server.db_query(
        "SELECT name, quantile_cont(value, 0.75) FROM events WHERE type = 'vital'"
        " GROUP BY name ORDER BY name"
    )
    p75 = dict(vitals)
    assert set(p75) >= {"CLS", "FCP", "INP", "LCP", "TTFB"}
    assert 1000 < p75["LCP"] < 6000
