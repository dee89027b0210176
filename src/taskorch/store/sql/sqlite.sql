-- Named queries for SQLite. Every query here has a twin of the same name in postgres.sql.
-- Times are ISO-8601 UTC text, JSON is text; the connector converts parameters.

-- name: ping
SELECT 1 AS ok;

-- name: schema_version
SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations;

-- name: insert_task
INSERT INTO tasks (title, description, status, priority, dependencies, metadata, created_at, updated_at)
VALUES (:title, :description, 'pending', :priority, :dependencies, :metadata, :now, :now)
RETURNING *;

-- name: get_task
SELECT * FROM tasks WHERE id = :id;

-- name: existing_task_ids
SELECT id FROM tasks WHERE id IN (SELECT value FROM json_each(:ids));

-- name: list_tasks
SELECT * FROM tasks
WHERE (:status IS NULL OR status = :status)
ORDER BY id
LIMIT :limit;

-- name: update_task_status
UPDATE tasks SET status = :to_status, updated_at = :now
WHERE id = :id AND status = :from_status
RETURNING *;

-- name: end_workflow_task
-- The task of a workflow that just ended ends with it (in the same transaction), if it still
-- counts as being carried.
UPDATE tasks SET status = :to_status, updated_at = :now
WHERE id = (SELECT task_id FROM workflows WHERE id = :workflow_id) AND status = 'processing';

-- name: list_imported_tasks
-- Tasks imported from task-master (metadata.taskmaster), of one tag or (:tag NULL) of every tag.
SELECT * FROM tasks
WHERE json_extract(metadata, '$.taskmaster.tag') IS NOT NULL
  AND (:tag IS NULL OR json_extract(metadata, '$.taskmaster.tag') = :tag)
ORDER BY id;

-- name: update_task
UPDATE tasks
SET title = :title, description = :description, priority = :priority, status = :status,
    dependencies = :dependencies, metadata = :metadata, updated_at = :now
WHERE id = :id AND status = :from_status
RETURNING *;

-- name: insert_workflow
INSERT INTO workflows (id, task_id, status, metadata, created_at, updated_at)
VALUES (:id, :task_id, 'pending', :metadata, :now, :now)
RETURNING *;

-- name: get_workflow
SELECT * FROM workflows WHERE id = :id;

-- name: list_workflows
SELECT * FROM workflows
WHERE (:status IS NULL OR status = :status) AND (:task_id IS NULL OR task_id = :task_id)
ORDER BY created_at DESC, id
LIMIT :limit;

-- name: transition_workflow
UPDATE workflows
SET status = :to_state,
    updated_at = :now,
    start_time = COALESCE(start_time, :now),
    end_time = CASE WHEN :terminal THEN :now ELSE end_time END,
    result = COALESCE(:result, result),
    -- A shallow merge like PostgreSQL's jsonb ||: top-level keys of :metadata replace the stored
    -- ones whole, and a null is stored (json_patch would deep-merge and delete null keys).
    metadata = (
        SELECT json_group_object(key, CASE type
            WHEN 'object' THEN json(value) WHEN 'array' THEN json(value)
            WHEN 'true' THEN json('true') WHEN 'false' THEN json('false')
            ELSE value END)
        FROM (
            SELECT key, type, value FROM json_each(workflows.metadata)
            WHERE key NOT IN (SELECT key FROM json_each(:metadata))
            UNION ALL
            SELECT key, type, value FROM json_each(:metadata)
        )
    )
WHERE id = :id AND status = :from_state
RETURNING *;

-- name: insert_history
INSERT INTO workflow_history (workflow_id, from_state, to_state, timestamp, metadata)
VALUES (:workflow_id, :from_state, :to_state, :now, :metadata);

-- name: list_history
SELECT * FROM workflow_history WHERE workflow_id = :workflow_id ORDER BY id;

-- name: upsert_agent
INSERT INTO agents (id, name, type, capabilities, status, max_concurrency, metadata, created_at, updated_at)
VALUES (:id, :name, :type, :capabilities, :status, :max_concurrency, :metadata, :now, :now)
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
SELECT * FROM agents WHERE id = :ref OR name = :ref ORDER BY id = :ref DESC LIMIT 1;

-- name: list_agents
SELECT * FROM agents ORDER BY name;

