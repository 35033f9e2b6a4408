"""The sync of one job: Shopify and Klaviyo fetched concurrently, cached with the completion.

- Shopify is fetched chunk by chunk (``sync_chunk_days``); after each chunk the running tally
  is checkpointed in the job's progress, so a retry resumes after the last finished chunk.
- Klaviyo is fetched once for the whole period: its report calls are the scarce resource
  (225 a day), and one call covers up to a year.
- Results go to ``store_sync_cache`` in the same transaction that completes the job.
- When one provider fails for good and the other succeeded, the good data is still cached and
  the job fails with the other's message; a transient failure retries the job, which resumes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.cache import KLAVIYO, SHOPIFY, Cache, expires_at, klaviyo_expires_at, write_rows
from storesync.errors import PermanentError, ProviderError, RetryableError
from storesync.periods import Period, zone
from storesync.providers.events import ProviderEvent
from storesync.providers.klaviyo import KlaviyoClient
from storesync.providers.klaviyo_budget import ReportBudget
from storesync.providers.klaviyo_pacing import KlaviyoRateLimits, Window
from storesync.providers.provider_cache import ProviderCache
from storesync.providers.shopify import ShopifyClient
from storesync.queue import Job, JobQueue, LostJobError
from storesync.settings import Settings
from storesync.storage.engine import Database, is_unavailable
from storesync.stores import StoreCredentials, StoreDirectory, StoreInfo
from storesync.sync.progress import SyncProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncServices:
    """Everything a sync needs, built once per process and shared by its jobs."""

    database: Database
    settings: Settings
    queue: JobQueue
    stores: StoreDirectory
    http: httpx.AsyncClient
    budget: ReportBudget
    provider_cache: ProviderCache


class JobEvents:
    """Writes provider events into the job's event log."""

    def __init__(self, queue: JobQueue, job_id: int) -> None:
        self.queue = queue
        self.job_id = job_id

    async def __call__(self, event: ProviderEvent) -> None:
        await self.queue.record(
            self.job_id, event.kind, f"{event.provider}: {event.message}", event.data or None
        )


