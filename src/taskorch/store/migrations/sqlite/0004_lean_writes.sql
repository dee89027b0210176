-- Fewer index entries per state change on the queue's hot path: SQLite rewrites the entries of
-- every index that holds a changed column, and a subtask's status changes three times. Lookups
-- by workflow use the (workflow_id, key) index of the UNIQUE constraint.
DROP INDEX subtasks_workflow_status_idx;
