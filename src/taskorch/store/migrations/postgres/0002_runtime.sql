-- What the runtime needs: subtasks, their attempts, an event log, agent concurrency limits.
ALTER TABLE agents ADD COLUMN max_concurrency INTEGER NOT NULL DEFAULT 1;

CREATE TABLE subtasks (
    id                         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id                TEXT NOT NULL REFERENCES workflows (id),
    key                        TEXT NOT NULL,
    title                      TEXT NOT NULL,
    description                TEXT NOT NULL DEFAULT '',
    assigned_to                TEXT NOT NULL,
    worker_type                TEXT NOT NULL,
    dependencies               JSONB NOT NULL DEFAULT '[]',
    files_affected             JSONB NOT NULL DEFAULT '[]',
    success_criteria           TEXT NOT NULL DEFAULT '',
    estimated_duration_minutes INTEGER NOT NULL DEFAULT 0,
    estimated_tokens           INTEGER NOT NULL DEFAULT 0,
    command                    JSONB,
    stage                      INTEGER NOT NULL DEFAULT 0,
    status                     TEXT NOT NULL DEFAULT 'pending',
    agent_id                   TEXT,
    attempts                   INTEGER NOT NULL DEFAULT 0,
    run_after TIMESTAMPTZ,
    lease_owner                TEXT,
    lease_expires_at TIMESTAMPTZ,
    result                     JSONB,
    error                      TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (workflow_id, key)
);
CREATE INDEX subtasks_status_idx ON subtasks (status, run_after);

CREATE TABLE attempts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subtask_id BIGINT NOT NULL REFERENCES subtasks (id),
    number        INTEGER NOT NULL,
    agent_id      TEXT,
    worker_id     TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    outcome       TEXT NOT NULL DEFAULT 'running',
    error_class   TEXT,
    error_message TEXT,
    tokens_in     INTEGER,
    tokens_out    INTEGER,
    cost_usd      DOUBLE PRECISION,
    UNIQUE (subtask_id, number)
);

CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    workflow_id TEXT,
    subtask_id BIGINT,
    payload     JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_workflow_idx ON events (workflow_id, id);
