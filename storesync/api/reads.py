"""The dashboard's reads: the cache (current and previous period in one SELECT), and the
latest job of a period (only when the cache cannot answer).

A cache hit is the API's hot path, so it costs one query (after the token and store check);
the benchmark's bare route runs exactly :func:`read_periods` to show what the framework adds.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select

from storesync.cache import CACHE, CachedPeriod, CacheRow
from storesync.periods import Period
from storesync.queue import Job
from storesync.queue.manager import JOBS
from storesync.storage.engine import Database


async def read_periods(
    database: Database, store_id: int, periods: list[Period]
) -> dict[Period, CachedPeriod]:
    """What the cache holds for each of ``periods`` of one store (empty when nothing)."""
    query = select(CACHE).where(
        CACHE.c.store_id == store_id,
        or_(*(and_(CACHE.c.period_start == p.start, CACHE.c.period_end == p.end) for p in periods)),
    )
    found: dict[Period, dict[str, CacheRow]] = {p: {} for p in periods}
    async with database.read() as conn:
        for r in (await conn.execute(query)).mappings():
            period = Period(r["period_start"], r["period_end"])
            found.setdefault(period, {})[r["data_type"]] = CacheRow(
                store_id=int(r["store_id"]),
                data_type=r["data_type"],
                period=period,
                source=r["source"],
                payload=r["payload"],
                synced_at=r["synced_at"],
                expires_at=r["expires_at"],
                stale=bool(r["stale"]),
                job_id=r["job_id"],
            )
    return {p: CachedPeriod(p, rows) for p, rows in found.items()}


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
