"""The dashboard refresh rules (storesync.dashboards), tested directly on SQLite and PostgreSQL:
stale-while-revalidate reads, sync requests, the hold-off after a failure and the account cap.
The API and the pages answer with these rules (tests/api, tests/web)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from storesync import scheduler
from storesync.cache import KLAVIYO, SHOPIFY, Freshness, write_rows
from storesync.dashboards import (
    SCHEDULER_FAILURE_HOLD_OFF,
    USER_FAILURE_HOLD_OFF,
    Dashboards,
)
from storesync.errors import LimitExceededError
from storesync.periods import Period, named_period, today_in, zone
from storesync.providers.figures import DailySales, KlaviyoFigures, ShopifyFigures
from storesync.queue import Job, JobQueue, JobStatus, Priority, Reason
from storesync.scheduler import Scheduler
from storesync.settings import Settings
from storesync.storage import Database
from storesync.stores import StoreDirectory, StoreInfo
from tests.conftest import FakeClock, add_store

FEB = Period(date(2026, 2, 1), date(2026, 2, 7))


@pytest.fixture
def dashboards(database: Database, queue: JobQueue) -> Dashboards:
    return Dashboards(database, queue)


@pytest.fixture
async def store(stores: StoreDirectory) -> StoreInfo:
    return await stores.get(await add_store(stores))


def payloads(period: Period) -> dict[str, dict[str, Any]]:
    """A sync's figures of ``period``: two orders, one customer new, one returning."""
    figures = ShopifyFigures(
        currency="EUR",
        orders=2,
        total_sales=Decimal("30.00"),
        gross_sales=Decimal("30.00"),
        discounts=Decimal("0.00"),
        refunds=Decimal("0.00"),
        new_customers=1,
        returning_customers=1,
        daily=(DailySales(period.start, 2, Decimal("30.00")),),
    )
    return {SHOPIFY: figures.to_json(), KLAVIYO: KlaviyoFigures().to_json()}


async def fill(
    database: Database,
    store: StoreInfo,
    *,
    synced_at: datetime,
    expires: datetime | None,
    job_id: int | None = None,
    period: Period = FEB,
) -> None:
    """Cache Shopify and Klaviyo figures of ``period``, as a sync would."""
    async with database.transaction() as conn:
        await write_rows(
            conn,
            database.dialect,
            store_id=store.id,
            period=period,
            payloads=payloads(period),
            synced_at=synced_at,
            expires=expires,
            job_id=job_id,
        )


async def fill_fresh(database: Database, store: StoreInfo, clock: FakeClock) -> None:
    await fill(database, store, synced_at=clock.now, expires=clock.now + timedelta(hours=1))


async def fill_stale(database: Database, store: StoreInfo, clock: FakeClock) -> None:
    synced = clock.now - timedelta(hours=2)
    await fill(database, store, synced_at=synced, expires=synced + timedelta(minutes=15))


async def failed_refresh(queue: JobQueue, store: StoreInfo) -> Job:
    """A refresh of FEB that failed for good (a revoked token), completed now."""
    await queue.enqueue(store.id, FEB.start, FEB.end, reason=Reason.USER)
    [job] = await queue.claim("w1")
    return await queue.fail(job.id, "w1", "the Shopify access token was rejected", retryable=False)


async def jobs_of(queue: JobQueue, store: StoreInfo) -> list[Job]:
    return await queue.list_jobs(store_id=store.id, limit=50)


# -- reads: stale-while-revalidate ------------------------------------------------------------


async def test_a_fresh_read_is_the_document_and_queues_nothing(
    dashboards: Dashboards, database: Database, queue: JobQueue, store: StoreInfo, clock: FakeClock
) -> None:
    await fill_fresh(database, store, clock)
    read = await dashboards.read(store, FEB)
    assert read.freshness is Freshness.FRESH
    assert read.job is None and read.refresh_job is None
    document = read.document()
    assert document["meta"]["stale"] is False
    assert "refresh_job_id" not in document["meta"]
    assert document["summary"]["orders"] == 2
    assert await jobs_of(queue, store) == []


