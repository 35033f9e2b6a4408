"""Queue statistics: the ``v_sync_queue_stats`` view, the live workers, and a diagnosis.

The whole queue's figures are the operator's (``storesync stats``, ``/metrics``). An account
sees the same figures computed over its own stores' jobs only (``/api/queue/stats``): the
counts, durations and failure rate of other accounts are none of its business. The SQL of the
account's figures is the view's, restricted to the account's stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from storesync.queue.workers import WorkerInfo, WorkerRegistry
from storesync.settings import Settings
from storesync.storage.engine import Database


@dataclass(frozen=True, slots=True)
class QueueStats:
    queued: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    oldest_queued_seconds: float | None
    avg_duration_seconds_24h: float | None
    p95_duration_seconds_24h: float | None
    failure_rate_24h: float | None
    workers: list[WorkerInfo] = field(default_factory=list)

    @property
    def diagnosis(self) -> list[str]:
        """Plain statements of what looks wrong (the seed's "worker não está processando")."""
        problems = []
        if not self.workers and (self.queued or self.processing):
            problems.append(
                f"no worker is alive while {self.queued} job(s) wait: start `storesync worker` "
                "(or `storesync serve` with its embedded worker)"
            )
        return problems

    def to_json(self, *, with_hosts: bool = True) -> dict[str, Any]:
        """The figures as JSON; without ``with_hosts`` the workers' ids, host names and pids
        are null (only operators may learn where the workers run)."""
        workers = [w.to_json() for w in self.workers]
        if not with_hosts:
            for worker in workers:
                worker.update(id=None, hostname=None, pid=None)
        return {
            "queued": self.queued,
            "processing": self.processing,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "oldest_queued_seconds": self.oldest_queued_seconds,
            "avg_duration_seconds_24h": self.avg_duration_seconds_24h,
            "p95_duration_seconds_24h": self.p95_duration_seconds_24h,
            "failure_rate_24h": self.failure_rate_24h,
            "workers": workers,
            "diagnosis": self.diagnosis,
        }


async def queue_stats(
    database: Database, settings: Settings, *, account_id: int | None = None
) -> QueueStats:
    """The queue's figures (of account ``account_id``'s jobs only, when given) and the live
    workers."""
    if account_id is None:
        query, params = text("SELECT * FROM v_sync_queue_stats"), {}
    else:
        sql = _ACCOUNT_STATS_POSTGRESQL if database.is_postgres else _ACCOUNT_STATS_SQLITE
        query, params = text(sql), {"account_id": account_id}
    async with database.read() as conn:
        row = (await conn.execute(query, params)).mappings().one()
    registry = WorkerRegistry(database, stale_after_seconds=settings.lease_seconds)
    return QueueStats(
        queued=int(row["queued"] or 0),
        processing=int(row["processing"] or 0),
        completed=int(row["completed"] or 0),
        failed=int(row["failed"] or 0),
        cancelled=int(row["cancelled"] or 0),
        oldest_queued_seconds=_float(row["oldest_queued_seconds"]),
        avg_duration_seconds_24h=_float(row["avg_duration_seconds_24h"]),
        p95_duration_seconds_24h=_float(row["p95_duration_seconds_24h"]),
        failure_rate_24h=_float(row["failure_rate_24h"]),
        workers=await registry.live(),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# The view's SQL (storesync.storage.migrations.views), over one account's jobs.
_ACCOUNT_JOBS = """
  SELECT q.status, q.queued_at, q.started_at, q.completed_at
  FROM sync_queue q JOIN stores s ON s.id = q.store_id
  WHERE s.account_id = :account_id
"""

_ACCOUNT_STATS_POSTGRESQL = f"""
WITH mine AS ({_ACCOUNT_JOBS})
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
FROM mine
"""  # noqa: S608 - no user input: a constant and a bound parameter

_ACCOUNT_STATS_SQLITE = f"""
WITH mine AS ({_ACCOUNT_JOBS}), recent AS (
  SELECT status, (julianday(completed_at) - julianday(started_at)) * 86400.0 AS duration
  FROM mine
  WHERE status IN ('completed', 'failed') AND completed_at >= datetime('now', '-1 day')
), done AS (
  SELECT duration,
         row_number() OVER (ORDER BY duration) AS rn,
         count(*) OVER () AS n
  FROM recent WHERE status = 'completed' AND duration IS NOT NULL
)
SELECT
  (SELECT count(*) FROM mine WHERE status = 'queued') AS queued,
  (SELECT count(*) FROM mine WHERE status = 'processing') AS processing,
  (SELECT count(*) FROM mine WHERE status = 'completed') AS completed,
  (SELECT count(*) FROM mine WHERE status = 'failed') AS failed,
  (SELECT count(*) FROM mine WHERE status = 'cancelled') AS cancelled,
  (SELECT (julianday('now') - julianday(min(queued_at))) * 86400.0
     FROM mine WHERE status = 'queued') AS oldest_queued_seconds,
  (SELECT avg(duration) FROM done) AS avg_duration_seconds_24h,
  (SELECT min(duration) FROM done WHERE rn >= 0.95 * n) AS p95_duration_seconds_24h,
  (SELECT CAST(sum(status = 'failed') AS REAL) / NULLIF(count(*), 0) FROM recent)
    AS failure_rate_24h
"""  # noqa: S608 - no user input: a constant and a bound parameter
