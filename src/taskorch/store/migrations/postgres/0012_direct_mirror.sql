-- The queue's hot statements (queue_ready_in_workflow, settle_completed) write the narrow mirror
-- themselves, in the same statement as the change of subtasks: they know which rows left it,
-- which were claimed and which became ready, so the statement trigger's three joins with the
-- transition table (about a fifth of the settle statement's server time) are not needed there.
-- Such a statement says so with the transaction-local setting taskorch.mirror_written = 'on';
-- the trigger then does nothing and clears the setting, so only that one statement's update is
-- passed over (a later statement of the same transaction is mirrored by the trigger again).
-- Every other query that changes a subtask is still mirrored by the trigger.
CREATE OR REPLACE FUNCTION subtask_active_sync() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('taskorch.mirror_written', true) = 'on' THEN
        PERFORM set_config('taskorch.mirror_written', '', true);
        RETURN NULL;
    END IF;
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
