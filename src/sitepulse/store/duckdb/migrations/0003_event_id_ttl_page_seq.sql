-- Storage layout v2 (see docs/ARCHITECTURE.md, "Storage layout").
--
-- event_id is the idempotency key: it is needed only while a re-send can
-- still arrive, so the loader clears it once the dedupe window has passed (a
-- column TTL, as ClickHouse would do). Cleared ids compress to nothing; kept
-- for ever they were 16 incompressible bytes per event.
ALTER TABLE events ALTER COLUMN event_id DROP NOT NULL;

-- page_seq: the n-th page view of the session (1, 2, ...) that an event
-- belongs to, 0 when unknown. It replaces the pageview_id UUID text that
-- engagement events carried in props.
ALTER TABLE events ADD COLUMN page_seq USMALLINT NOT NULL DEFAULT 0;

UPDATE events SET page_seq = pages.seq
FROM (
    SELECT event_id,
           least(row_number() OVER (PARTITION BY session_id ORDER BY ts), 65535) AS seq
    FROM events WHERE type = 'pageview' AND session_id <> 0
) AS pages
WHERE events.type = 'pageview' AND events.event_id = pages.event_id;

UPDATE events SET page_seq = pv.page_seq,
                  props = nullif(json_merge_patch(events.props, '{"pageview_id": null}'), '{}')
FROM (SELECT event_id::VARCHAR AS id, page_seq FROM events WHERE type = 'pageview') AS pv
WHERE events.props->>'pageview_id' = pv.id;

UPDATE events SET props = nullif(json_merge_patch(props, '{"pageview_id": null}'), '{}')
WHERE props->>'pageview_id' IS NOT NULL;
