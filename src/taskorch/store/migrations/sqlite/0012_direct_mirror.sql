-- PostgreSQL's 0012 lets the queue's hot statements write its narrow mirror themselves. SQLite
-- has no mirror (see its 0008); the number keeps both backends' versions in step.
SELECT 1;