-- name: delete_agent
DELETE FROM agents WHERE id = :id;

-- name: update_agent_status
UPDATE agents SET status = :status, updated_at = :now WHERE id = :id RETURNING *;

-- name: insert_subtask
INSERT INTO subtasks (
    workflow_id, key, title, description, assigned_to, worker_type, dependencies, files_affected,
    success_criteria, estimated_duration_minutes, estimated_tokens, command, stage, status,
    priority, created_at, updated_at)
VALUES (
    :workflow_id, :key, :title, :description, :assigned_to, :worker_type, :dependencies,
    :files_affected, :success_criteria, :estimated_duration_minutes, :estimated_tokens, :command,
    :stage, :status, :priority, :now, :now)
ON CONFLICT (workflow_id, key) DO NOTHING;

-- name: get_subtask
SELECT * FROM subtasks WHERE id = :id;

-- name: list_subtasks
SELECT * FROM subtasks WHERE workflow_id = :workflow_id ORDER BY stage, id;

-- name: transition_subtask
UPDATE subtasks SET status = :to_state, updated_at = :now
WHERE id = :id AND status = :from_state
RETURNING *;

-- name: insert_attempt
INSERT INTO attempts (subtask_id, number, agent_id, worker_id, started_at, outcome)
VALUES (:subtask_id, :number, :agent_id, :worker_id, :now, 'running')
RETURNING *;

-- name: finish_attempt
UPDATE attempts
SET ended_at = :now, outcome = :outcome, error_class = :error_class,
    error_message = :error_message, tokens_in = :tokens_in, tokens_out = :tokens_out,
    cost_usd = :cost_usd
WHERE id = :id AND outcome = 'running'
RETURNING *;

-- name: list_attempts
SELECT * FROM attempts WHERE subtask_id = :subtask_id ORDER BY number;

-- name: insert_event
INSERT INTO events (kind, workflow_id, subtask_id, payload, created_at)
VALUES (:kind, :workflow_id, :subtask_id, :payload, :now)
RETURNING *;

-- name: list_events
SELECT * FROM events
WHERE id > :after_id
ORDER BY id
LIMIT :limit;

-- name: list_workflow_events
-- (A query of its own: with "(:workflow_id IS NULL OR workflow_id = :workflow_id)" the planner
-- scanned every event from after_id on, and a workflow's status grew with all workflows'.)
SELECT * FROM events
WHERE workflow_id = :workflow_id AND id > :after_id
ORDER BY id
LIMIT :limit;

-- ---- the runtime's queue (store/queue.py) ------------------------------------------------------

-- name: link_subtasks
INSERT INTO subtask_edges (subtask_id, dependent_id)
SELECT d.id, s.id
-- CROSS JOIN pins the join order: SQLite otherwise scans every (s, d) pair first.
FROM subtasks AS s
CROSS JOIN json_each(s.dependencies) AS j
CROSS JOIN subtasks AS d
WHERE s.workflow_id = :workflow_id AND d.workflow_id = s.workflow_id AND d.key = j.value
ON CONFLICT DO NOTHING;

-- name: count_pending_deps
UPDATE subtasks
SET pending_deps = (
    SELECT COUNT(*) FROM subtask_edges AS e JOIN subtasks AS d ON d.id = e.subtask_id
    WHERE e.dependent_id = subtasks.id AND d.status <> 'completed')
WHERE workflow_id = :workflow_id AND status = 'pending';

-- name: queue_ready_in_workflow
-- One part (ids with id % parts = part) of the workflow's ready subtasks: see queue_ready.
UPDATE subtasks SET status = 'queued', queued_at = :now, updated_at = :now
WHERE workflow_id = :workflow_id AND status = 'pending' AND pending_deps = 0
  AND id % :parts = :part
RETURNING id, workflow_id, key;

-- name: claim_subtasks
-- A claim is queued -> assigned -> running in one statement: the worker starts the attempt in the
-- same transaction, so 'assigned' is never visible outside it and costs no second row write.
UPDATE subtasks
SET status = 'running', lease_owner = :worker, lease_expires_at = :lease_until,
    attempts = attempts + 1, updated_at = :now