class SyncPipeline:
    """Runs claimed jobs to completion or failure."""

    def __init__(self, services: SyncServices) -> None:
        self.services = services
        self.settings = services.settings
        self.queue = services.queue

    async def run(self, job: Job, worker_id: str) -> Job | None:
        """Sync ``job`` and record the outcome; returns the finished or re-queued job.

        Returns None when the job was taken away from this worker meanwhile (its lease lapsed):
        whoever holds it now records the outcome.
        """
        try:
            return await self._run(job, worker_id)
        except LostJobError:
            _dropped(job, worker_id)
            return None
        except Exception as exc:
            if is_unavailable(exc):
                raise  # an outage: the worker waits for the database, then runs it again
            return await self._unexpected(job, worker_id, exc)

    async def _unexpected(self, job: Job, worker_id: str, error: Exception) -> Job | None:
        """A bug, or an answer nobody foresaw, outside the providers' own error handling:
        recorded now, so that the job leaves ``processing`` (and its slot) at once, with the
        error in its log. Retried like any unexpected failure: the attempts bound it."""
        try:
            return await self.queue.fail(job.id, worker_id, _describe(error), retryable=True)
        except LostJobError:
            _dropped(job, worker_id)
            return None

    async def _run(self, job: Job, worker_id: str) -> Job:
        try:
            # Queued before periods were checked (see Period.checked), it could only overflow.
            Period.checked(job.period.start, job.period.end)
            store = await self.services.stores.get(job.store_id)
            credentials = await self.services.stores.credentials(job.store_id)
            tz = zone(store.timezone)
        except Exception as exc:  # a bad period, a deleted store, a bad credential or zone
            if is_unavailable(exc):
                raise  # not the store's fault: the worker waits for the database, then retries
            return await self.queue.fail(job.id, worker_id, str(exc), retryable=False)

        chunks = job.period.chunks(self.settings.sync_chunk_days)
        progress = SyncProgress.resume(
            job.progress,
            period=job.period,
            tz=tz,
            chunks_total=len(chunks),
            needs_klaviyo=credentials.klaviyo_key is not None,
        )
        if progress.chunks_done:
            await self.queue.record(
                job.id,
                "resumed",
                f"resuming after {progress.chunks_done} of {len(chunks)} finished chunk(s)",
            )
        events = JobEvents(self.queue, job.id)
        checkpoint_lock = asyncio.Lock()

        async def checkpoint() -> None:
            async with checkpoint_lock:
                await self.queue.set_progress(job.id, worker_id, progress.to_json())

        shopify_result, klaviyo_result = await asyncio.gather(
            self._shopify(job, store, credentials, tz, chunks, progress, events, checkpoint),
            self._klaviyo(job, credentials, tz, progress, events, checkpoint),
            return_exceptions=True,
        )
        for result in (shopify_result, klaviyo_result):
            if isinstance(result, LostJobError):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation and friends
            if (
                isinstance(result, Exception)
                and not isinstance(result, ProviderError)
                and is_unavailable(result)
            ):
                # The database went away under a provider's step (its budget, its cache): an
                # outage, not this sync's failure. The worker waits for it and runs the job
                # again, without counting an attempt.
                raise result

        payloads: dict[str, dict[str, Any]] = {}
        if not isinstance(shopify_result, BaseException):
            payloads[SHOPIFY] = shopify_result
        if progress.klaviyo is not None:
            payloads[KLAVIYO] = progress.klaviyo.to_json()
        failures = [r for r in (shopify_result, klaviyo_result) if isinstance(r, Exception)]
        return await self._finish(job, worker_id, store, tz, progress, payloads, failures)

    async def _shopify(
        self,
        job: Job,
        store: StoreInfo,
        credentials: StoreCredentials,
        tz: ZoneInfo,
        chunks: list[Period],
        progress: SyncProgress,
        events: JobEvents,
        checkpoint: Any,
    ) -> dict[str, Any]:
        client = ShopifyClient(
            self.services.http,
            self.settings,
            shop_domain=store.shopify_domain,
            access_token=credentials.shopify_token,
            events=events,
        )
        for index in range(progress.chunks_done, len(chunks)):
            chunk = chunks[index]
            tally = await client.fetch_sales(chunk, tz)
            progress.tally.merge(tally)
            progress.chunks_done = index + 1
            progress.shopify_done = progress.chunks_done == len(chunks)
            await checkpoint()
            if len(chunks) > 1:
                await self.queue.record(
                    job.id,
                    "chunk",
                    f"chunk {index + 1}/{len(chunks)} ({chunk}) done: {tally.orders} order(s)",
                    {"chunk": index + 1, "orders": tally.orders, "percent": progress.percent},
                )
        currency = progress.tally.currency or store.currency or await client.shop_currency()
        return progress.tally.figures(currency).to_json()

    async def _klaviyo(
        self,
        job: Job,
        credentials: StoreCredentials,
        tz: ZoneInfo,
        progress: SyncProgress,
        events: JobEvents,
        checkpoint: Any,
    ) -> None:
        if credentials.klaviyo_key is None or progress.klaviyo is not None:
            return
        if not job.force:
            cached = (await Cache(self.services.database).get(job.store_id, job.period)).rows
            kept = cached.get(KLAVIYO)
            if kept is not None and kept.is_fresh(self.queue.clock()):
                # Paced by the daily report budget (see cache.klaviyo_refresh_seconds): the
                # cached figures stay, and this sync refreshes Shopify's alone.
                until = kept.expires_at.isoformat(timespec="seconds") if kept.expires_at else "-"
                await self.queue.record(
                    job.id,
                    "klaviyo-kept",
                    f"Klaviyo figures synced at {kept.synced_at.isoformat(timespec='seconds')} "
                    f"are fresh until {until}: no report calls spent",
                )
                return
        client = KlaviyoClient(
            self.services.http,
            self.settings,
            private_key=credentials.klaviyo_key,
            budget=self.services.budget,
            cache=self.services.provider_cache,
            events=events,
            limits=KlaviyoRateLimits(
                reports=Window(
                    self.settings.klaviyo_reports_per_second,
                    self.settings.klaviyo_reports_per_minute,
                )
            ),
        )
        progress.klaviyo = await client.fetch_performance(job.period, tz)
        await checkpoint()

    async def _finish(
        self,
        job: Job,
        worker_id: str,
        store: StoreInfo,
        tz: ZoneInfo,
        progress: SyncProgress,
        payloads: dict[str, dict[str, Any]],
        failures: list[Exception],
    ) -> Job:
        # Unexpected errors (ours, or a surprising answer) are retried: attempts bound them.
        permanent = [f for f in failures if isinstance(f, PermanentError)]
        if failures and not permanent:
            return await self._retry_later(job, worker_id, failures, progress)

        now = self.queue.clock()
        expiries = {
            SHOPIFY: expires_at(self.settings, job.period, tz, now),
            KLAVIYO: klaviyo_expires_at(
                self.settings, job.period, tz, now, len(store.refresh_periods)
            ),
        }
        dialect = self.services.database.dialect

        async def write(conn: AsyncConnection) -> None:
            for data_type, payload in payloads.items():
                await write_rows(
                    conn,
                    dialect,
                    store_id=job.store_id,
                    period=job.period,
                    payloads={data_type: payload},
                    synced_at=now,
                    expires=expiries[data_type],
                    job_id=job.id,
                )

        if permanent:
            message = "; ".join(_describe(f) for f in permanent)
            return await self.queue.fail(
                job.id, worker_id, message, retryable=False, write_results=write
            )
        if SHOPIFY in payloads and store.currency is None:
            await self.services.stores.update(store.id, currency=payloads[SHOPIFY]["currency"])
        return await self.queue.complete(job.id, worker_id, write, progress=progress.summary_json())

    async def _retry_later(
        self, job: Job, worker_id: str, failures: list[Exception], progress: SyncProgress
    ) -> Job:
        retryable = [f for f in failures if isinstance(f, RetryableError)]
        retry_at = max((f.retry_at for f in retryable if f.retry_at), default=None)
        retry_after = max((f.retry_after for f in retryable if f.retry_after), default=None)
        # A spent daily budget (retry_at) is a deferral: waiting for it must not use up attempts.
        deferral = retry_at is not None
        return await self.queue.fail(
            job.id,
            worker_id,
            "; ".join(_describe(f) for f in failures),
            retryable=True,
            retry_after=retry_after,
            retry_at=retry_at,
            count_attempt=not deferral,
        )


def _dropped(job: Job, worker_id: str) -> None:
    log.warning("job %s was taken back from worker %s; dropping its work", job.id, worker_id)


def _describe(error: Exception) -> str:
    if isinstance(error, ProviderError):
        return str(error)
    # Anything else is our bug or an unexpected answer: keep the type for the operator.
    log.error("unexpected error during a sync", exc_info=error)
    return f"internal error: {type(error).__name__}: {error}"
