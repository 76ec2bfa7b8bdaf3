-- Events, leads, derived sessions, daily salts, generated site secrets.
-- No primary key on events: an ART index would cost more disk than the rows;
-- idempotency is enforced by the single writer (see store/writer.py).
CREATE TABLE events (
    event_id      UUID NOT NULL,
    ts            TIMESTAMP NOT NULL,
    received_at   TIMESTAMP NOT NULL,
    site          VARCHAR NOT NULL,
    type          VARCHAR NOT NULL,
    name          VARCHAR NOT NULL,
    value         DOUBLE,
    visitor_id    UBIGINT NOT NULL,
    session_id    UBIGINT NOT NULL,
    url           VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,
    page_group    VARCHAR NOT NULL,
    referrer      VARCHAR NOT NULL,
    referrer_host VARCHAR NOT NULL,
    utm_source    VARCHAR NOT NULL,
    utm_medium    VARCHAR NOT NULL,
    utm_campaign  VARCHAR NOT NULL,
    utm_term      VARCHAR NOT NULL,
    utm_content   VARCHAR NOT NULL,
    click_id_kind VARCHAR NOT NULL,
    click_id      VARCHAR NOT NULL,
    channel       VARCHAR NOT NULL,
    channel_rule  VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    medium        VARCHAR NOT NULL,
    country       VARCHAR NOT NULL,
    region        VARCHAR NOT NULL,
    device        VARCHAR NOT NULL,
    browser       VARCHAR NOT NULL,
    os            VARCHAR NOT NULL,
    is_bot        BOOLEAN NOT NULL,
    bot_reason    VARCHAR NOT NULL,
    props         JSON
);

CREATE TABLE leads (
    lead_id       UUID PRIMARY KEY,
    ts            TIMESTAMP NOT NULL,
    received_at   TIMESTAMP NOT NULL,
    site          VARCHAR NOT NULL,
    visitor_id    UBIGINT NOT NULL,
    session_id    UBIGINT NOT NULL,
    email         VARCHAR NOT NULL,
    phone         VARCHAR NOT NULL,
    name          VARCHAR NOT NULL,
    company       VARCHAR NOT NULL,
    company_size  VARCHAR NOT NULL,
    industry      VARCHAR NOT NULL,
    country       VARCHAR NOT NULL,
    budget        VARCHAR NOT NULL,
    timeline      VARCHAR NOT NULL,
    message       VARCHAR NOT NULL,
    consent       BOOLEAN NOT NULL,
    fields        JSON,
    form          VARCHAR NOT NULL,
    url           VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,
    referrer      VARCHAR NOT NULL,
    channel       VARCHAR NOT NULL,
    channel_rule  VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    medium        VARCHAR NOT NULL,
    campaign      VARCHAR NOT NULL,
    click_id_kind VARCHAR NOT NULL,
    click_id      VARCHAR NOT NULL,
    geo_country   VARCHAR NOT NULL,
    geo_region    VARCHAR NOT NULL,
    device        VARCHAR NOT NULL,
    browser       VARCHAR NOT NULL,
    os            VARCHAR NOT NULL,
    is_bot        BOOLEAN NOT NULL,
    is_test       BOOLEAN NOT NULL,
    -- Filled by lead scoring (a later stage); NULL until then.
    score         DOUBLE,
    tier          VARCHAR,
    score_breakdown JSON
);

-- One row per session, kept up to date by the writer on every commit.
CREATE TABLE sessions (
    session_id    UBIGINT PRIMARY KEY,
    site          VARCHAR NOT NULL,
    visitor_id    UBIGINT NOT NULL,
    started_at    TIMESTAMP NOT NULL,
    last_seen     TIMESTAMP NOT NULL,
    landing_url   VARCHAR NOT NULL,
    landing_path  VARCHAR NOT NULL,
    referrer      VARCHAR NOT NULL,
    channel       VARCHAR NOT NULL,
    channel_rule  VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    medium        VARCHAR NOT NULL,
    campaign      VARCHAR NOT NULL,
    click_id_kind VARCHAR NOT NULL,
    country       VARCHAR NOT NULL,
    device        VARCHAR NOT NULL,
    browser       VARCHAR NOT NULL,
    os            VARCHAR NOT NULL,
    is_bot        BOOLEAN NOT NULL,
    events        BIGINT NOT NULL,
    pageviews     BIGINT NOT NULL,
    leads         BIGINT NOT NULL
);

CREATE TABLE salts (
    day   DATE PRIMARY KEY,
    salt  BLOB NOT NULL
);

CREATE TABLE site_secrets (
    site  VARCHAR PRIMARY KEY,
    token VARCHAR NOT NULL
);
