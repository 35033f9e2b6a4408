"""The stores page: each store's last sync, freshness badge and Klaviyo budget left today.

The badge says, in this order of precedence:

- ``syncing``: a job of the store is running;
- ``failed``: the store's most recently finished job failed (its message is shown);
- ``stale``: one of the store's standard periods (those the scheduler keeps fresh) is missing
  from the cache, expired or marked stale;
- ``fresh``: all of them are fresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from storesync.cache import CACHE, Freshness
from storesync.periods import named_period, today_in, zone
from storesync.queue import JobStatus
from storesync.queue.reads import stores_job_state
from storesync.serving.reads import read_periods
from storesync.settings import Settings
from storesync.storage.engine import Database
from storesync.stores import StoreDirectory, StoreInfo
from storesync.web.budget import budget_left


@dataclass(frozen=True, slots=True)
class StoreRow:
    store: StoreInfo
    badge: str  # fresh, stale, syncing, failed
    last_sync: datetime | None
    budget_left: int | None
    error: str | None


async def store_rows(
    database: Database, settings: Settings, stores: StoreDirectory, account_id: int
) -> list[StoreRow]:
    """One row per store of the account, in id order."""
    listed = await stores.list(account_id=account_id)
    if not listed:
        return []
    ids = [s.id for s in listed]
    now = datetime.now(UTC)
    last_sync, syncing, last_finished = await _store_facts(database, ids)
    rows = []
    for store in listed:
        status, error = last_finished.get(store.id, (None, None))
        if store.id in syncing:
            badge = "syncing"
        elif status == JobStatus.FAILED.value:
            badge = "failed"
        else:
            badge = "fresh" if await _all_fresh(database, store, now) else "stale"
        rows.append(
            StoreRow(
                store=store,
                badge=badge,
                last_sync=last_sync.get(store.id),
                budget_left=await budget_left(database, settings, stores, store),
                error=error if badge == "failed" else None,
            )
        )
    return rows


async def _store_facts(
    database: Database, ids: list[int]
) -> tuple[dict[int, datetime], set[int], dict[int, tuple[str, str | None]]]:
    synced = select(CACHE.c.store_id, func.max(CACHE.c.synced_at)).where(CACHE.c.store_id.in_(ids))
    async with database.read() as conn:
        last_sync = {
            int(store_id): at
            for store_id, at in await conn.execute(synced.group_by(CACHE.c.store_id))
            if at is not None
        }
    jobs = await stores_job_state(database, ids)
    return last_sync, jobs.syncing, jobs.last_finished


async def _all_fresh(database: Database, store: StoreInfo, now: datetime) -> bool:
    today = today_in(zone(store.timezone), now)
    periods = [named_period(name, today) for name in store.refresh_periods]
    if not periods:
        return True
    cached = await read_periods(database, store.id, periods)
    return all(
        c.freshness(now, needs_klaviyo=store.has_klaviyo) is Freshness.FRESH
        for c in cached.values()
    )
