-- Budgets (docs/budgets.md): a workflow's caps, and which subtasks only the budget's claim takes
-- (every subtask of a workflow with a cap). The ordinary claims pass those over.
ALTER TABLE workflows ADD COLUMN budget_usd REAL;
ALTER TABLE workflows ADD COLUMN budget_tokens INTEGER;
ALTER TABLE workflows ADD COLUMN subtask_budget_usd REAL;
ALTER TABLE subtasks ADD COLUMN budgeted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX subtasks_budgeted_idx ON subtasks (status) WHERE budgeted = 1;
