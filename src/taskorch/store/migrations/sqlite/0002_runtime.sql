-- What the runtime needs: subtasks, their attempts, an event log, agent concurrency limits.
ALTER TABLE agents ADD COLUMN max_concurrency INTEGER NOT NULL DEFAULT 1;

CREATE TABLE subtasks (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id                TEXT NOT NULL REFERENCES workflows (id),
    key                        TEXT NOT NULL,
    title                      TEXT NOT NULL,
    description                TEXT NOT NULL DEFAULT '',
    assigned_to                TEXT NOT NULL,
    worker_type                TEXT NOT NULL,
    dependencies               TEXT NOT NULL DEFAULT '[]',
    files_affected             TEXT NOT NULL DEFAULT '[]',
    success_criteria           TEXT NOT NULL DEFAULT '',
    estimated_duration_minutes INTEGER NOT NULL DEFAULT 0,
    estimated_tokens           INTEGER NOT NULL DEFAULT 0,
    command                    TEXT,
    stage                      INTEGER NOT NULL DEFAULT 0,
    status                     TEXT NOT NULL DEFAULT 'pending',
    agent_id                   TEXT,
    attempts                   INTEGER NOT NULL DEFAULT 0,
    run_after                  TEXT,
    lease_owner                TEXT,
    lease_expires_at           TEXT,
    result                     TEXT,
    error                      TEXT,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL,
    UNIQUE (workflow_id, key)
);
CREATE INDEX subtasks_status_idx ON subtasks (status, run_after);

CREATE TABLE attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    subtask_id    INTEGER NOT NULL REFERENCES subtasks (id),
    number        INTEGER NOT NULL,
    agent_id      TEXT,
    worker_id     TEXT,
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    outcome       TEXT NOT NULL DEFAULT 'running',
    error_class   TEXT,
    error_message TEXT,
    tokens_in     INTEGER,
    tokens_out    INTEGER,
    cost_usd      REAL,
    UNIQUE (subtask_id, number)
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    workflow_id TEXT,
    subtask_id  INTEGER,
    payload     TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);
CREATE INDEX events_workflow_idx ON events (workflow_id, id);
