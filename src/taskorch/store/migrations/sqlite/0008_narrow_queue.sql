-- PostgreSQL's 0008 moves the queue's look-ups into a narrow table kept by triggers, so that its
-- state changes are HOT updates. SQLite has no such thing to gain (an update rewrites the row
-- in its B-tree whatever the indexes), so its schema stays as it is; the number keeps both
-- backends' versions in step.
SELECT 1;
