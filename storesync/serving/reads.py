"""The dashboard's cache read: current and previous period in one SELECT (the period's latest
job, read only when the cache cannot answer, is :mod:`storesync.dashboards`').

A cache hit is the API's hot path, so it costs one query (after the token and store check);
the benchmark's bare route runs exactly :func:`read_periods` to show what the framework adds.
"""

from __future__ import annotations

from storesync.cache import Cache, CachedPeriod
from storesync.periods import Period
from storesync.storage.engine import Database


async def read_periods(
    database: Database, store_id: int, periods: list[Period]
) -> dict[Period, CachedPeriod]:
    """What the cache holds for each of ``periods`` of one store (empty when nothing)."""
    return await Cache(database).get_many(store_id, periods)
