-- The runtime's queue: dependency edges between stored subtasks, a countdown of unfinished
-- dependencies, and indexes for claiming ready work and finding expired leases.
ALTER TABLE subtasks ADD COLUMN pending_deps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subtasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subtasks ADD COLUMN queued_at TIMESTAMPTZ;

CREATE TABLE subtask_edges (
    subtask_id   BIGINT NOT NULL REFERENCES subtasks (id),
    dependent_id BIGINT NOT NULL REFERENCES subtasks (id),
    PRIMARY KEY (subtask_id, dependent_id)
);
CREATE INDEX subtask_edges_dependent_idx ON subtask_edges (dependent_id);

-- The ready index below replaces the general status index: fewer indexes, cheaper state writes.
DROP INDEX subtasks_status_idx;
CREATE INDEX subtasks_ready_idx ON subtasks (priority DESC, id) WHERE status = 'queued';
CREATE INDEX subtasks_lease_idx ON subtasks (lease_expires_at) WHERE status IN ('assigned', 'running');
CREATE INDEX subtasks_workflow_status_idx ON subtasks (workflow_id, status);
