-- How far the ingest journal has been loaded into this database; updated in the
-- same transaction as the rows it covers, so replay after a crash is exact.
CREATE TABLE journal_state (
    id     INTEGER PRIMARY KEY,
    loaded BIGINT NOT NULL
);
INSERT INTO journal_state VALUES (1, 0);
