-- page_loads: one row per page load (session_id, page_seq), derived from the
-- events of the load the way `sessions` is derived from the events of the
-- session, and refreshed with it by the loader (store/duckdb/backend.py,
-- refresh_sessions). It holds what the analyses ask of a page load: its page,
-- the worst value of each Web Vital it reported, its engaged time and its
-- downloads. It is about a twelfth of the events table, so Web Vitals, KPIs,
-- funnels and lead scoring read it instead of scanning every event.
--
-- Events without a known page (page_seq 0) belong to no load.
CREATE TABLE page_loads (
    session_id  UBIGINT NOT NULL,
    page_seq    USMALLINT NOT NULL,
    site        VARCHAR NOT NULL,
    visitor_id  UBIGINT NOT NULL,
    ts          TIMESTAMP NOT NULL,  -- the page view's time (the first event's without one)
    path        VARCHAR NOT NULL,
    page_group  VARCHAR NOT NULL,
    device      VARCHAR NOT NULL,
    is_bot      BOOLEAN NOT NULL,
    viewed      BOOLEAN NOT NULL,    -- its page view is stored
    lcp         DOUBLE,              -- the worst (largest) value reported, NULL when none
    inp         DOUBLE,
    cls         DOUBLE,
    fcp         DOUBLE,
    ttfb        DOUBLE,
    engaged_ms  DOUBLE,              -- the largest running total of engaged time
    engaged_at  TIMESTAMP,           -- when that total was reported
    downloads   USMALLINT NOT NULL
);

INSERT INTO page_loads
SELECT session_id, page_seq, any_value(site), any_value(visitor_id),
       coalesce(min(ts) FILTER (type = 'pageview'), min(ts)),
       coalesce(arg_min(path, ts) FILTER (type = 'pageview'), arg_min(path, ts)),
       coalesce(arg_min(page_group, ts) FILTER (type = 'pageview'), arg_min(page_group, ts)),
       arg_min(device, ts),
       bool_or(is_bot),
       bool_or(type = 'pageview'),
       max(value) FILTER (type = 'vital' AND name = 'LCP' AND isfinite(value)),
       max(value) FILTER (type = 'vital' AND name = 'INP' AND isfinite(value)),
       max(value) FILTER (type = 'vital' AND name = 'CLS' AND isfinite(value)),
       max(value) FILTER (type = 'vital' AND name = 'FCP' AND isfinite(value)),
       max(value) FILTER (type = 'vital' AND name = 'TTFB' AND isfinite(value)),
       max(value) FILTER (type = 'engagement' AND name = 'engaged_time' AND isfinite(value)),
       arg_max(ts, value) FILTER (type = 'engagement' AND name = 'engaged_time' AND isfinite(value)),
       least(count(*) FILTER (type = 'click' AND name = 'download'), 65535)
FROM events
WHERE session_id <> 0 AND page_seq > 0
GROUP BY session_id, page_seq
ORDER BY session_id, page_seq;

-- What the KPIs ask of a session, from its page loads and events (refreshed with it):
-- engaged time (the sum of its loads'), newsletter sign-ups and the last page viewed.
ALTER TABLE sessions ADD COLUMN engaged_ms DOUBLE NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN signups INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN exit_path VARCHAR NOT NULL DEFAULT '';

UPDATE sessions SET engaged_ms = coalesce(pl.engaged_ms, 0), exit_path = coalesce(pl.exit_path, '')
FROM (
    SELECT session_id, sum(engaged_ms) AS engaged_ms,
           arg_max(path, page_seq) FILTER (viewed) AS exit_path
    FROM page_loads GROUP BY session_id
) AS pl
WHERE sessions.session_id = pl.session_id;

UPDATE sessions SET signups = e.n
FROM (
    SELECT session_id, count(*) AS n FROM events
    WHERE type = 'custom' AND name = 'newsletter_signup' GROUP BY session_id
) AS e
WHERE sessions.session_id = e.session_id;
