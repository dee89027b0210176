-- The queue's look-ups move to a narrow table, so that a subtask's state changes are HOT updates.
--
-- Before: the ready index (WHERE status = 'queued') and the lease index (WHERE status IN
-- ('assigned', 'running')) made status an indexed column of subtasks, so every state change
-- (queued, running, completed) wrote a new entry into every index of the wide table. Now
-- subtask_active mirrors the few columns the queue looks up, for the subtasks that are queued or
-- leased only; subtasks keeps just its primary key and workflow index, neither of which a state
-- change touches, and room on each page (fillfactor) for the new row version to stay on it.
--
-- subtasks stays the one truth: the mirror is kept by statement-level triggers, in the same
-- transaction as the change, whichever query made it. Claims lock the subtasks row (SKIP LOCKED)
-- and re-check its status there; the mirror only finds candidates.
CREATE TABLE subtask_active (
    id               BIGINT PRIMARY KEY,
    workflow_id      TEXT NOT NULL,
    status           TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    agent_id         TEXT,
    run_after        TIMESTAMPTZ,
    lease_expires_at TIMESTAMPTZ
) WITH (fillfactor = 30);
-- Claim order over all of the mirror (a claim skips the leased rows, never more than the running
-- attempts): not a partial index on status, so that a claim's and a renewal's updates of the
-- mirror are HOT too.
CREATE INDEX subtask_active_order_idx ON subtask_active (priority DESC, id);

-- Three plain statements, each one join with the changed rows: cheaper than an upsert, which
-- tries an insert per row before it updates. No two transactions change the mirror row of one
-- subtask at once: each holds the subtasks row's lock while it does.
CREATE FUNCTION subtask_active_sync() RETURNS trigger LANGUAGE plpgsql
-- The schema the tables were created in, whatever search_path the changing session has.
SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM subtask_active AS a USING changed AS n
    WHERE a.id = n.id AND n.status NOT IN ('queued', 'assigned', 'running');
    UPDATE subtask_active AS a
    SET status = n.status, priority = n.priority, agent_id = n.agent_id, run_after = n.run_after,
        lease_expires_at = n.lease_expires_at
    FROM changed AS n
    WHERE a.id = n.id AND n.status IN ('queued', 'assigned', 'running')
      AND (a.status, a.priority, a.agent_id, a.run_after, a.lease_expires_at)
          IS DISTINCT FROM (n.status, n.priority, n.agent_id, n.run_after, n.lease_expires_at);
    INSERT INTO subtask_active (
        id, workflow_id, status, priority, agent_id, run_after, lease_expires_at)
    SELECT n.id, n.workflow_id, n.status, n.priority, n.agent_id, n.run_after, n.lease_expires_at
    FROM changed AS n
    WHERE n.status IN ('queued', 'assigned', 'running')
      AND NOT EXISTS (SELECT FROM subtask_active AS a WHERE a.id = n.id);
    RETURN NULL;
END
$$;

-- A trigger with a transition table has one event: one for inserts, one for updates.
CREATE TRIGGER subtask_active_on_insert AFTER INSERT ON subtasks
REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION subtask_active_sync();
CREATE TRIGGER subtask_active_on_update AFTER UPDATE ON subtasks
REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION subtask_active_sync();

INSERT INTO subtask_active (id, workflow_id, status, priority, agent_id, run_after, lease_expires_at)
SELECT id, workflow_id, status, priority, agent_id, run_after, lease_expires_at FROM subtasks
WHERE status IN ('queued', 'assigned', 'running');

DROP INDEX subtasks_ready_idx;
DROP INDEX subtasks_lease_idx;
ALTER TABLE subtasks SET (fillfactor = 50);
