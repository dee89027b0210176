-- Rate windows: an agent that answered "rate limited" or "usage limit" is left alone until
-- `until` by every worker on every host; `strikes` counts its limits in a row (the backoff).
CREATE TABLE agent_windows (
    agent_id   TEXT PRIMARY KEY,
    until      TEXT NOT NULL,
    strikes    INTEGER NOT NULL DEFAULT 1,
    source     TEXT NOT NULL DEFAULT 'backoff',
    updated_at TEXT NOT NULL
);
