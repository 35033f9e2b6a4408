"""The dashboard's refresh rules, in one place for the API and the web pages.

- :meth:`Dashboards.read`: cache first (stale-while-revalidate). Fresh: the figures. Stale
  (expired, or marked by a webhook): the figures at once and a user-priority refresh queued,
  unless one is already waiting or the period's last refresh failed just now. Nothing cached:
  a refresh queued (or not, for a page that lets the person press Sync).
- :meth:`Dashboards.request_sync`: a person asks for a sync. Fresh figures need none: the
  completed job that filled them is the answer, unless ``force``.
- The hold-offs after a failure: :data:`USER_FAILURE_HOLD_OFF` for reads,
  :data:`SCHEDULER_FAILURE_HOLD_OFF` for the scheduler.

The per-account cap of queued user syncs is the queue's (:class:`LimitExceededError`): a read
of stale figures still answers, unrefreshed (``limited``); a read of nothing, or a sync
request, raises it for the caller to answer 429.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from storesync.cache import Cache, CachedPeriod, Freshness, dashboard_json
from storesync.errors import LimitExceededError
from storesync.periods import Period
from storesync.queue import Job, JobQueue, JobStatus, Priority, Reason
from storesync.queue.reads import latest_job
from storesync.storage.engine import Database
from storesync.stores import StoreInfo

#: After a period's refresh failed, how long reads of its dashboard queue no new one and point
#: at the failed job instead (its ``error_message`` says why). A page left open, or an API
#: client polling, on a store whose token was revoked must not start a doomed sync (and spend
#: two of Klaviyo's 225 daily report calls) on every read. Short, because a person is looking:
#: a transient failure is retried by the next read a few minutes later, and ``force`` (or the
#: Sync button, which is a request, not a read) retries at once.
USER_FAILURE_HOLD_OFF = timedelta(minutes=5)
#: After a period's refresh failed, how long the scheduler leaves the period alone. Longer,
#: because nobody is waiting: the scheduler visits every store's periods each tick, and a
#: failure that outlives five minutes (a revoked token, a closed store) would otherwise spend
#: the Klaviyo budget of every such store all day. A person who looks is served by the
#: shorter hold-off above.
SCHEDULER_FAILURE_HOLD_OFF = timedelta(hours=1)

USER_PRIORITY = Priority.for_reason(Reason.USER)


@dataclass(frozen=True, slots=True)
class DashboardRead:
    """What a read of one store's period found, and the refresh it queued."""

    store: StoreInfo
    period: Period
    freshness: Freshness
    current: CachedPeriod
    previous: CachedPeriod
    #: When the read was made (the freshness and the document's ages are as of then).
    now: datetime
    #: The period's refresh job: the one queued (or already waiting) for a stale or missing
    #: read, or the failed one that holds refreshes off; else the period's latest job when
    #: asked for (``include_job``), else None.
    job: Job | None = None
    #: A refresh was due but the account is at its cap of queued syncs.
    limited: bool = False

    @property
    def refresh_job(self) -> Job | None:
        """The job refreshing stale figures (None when fresh, missing or limited)."""
        return self.job if self.freshness is Freshness.STALE and not self.limited else None

    def document(self) -> dict[str, Any]:
        """The dashboard JSON (SPEC's shape), with ``meta.refresh_job_id`` for a stale read."""
        document = dashboard_json(
            store_id=self.store.id,
            currency=self.store.currency,
            current=self.current,
            previous=self.previous,
            now=self.now,
            needs_klaviyo=self.store.has_klaviyo,
        )
        refresh = self.refresh_job
        if refresh is not None:
            document["meta"]["refresh_job_id"] = refresh.id
        return document


@dataclass(frozen=True, slots=True)
class SyncRequested:
    """The answer to a sync request: the job, and whether the cache was fresh already."""

    job: Job | None
    fresh: bool = False
    created: bool = False