async def test_a_stale_read_is_the_document_and_a_user_refresh(
    dashboards: Dashboards, database: Database, queue: JobQueue, store: StoreInfo, clock: FakeClock
) -> None:
    await fill_stale(database, store, clock)
    read = await dashboards.read(store, FEB)
    assert read.freshness is Freshness.STALE
    assert read.job is not None and read.job.reason is Reason.USER
    assert read.job.status is JobStatus.QUEUED
    document = read.document()
    assert document["meta"]["stale"] is True
    assert document["meta"]["refresh_job_id"] == read.job.id
    # Read again: the same job, not a second one.
    again = await dashboards.read(store, FEB)
    assert again.job is not None and again.job.id == read.job.id
    assert [j.id for j in await jobs_of(queue, store)] == [read.job.id]


async def test_a_read_of_nothing_queues_a_job_unless_the_page_lets_the_person_sync(
    dashboards: Dashboards, queue: JobQueue, store: StoreInfo
) -> None:
    page = await dashboards.read(store, FEB, queue_missing=False, include_job=True)
    assert page.freshness is Freshness.MISSING and page.job is None
    assert await jobs_of(queue, store) == []
    api = await dashboards.read(store, FEB)
    assert api.freshness is Freshness.MISSING
    assert api.job is not None and api.job.status is JobStatus.QUEUED
    assert api.refresh_job is None  # not a refresh of figures shown: the caller answers 202
    # The page now shows the job waiting.
    shown = await dashboards.read(store, FEB, queue_missing=False, include_job=True)
    assert shown.job is not None and shown.job.id == api.job.id


async def test_a_stale_read_raises_a_waiting_scheduled_refresh_to_user_priority(
    dashboards: Dashboards, database: Database, queue: JobQueue, store: StoreInfo, clock: FakeClock
) -> None:
    """The page used to return a waiting job as it was: a person looking at stale figures
    waited behind every store's scheduled refreshes."""
    await fill_stale(database, store, clock)
    scheduled = await queue.enqueue(store.id, FEB.start, FEB.end, reason=Reason.SCHEDULE)
    read = await dashboards.read(store, FEB, include_job=True)
    assert read.job is not None and read.job.id == scheduled.job.id
    assert (await queue.get(scheduled.job.id)).priority == Priority.USER


async def test_a_waiting_user_refresh_is_returned_without_a_write(
    dashboards: Dashboards, database: Database, queue: JobQueue, store: StoreInfo, clock: FakeClock
) -> None:
    await fill_stale(database, store, clock)
    waiting = await queue.enqueue(store.id, FEB.start, FEB.end, reason=Reason.USER)
    [running] = await queue.claim("w1")
    read = await dashboards.read(store, FEB)
    assert read.job is not None and read.job.id == waiting.job.id
    assert read.job.status is JobStatus.PROCESSING and running.id == read.job.id


# -- the hold-off after a failure -------------------------------------------------------------


async def test_a_read_after_a_failure_points_at_it_until_the_hold_off_ends(
    dashboards: Dashboards, database: Database, queue: JobQueue, store: StoreInfo, clock: FakeClock
) -> None:
    await fill_stale(database, store, clock)
    failed = await failed_refresh(queue, store)
    clock.advance(USER_FAILURE_HOLD_OFF.total_seconds() - 1)
    read = await dashboards.read(store, FEB)
    assert read.job is not None and read.job.id == failed.id
    assert read.document()["meta"]["refresh_job_id"] == failed.id
    assert read.job is not None and read.job.error_message == failed.error_message
    assert [j.id for j in await jobs_of(queue, store)] == [failed.id]
    clock.advance(1)
    later = await dashboards.read(store, FEB)
    assert later.job is not None and later.job.id != failed.id
    assert later.job.status is JobStatus.QUEUED


