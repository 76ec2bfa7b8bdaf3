-- The durable outbox (see alerting/outbox.py): every webhook sitepulse sends is
-- a row here first, so a receiver that is down, or a restart, loses nothing.
-- Rows stay after delivery as the delivery record until pruned.
CREATE TABLE outbox (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),  -- the Idempotency-Key
    created_at      TIMESTAMP NOT NULL,
    kind            VARCHAR NOT NULL,            -- 'lead_webhook', 'alert', ...
    target          VARCHAR NOT NULL,            -- the URL posted to
    payload         JSON NOT NULL,               -- the exact body sent (and signed)
    -- e.g. lead id + target: a lead is sent once per target however often it is scored
    dedupe_key      VARCHAR NOT NULL UNIQUE,
    status          VARCHAR NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_status     INTEGER,                     -- HTTP status of the last attempt
    last_error      VARCHAR,
    delivered_at    TIMESTAMP,
    updated_at      TIMESTAMP NOT NULL
);
