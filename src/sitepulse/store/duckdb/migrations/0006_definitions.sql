-- Funnels and experiments defined in the UI (analyse/definitions.py). Those in
-- sitepulse.yaml stay in the file; a stored name may not shadow a configured one.
-- `body` is the definition in its config form, validated by the same code as the file.
CREATE TABLE definitions (
    kind        VARCHAR NOT NULL,            -- 'funnel' | 'experiment'
    name        VARCHAR NOT NULL,
    body        JSON NOT NULL,
    created_by  VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_by  VARCHAR NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (kind, name),
    CHECK (kind IN ('funnel', 'experiment'))
);
