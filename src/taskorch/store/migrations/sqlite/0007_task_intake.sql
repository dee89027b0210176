-- Requirements may arrive "from a database": a plain INSERT INTO tasks (title, description)
-- must work, so the timestamps get defaults (status, priority, dependencies and metadata had
-- theirs). SQLite cannot change a column's default in place: the table is rebuilt. Foreign keys
-- stay on (a migration runs in one transaction, where they cannot be turned off): with their
-- check deferred, dropping the table counts its workflows' references as broken and putting the
-- same rows back counts them as mended, so the commit sees none. The AUTOINCREMENT counter is
-- kept, so the id of a deleted task is never given again.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE tasks_copy AS SELECT * FROM tasks;
CREATE TABLE tasks_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'tasks';
DROP TABLE tasks;
CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'pending',
    priority     TEXT NOT NULL DEFAULT 'medium',
    dependencies TEXT NOT NULL DEFAULT '[]',
    metadata     TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00'),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')
);
INSERT INTO tasks SELECT * FROM tasks_copy;
UPDATE sqlite_sequence SET seq = (SELECT MAX(seq) FROM tasks_sequence) WHERE name = 'tasks'
    AND EXISTS (SELECT 1 FROM tasks_sequence);
DROP TABLE tasks_copy;
DROP TABLE tasks_sequence;
CREATE INDEX tasks_status_idx ON tasks (status);