WHERE id IN (
    SELECT id FROM subtasks
    WHERE status = 'queued' AND (run_after IS NULL OR run_after <= :now) AND agent_id IS :agent_id
      AND workflow_id NOT IN (SELECT value FROM json_each(:skip)) AND budgeted = 0
    ORDER BY priority DESC, id
    LIMIT :limit)
RETURNING *;

-- name: lock_agent_claims
-- Claims for one agent are counted against its limit one at a time: a SQLite write transaction
-- (BEGIN IMMEDIATE) already holds the database's write lock, so nothing more is needed.
SELECT 1 AS locked;

-- name: agent_claim_room
-- How many more subtasks the agent may run now: its stored limit (or the worker's, when it is not
-- registered) less those it runs, counted in the claiming transaction.
SELECT (SELECT COUNT(*) FROM subtasks
        WHERE agent_id = :agent_id AND status IN ('assigned', 'running')) AS active,
       (SELECT max_concurrency FROM agents WHERE id = :agent_id) AS max_concurrency;

-- name: agent_load
SELECT agent_id, COUNT(*) AS active FROM subtasks
WHERE status IN ('assigned', 'running') AND agent_id IS NOT NULL
GROUP BY agent_id;

-- name: queued_agents
SELECT DISTINCT agent_id FROM subtasks
WHERE status = 'queued' AND (run_after IS NULL OR run_after <= :now);

-- name: renew_leases
UPDATE subtasks SET lease_expires_at = :lease_until
WHERE id IN (SELECT value FROM json_each(:ids)) AND lease_owner = :worker
  AND status IN ('assigned', 'running')
RETURNING id;

-- name: owned_running
SELECT id FROM subtasks
WHERE id IN (SELECT value FROM json_each(:ids)) AND lease_owner = :worker AND status = 'running';

-- name: complete_subtask
UPDATE subtasks
SET status = 'completed', result = :result, error = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = :now
WHERE id = :id AND status = 'running' AND lease_owner = :worker;

-- name: release_dependents
-- Count down the dependents of completed subtasks; those reaching 0 become queued in the same
-- statement. RETURNING lists the rows touched; the caller keeps those that just became queued.
UPDATE subtasks
SET pending_deps = subtasks.pending_deps - d.n,
    status = CASE WHEN subtasks.pending_deps - d.n = 0 AND subtasks.status = 'pending'
                  THEN 'queued' ELSE subtasks.status END,
    queued_at = CASE WHEN subtasks.pending_deps - d.n = 0 AND subtasks.status = 'pending'
                     THEN :now ELSE subtasks.queued_at END,
    updated_at = :now
FROM (
    SELECT dependent_id, COUNT(*) AS n FROM subtask_edges
    WHERE subtask_id IN (SELECT value FROM json_each(:ids))
    GROUP BY dependent_id
    ORDER BY dependent_id) AS d
WHERE subtasks.id = d.dependent_id
RETURNING subtasks.id, subtasks.workflow_id, subtasks.key, subtasks.status, subtasks.pending_deps;

-- name: retry_subtask
UPDATE subtasks
SET status = 'queued', run_after = :run_after, queued_at = COALESCE(:run_after, :now), error = :error, agent_id = :agent_id,
    interrupted = interrupted + :interrupted,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
WHERE id = :id AND status = 'running' AND lease_owner = :worker;

-- name: fail_subtask
UPDATE subtasks
SET status = 'failed', error = :error, result = :result, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = :now
WHERE id = :id AND status = 'running' AND lease_owner = :worker;

-- name: block_dependents
WITH RECURSIVE down (id) AS (
    SELECT dependent_id FROM subtask_edges WHERE subtask_id IN (SELECT value FROM json_each(:ids))
    UNION
    SELECT e.dependent_id FROM subtask_edges AS e JOIN down ON e.subtask_id = down.id)
UPDATE subtasks SET status = 'blocked', error = :reason, updated_at = :now
WHERE id IN (SELECT id FROM down) AND status IN ('pending', 'queued')
RETURNING id, workflow_id, key;

-- name: expire_leases
-- A lost lease is an interrupted attempt, not the agent's failed try: it is counted apart, and
-- only the cap on interrupted attempts (:max_interrupted) fails the subtask.
UPDATE subtasks
SET status = CASE WHEN interrupted + 1 >= :max_interrupted THEN 'failed' ELSE 'queued' END,
    interrupted = interrupted + 1,
    error = 'lease expired: worker ' || COALESCE(lease_owner, '?') || ' stopped renewing it',
    run_after = NULL, queued_at = :now, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = :now
