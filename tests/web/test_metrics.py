"""/metrics: health and business counters grow; labels stay cardinality-safe."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SITE_HOST, SITE_KEY, LiveServer, new_id, now_ms, pageview


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(text: str, name: str, **labels: str) -> float:
    return sum(
        v for (n, ls), v in _samples(text).items() if n == name and set(labels.items()) <= ls
    )


def test_metrics_grow_and_stay_cardinality_safe(live_server: LiveServer) -> None:
    with live_server.client() as c:
        before = c.get("/metrics").text
        for i in range(30):
            url = f"https://{SITE_HOST}/blog/post-{i}?utm_source=google&utm_medium=cpc&gclid=x{i}"
            events = [
                pageview(url),
                {
                    "event_id": new_id(),
                    "ts": now_ms(),
                    "type": "vital",
                    "name": "LCP",
                    "value": 1800 + i * 100,
                    "url": url,
                },
                {
                    "event_id": new_id(),
                    "ts": now_ms(),
                    "type": "vital",
                    "name": "CLS",
                    "value": 0.02 * i,
                    "url": url,
                },
            ]
            assert (
                c.post(
                    "/api/v1/collect",
                    json={"site_key": SITE_KEY, "events": events},
                    headers={"X-Forwarded-For": f"81.2.69.{i}"},
                ).status_code
                == 202
            )
        c.post("/api/v1/leads", json={"site_key": SITE_KEY, "email": "x@y.example"})
        c.post("/api/v1/collect", content=b"{broken", headers={"Content-Type": "text/plain"})
        after = c.get("/metrics").text

    assert _value(before, "sitepulse_pageviews_total") == 0
    assert (
        _value(after, "sitepulse_pageviews_total", page_group="/blog", channel="Paid Search") == 30
    )
    assert _value(after, "sitepulse_leads_total", site="acme") == 1
    assert _value(after, "sitepulse_ingest_events_total", outcome="stored") == 91
    assert _value(after, "sitepulse_dropped_events_total", reason="invalid") == 1
    assert _value(after, "sitepulse_ingest_requests_total", endpoint="collect", outcome="202") == 30
    assert _value(after, "sitepulse_store_commit_seconds_count") >= 1
    # Google's thresholds are bucket bounds: the good share is an exact ratio.
    good_lcp = _value(after, "sitepulse_web_vitals_lcp_seconds_bucket", le="2.5")
    assert good_lcp == sum(1 for i in range(30) if 1800 + i * 100 <= 2500)
    assert _value(after, "sitepulse_web_vitals_cls_bucket", le="0.1") == 6
    assert 'le="4.0"' in after and 'le="0.25"' in after
    # No raw URLs, ids or agents in any label.
    labels = " ".join(re.findall(r"\{[^}]*\}", after))
    for forbidden in ("post-1", "gclid", "81.2.69", "Mozilla", "x@y"):
        assert forbidden not in labels


def test_page_group_labels_are_bounded(live_server: LiveServer) -> None:
    with live_server.client() as c:
        for i in range(80):
            c.post(
                "/api/v1/collect",
                json={
                    "site_key": SITE_KEY,
                    "events": [pageview(f"https://{SITE_HOST}/section{i}/x")],
                },
            )
        text = c.get("/metrics").text
    groups = {
        dict(ls).get("page_group") for (n, ls) in _samples(text) if n == "sitepulse_pageviews_total"
    }
    assert len(groups) <= 51 and "other" in groups
    assert _value(text, "sitepulse_pageviews_total") == 80
