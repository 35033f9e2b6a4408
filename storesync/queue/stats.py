"""Queue statistics: the ``v_sync_queue_stats`` view, the live workers, and a diagnosis."""

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

    def to_json(self) -> dict[str, Any]:
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
            "workers": [w.to_json() for w in self.workers],
            "diagnosis": self.diagnosis,
        }


async def queue_stats(database: Database, settings: Settings) -> QueueStats:
    async with database.read() as conn:
        row = (await conn.execute(text("SELECT * FROM v_sync_queue_stats"))).mappings().one()
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
