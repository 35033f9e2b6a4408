"""SQL of the ``v_sync_queue_stats`` view, one version per database.

Kept beside the migrations (and imported by them by revision) so that a later change of the
view is a new constant and a new migration, never an edit of an applied one.
"""

QUEUE_STATS_V1_POSTGRESQL = """
CREATE VIEW v_sync_queue_stats AS
SELECT
  count(*) FILTER (WHERE status = 'queued') AS queued,
  count(*) FILTER (WHERE status = 'processing') AS processing,
  count(*) FILTER (WHERE status = 'completed') AS completed,
  count(*) FILTER (WHERE status = 'failed') AS failed,
  count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
  EXTRACT(EPOCH FROM now() - min(queued_at) FILTER (WHERE status = 'queued'))::float8
    AS oldest_queued_seconds,
  (avg(EXTRACT(EPOCH FROM completed_at - started_at))
    FILTER (WHERE status = 'completed' AND completed_at >= now() - interval '24 hours'))::float8
    AS avg_duration_seconds_24h,
  (percentile_disc(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM completed_at - started_at))
    FILTER (WHERE status = 'completed' AND completed_at >= now() - interval '24 hours'))::float8
    AS p95_duration_seconds_24h,
  (count(*) FILTER (WHERE status = 'failed'
                    AND completed_at >= now() - interval '24 hours'))::float8
    / NULLIF(count(*) FILTER (WHERE status IN ('completed', 'failed')
                              AND completed_at >= now() - interval '24 hours'), 0)
    AS failure_rate_24h
FROM sync_queue
"""

# SQLite has no percentile function: the p95 is the nearest rank, as percentile_disc gives.
QUEUE_STATS_V1_SQLITE = """
CREATE VIEW v_sync_queue_stats AS
WITH recent AS (
  SELECT status, (julianday(completed_at) - julianday(started_at)) * 86400.0 AS duration
  FROM sync_queue
  WHERE status IN ('completed', 'failed') AND completed_at >= datetime('now', '-1 day')
), done AS (
  SELECT duration,
         row_number() OVER (ORDER BY duration) AS rn,
         count(*) OVER () AS n
  FROM recent WHERE status = 'completed' AND duration IS NOT NULL
)
SELECT
  (SELECT count(*) FROM sync_queue WHERE status = 'queued') AS queued,
  (SELECT count(*) FROM sync_queue WHERE status = 'processing') AS processing,
  (SELECT count(*) FROM sync_queue WHERE status = 'completed') AS completed,
  (SELECT count(*) FROM sync_queue WHERE status = 'failed') AS failed,
  (SELECT count(*) FROM sync_queue WHERE status = 'cancelled') AS cancelled,
  (SELECT (julianday('now') - julianday(min(queued_at))) * 86400.0
     FROM sync_queue WHERE status = 'queued') AS oldest_queued_seconds,
  (SELECT avg(duration) FROM done) AS avg_duration_seconds_24h,
  (SELECT min(duration) FROM done WHERE rn >= 0.95 * n) AS p95_duration_seconds_24h,
  (SELECT CAST(sum(status = 'failed') AS REAL) / NULLIF(count(*), 0) FROM recent)
    AS failure_rate_24h
"""
