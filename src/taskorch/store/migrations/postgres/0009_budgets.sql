-- Budgets (docs/budgets.md): a workflow's caps, and which subtasks only the budget's claim takes
-- (every subtask of a workflow with a cap). The ordinary claims pass those over.
ALTER TABLE workflows
    ADD COLUMN budget_usd DOUBLE PRECISION,
    ADD COLUMN budget_tokens BIGINT,
    ADD COLUMN subtask_budget_usd DOUBLE PRECISION;
ALTER TABLE subtasks ADD COLUMN budgeted BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX subtasks_budgeted_idx ON subtasks (status) WHERE budgeted;