WHERE status IN ('assigned', 'running') AND lease_expires_at < :now
RETURNING id, workflow_id, key, status, attempts, interrupted, agent_id, error;

-- name: release_claims
-- Subtasks whose attempts a stopping worker ended: queued again at once, so that no worker waits
-- for their leases to lapse. The ended attempt is recorded as cancelled and counted as
-- interrupted, not as the agent's try.
UPDATE subtasks
SET status = 'queued', queued_at = :now, run_after = NULL, lease_owner = NULL,
    interrupted = interrupted + 1,
    lease_expires_at = NULL, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND lease_owner = :worker
  AND status IN ('assigned', 'running')
RETURNING id;

-- name: cancel_workflow_subtasks
UPDATE subtasks
SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
WHERE workflow_id = :workflow_id AND status NOT IN ('completed', 'cancelled')
RETURNING id, workflow_id, key;

-- name: cancelled_among
SELECT id FROM subtasks WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'cancelled';

-- name: record_attempt
INSERT INTO attempts (
    subtask_id, number, agent_id, worker_id, started_at, ended_at, outcome, error_class,
    error_message, tokens_in, tokens_out, cost_usd)
VALUES (
    :subtask_id, :number, :agent_id, :worker_id, :started_at, :ended_at, :outcome, :error_class,
    :error_message, :tokens_in, :tokens_out, :cost_usd)
ON CONFLICT (subtask_id, number) DO NOTHING;

-- name: record_event
INSERT INTO events (kind, workflow_id, subtask_id, payload, created_at)
VALUES (:kind, :workflow_id, :subtask_id, :payload, :now);

-- name: settle_completed
-- The worker's hot path as one script (statements in order, one write transaction): store
-- completed attempts, count down their dependents, complete the subtasks, claim ready work. Every
-- step is fenced by the lease (rows this worker still runs), so the first three run while the rows
-- are still 'running'. Released rows become queued and the claim after them sees them.
-- Rows: what = 'done' (done_id = a subtask this batch completed), 'queued' (a dependent counted
-- down; ready if pending_deps = 0 and status = 'queued'), 'claimed'.
-- :rows holds one array per attempt: [id, number, agent_id, started_at, ended_at, tokens_in,
-- tokens_out, cost_usd]. Rows are found from the parameter's ids (CROSS JOIN fixes the join order, unary + keeps the
-- status indexes out), so the work grows with the batch, not with the subtasks running.
INSERT INTO attempts (
    subtask_id, number, agent_id, worker_id, started_at, ended_at, outcome, tokens_in,
    tokens_out, cost_usd)
SELECT x.value ->> 0, x.value ->> 1, x.value ->> 2, :worker, x.value ->> 3, x.value ->> 4,
       'succeeded', x.value ->> 5, x.value ->> 6, x.value ->> 7
FROM json_each(:rows) AS x
CROSS JOIN subtasks AS s ON s.id = x.value ->> 0
WHERE s.status = 'running' AND s.lease_owner = :worker
ON CONFLICT (subtask_id, number) DO NOTHING;
UPDATE subtasks
SET pending_deps = subtasks.pending_deps - d.n,
    status = CASE WHEN subtasks.pending_deps - d.n = 0 AND subtasks.status = 'pending'
                  THEN 'queued' ELSE subtasks.status END,
    queued_at = CASE WHEN subtasks.pending_deps - d.n = 0 AND subtasks.status = 'pending'
                     THEN :now ELSE subtasks.queued_at END,
    updated_at = :now
FROM (
    SELECT e.dependent_id, COUNT(*) AS n
    FROM json_each(:rows) AS x
    CROSS JOIN subtasks AS s ON s.id = x.value ->> 0
    CROSS JOIN subtask_edges AS e ON e.subtask_id = s.id
    WHERE s.status = 'running' AND s.lease_owner = :worker
    GROUP BY e.dependent_id) AS d
WHERE subtasks.id = d.dependent_id
RETURNING 'queued' AS what, NULL AS done_id, subtasks.id, subtasks.workflow_id, subtasks.key,
          subtasks.status, subtasks.pending_deps;
