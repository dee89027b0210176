-- Attempts ended by a kill, a lost lease, a stopping worker or the host (not by the agent): they
-- are counted apart from the agent's own tries, so they never use up its retry budget, and a
-- separate, larger cap still ends a subtask that kills its worker every time.
ALTER TABLE subtasks ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
