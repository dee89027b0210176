-- PostgreSQL's 0011 moves the budget's look-up into 0008's narrow mirror, so that a subtask's
-- state changes are HOT updates again. SQLite has no such thing to gain (see its 0008); the
-- number keeps both backends' versions in step.
SELECT 1;
