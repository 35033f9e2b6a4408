"""The built-in scheduler: keeps each store's standard periods fresh, with no external cron.

Every ``scheduler_interval_seconds`` it looks at each store's refresh periods (today, last 7
days, last 30 days by default, in the store's time zone) and queues a low-priority refresh for
each one whose cache is missing, expired or marked stale: every store's first period, then
every store's second, and so on. Enqueue de-duplicates, so a period already queued is not
queued twice. A period whose last sync failed less than
:data:`~storesync.dashboards.SCHEDULER_FAILURE_HOLD_OFF` ago (an hour) is left alone, so a store
with a revoked token is not hammered. Refreshes are queued in batches of one statement each
(:meth:`JobQueue.enqueue_many`), and the lease is renewed between batches, so that a long tick
never overlaps another scheduler's.

Only one scheduler is active at a time across all workers and machines: it holds the
``scheduler`` row of table ``leases``, renewed every tick, and another worker takes over only
after the lease has expired.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from storesync.cache import Cache, CachedPeriod, CacheRow, Freshness
from storesync.dashboards import SCHEDULER_FAILURE_HOLD_OFF
from storesync.periods import Period, named_period, today_in, zone
from storesync.queue import JobQueue, Reason
from storesync.queue.manager import ENQUEUE_MANY_ROWS
from storesync.queue.reads import active_periods, periods_failed_since
from storesync.settings import Settings
from storesync.storage.dialect import upsert
from storesync.storage.engine import Database
from storesync.storage.models import Lease, table_of
from storesync.stores import StoreDirectory

log = logging.getLogger(__name__)

LEASES = table_of(Lease)
LEASE_NAME = "scheduler"


class Scheduler:
    """Decides which periods need a refresh, when this process holds the scheduler lease."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        queue: JobQueue,
        stores: StoreDirectory,
        *,
        holder: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.settings = settings
        self.queue = queue
        self.stores = stores
        self.cache = Cache(database)
        self.holder = holder
        self.clock = clock
        self.is_leader = False

    @property
    def lease_seconds(self) -> float:
        return max(3 * self.settings.scheduler_interval_seconds, self.settings.lease_seconds)

    async def try_lead(self) -> bool:
        """Take or renew the scheduler lease; True while this process is the scheduler."""
        now = self.clock()
        values = {
            "name": LEASE_NAME,
            "holder": self.holder,
            "expires_at": now + timedelta(seconds=self.lease_seconds),
        }
        # Taken when free or expired, renewed by its holder; RETURNING yields nothing otherwise.
        take_or_renew = upsert(
            self.database.dialect,
            LEASES,
            key=["name"],
            replace=["expires_at"],
            set_={"holder": self.holder},
            where=(LEASES.c.holder == self.holder) | (LEASES.c.expires_at < now),
        )
        async with self.database.transaction() as conn:
            holder = await conn.scalar(take_or_renew.values(values).returning(LEASES.c.holder))
        self.is_leader = holder == self.holder
        return self.is_leader

    async def resign(self) -> None:
        """Give the lease up at once (on shutdown) so another worker can take over."""
        if not self.is_leader:
            return
        async with self.database.transaction() as conn:
            await conn.execute(
                LEASES.delete().where(LEASES.c.name == LEASE_NAME, LEASES.c.holder == self.holder)
            )
        self.is_leader = False

    async def tick(self) -> int:
        """Queue the refreshes that are due; returns how many new jobs were queued."""
        if not await self.try_lead():
            return 0
        now = self.clock()
        stores = await self.stores.list()
        has_klaviyo = {s.id: s.has_klaviyo for s in stores}
        wanted: list[tuple[int, Period]] = []
        # Every store's first period is queued before any store's second, and so on. Jobs of
        # equal priority run oldest first, so in store order one store's longer periods would
        # hold the slots while the last store still waited for its first; this way every
        # dashboard gets its first period soonest, and the stores' provider windows (a Klaviyo
        # account's 2 report calls a minute) run side by side.
        for rank in range(max((len(s.refresh_periods) for s in stores), default=0)):
            for store in stores:
                if rank < len(store.refresh_periods):
                    today = today_in(zone(store.timezone), now)
                    wanted.append((store.id, named_period(store.refresh_periods[rank], today)))
        if not wanted:
            return 0
        earliest = min(p.end for _, p in wanted)
        # Active jobs first, then the cache: a job that completes in between has written its
        # rows by then (completion and cache write are one transaction), so it is seen either
        # as active or as fresh, never as neither (which would queue a needless refresh).
        active = await active_periods(self.database)
        rows: dict[tuple[int, Period], dict[str, CacheRow]] = {}
        for row in await self.cache.recent(earliest):
            rows.setdefault((row.store_id, row.period), {})[row.data_type] = row
        recently_failed = await periods_failed_since(
            self.database, now - SCHEDULER_FAILURE_HOLD_OFF
        )
        due = [
            (store_id, period)
            for store_id, period in wanted
            if CachedPeriod(period, rows.get((store_id, period), {})).freshness(
                now, needs_klaviyo=has_klaviyo.get(store_id, False)
            )
            is not Freshness.FRESH
            and (store_id, period) not in recently_failed
            and (store_id, period) not in active
        ]
        queued = 0
        for first in range(0, len(due), ENQUEUE_MANY_ROWS):
            # Renewed as it goes: a tick longer than the lease would let a second scheduler
            # start, whose older look at the cache could queue again what was just refreshed.
            if first and not await self.try_lead():
                break  # another worker leads now: it queues the rest
            batch = due[first : first + ENQUEUE_MANY_ROWS]
            queued += len(await self.queue.enqueue_many(batch, reason=Reason.SCHEDULE))
        if queued:
            log.info("scheduler queued %d refresh(es)", queued)
        return queued