class Dashboards:
    """The dashboard reads and sync requests of the API and the web pages."""

    def __init__(
        self, database: Database, queue: JobQueue, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.database = database
        self.queue = queue
        self.cache = Cache(database)
        # The queue's clock by default, so that a job's times and the hold-offs agree.
        self.clock = clock or queue.clock

    async def read(
        self,
        store: StoreInfo,
        period: Period,
        *,
        queue_missing: bool = True,
        refresh_stale: bool = True,
        include_job: bool = False,
    ) -> DashboardRead:
        """Read the period (and the previous one, for comparisons) from the cache, and queue a
        refresh when one is due (see the module docstring).

        A fresh read costs one query unless ``include_job`` asks for the period's latest job
        (the web page shows its state). ``queue_missing=False``: nothing cached queues nothing.
        Raises :class:`LimitExceededError` when nothing is cached and the account is at its cap.
        """
        previous = period.previous()
        cached = await self.cache.get_many(store.id, [period, previous])
        now = self.clock()
        freshness = cached[period].freshness(now, needs_klaviyo=store.has_klaviyo)
        wants_refresh = (freshness is Freshness.STALE and refresh_stale) or (
            freshness is Freshness.MISSING and queue_missing
        )
        job = None
        if include_job or wants_refresh:
            job = await self.latest_job(store.id, period)
        if wants_refresh and completed_since(job, cached[period]):
            # The job completed after the cache was read, and its figures were committed with
            # it: read them rather than sync the period a second time.
            cached = await self.cache.get_many(store.id, [period, previous])
            freshness = cached[period].freshness(now, needs_klaviyo=store.has_klaviyo)
            wants_refresh = (freshness is Freshness.STALE and refresh_stale) or (
                freshness is Freshness.MISSING and queue_missing
            )
        limited = False
        if wants_refresh:
            try:
                job = await self._refresh(store, period, job, now)
            except LimitExceededError:
                if freshness is Freshness.MISSING:
                    raise  # nothing to show: the caller answers 429
                limited = True  # the stale figures still answer, unrefreshed
        return DashboardRead(
            store=store,
            period=period,
            freshness=freshness,
            current=cached[period],
            previous=cached[previous],
            now=now,
            job=job,
            limited=limited,
        )

    async def request_sync(
        self, store: StoreInfo, period: Period, *, force: bool = False, job_required: bool = False
    ) -> SyncRequested:
        """A person asks for a sync of the period.

        Fresh figures need none (a repeated click after a sync finished must not spend two of
        the Klaviyo account's 225 daily report calls again): the answer is the completed job
        that filled them, or no job at all when none is on record (figures restored or
        imported), unless ``job_required`` (the API answers with a job), then a sync is queued.
        Otherwise a user-priority sync is queued, or the one already waiting returned; no
        failure hold-off applies (a request is a retry). ``force`` syncs whatever the cache
        holds. Raises :class:`LimitExceededError` at the account's cap.
        """
        if not force:
            cached = await self.cache.get(store.id, period)
            fresh = cached.freshness(self.clock(), needs_klaviyo=store.has_klaviyo)
            if fresh is not Freshness.FRESH:
                last = await self.latest_job(store.id, period)
                if completed_since(last, cached):  # see read(): its figures are there now
                    cached = await self.cache.get(store.id, period)
                    fresh = cached.freshness(self.clock(), needs_klaviyo=store.has_klaviyo)
            if fresh is Freshness.FRESH:
                last = await self.latest_job(store.id, period)
                filled = last if last is not None and last.status is JobStatus.COMPLETED else None
                if filled is not None or not job_required:
                    return SyncRequested(filled, fresh=True)
        enqueued = await self.queue.enqueue(
            store.id, period.start, period.end, reason=Reason.USER, force=force
        )
        return SyncRequested(enqueued.job, created=enqueued.created)

    async def refresh_now(self, store: StoreInfo, period: Period) -> Job:
        """Queue a forced user-priority refresh whatever the cache holds (``force=true``)."""
        enqueued = await self.queue.enqueue(
            store.id, period.start, period.end, reason=Reason.USER, force=True
        )
        return enqueued.job

    async def latest_job(self, store_id: int, period: Period) -> Job | None:
        """The most recently queued job of this store and period, if any."""
        return await latest_job(self.database, store_id, period)

    async def _refresh(
        self, store: StoreInfo, period: Period, last: Job | None, now: datetime
    ) -> Job:
        """Queue a user-priority refresh of a read, unless one is waiting or held off."""
        if last is not None and not last.is_finished and last.priority >= USER_PRIORITY:
            # Already waiting at a user's priority: nothing to write (a page polling a stale
            # dashboard must not take the account's enqueue lock on every read). A scheduled
            # refresh waiting at a lower priority goes through enqueue, which raises it.
            return last
        if last is not None and held_off(last, now):
            return last
        enqueued = await self.queue.enqueue(store.id, period.start, period.end, reason=Reason.USER)
        return enqueued.job


def completed_since(job: Job | None, cached: CachedPeriod) -> bool:
    """Whether ``job`` completed after ``cached`` was filled (or while nothing was cached): a
    read of the cache that raced with the job's completion, to be read again."""
    if job is None or job.status is not JobStatus.COMPLETED or job.completed_at is None:
        return False
    if any(row.job_id == job.id for row in cached.rows.values()):
        return False  # its figures are what was read
    return cached.synced_at is None or job.completed_at > cached.synced_at


def held_off(last: Job, now: datetime, hold_off: timedelta = USER_FAILURE_HOLD_OFF) -> bool:
    """Whether ``last`` is a failure recent enough that a read queues no new refresh."""
    return (
        last.status is JobStatus.FAILED
        and last.completed_at is not None
        and now - last.completed_at < hold_off
    )