async def test_a_read_of_nothing_after_a_failure_answers_with_the_failed_job(
    dashboards: Dashboards, queue: JobQueue, store: StoreInfo
) -> None:
    failed = await failed_refresh(queue, store)
    read = await dashboards.read(store, FEB)
    assert read.freshness is Freshness.MISSING
    assert read.job is not None and read.job.id == failed.id
    assert len(await jobs_of(queue, store)) == 1


async def test_a_sync_request_or_force_retries_a_failure_at_once(
    dashboards: Dashboards, queue: JobQueue, store: StoreInfo
) -> None:
    failed = await failed_refresh(queue, store)
    requested = await dashboards.request_sync(store, FEB)
    assert requested.job is not None and requested.job.id != failed.id and requested.created
    await queue.cancel(requested.job.id)
    forced = await dashboards.refresh_now(store, FEB)
    assert forced.id not in (failed.id, requested.job.id) and forced.force


async def test_the_scheduler_holds_off_longer_than_a_read(
    dashboards: Dashboards,
    database: Database,
    settings: Settings,
    queue: JobQueue,
    stores: StoreDirectory,
    store: StoreInfo,
    clock: FakeClock,
) -> None:
    """Past the user's hold-off a read retries a failed period; the scheduler, which nobody
    waits for, still leaves it alone until its own hold-off ends."""
    today = named_period("today", today_in(zone(store.timezone), clock.now))
    await queue.enqueue(store.id, today.start, today.end, reason=Reason.USER)
    [job] = await queue.claim("w1")
    failed = await queue.fail(
        job.id, "w1", "the Shopify access token was rejected", retryable=False
    )
    clock.advance((USER_FAILURE_HOLD_OFF + timedelta(minutes=1)).total_seconds())
    ticker = Scheduler(database, settings, queue, stores, holder="s1", clock=clock)
    await ticker.tick()
    scheduled = {j.period for j in await jobs_of(queue, store) if j.reason is Reason.SCHEDULE}
    assert today not in scheduled and len(scheduled) == len(store.refresh_periods) - 1
    read = await dashboards.read(store, today)
    assert read.job is not None and read.job.id != failed.id and read.job.reason is Reason.USER
    await queue.cancel(read.job.id)
    clock.advance(SCHEDULER_FAILURE_HOLD_OFF.total_seconds())
    await ticker.tick()
    scheduled = {j.period for j in await jobs_of(queue, store) if j.reason is Reason.SCHEDULE}
    assert today in scheduled


def test_the_hold_offs_are_defined_once_and_the_scheduler_waits_longer() -> None:
    """The scheduler used its own hour, the handlers their own five minutes."""
    assert not hasattr(scheduler, "FAILURE_BACKOFF")
    assert scheduler.SCHEDULER_FAILURE_HOLD_OFF is SCHEDULER_FAILURE_HOLD_OFF
    assert USER_FAILURE_HOLD_OFF == timedelta(minutes=5)
    assert SCHEDULER_FAILURE_HOLD_OFF == timedelta(hours=1)


# -- sync requests ----------------------------------------------------------------------------


async def test_a_sync_of_fresh_figures_is_the_completed_job_that_filled_them(
    dashboards: Dashboards, database: Database, queue: JobQueue, store: StoreInfo, clock: FakeClock
) -> None:
    await queue.enqueue(store.id, FEB.start, FEB.end)
    [job] = await queue.claim("w1")
    completed = await queue.complete(job.id, "w1")
    await fill(
        database, store, synced_at=clock.now, expires=clock.now + timedelta(hours=1), job_id=job.id
    )
    requested = await dashboards.request_sync(store, FEB, job_required=True)
    assert requested.fresh and requested.job is not None and requested.job.id == completed.id
    assert len(await jobs_of(queue, store)) == 1
    forced = await dashboards.request_sync(store, FEB, force=True)
    assert not forced.fresh and forced.created and forced.job is not None
    assert forced.job.force and forced.job.id != completed.id


