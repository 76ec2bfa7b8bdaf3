"""Storage layout v2: event-id TTL, page numbers, sequential sessions, the 0003 migration."""

from __future__ import annotations

import importlib.resources
import json
import uuid
from pathlib import Path

import duckdb
import msgspec

from sitepulse.store.duckdb import DuckDBStore
from sitepulse.store.duckdb.backend import DB_FILE
from tests.conftest import SITE_HOST, SITE_KEY, LiveServer, new_id, now_ms, pageview
from tests.store.test_writer import NOW, _event

HOUR = 3_600_000


def test_event_ids_are_cleared_once_the_dedupe_window_has_passed(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    store.migrate()
    old = [msgspec.structs.replace(_event(i), received_at=NOW - 30 * HOUR) for i in range(5)]
    recent = [msgspec.structs.replace(_event(i), received_at=NOW - HOUR) for i in range(5, 8)]
    store.write(old + recent, [])
    store.housekeeping(NOW, 24 * HOUR)
    kept = store.query("SELECT event_id FROM events WHERE event_id IS NOT NULL")
    assert sorted(row[0].bytes for row in kept) == sorted(e.event_id for e in recent)
    assert store.query("SELECT count(*) FROM events") == [(8,)]
    # Only ids still inside the window come back for the writer's dedupe set.
    assert {eid for eid, _ in store.recent_event_ids(NOW - 48 * HOUR, 100)} == {
        e.event_id for e in recent
    }
    store.close()


def test_last_session_seq_ignores_ids_given_by_backends(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    store.migrate()
    assert store.last_session_seq() == 0
    events = [
        msgspec.structs.replace(_event(0), session_id=41),
        msgspec.structs.replace(_event(1), session_id=7),
        msgspec.structs.replace(_event(2), session_id=(1 << 63) + 5),
    ]
    store.write(events, [])
    assert store.last_session_seq() == 41
    store.close()


def _v1_database(folder: Path) -> Path:
    """A database as migrations 0001 and 0002 left it, with v1-style rows."""
    folder.mkdir()
    path = folder / DB_FILE
    migrations = importlib.resources.files("sitepulse.store.duckdb") / "migrations"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations"
        " (version VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    for name in ("0001_initial.sql", "0002_journal.sql"):
        con.execute((migrations / name).read_text(encoding="utf-8"))
        con.execute("INSERT INTO schema_migrations (version) VALUES (?)", [name[:4]])
    first_page, second_page = uuid.uuid4(), uuid.uuid4()
    rows = [
        (first_page, 1000, "pageview", None),
        (uuid.uuid4(), 2000, "engagement", {"pageview_id": str(first_page), "milestone": True}),
        (second_page, 3000, "pageview", None),
        (uuid.uuid4(), 4000, "engagement", {"pageview_id": str(second_page)}),
        (uuid.uuid4(), 5000, "engagement", {"pageview_id": str(first_page)}),
        (uuid.uuid4(), 6000, "custom", {"cta": "hero"}),
    ]
    for event_id, ts, type_, props in rows:
        con.execute(
            "INSERT INTO events VALUES (?, make_timestamp(?::BIGINT * 1000),"
            " make_timestamp(?::BIGINT * 1000), 's', ?, '', NULL, 1, 9, 'u', '/', '/', '', '',"
            " '', '', '', '', '', '', '', 'Direct', 'r', '(direct)', '(none)', '', '',"
            " 'desktop', 'Chrome', 'Windows', false, '', ?)",
            [event_id, NOW + ts, NOW + ts, type_, json.dumps(props) if props else None],
        )
    con.close()
    return folder


def test_migration_0003_numbers_pages_and_drops_pageview_ids(tmp_path: Path) -> None:
    store = DuckDBStore(_v1_database(tmp_path / "v1"))
    assert store.migrate()[0] == "0003"
    rows = store.query("SELECT type, page_seq, props::VARCHAR FROM events ORDER BY ts")
    assert [(t, seq) for t, seq, _ in rows] == [
        ("pageview", 1),
        ("engagement", 1),
        ("pageview", 2),
        ("engagement", 2),
        ("engagement", 1),
        ("custom", 0),
    ]
    props = [json.loads(p) if p else None for _, _, p in rows]
    assert props == [None, {"milestone": True}, None, None, None, {"cta": "hero"}]
    store.close()


def _send(server: LiveServer, events: list[dict[str, object]], ua: str) -> None:
    with server.client() as c:
        resp = c.post(
            "/api/v1/collect",
            json={"site_key": SITE_KEY, "events": events},
            headers={"User-Agent": ua},
        )
        assert resp.status_code == 202, resp.text


def test_pages_are_numbered_and_sessions_count_on_across_restarts(
    live_server: LiveServer,
) -> None:
    ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"
    url = f"https://{SITE_HOST}/"
    first, second = pageview(url), pageview(url + "pricing")
    t = now_ms()

    def engagement(page: dict[str, object], ts: int) -> dict[str, object]:
        return {
            "event_id": new_id(),
            "ts": ts,
            "type": "engagement",
            "name": "engaged_time",
            "value": 1000,
            "url": page["url"],
            "props": {"pageview_id": page["event_id"]},
        }

    _send(live_server, [first, engagement(first, t + 1), second, engagement(first, t + 2)], ua)
    rows = sorted(live_server.events(), key=lambda r: (r["ts"], r["type"], r["page_seq"]))
    # The engagement names its page view: both belong to page 1, not the latest page.
    assert [(r["type"], r["page_seq"]) for r in rows] == [
        ("pageview", 1),
        ("pageview", 2),
        ("engagement", 1),
        ("engagement", 1),
    ]
    assert all(r["props"] is None for r in rows if r["type"] == "engagement")
    before = {r["session_id"] for r in rows}
    assert len(before) == 1
    live_server.stop()
    live_server.start()
    _send(live_server, [pageview(url)], ua.replace("130", "131"))
    after = {r["session_id"] for r in live_server.events()} - before
    assert len(after) == 1
    assert int(after.pop(), 16) == int(before.pop(), 16) + 1


def test_a_lead_naming_its_browser_session_joins_it(live_server: LiveServer) -> None:
    landing = pageview(f"https://{SITE_HOST}/?utm_source=google&utm_medium=cpc&gclid=abc123")
    with live_server.client() as c:
        visit = c.post("/api/v1/collect", json={"site_key": SITE_KEY, "events": [landing]})
        session = visit.json()["session_id"]
        lead = c.post(
            "/api/v1/leads",
            headers={"User-Agent": "curl/8.5 (a form handler on the site's server)"},
            json={
                "site_key": SITE_KEY,
                "email": "lin@example.org",
                "session_id": session,
                "visitor_id": visit.json()["visitor_id"],
            },
        )
    assert lead.status_code == 201, lead.text
    assert lead.json()["session_id"] == session
    live_server.stop()
    ((channel, click_id, sid),) = live_server.db_query(
        "SELECT channel, click_id, printf('%016x', session_id) FROM leads"
    )
    assert (channel, click_id, sid) == ("Paid Search", "abc123", session)
