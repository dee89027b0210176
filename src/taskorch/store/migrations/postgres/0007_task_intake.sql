-- Requirements may arrive "from a database": a plain INSERT INTO tasks (title, description)
-- must work, so the timestamps get defaults (status, priority, dependencies and metadata had
-- theirs; the id is an identity column).
ALTER TABLE tasks
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at SET DEFAULT now();
