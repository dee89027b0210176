-- Named queries for PostgreSQL. Every query here has a twin of the same name in sqlite.sql.
-- Times are timestamptz; JSON parameters arrive as text and are cast to jsonb here.

-- name: ping
SELECT 1 AS ok;

-- name: schema_version
SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations;

-- name: insert_task
INSERT INTO tasks (title, description, status, priority, dependencies, metadata, created_at, updated_at)
VALUES (%(title)s, %(description)s, 'pending', %(priority)s, %(dependencies)s::jsonb, %(metadata)s::jsonb, %(now)s, %(now)s)
RETURNING *;

-- name: get_task
SELECT * FROM tasks WHERE id = %(id)s;

-- name: existing_task_ids
SELECT id FROM tasks
WHERE id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)::bigint);

-- name: list_tasks
SELECT * FROM tasks
WHERE (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY id
LIMIT %(limit)s;

-- name: update_task_status
UPDATE tasks SET status = %(to_status)s, updated_at = %(now)s
WHERE id = %(id)s AND status = %(from_status)s
RETURNING *;

-- name: end_workflow_task
-- The task of a workflow that just ended ends with it (in the same transaction), if it still
-- counts as being carried.
UPDATE tasks SET status = %(to_status)s, updated_at = %(now)s
WHERE id = (SELECT task_id FROM workflows WHERE id = %(workflow_id)s) AND status = 'processing';

-- name: list_imported_tasks
-- Tasks imported from task-master (metadata.taskmaster), of one tag or (NULL) of every tag.
SELECT * FROM tasks
WHERE metadata -> 'taskmaster' ->> 'tag' IS NOT NULL
  AND (%(tag)s::text IS NULL OR metadata -> 'taskmaster' ->> 'tag' = %(tag)s)
ORDER BY id;

-- name: update_task
UPDATE tasks
SET title = %(title)s, description = %(description)s, priority = %(priority)s,
    status = %(status)s, dependencies = %(dependencies)s::jsonb, metadata = %(metadata)s::jsonb,
    updated_at = %(now)s
WHERE id = %(id)s AND status = %(from_status)s
RETURNING *;

-- name: insert_workflow
INSERT INTO workflows (id, task_id, status, metadata, created_at, updated_at)
VALUES (%(id)s, %(task_id)s, 'pending', %(metadata)s::jsonb, %(now)s, %(now)s)
RETURNING *;

-- name: get_workflow
SELECT * FROM workflows WHERE id = %(id)s;

-- name: list_workflows
SELECT * FROM workflows
WHERE (%(status)s::text IS NULL OR status = %(status)s) AND (%(task_id)s::bigint IS NULL OR task_id = %(task_id)s)
ORDER BY created_at DESC, id
LIMIT %(limit)s;

-- name: transition_workflow
UPDATE workflows
SET status = %(to_state)s,
    updated_at = %(now)s,
    start_time = COALESCE(start_time, %(now)s),
    end_time = CASE WHEN %(terminal)s::boolean THEN %(now)s ELSE end_time END,
    result = COALESCE(%(result)s::jsonb, result),
    metadata = metadata || %(metadata)s::jsonb
WHERE id = %(id)s AND status = %(from_state)s
RETURNING *;

-- name: insert_history
INSERT INTO workflow_history (workflow_id, from_state, to_state, timestamp, metadata)
VALUES (%(workflow_id)s, %(from_state)s, %(to_state)s, %(now)s, %(metadata)s::jsonb);

-- name: list_history
SELECT * FROM workflow_history WHERE workflow_id = %(workflow_id)s ORDER BY id;

-- name: upsert_agent
INSERT INTO agents (id, name, type, capabilities, status, max_concurrency, metadata, created_at, updated_at)
VALUES (%(id)s, %(name)s, %(type)s, %(capabilities)s::jsonb, %(status)s, %(max_concurrency)s, %(metadata)s::jsonb, %(now)s, %(now)s)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name,
    type = excluded.type,
    capabilities = excluded.capabilities,
    status = excluded.status,
    max_concurrency = excluded.max_concurrency,
    metadata = excluded.metadata,
    updated_at = excluded.updated_at
RETURNING *;

-- name: get_agent
SELECT * FROM agents WHERE id = %(ref)s OR name = %(ref)s ORDER BY (id = %(ref)s) DESC LIMIT 1;

-- name: list_agents
SELECT * FROM agents ORDER BY name;

-- name: delete_agent
DELETE FROM agents WHERE id = %(id)s;

-- name: update_agent_status
UPDATE agents SET status = %(status)s, updated_at = %(now)s WHERE id = %(id)s RETURNING *;

-- name: insert_subtask
-- A key is unique in its workflow through subtask_keys (migration 0004): the subtask is stored
-- only if its key was not there yet.
WITH k AS (
    INSERT INTO subtask_keys (workflow_id, key) VALUES (%(workflow_id)s, %(key)s)
    ON CONFLICT (workflow_id, key) DO NOTHING
    RETURNING workflow_id, key)
INSERT INTO subtasks (
    workflow_id, key, title, description, assigned_to, worker_type, dependencies, files_affected,
    success_criteria, estimated_duration_minutes, estimated_tokens, command, stage, status,
    priority, created_at, updated_at)
SELECT
    k.workflow_id, k.key, %(title)s, %(description)s, %(assigned_to)s, %(worker_type)s, %(dependencies)s::jsonb,
    %(files_affected)s::jsonb, %(success_criteria)s, %(estimated_duration_minutes)s, %(estimated_tokens)s, %(command)s::jsonb,
    %(stage)s, %(status)s, %(priority)s, %(now)s, %(now)s
FROM k;

-- name: get_subtask
SELECT * FROM subtasks WHERE id = %(id)s;

-- name: list_subtasks
SELECT * FROM subtasks WHERE workflow_id = %(workflow_id)s ORDER BY stage, id;

-- name: transition_subtask
UPDATE subtasks SET status = %(to_state)s, updated_at = %(now)s
WHERE id = %(id)s AND status = %(from_state)s
RETURNING *;

-- name: insert_attempt
INSERT INTO attempts (subtask_id, number, agent_id, worker_id, started_at, outcome)
VALUES (%(subtask_id)s, %(number)s, %(agent_id)s, %(worker_id)s, %(now)s, 'running')
RETURNING *;

-- name: finish_attempt
UPDATE attempts
SET ended_at = %(now)s, outcome = %(outcome)s, error_class = %(error_class)s,
    error_message = %(error_message)s, tokens_in = %(tokens_in)s, tokens_out = %(tokens_out)s,
    cost_usd = %(cost_usd)s
WHERE id = %(id)s AND outcome = 'running'
RETURNING *;

-- name: list_attempts
SELECT * FROM attempts WHERE subtask_id = %(subtask_id)s ORDER BY number;

-- name: insert_event
INSERT INTO events (kind, workflow_id, subtask_id, payload, created_at)
VALUES (%(kind)s, %(workflow_id)s, %(subtask_id)s, %(payload)s::jsonb, %(now)s)
RETURNING *;

-- name: list_events
SELECT * FROM events
WHERE id > %(after_id)s
ORDER BY id
LIMIT %(limit)s;

-- name: list_workflow_events
-- (A query of its own: with "(workflow_id IS NULL OR ...)" a generic plan scans every event.)
SELECT * FROM events
WHERE workflow_id = %(workflow_id)s AND id > %(after_id)s
ORDER BY id
LIMIT %(limit)s;

-- ---- the runtime's queue (store/queue.py) ------------------------------------------------------

-- name: link_subtasks
INSERT INTO subtask_edges (subtask_id, dependent_id)
SELECT d.id, s.id
FROM subtasks AS s
CROSS JOIN LATERAL jsonb_array_elements_text(s.dependencies) AS j (value)
JOIN subtasks AS d ON d.workflow_id = s.workflow_id AND d.key = j.value
WHERE s.workflow_id = %(workflow_id)s
ON CONFLICT DO NOTHING;

-- name: count_pending_deps
UPDATE subtasks
SET pending_deps = (
    SELECT COUNT(*) FROM subtask_edges AS e JOIN subtasks AS d ON d.id = e.subtask_id
    WHERE e.dependent_id = subtasks.id AND d.status <> 'completed')
WHERE workflow_id = %(workflow_id)s AND status = 'pending';

-- name: queue_ready_in_workflow
-- One part (ids with id mod parts = part) of the workflow's ready subtasks: see queue_ready.
-- The statement puts them into the mirror itself (a pending subtask has no mirror row), and says
-- so to the mirror's trigger (migration 0012).
WITH queued AS (
    UPDATE subtasks SET status = 'queued', queued_at = %(now)s, updated_at = %(now)s
    WHERE workflow_id = %(workflow_id)s AND status = 'pending' AND pending_deps = 0
      AND mod(id, %(parts)s) = %(part)s
    RETURNING id, workflow_id, key, priority, agent_id, run_after, budgeted),
mirrored AS (
    INSERT INTO subtask_active (id, workflow_id, status, priority, agent_id, run_after, budgeted)
    SELECT q.id, q.workflow_id, 'queued', q.priority, q.agent_id, q.run_after, q.budgeted
    FROM queued AS q
    WHERE NOT EXISTS (SELECT FROM subtask_active AS a WHERE a.id = q.id)),
said AS (SELECT set_config('taskorch.mirror_written', 'on', true) AS said)
SELECT q.id, q.workflow_id, q.key FROM queued AS q, said;

-- name: claim_subtasks
-- A claim is queued -> assigned -> running in one statement: the worker starts the attempt in the
-- same transaction, so 'assigned' is never visible outside it and costs no second row write.
-- Candidates come from the narrow mirror (migration 0008); the subtasks row is what is locked and
-- its status re-checked, so a row another claim took meanwhile is skipped.
-- The candidates are ordered in the mirror alone (OFFSET 0 keeps that subquery apart), so only as
-- many subtasks rows as the limit needs are read and locked.
WITH picked AS (
    SELECT s.id
    FROM (SELECT id, priority FROM subtask_active
          WHERE status = 'queued' AND (run_after IS NULL OR run_after <= %(now)s)
            AND agent_id IS NOT DISTINCT FROM %(agent_id)s::text AND NOT budgeted
            AND NOT (workflow_id = ANY(%(skip_list)s::text[]))
          ORDER BY priority DESC, id
          OFFSET 0) AS a
    JOIN subtasks AS s ON s.id = a.id
    WHERE s.status = 'queued' AND NOT s.budgeted
    ORDER BY a.priority DESC, a.id
    LIMIT %(limit)s
    FOR UPDATE OF s SKIP LOCKED)
UPDATE subtasks AS s
SET status = 'running', lease_owner = %(worker)s, lease_expires_at = %(lease_until)s,
    attempts = s.attempts + 1, updated_at = %(now)s
FROM picked
WHERE s.id = picked.id
RETURNING s.*;

-- name: lock_agent_claims
-- Claims for one agent are counted against its limit one at a time: a lock held until the claiming
-- transaction ends, so the next claimer's count (a later statement) sees this one's claims.
SELECT pg_advisory_xact_lock(hashtextextended('taskorch:agent-claims:' || %(agent_id)s, 0))
    IS NULL AS locked;

-- name: agent_claim_room
-- How many more subtasks the agent may run now: its stored limit (or the worker's, when it is not
-- registered) less those it runs, counted in the claiming transaction.
SELECT (SELECT COUNT(*) FROM subtask_active
        WHERE agent_id = %(agent_id)s AND status IN ('assigned', 'running')) AS active,
       (SELECT max_concurrency FROM agents WHERE id = %(agent_id)s) AS max_concurrency;

-- name: agent_load
SELECT agent_id, COUNT(*) AS active FROM subtask_active
WHERE status IN ('assigned', 'running') AND agent_id IS NOT NULL
GROUP BY agent_id;

-- name: queued_agents
SELECT DISTINCT agent_id FROM subtask_active
WHERE status = 'queued' AND (run_after IS NULL OR run_after <= %(now)s);

-- name: renew_leases
UPDATE subtasks SET lease_expires_at = %(lease_until)s
WHERE id = ANY(%(id_list)s) AND lease_owner = %(worker)s AND status IN ('assigned', 'running')
RETURNING id;

-- name: owned_running
SELECT id FROM subtasks
WHERE id = ANY(%(id_list)s) AND lease_owner = %(worker)s AND status = 'running'
ORDER BY id
FOR UPDATE;

-- name: complete_subtask
UPDATE subtasks AS s
SET status = 'completed', result = x.result, error = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = x.now
FROM jsonb_to_recordset(%(rows)s::jsonb) AS x (id bigint, worker text, now timestamptz, result jsonb)
WHERE s.id = x.id AND s.status = 'running' AND s.lease_owner = x.worker;

-- name: release_dependents
-- Count down the dependents of completed subtasks; those reaching 0 become queued in the same
-- statement. RETURNING lists the rows touched; the caller keeps those that just became queued.
UPDATE subtasks
SET pending_deps = subtasks.pending_deps - d.n,
    status = CASE WHEN subtasks.pending_deps - d.n = 0 AND subtasks.status = 'pending'
                  THEN 'queued' ELSE subtasks.status END,
    queued_at = CASE WHEN subtasks.pending_deps - d.n = 0 AND subtasks.status = 'pending'
                     THEN %(now)s ELSE subtasks.queued_at END,
    updated_at = %(now)s
FROM (
    SELECT dependent_id, COUNT(*) AS n FROM subtask_edges
    WHERE subtask_id = ANY(%(id_list)s)
    GROUP BY dependent_id
    ORDER BY dependent_id) AS d
WHERE subtasks.id = d.dependent_id
RETURNING subtasks.id, subtasks.workflow_id, subtasks.key, subtasks.status, subtasks.pending_deps;

-- name: retry_subtask
UPDATE subtasks AS s
SET status = 'queued', run_after = x.run_after, queued_at = COALESCE(x.run_after, x.now),
    error = x.error, agent_id = x.agent_id, lease_owner = NULL, lease_expires_at = NULL,
    interrupted = s.interrupted + x.interrupted, updated_at = x.now
FROM jsonb_to_recordset(%(rows)s::jsonb) AS x (
    id bigint, worker text, now timestamptz, run_after timestamptz, error text, agent_id text,
    interrupted int)
WHERE s.id = x.id AND s.status = 'running' AND s.lease_owner = x.worker;

-- name: fail_subtask
UPDATE subtasks AS s
SET status = 'failed', error = x.error, result = x.result, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = x.now
FROM jsonb_to_recordset(%(rows)s::jsonb) AS x (
    id bigint, worker text, now timestamptz, error text, result jsonb)
WHERE s.id = x.id AND s.status = 'running' AND s.lease_owner = x.worker;

-- name: block_dependents
WITH RECURSIVE down (id) AS (
    SELECT dependent_id FROM subtask_edges WHERE subtask_id = ANY(%(id_list)s)
    UNION
    SELECT e.dependent_id FROM subtask_edges AS e JOIN down ON e.subtask_id = down.id)
UPDATE subtasks SET status = 'blocked', error = %(reason)s, updated_at = %(now)s
WHERE id IN (SELECT id FROM down) AND status IN ('pending', 'queued')
RETURNING id, workflow_id, key;

-- name: expire_leases
-- A lost lease is an interrupted attempt, not the agent's failed try: it is counted apart, and
-- only the cap on interrupted attempts (max_interrupted) fails the subtask.
WITH expired AS (
    SELECT s.id FROM subtask_active AS a JOIN subtasks AS s ON s.id = a.id
    WHERE a.status IN ('assigned', 'running') AND a.lease_expires_at < %(now)s
      AND s.status IN ('assigned', 'running') AND s.lease_expires_at < %(now)s
    FOR UPDATE OF s SKIP LOCKED)
UPDATE subtasks AS s
SET status = CASE WHEN s.interrupted + 1 >= %(max_interrupted)s THEN 'failed' ELSE 'queued' END,
    interrupted = s.interrupted + 1,
    error = 'lease expired: worker ' || COALESCE(s.lease_owner, '?') || ' stopped renewing it',
    run_after = NULL, queued_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = %(now)s
FROM expired
WHERE s.id = expired.id
RETURNING s.id, s.workflow_id, s.key, s.status, s.attempts, s.interrupted, s.agent_id, s.error;

-- name: release_claims
-- Subtasks whose attempts a stopping worker ended: queued again at once, so that no worker waits
-- for their leases to lapse. The ended attempt is recorded as cancelled and counted as
-- interrupted, not as the agent's try.
UPDATE subtasks
SET status = 'queued', queued_at = %(now)s, run_after = NULL, lease_owner = NULL,
    interrupted = interrupted + 1,
    lease_expires_at = NULL, updated_at = %(now)s
WHERE id = ANY(%(id_list)s) AND lease_owner = %(worker)s AND status IN ('assigned', 'running')
RETURNING id;

-- name: cancel_workflow_subtasks
UPDATE subtasks
SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, updated_at = %(now)s
WHERE workflow_id = %(workflow_id)s AND status NOT IN ('completed', 'cancelled')
RETURNING id, workflow_id, key;

-- name: cancelled_among
SELECT id FROM subtasks WHERE id = ANY(%(id_list)s) AND status = 'cancelled';

-- name: record_attempt
INSERT INTO attempts (
    subtask_id, number, agent_id, worker_id, started_at, ended_at, outcome, error_class,
    error_message, tokens_in, tokens_out, cost_usd)
SELECT subtask_id, number, agent_id, worker_id, started_at, ended_at, outcome, error_class,
       error_message, tokens_in, tokens_out, cost_usd
FROM jsonb_to_recordset(%(rows)s::jsonb) AS x (
    subtask_id bigint, number integer, agent_id text, worker_id text, started_at timestamptz,
    ended_at timestamptz, outcome text, error_class text, error_message text, tokens_in integer,
    tokens_out integer, cost_usd double precision)
ON CONFLICT (subtask_id, number) DO NOTHING;

-- name: record_event
INSERT INTO events (kind, workflow_id, subtask_id, payload, created_at)
SELECT kind, workflow_id, subtask_id, payload, now
FROM jsonb_to_recordset(%(rows)s::jsonb) AS x (
    kind text, workflow_id text, subtask_id bigint, payload jsonb, now timestamptz);

-- name: settle_completed
-- The worker's hot path as one statement, so one round trip and one commit: store completed
-- attempts (fenced by the lease: only rows this worker still runs), count down their dependents,
-- claim ready work, and hand the dependents that became ready straight to this worker while it has
-- room (a chain's next step needs no notification and no second claim). Sibling CTEs see the same
-- snapshot, so the claim cannot see the rows released here; it goes first and what it leaves of
-- the limit is the budget for the released ones. Anything released but not taken is announced with
-- pg_notify (channel of postgres.NOTIFY_CHANNEL), delivered on commit.
-- Rows: what = 'done' (one row: done_ids = the subtasks this batch completed), 'claimed' (claimed
-- from the queue), 'released' (became ready and claimed by this worker), 'queued' (became ready,
-- left queued), 'notified'.
-- The completions are found by id (never joined to the parameter rows, whose size the planner
-- cannot know); each takes its result from one JSON object keyed by id, parsed once.
-- rows: one array per attempt, [id, number, agent_id, started_at, ended_at, tokens_in,
-- tokens_out, cost_usd] (arrays encode and parse faster than objects).
-- The statement keeps the mirror itself (migration 0012): the completed rows leave it, the
-- claimed ones become running there, the released ones enter it; the trigger is told so.
WITH x AS (
    SELECT (r ->> 0)::bigint AS id, (r ->> 1)::integer AS number, r ->> 2 AS agent_id,
           (r ->> 3)::timestamptz AS started_at, (r ->> 4)::timestamptz AS ended_at,
           (r ->> 5)::integer AS tokens_in, (r ->> 6)::integer AS tokens_out,
           (r ->> 7)::double precision AS cost_usd
    FROM jsonb_array_elements(%(rows)s::jsonb) AS r),
results AS (SELECT %(results)s::jsonb AS by_id),
done AS (
    UPDATE subtasks AS s
    SET status = 'completed', result = (SELECT by_id FROM results) -> s.id::text, error = NULL,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = %(now)s
    WHERE s.id = ANY(%(ids)s::bigint[]) AND s.status = 'running' AND s.lease_owner = %(worker)s
    RETURNING s.id, s.attempts),
recorded AS (
    -- A plain insert: an upsert's speculative insertion cost about as much again, and nothing
    -- can conflict. The row is numbered as the attempt the subtask runs (done.attempts); a row
    -- numbered n is written only once the subtask has left its n-th run (here, or by a retry,
    -- failure, expiry, release or cancel), and only a claim starts a run, numbered n + 1. The
    -- outcome of an earlier run writes no row (before, its row's conflict skipped it).
    INSERT INTO attempts (
        subtask_id, number, agent_id, worker_id, started_at, ended_at, outcome, tokens_in,
        tokens_out, cost_usd)
    SELECT x.id, x.number, x.agent_id, %(worker)s, x.started_at, x.ended_at, 'succeeded',
           x.tokens_in, x.tokens_out, x.cost_usd
    FROM x JOIN done ON done.id = x.id AND done.attempts = x.number
    RETURNING subtask_id),
claimed AS (
    UPDATE subtasks AS s
    SET status = 'running', lease_owner = %(worker)s, lease_expires_at = %(lease_until)s,
        attempts = s.attempts + 1, updated_at = %(now)s
    FROM (
        SELECT s.id
        FROM (SELECT id, priority FROM subtask_active
              WHERE status = 'queued' AND (run_after IS NULL OR run_after <= %(now)s)
                AND agent_id IS NULL AND NOT budgeted
                AND NOT (workflow_id = ANY(%(skip_list)s::text[]))
              ORDER BY priority DESC, id
              OFFSET 0) AS a
        JOIN subtasks AS s ON s.id = a.id
        WHERE s.status = 'queued' AND NOT s.budgeted
        ORDER BY a.priority DESC, a.id
        LIMIT %(limit)s
        FOR UPDATE OF s SKIP LOCKED) AS picked
    WHERE s.id = picked.id
    RETURNING s.*),
counted AS (
    SELECT c.dependent_id, c.n,
           row_number() OVER (ORDER BY c.dependent_id)
               <= %(limit)s - (SELECT COUNT(*) FROM claimed)
           -- a budgeted subtask is the budget's claim's to take
           AND NOT EXISTS (SELECT 1 FROM subtasks AS b WHERE b.id = c.dependent_id AND b.budgeted)
               AS take
    FROM (
        SELECT dependent_id, COUNT(*) AS n FROM subtask_edges
        WHERE subtask_id IN (SELECT id FROM done)
        GROUP BY dependent_id) AS c),
released AS (
    -- "ready" is judged on the row as it is when updated (another worker may have counted it
    -- down meanwhile), never on the snapshot.
    UPDATE subtasks AS s
    SET pending_deps = s.pending_deps - c.n,
        status = CASE WHEN s.pending_deps - c.n <> 0 OR s.status <> 'pending' THEN s.status
                      WHEN c.take AND s.agent_id IS NULL THEN 'running'
                      ELSE 'queued' END,
        queued_at = CASE WHEN s.pending_deps - c.n = 0 AND s.status = 'pending'
                         THEN %(now)s ELSE s.queued_at END,
        lease_owner = CASE WHEN s.pending_deps - c.n = 0 AND s.status = 'pending' AND c.take
                                AND s.agent_id IS NULL
                           THEN %(worker)s ELSE s.lease_owner END,
        lease_expires_at = CASE WHEN s.pending_deps - c.n = 0 AND s.status = 'pending' AND c.take
                                     AND s.agent_id IS NULL
                                THEN %(lease_until)s ELSE s.lease_expires_at END,
        attempts = CASE WHEN s.pending_deps - c.n = 0 AND s.status = 'pending' AND c.take
                             AND s.agent_id IS NULL
                        THEN s.attempts + 1 ELSE s.attempts END,
        updated_at = %(now)s
    FROM counted AS c
    WHERE s.id = c.dependent_id
    RETURNING s.*),
left_mirror AS (
    DELETE FROM subtask_active WHERE id IN (SELECT id FROM done)),
claimed_mirror AS (
    UPDATE subtask_active AS a SET status = 'running', lease_expires_at = %(lease_until)s
    FROM claimed AS c
    WHERE a.id = c.id),
released_mirror AS (
    -- Only rows that just left 'pending' (which has no mirror row) are active and counted to 0.
    INSERT INTO subtask_active (
        id, workflow_id, status, priority, agent_id, run_after, lease_expires_at, budgeted)
    SELECT r.id, r.workflow_id, r.status, r.priority, r.agent_id, r.run_after,
           r.lease_expires_at, r.budgeted
    FROM released AS r
    WHERE r.pending_deps = 0 AND r.status IN ('queued', 'running')
      AND NOT EXISTS (SELECT FROM subtask_active AS a WHERE a.id = r.id)),
said AS (SELECT set_config('taskorch.mirror_written', 'on', true) AS said)
SELECT 'done' AS what, (SELECT array_agg(id) FROM done) AS done_ids, s.*
FROM (SELECT 1) AS one CROSS JOIN said LEFT JOIN subtasks AS s ON false
UNION ALL
SELECT 'claimed', NULL, claimed.* FROM claimed
UNION ALL
-- No rows; it makes the attempts be written here, before the dependents below are locked: a
-- fan-in's join row is locked by every batch, so what follows that lock waits for others' too.
SELECT 'recorded', NULL, s.*
FROM (SELECT COUNT(*) AS n FROM recorded) AS r LEFT JOIN subtasks AS s ON false
WHERE r.n < 0
UNION ALL
SELECT CASE WHEN r.status = 'running' THEN 'released' ELSE 'queued' END, NULL, r.*
FROM released AS r
WHERE r.pending_deps = 0 AND r.status IN ('queued', 'running')
UNION ALL
SELECT 'notified', NULL, s.*
FROM (SELECT pg_notify('taskorch_ready', '') FROM released
      WHERE pending_deps = 0 AND status = 'queued' LIMIT 1) AS n
LEFT JOIN subtasks AS s ON false;

-- name: workflow_counts
SELECT workflow_id, status, COUNT(*) AS n FROM subtasks
WHERE workflow_id = ANY(%(id_list)s)
GROUP BY workflow_id, status;

-- name: queue_counts
SELECT status, COUNT(*) AS n FROM subtasks GROUP BY status;


-- name: attempt_stats
SELECT agent_id, outcome, error_class, COUNT(*) AS n,
       AVG(EXTRACT(EPOCH FROM ended_at - started_at))::double precision AS mean_s,
       SUM(CASE WHEN ended_at >= %(since)s THEN 1 ELSE 0 END) AS recent
FROM attempts
WHERE ended_at IS NOT NULL
GROUP BY agent_id, outcome, error_class;

-- name: agent_track_records
-- Each agent's track record in one pass over its finished attempts: attempts, successes, mean
-- and p95 seconds (nearest rank) and the most recent failure. Cancelled attempts say nothing
-- about the agent and are left out, and so do failures of the host (git, the remote, a missing
-- program), turns an agent refused because it was busy with another and limits it answered
-- with (a rate window: not its try). Cost: what the attempts that reported one spent.
SELECT agent_id,
       COUNT(*) AS attempts,
       SUM(CASE WHEN outcome = 'succeeded' THEN 1 ELSE 0 END) AS successes,
       AVG(seconds)::double precision AS mean_s,
       MIN(CASE WHEN by_time >= 0.95 * total THEN seconds END)::double precision AS p95_s,
       MAX(CASE WHEN by_recency = 1 AND outcome <> 'succeeded'
                THEN COALESCE(error_class, outcome) || ': ' || COALESCE(error_message, '') END)
           AS last_error,
       COALESCE(SUM(cost_usd), 0) AS cost_usd,
       COUNT(cost_usd) AS costed
FROM (
    SELECT agent_id, outcome, error_class, error_message, cost_usd,
           EXTRACT(EPOCH FROM ended_at - started_at) AS seconds,
           ROW_NUMBER() OVER (
               PARTITION BY agent_id ORDER BY ended_at - started_at
           ) AS by_time,
           COUNT(*) OVER (PARTITION BY agent_id) AS total,
           ROW_NUMBER() OVER (
               PARTITION BY agent_id, outcome = 'succeeded' ORDER BY ended_at DESC, id DESC
           ) AS by_recency
    FROM attempts
    WHERE ended_at IS NOT NULL AND agent_id IS NOT NULL
      AND outcome NOT IN ('running', 'cancelled')
      AND (error_class IS NULL OR error_class NOT IN ('host', 'busy', 'rate_limit'))
) AS finished
GROUP BY agent_id;

-- name: route_subtask
-- The routing decision for a subtask not yet running: its agent (or none) and why it waits.
UPDATE subtasks SET agent_id = %(agent_id)s, error = %(note)s, updated_at = %(now)s
WHERE id = %(id)s AND status IN ('pending', 'queued');


-- name: workflow_state_counts
SELECT status, COUNT(*) AS n FROM workflows GROUP BY status;

-- name: workflow_durations
SELECT state, bucket, n, total_s FROM workflow_durations;

-- name: count_workflow_duration
INSERT INTO workflow_durations (state, bucket, n, total_s)
SELECT status, CASE
            WHEN seconds <= 1 THEN 1
            WHEN seconds <= 5 THEN 5
            WHEN seconds <= 10 THEN 10
            WHEN seconds <= 30 THEN 30
            WHEN seconds <= 60 THEN 60
            WHEN seconds <= 120 THEN 120
            WHEN seconds <= 300 THEN 300
            WHEN seconds <= 600 THEN 600
            WHEN seconds <= 1800 THEN 1800
            WHEN seconds <= 3600 THEN 3600
            WHEN seconds <= 7200 THEN 7200
            WHEN seconds <= 21600 THEN 21600
            ELSE 0 END, 1, seconds
FROM (SELECT status, EXTRACT(EPOCH FROM (end_time - start_time))::float8 AS seconds FROM workflows WHERE id = %(id)s) AS timed
WHERE seconds IS NOT NULL
ON CONFLICT (state, bucket) DO UPDATE
SET n = workflow_durations.n + 1, total_s = workflow_durations.total_s + excluded.total_s;


-- name: workflows_finished_before
SELECT * FROM workflows
WHERE status IN ('merged', 'failed', 'cancelled') AND end_time < %(cutoff)s
ORDER BY end_time;

-- name: delete_workflow_events
DELETE FROM events WHERE workflow_id = %(workflow_id)s RETURNING id;

-- name: agent_usage
-- What each agent's finished attempts spent and took in all (the Python API's statistics):
-- tokens and cost as the agents reported them, seconds from start to end.
SELECT agent_id,
       COALESCE(SUM(tokens_in), 0) AS tokens_in,
       COALESCE(SUM(tokens_out), 0) AS tokens_out,
       COALESCE(SUM(cost_usd), 0)::double precision AS cost_usd,
       COALESCE(SUM(EXTRACT(EPOCH FROM ended_at - started_at)), 0)::double precision AS total_s
FROM attempts
WHERE ended_at IS NOT NULL AND agent_id IS NOT NULL AND outcome NOT IN ('running', 'cancelled')
GROUP BY agent_id;

-- name: rate_windows_open
-- Agents left alone now (a rate limit or usage limit answered, its reset not yet come).
SELECT agent_id, until, strikes, source FROM agent_windows WHERE until > %(now)s;

-- name: rate_window_get
SELECT agent_id, until, strikes, source FROM agent_windows WHERE agent_id = %(agent_id)s;

-- name: rate_window_set
-- One row per agent: a new limit replaces the window it had.
INSERT INTO agent_windows (agent_id, until, strikes, source, updated_at)
VALUES (%(agent_id)s, %(until)s, %(strikes)s, %(source)s, %(now)s)
ON CONFLICT (agent_id) DO UPDATE SET
    until = excluded.until, strikes = excluded.strikes, source = excluded.source,
    updated_at = excluded.updated_at;

-- name: agent_model_usage
-- Tokens and cost of every finished attempt by agent (the Prometheus counters; the model is the
-- agent's configured one, looked up beside).
SELECT agent_id,
       COALESCE(SUM(tokens_in), 0) AS tokens_in,
       COALESCE(SUM(tokens_out), 0) AS tokens_out,
       COALESCE(SUM(cost_usd), 0) AS cost_usd
FROM attempts
WHERE ended_at IS NOT NULL AND outcome <> 'running'
GROUP BY agent_id;

-- name: workflow_attempts
-- Every finished attempt of a workflow's subtasks with the subtask's key, in plan order (the
-- evidence of status, the HTTP API and the dashboard: agent, times, outcome, tokens, cost).
SELECT s.key AS subtask_key, a.*
FROM attempts a JOIN subtasks s ON s.id = a.subtask_id
WHERE s.workflow_id = %(workflow_id)s
ORDER BY s.id, a.number;

-- name: attempt_usage_by_agent
-- Finished attempts per agent and reported model (the model the result of the attempt that
-- finished its subtask names; NULL otherwise) with what they reported spending (NULL sums: none
-- reported) and how many reported nothing at all (the CLI's metrics).
SELECT a.agent_id,
       CASE WHEN a.outcome = 'succeeded' AND a.number = s.attempts
            THEN s.result->>'model' END AS model,
       COUNT(*) AS attempts,
       SUM(CASE WHEN a.tokens_in IS NULL AND a.tokens_out IS NULL AND a.cost_usd IS NULL
                THEN 1 ELSE 0 END)::bigint AS unreported,
       SUM(a.tokens_in)::bigint AS tokens_in, SUM(a.tokens_out)::bigint AS tokens_out,
       SUM(a.cost_usd)::double precision AS cost_usd
FROM attempts a JOIN subtasks s ON s.id = a.subtask_id
WHERE a.ended_at IS NOT NULL
GROUP BY a.agent_id, 2;


-- name: mark_budgeted_subtasks
-- The subtasks of a workflow with a cap are taken by the budget's claim only.
UPDATE subtasks SET budgeted = (
    SELECT budget_usd IS NOT NULL OR budget_tokens IS NOT NULL OR subtask_budget_usd IS NOT NULL
    FROM workflows WHERE id = %(workflow_id)s)
WHERE workflow_id = %(workflow_id)s;

-- name: set_workflow_budget
UPDATE workflows
SET budget_usd = %(usd)s, budget_tokens = %(tokens)s, subtask_budget_usd = %(subtask_usd)s,
    updated_at = %(now)s
WHERE id = %(id)s
RETURNING *;

-- name: lock_budget_claims
-- Budget claims one at a time (each counts what the others started): a lock held until the
-- claiming transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('taskorch:budget-claims', 0)) IS NULL AS locked;

-- name: budget_candidates
-- Ready subtasks of budgeted workflows that this worker can run (its agents, and unassigned
-- ones when it has a default adapter), in claim order. Found in the mirror (migration 0011: no
-- index of subtasks may name status), read from subtasks, which has the last word.
SELECT s.*
FROM subtask_active AS a JOIN subtasks AS s ON s.id = a.id
WHERE a.budgeted AND a.status = 'queued' AND (a.run_after IS NULL OR a.run_after <= %(now)s)
  AND (a.agent_id = ANY(%(agent_list)s::text[]) OR (a.agent_id IS NULL AND %(unassigned)s))
  AND NOT (a.workflow_id = ANY(%(skip_list)s::text[]))
  AND s.budgeted AND s.status = 'queued'
ORDER BY a.priority DESC, a.id
LIMIT %(limit)s;

-- name: budget_queued
-- A workflow's queued subtasks in claim order (what starts next, for its figures).
SELECT * FROM subtasks WHERE workflow_id = %(workflow_id)s AND status = 'queued'
ORDER BY priority DESC, id;

-- name: budget_caps
SELECT id, status, budget_usd, budget_tokens, subtask_budget_usd FROM workflows
WHERE id = ANY(%(id_list)s::text[]);

-- name: budget_attempts
-- The finished attempts of these workflows with what they reported, and their subtasks' estimates.
SELECT s.workflow_id, s.id AS subtask_id, a.agent_id, a.outcome, a.error_class, a.tokens_in,
       a.tokens_out, a.cost_usd, s.estimated_tokens
FROM subtasks AS s JOIN attempts AS a ON a.subtask_id = s.id
WHERE s.workflow_id = ANY(%(id_list)s::text[]) AND a.outcome <> 'running';

-- name: budget_in_flight
SELECT workflow_id, id, agent_id, estimated_tokens FROM subtasks
WHERE workflow_id = ANY(%(id_list)s::text[]) AND status IN ('assigned', 'running');

-- name: agent_budget_rates
-- Each agent's measured rates (domain.budget.measured_rate): sums over its finished attempts of
-- what they reported against their subtasks' estimates (0 estimates count as :default_estimate).
SELECT agent_id,
       SUM(CASE WHEN cost_usd IS NOT NULL THEN cost_usd ELSE 0 END) AS cost_usd,
       SUM(CASE WHEN cost_usd IS NOT NULL THEN estimate ELSE 0 END) AS cost_estimate,
       SUM(COALESCE(tokens, 0)) AS tokens,
       SUM(CASE WHEN tokens IS NOT NULL THEN estimate ELSE 0 END) AS tokens_estimate,
       SUM(CASE WHEN cost_usd IS NOT NULL AND tokens IS NOT NULL THEN cost_usd ELSE 0 END)
           AS priced_cost_usd,
       SUM(CASE WHEN cost_usd IS NOT NULL AND tokens IS NOT NULL THEN tokens ELSE 0 END)
           AS priced_tokens
FROM (
    SELECT a.agent_id, a.cost_usd,
           CASE WHEN a.tokens_in IS NULL AND a.tokens_out IS NULL THEN NULL
                ELSE COALESCE(a.tokens_in, 0) + COALESCE(a.tokens_out, 0) END AS tokens,
           CASE WHEN s.estimated_tokens > 0 THEN s.estimated_tokens
                ELSE %(default_estimate)s END AS estimate
    FROM attempts AS a JOIN subtasks AS s ON s.id = a.subtask_id
    WHERE a.outcome <> 'running'
      AND (a.agent_id = ANY(%(agent_list)s::text[]) OR (a.agent_id IS NULL AND %(unassigned)s))
) AS reported
GROUP BY agent_id;

-- name: claim_budgeted
-- The budget's claim: the chosen subtasks, if still queued, queued -> running in one write.
UPDATE subtasks
SET status = 'running', lease_owner = %(worker)s, lease_expires_at = %(lease_until)s,
    attempts = attempts + 1, updated_at = %(now)s
WHERE id = ANY(%(id_list)s::bigint[]) AND status = 'queued'
RETURNING *;