async def test_a_sync_of_fresh_figures_with_no_job_on_record(
    dashboards: Dashboards, database: Database, queue: JobQueue, store: StoreInfo, clock: FakeClock
) -> None:
    """Figures restored or imported: the page says they are fresh; the API, which must answer
    with a job, queues one."""
    await fill_fresh(database, store, clock)
    page = await dashboards.request_sync(store, FEB)
    assert page.fresh and page.job is None
    assert await jobs_of(queue, store) == []
    api = await dashboards.request_sync(store, FEB, job_required=True)
    assert not api.fresh and api.created and api.job is not None


async def test_a_sync_of_stale_figures_queues_one_job(
    dashboards: Dashboards, database: Database, queue: JobQueue, store: StoreInfo, clock: FakeClock
) -> None:
    await fill_stale(database, store, clock)
    first = await dashboards.request_sync(store, FEB)
    second = await dashboards.request_sync(store, FEB)
    assert first.created and not second.created
    assert first.job is not None and second.job is not None and first.job.id == second.job.id


# -- the account's cap of queued syncs --------------------------------------------------------


async def test_at_the_accounts_cap(
    database: Database, settings: Settings, stores: StoreDirectory, clock: FakeClock
) -> None:
    limited = settings.model_copy(update={"max_queued_jobs_per_account": 1})
    capped = JobQueue(database, limited, clock=clock)
    dashboards = Dashboards(database, capped)
    store = await stores.get(await add_store(stores))
    other = Period(date(2026, 1, 1), date(2026, 1, 7))
    await capped.enqueue(store.id, other.start, other.end, reason=Reason.USER)
    await fill_stale(database, store, clock)
    # Stale figures still answer, unrefreshed.
    stale = await dashboards.read(store, FEB)
    assert stale.limited and stale.refresh_job is None
    assert stale.document()["meta"]["stale"] is True
    assert "refresh_job_id" not in stale.document()["meta"]
    # Nothing cached, or a sync asked for: the caller answers 429.
    empty = Period(date(2026, 2, 8), date(2026, 2, 14))
    with pytest.raises(LimitExceededError):
        await dashboards.read(store, empty)
    with pytest.raises(LimitExceededError):
        await dashboards.request_sync(store, FEB)
    # The period already waiting is returned, not refused.
    waiting = await dashboards.request_sync(store, other)
    assert waiting.job is not None and not waiting.created
    assert len(await jobs_of(capped, store)) == 1


async def test_a_read_that_raced_a_completion_reads_again_rather_than_syncing_twice(
    dashboards: Dashboards, database: Database, queue: JobQueue, store: StoreInfo, clock: FakeClock
) -> None:
    """The cache is read (nothing there), then the period's job completes with its figures,
    then the read looks for the period's latest job: it finds the completed one and must read
    the cache again, not queue the period a second time (the request-burst drill saw it)."""
    first = await dashboards.read(store, FEB)  # nothing cached: a job is queued
    assert first.job is not None
    [claimed] = await queue.claim("w1")
    read_cache = dashboards.cache.get_many
    raced = False

    async def read_then_complete(store_id: int, periods: list[Period]) -> Any:
        nonlocal raced
        answer = await read_cache(store_id, periods)
        if not raced:  # the job completes just after this read
            raced = True
            clock.advance(1)

            async def figures(conn: Any) -> None:
                await write_rows(
                    conn,
                    database.dialect,
                    store_id=store.id,
                    period=FEB,
                    payloads=payloads(FEB),
                    synced_at=clock.now,
                    expires=clock.now + timedelta(hours=1),
                    job_id=claimed.id,
                )

            await queue.complete(claimed.id, "w1", figures)
        return answer

    dashboards.cache.get_many = read_then_complete  # type: ignore[method-assign]
    again = await dashboards.read(store, FEB)
    assert again.freshness is Freshness.FRESH
    assert [j.id for j in await jobs_of(queue, store)] == [claimed.id]
