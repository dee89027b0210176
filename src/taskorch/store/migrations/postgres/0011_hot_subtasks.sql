-- 0009's index for the budget's claim, subtasks (status) WHERE budgeted, made status an indexed
-- column of subtasks again, so no state change of a subtask was a HOT update any more (0008's
-- aim): each one wrote an entry into every index of the wide table, about a third of the WAL of
-- the queue's hot path. The budget's claim now finds its candidates in the narrow mirror, which
-- carries the flag; subtasks keeps its primary key and its workflow index, neither of which a
-- state change touches.
ALTER TABLE subtask_active ADD COLUMN budgeted BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE subtask_active AS a SET budgeted = TRUE FROM subtasks AS s WHERE s.id = a.id AND s.budgeted;
-- Partial on the flag alone, which claims and renewals never change: their updates stay HOT.
CREATE INDEX subtask_active_budgeted_idx ON subtask_active (priority DESC, id) WHERE budgeted;
DROP INDEX subtasks_budgeted_idx;

-- 0008's function, with the flag mirrored too (set_caps marks the subtasks of a workflow, queued
-- ones included).
CREATE OR REPLACE FUNCTION subtask_active_sync() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM subtask_active AS a USING changed AS n
    WHERE a.id = n.id AND n.status NOT IN ('queued', 'assigned', 'running');
    UPDATE subtask_active AS a
    SET status = n.status, priority = n.priority, agent_id = n.agent_id, run_after = n.run_after,
        lease_expires_at = n.lease_expires_at, budgeted = n.budgeted
    FROM changed AS n
    WHERE a.id = n.id AND n.status IN ('queued', 'assigned', 'running')
      AND (a.status, a.priority, a.agent_id, a.run_after, a.lease_expires_at, a.budgeted)
          IS DISTINCT FROM
          (n.status, n.priority, n.agent_id, n.run_after, n.lease_expires_at, n.budgeted);
    INSERT INTO subtask_active (
        id, workflow_id, status, priority, agent_id, run_after, lease_expires_at, budgeted)
    SELECT n.id, n.workflow_id, n.status, n.priority, n.agent_id, n.run_after,
           n.lease_expires_at, n.budgeted
    FROM changed AS n
    WHERE n.status IN ('queued', 'assigned', 'running')
      AND NOT EXISTS (SELECT FROM subtask_active AS a WHERE a.id = n.id);
    RETURN NULL;
END
$$;
