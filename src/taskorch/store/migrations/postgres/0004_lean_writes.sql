-- Fewer index entries and checks per state change on the queue's hot path. No update of a
-- subtask's state is HOT (its status is in the queue's partial indexes), so each one writes an
-- entry into every index of the table; these are the ones that needed not be there.
--
-- 1. The (workflow_id, status) index: lookups by workflow use the workflow index below.
DROP INDEX subtasks_workflow_status_idx;

-- 2. A subtask's key is unique in its workflow, kept in a table of its own that is written once
--    per subtask (insert_subtask writes both). As a UNIQUE index on subtasks every state change
--    added an entry and checked uniqueness against the row's earlier versions; a plain index on
--    workflow_id (one posting list per workflow) costs a fraction of that.
CREATE TABLE subtask_keys (
    workflow_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    PRIMARY KEY (workflow_id, key)
);
INSERT INTO subtask_keys (workflow_id, key) SELECT workflow_id, key FROM subtasks;
ALTER TABLE subtasks DROP CONSTRAINT subtasks_workflow_id_key_key;
CREATE INDEX subtasks_workflow_idx ON subtasks (workflow_id);

-- 3. An attempt is only ever inserted for a subtask the same statement has just updated (the
--    settle script joins on the rows it completed), and subtasks are never deleted, so the
--    foreign key's per-row check found nothing it could reject.
ALTER TABLE attempts DROP CONSTRAINT attempts_subtask_id_fkey;
