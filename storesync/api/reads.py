"""The dashboard's reads: the cache (current and previous period in one SELECT), and the
latest job of a period (only when the cache cannot answer).

A cache hit is the API's hot path, so it costs one query (after the token and store check);
the benchmark's bare route runs exactly :func:`read_periods` to show what the framework adds.
"""

from __future__ import annotations

from sqlalchemy import select

from storesync.cache import Cache, CachedPeriod
from storesync.periods import Period
from storesync.queue import Job
from storesync.storage.engine import Database
from storesync.storage.models import SyncJob, table_of

JOBS = table_of(SyncJob)


async def read_periods(
    database: Database, store_id: int, periods: list[Period]
) -> dict[Period, CachedPeriod]:
    """What the cache holds for each of ``periods`` of one store (empty when nothing)."""
    return await Cache(database).get_many(store_id, periods)


async def latest_job(database: Database, store_id: int, period: Period) -> Job | None:
    """The most recently queued job of this store and period, if any."""
    query = (
        select(JOBS)
        .where(
            JOBS.c.store_id == store_id,
            JOBS.c.period_start == period.start,
            JOBS.c.period_end == period.end,
        )
        .order_by(JOBS.c.id.desc())
        .limit(1)
    )
    async with database.read() as conn:
        row = (await conn.execute(query)).mappings().first()
    return Job.from_row(row) if row is not None else None
