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
INSERT INTO subtasks (
    workflow_id, key, title, description, assigned_to, worker_type, dependencies, files_affected,
    success_criteria, estimated_duration_minutes, estimated_tokens, command, stage, status,
    created_at, updated_at)
VALUES (
    %(workflow_id)s, %(key)s, %(title)s, %(description)s, %(assigned_to)s, %(worker_type)s, %(dependencies)s::jsonb,
    %(files_affected)s::jsonb, %(success_criteria)s, %(estimated_duration_minutes)s, %(estimated_tokens)s, %(command)s::jsonb,
    %(stage)s, %(status)s, %(now)s, %(now)s)
ON CONFLICT (workflow_id, key) DO NOTHING;

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
WHERE id > %(after_id)s AND (%(workflow_id)s::text IS NULL OR workflow_id = %(workflow_id)s)
ORDER BY id
LIMIT %(limit)s;
