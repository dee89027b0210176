-- The tables of the original specification.
CREATE TABLE tasks (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'pending',
    priority     TEXT NOT NULL DEFAULT 'medium',
    dependencies JSONB NOT NULL DEFAULT '[]',
    metadata     JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX tasks_status_idx ON tasks (status);

CREATE TABLE workflows (
    id         TEXT PRIMARY KEY,
    task_id    BIGINT NOT NULL REFERENCES tasks (id),
    status     TEXT NOT NULL,
    start_time TIMESTAMPTZ,
    end_time TIMESTAMPTZ,
    result     JSONB,
    metadata   JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX workflows_task_idx ON workflows (task_id);
CREATE INDEX workflows_status_idx ON workflows (status);

CREATE TABLE workflow_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    metadata    JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX workflow_history_workflow_idx ON workflow_history (workflow_id, id);

CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    capabilities JSONB NOT NULL DEFAULT '{}',
    status       TEXT NOT NULL DEFAULT 'available',
    metadata     JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
