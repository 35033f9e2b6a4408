"""The registry of live workers: each registers itself and heart-beats its row.

This is how ``storesync stats``, ``/api/queue/stats`` and the queue panel know which workers
are alive, and can say plainly when none is while jobs wait.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from storesync.storage.engine import Database
from storesync.storage.models import Worker, table_of

WORKERS = table_of(Worker)


def new_worker_id() -> str:
    """``host:pid:random``: unique even when a pid is reused after a restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    hostname: str
    pid: int
    concurrency: int
    jobs_running: int
    is_scheduler: bool
    started_at: datetime
    last_heartbeat: datetime

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["last_heartbeat"] = self.last_heartbeat.isoformat()
        return data


class WorkerRegistry:
    """Registers, heart-beats and lists workers."""

    def __init__(self, database: Database, *, stale_after_seconds: float) -> None:
        self.database = database
        self.stale_after = timedelta(seconds=stale_after_seconds)

    async def register(self, worker_id: str, concurrency: int) -> None:
        now = datetime.now(UTC)
        async with self.database.transaction() as conn:
            await conn.execute(delete(WORKERS).where(WORKERS.c.id == worker_id))
            await conn.execute(
                insert(WORKERS).values(
                    id=worker_id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    concurrency=concurrency,
                    jobs_running=0,
                    is_scheduler=False,
                    started_at=now,
                    last_heartbeat=now,
                )
            )

    async def heartbeat(self, worker_id: str, *, jobs_running: int, is_scheduler: bool) -> None:
        """Renew the worker's row (re-creating it if a cleanup removed it)."""
        now = datetime.now(UTC)
        async with self.database.transaction() as conn:
            result = await conn.execute(
                update(WORKERS)
                .where(WORKERS.c.id == worker_id)
                .values(last_heartbeat=now, jobs_running=jobs_running, is_scheduler=is_scheduler)
            )
            if result.rowcount == 0:
                await conn.execute(
                    insert(WORKERS).values(
                        id=worker_id,
                        hostname=socket.gethostname(),
                        pid=os.getpid(),
                        concurrency=jobs_running,
                        jobs_running=jobs_running,
                        is_scheduler=is_scheduler,
                        started_at=now,
                        last_heartbeat=now,
                    )
                )
            # Forget workers that have been silent for a long time (crashed without unregistering).
            await conn.execute(
                delete(WORKERS).where(WORKERS.c.last_heartbeat < now - 20 * self.stale_after)
            )

    async def unregister(self, worker_id: str) -> None:
        async with self.database.transaction() as conn:
            await conn.execute(delete(WORKERS).where(WORKERS.c.id == worker_id))

    async def live(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat is recent enough to count as alive."""
        cutoff = datetime.now(UTC) - self.stale_after
        async with self.database.read() as conn:
            rows = (
                await conn.execute(
                    select(WORKERS)
                    .where(WORKERS.c.last_heartbeat >= cutoff)
                    .order_by(WORKERS.c.started_at)
                )
            ).mappings()
            return [WorkerInfo(**{**r, "is_scheduler": bool(r["is_scheduler"])}) for r in rows]