UPDATE subtasks
SET status = 'completed', result = x.value, error = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = :now
FROM json_each(:results) AS x
WHERE subtasks.id = CAST(x.key AS INTEGER) AND +subtasks.status = 'running'
  AND +subtasks.lease_owner = :worker
RETURNING 'done' AS what, subtasks.id AS done_id;
UPDATE subtasks
SET status = 'running', lease_owner = :worker, lease_expires_at = :lease_until,
    attempts = attempts + 1, updated_at = :now
WHERE id IN (
    SELECT id FROM subtasks
    WHERE status = 'queued' AND (run_after IS NULL OR run_after <= :now) AND agent_id IS NULL
      AND workflow_id NOT IN (SELECT value FROM json_each(:skip)) AND budgeted = 0
    ORDER BY priority DESC, id
    LIMIT :limit)
RETURNING 'claimed' AS what, NULL AS done_id, *;

-- name: workflow_counts
SELECT workflow_id, status, COUNT(*) AS n FROM subtasks
WHERE workflow_id IN (SELECT value FROM json_each(:ids))
GROUP BY workflow_id, status;

-- name: queue_counts
SELECT status, COUNT(*) AS n FROM subtasks GROUP BY status;


-- name: attempt_stats
SELECT agent_id, outcome, error_class, COUNT(*) AS n,
       AVG((julianday(ended_at) - julianday(started_at)) * 86400.0) AS mean_s,
       SUM(CASE WHEN ended_at >= :since THEN 1 ELSE 0 END) AS recent
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
       AVG(seconds) AS mean_s,
       MIN(CASE WHEN by_time >= 0.95 * total THEN seconds END) AS p95_s,
       MAX(CASE WHEN by_recency = 1 AND outcome <> 'succeeded'
                THEN COALESCE(error_class, outcome) || ': ' || COALESCE(error_message, '') END)
           AS last_error,
       COALESCE(SUM(cost_usd), 0) AS cost_usd,
       COUNT(cost_usd) AS costed
