-- The duration histogram of finished workflows (bucket 0: above the last bound), kept as each
-- one ends, so /metrics reads a few rows whatever the number of workflows (taskorch.store.stats
-- has the bounds).
CREATE TABLE workflow_durations (
    state   TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    total_s DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (state, bucket)
);

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
            ELSE 0 END AS bucket, COUNT(*), SUM(seconds)
FROM (SELECT status, EXTRACT(EPOCH FROM (end_time - start_time))::float8 AS seconds FROM workflows
      WHERE status IN ('merged', 'failed', 'cancelled')) AS timed
WHERE seconds IS NOT NULL
GROUP BY 1, 2;
