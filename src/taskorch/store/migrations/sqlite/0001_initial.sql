-- The tables of the original specification.
CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'pending',
    priority     TEXT NOT NULL DEFAULT 'medium',
    dependencies TEXT NOT NULL DEFAULT '[]',
    metadata     TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX tasks_status_idx ON tasks (status);

CREATE TABLE workflows (
    id         TEXT PRIMARY KEY,
    task_id    INTEGER NOT NULL REFERENCES tasks (id),
    status     TEXT NOT NULL,
    start_time TEXT,
    end_time   TEXT,
    result     TEXT,
    metadata   TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX workflows_task_idx ON workflows (task_id);
CREATE INDEX workflows_status_idx ON workflows (status);

CREATE TABLE workflow_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX workflow_history_workflow_idx ON workflow_history (workflow_id, id);

CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    capabilities TEXT NOT NULL DEFAULT '{}',
    status       TEXT NOT NULL DEFAULT 'available',
    metadata     TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