FROM (
    SELECT agent_id, outcome, error_class, error_message, cost_usd,
           (julianday(ended_at) - julianday(started_at)) * 86400.0 AS seconds,
           ROW_NUMBER() OVER (
               PARTITION BY agent_id ORDER BY julianday(ended_at) - julianday(started_at)
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
UPDATE subtasks SET agent_id = :agent_id, error = :note, updated_at = :now
WHERE id = :id AND status IN ('pending', 'queued');


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
FROM (SELECT status, (julianday(end_time) - julianday(start_time)) * 86400.0 AS seconds FROM workflows WHERE id = :id) AS timed
WHERE seconds IS NOT NULL
ON CONFLICT (state, bucket) DO UPDATE
SET n = workflow_durations.n + 1, total_s = workflow_durations.total_s + excluded.total_s;


-- name: workflows_finished_before
SELECT * FROM workflows
WHERE status IN ('merged', 'failed', 'cancelled') AND end_time < :cutoff
ORDER BY end_time;

-- name: delete_workflow_events
DELETE FROM events WHERE workflow_id = :workflow_id RETURNING id;

-- name: agent_usage
-- What each agent's finished attempts spent and took in all (the Python API's statistics):
-- tokens and cost as the agents reported them, seconds from start to end.
SELECT agent_id,
       COALESCE(SUM(tokens_in), 0) AS tokens_in,
       COALESCE(SUM(tokens_out), 0) AS tokens_out,
       COALESCE(SUM(cost_usd), 0) AS cost_usd,
       COALESCE(SUM((julianday(ended_at) - julianday(started_at)) * 86400.0), 0) AS total_s
FROM attempts
WHERE ended_at IS NOT NULL AND agent_id IS NOT NULL AND outcome NOT IN ('running', 'cancelled')
GROUP BY agent_id;

-- name: rate_windows_open
-- Agents left alone now (a rate limit or usage limit answered, its reset not yet come).
SELECT agent_id, until, strikes, source FROM agent_windows WHERE until > :now;

-- name: rate_window_get
SELECT agent_id, until, strikes, source FROM agent_windows WHERE agent_id = :agent_id;

-- name: rate_window_set
-- One row per agent: a new limit replaces the window it had.
INSERT INTO agent_windows (agent_id, until, strikes, source, updated_at)
VALUES (:agent_id, :until, :strikes, :source, :now)
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
WHERE s.workflow_id = :workflow_id
ORDER BY s.id, a.number;

-- name: attempt_usage_by_agent
-- Finished attempts per agent and reported model (the model the result of the attempt that
-- finished its subtask names; NULL otherwise) with what they reported spending (NULL sums: none
-- reported) and how many reported nothing at all (the CLI's metrics).
SELECT a.agent_id,
       CASE WHEN a.outcome = 'succeeded' AND a.number = s.attempts
            THEN json_extract(s.result, '$.model') END AS model,
       COUNT(*) AS attempts,
       SUM(CASE WHEN a.tokens_in IS NULL AND a.tokens_out IS NULL AND a.cost_usd IS NULL
                THEN 1 ELSE 0 END) AS unreported,
       SUM(a.tokens_in) AS tokens_in, SUM(a.tokens_out) AS tokens_out,
       SUM(a.cost_usd) AS cost_usd
FROM attempts a JOIN subtasks s ON s.id = a.subtask_id
WHERE a.ended_at IS NOT NULL
GROUP BY a.agent_id, 2;


-- name: mark_budgeted_subtasks
-- The subtasks of a workflow with a cap are taken by the budget's claim only.
UPDATE subtasks SET budgeted = (
    SELECT budget_usd IS NOT NULL OR budget_tokens IS NOT NULL OR subtask_budget_usd IS NOT NULL
    FROM workflows WHERE id = :workflow_id)
WHERE workflow_id = :workflow_id;

-- name: set_workflow_budget
UPDATE workflows
SET budget_usd = :usd, budget_tokens = :tokens, subtask_budget_usd = :subtask_usd,
    updated_at = :now
WHERE id = :id
RETURNING *;

-- name: lock_budget_claims
-- Budget claims one at a time (each counts what the others started): a SQLite write
-- transaction already holds the database's write lock.
SELECT 1 AS locked;

-- name: budget_candidates
-- Ready subtasks of budgeted workflows that this worker can run (its agents, and unassigned
-- ones when it has a default adapter), in claim order.
SELECT * FROM subtasks
WHERE budgeted = 1 AND status = 'queued' AND (run_after IS NULL OR run_after <= :now)
  AND (agent_id IN (SELECT value FROM json_each(:agents)) OR (agent_id IS NULL AND :unassigned))
  AND workflow_id NOT IN (SELECT value FROM json_each(:skip))
ORDER BY priority DESC, id
LIMIT :limit;

-- name: budget_queued
-- A workflow's queued subtasks in claim order (what starts next, for its figures).
SELECT * FROM subtasks WHERE workflow_id = :workflow_id AND status = 'queued'
ORDER BY priority DESC, id;

-- name: budget_caps
SELECT id, status, budget_usd, budget_tokens, subtask_budget_usd FROM workflows
WHERE id IN (SELECT value FROM json_each(:ids));

-- name: budget_attempts
-- The finished attempts of these workflows with what they reported, and their subtasks' estimates.
SELECT s.workflow_id, s.id AS subtask_id, a.agent_id, a.outcome, a.error_class, a.tokens_in,
       a.tokens_out, a.cost_usd, s.estimated_tokens
FROM subtasks AS s JOIN attempts AS a ON a.subtask_id = s.id
WHERE s.workflow_id IN (SELECT value FROM json_each(:ids)) AND a.outcome <> 'running';

-- name: budget_in_flight
SELECT workflow_id, id, agent_id, estimated_tokens FROM subtasks
WHERE workflow_id IN (SELECT value FROM json_each(:ids)) AND status IN ('assigned', 'running');

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
                ELSE :default_estimate END AS estimate
    FROM attempts AS a JOIN subtasks AS s ON s.id = a.subtask_id
    WHERE a.outcome <> 'running'
      AND (a.agent_id IN (SELECT value FROM json_each(:agents))
           OR (a.agent_id IS NULL AND :unassigned))
) AS reported
GROUP BY agent_id;

-- name: claim_budgeted
-- The budget's claim: the chosen subtasks, if still queued, queued -> running in one write.
UPDATE subtasks
SET status = 'running', lease_owner = :worker, lease_expires_at = :lease_until,
    attempts = attempts + 1, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'queued'
RETURNING *;
