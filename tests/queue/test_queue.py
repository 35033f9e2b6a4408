"""Every queue operation, on SQLite and PostgreSQL, through the public JobQueue API."""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from storesync.errors import InputError, InvalidStateError, NotFoundError
from storesync.periods import Period
from storesync.queue import JobQueue, JobStatus, LostJobError, Priority, Reason, manager
from storesync.storage import Database
from storesync.storage.models import CacheEntry, JobEvent, SyncJob, table_of
from storesync.stores import StoreDirectory
from tests.conftest import FakeClock, add_store

JAN = (date(2026, 1, 1), date(2026, 1, 31))
FEB = (date(2026, 2, 1), date(2026, 2, 28))
MAR = (date(2026, 3, 1), date(2026, 3, 31))


async def count_jobs(database: Database) -> int:
    async with database.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table_of(SyncJob))) or 0)


async def test_enqueue_creates_then_returns_the_active_job(
    queue: JobQueue, stores: StoreDirectory, database: Database
) -> None:
    store = await add_store(stores)
    first = await queue.enqueue(store, *JAN)
    second = await queue.enqueue(store, *JAN)
    assert first.created and not second.created
    assert second.job.id == first.job.id
    assert first.job.status is JobStatus.QUEUED
    assert first.job.priority == Priority.USER
    assert await count_jobs(database) == 1


async def test_a_user_request_raises_a_waiting_scheduled_job(
    queue: JobQueue, stores: StoreDirectory
) -> None:
    store = await add_store(stores)
    scheduled = await queue.enqueue(store, *JAN, reason=Reason.SCHEDULE)
    assert scheduled.job.priority == Priority.SCHEDULE
    user = await queue.enqueue(store, *JAN, reason=Reason.USER, force=True)
    assert user.job.id == scheduled.job.id
    assert user.job.priority == Priority.USER
    assert user.job.force is True
    # A lower-priority request never lowers it again.
    again = await queue.enqueue(store, *JAN, reason=Reason.SCHEDULE)
    assert again.job.priority == Priority.USER


async def test_concurrent_enqueues_create_one_job(
    queue: JobQueue, stores: StoreDirectory, database: Database
) -> None:
    store = await add_store(stores)
    results = await asyncio.gather(*(queue.enqueue(store, *JAN) for _ in range(20)))
    assert len({r.job.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await count_jobs(database) == 1


async def test_a_finished_job_does_not_block_a_new_one(
    queue: JobQueue, stores: StoreDirectory
) -> None:
    store = await add_store(stores)
    first = await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    await queue.complete(job.id, "w1")
    second = await queue.enqueue(store, *JAN)
    assert second.created and second.job.id != first.job.id


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2026, 2, 1), date(2026, 1, 1), "ends (2026-01-01) before it starts (2026-02-01)"),
        (date(2020, 1, 1), date(2026, 1, 1), "the maximum is 366"),
    ],
)
async def test_bad_periods_are_refused_and_nothing_is_written(
    queue: JobQueue,
    stores: StoreDirectory,
    database: Database,
    start: date,
    end: date,
    message: str,
) -> None:
    store = await add_store(stores)
    with pytest.raises(InputError, match=re.escape(message)):
        await queue.enqueue(store, start, end)
    assert await count_jobs(database) == 0


async def test_enqueue_for_an_unknown_store_is_refused(queue: JobQueue, database: Database) -> None:
    with pytest.raises(NotFoundError, match="store 999 does not exist"):
        await queue.enqueue(999, *JAN)
    assert await count_jobs(database) == 0


async def test_enqueue_many_creates_in_order_what_is_not_active(
    queue: JobQueue, stores: StoreDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager, "ENQUEUE_MANY_ROWS", 2)  # three statements for five requests
    first, second = await add_store(stores, 1), await add_store(stores, 2)
    active = await queue.enqueue(first, *FEB)
    requests = [(second, Period(*MAR)), (first, Period(*JAN)), (first, Period(*FEB))]
    requests += [(second, Period(*JAN)), (second, Period(*MAR))]  # the last one repeats
    created = await queue.enqueue_many(requests)
    assert [(j.store_id, j.period_start) for j in created] == [
        (second, MAR[0]), (first, JAN[0]), (second, JAN[0])
    ]  # fmt: skip
    assert [j.id for j in created] == sorted(j.id for j in created)  # so run in that order
    assert {(j.priority, j.reason) for j in created} == {(Priority.SCHEDULE, Reason.SCHEDULE)}
    assert {j.force for j in created} == {False}
    assert {j.run_after for j in created} == {created[0].queued_at}
    assert {j.status for j in created} == {JobStatus.QUEUED}
    assert (await queue.get(active.job.id)).priority == Priority.USER  # left as it was
    for job in created:
        assert [(e["kind"], e["message"]) for e in await queue.events(job.id)] == [
            ("queued", "queued by schedule")
        ]
    assert await queue.enqueue_many(requests) == []  # all of them active now
    claimed = await queue.claim("w1", limit=10)
    assert [j.id for j in claimed] == [active.job.id, created[0].id]  # one job per store


async def test_enqueue_many_skips_a_store_that_is_gone(
    queue: JobQueue, stores: StoreDirectory, database: Database
) -> None:
    store = await add_store(stores)
    created = await queue.enqueue_many([(999, Period(*JAN)), (store, Period(*JAN))])
    assert [(j.store_id, j.period_start) for j in created] == [(store, JAN[0])]
    assert await count_jobs(database) == 1


async def test_enqueue_many_refuses_a_bad_period_and_writes_nothing(
    queue: JobQueue, stores: StoreDirectory, database: Database
) -> None:
    store = await add_store(stores)
    backwards = Period(FEB[0], JAN[0])  # unchecked
    with pytest.raises(InputError, match=re.escape("ends (2026-01-01) before it starts")):
        await queue.enqueue_many([(store, Period(*JAN)), (store, backwards)])
    assert await count_jobs(database) == 0


async def test_claim_takes_highest_priority_then_oldest(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock, settings: object
) -> None:
    a, b, c = [await add_store(stores, n) for n in (1, 2, 3)]
    old_low = await queue.enqueue(a, *JAN, reason=Reason.SCHEDULE)
    clock.advance(1)
    high = await queue.enqueue(b, *JAN, reason=Reason.USER)
    clock.advance(1)
    newer_low = await queue.enqueue(c, *JAN, reason=Reason.SCHEDULE)
    claimed = await queue.claim("w1", limit=3)
    assert [j.id for j in claimed] == [high.job.id, old_low.job.id, newer_low.job.id]
    assert all(j.status is JobStatus.PROCESSING and j.worker_id == "w1" for j in claimed)


async def test_waiting_jobs_age_so_low_priority_never_starves(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    a, b = await add_store(stores, 1), await add_store(stores, 2)
    scheduled = await queue.enqueue(a, *JAN, reason=Reason.SCHEDULE)
    # 101 minutes of waiting is worth 101 points with the default one point a minute.
    clock.advance(101 * 60)
    await queue.enqueue(b, *JAN, reason=Reason.USER)
    [first] = await queue.claim("w1")
    assert first.id == scheduled.job.id


async def test_claim_respects_the_global_limit(
    queue: JobQueue, stores: StoreDirectory, settings: object
) -> None:
    ids = [await add_store(stores, n) for n in range(1, 6)]
    for store in ids:
        await queue.enqueue(store, *JAN)
    assert len(await queue.claim("w1", limit=2)) == 2
    assert len(await queue.claim("w2", limit=5)) == 1  # 3 is the default limit
    assert await queue.claim("w3", limit=5) == []


async def test_never_two_processing_jobs_for_one_store(
    queue: JobQueue, stores: StoreDirectory
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    await queue.enqueue(store, *FEB)
    first = await queue.claim("w1", limit=3)
    assert len(first) == 1
    assert await queue.claim("w2", limit=3) == []
    await queue.complete(first[0].id, "w1")
    assert len(await queue.claim("w2", limit=3)) == 1


async def test_the_database_refuses_a_second_processing_job_for_a_store(
    database: Database, stores: StoreDirectory, clock: FakeClock
) -> None:
    store = await add_store(stores)
    row = {
        "store_id": store,
        "status": "processing",
        "queued_at": clock.now,
        "run_after": clock.now,
        "period_start": JAN[0],
        "period_end": JAN[1],
    }
    async with database.transaction() as conn:
        await conn.execute(insert(table_of(SyncJob)).values(row))
    with pytest.raises(IntegrityError):
        async with database.transaction() as conn:
            await conn.execute(
                insert(table_of(SyncJob)).values(
                    {**row, "period_start": FEB[0], "period_end": FEB[1]}
                )
            )


async def test_jobs_wait_for_their_run_after_time(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN, run_after=clock.now + timedelta(seconds=60))
    assert await queue.claim("w1") == []
    clock.advance(61)
    assert len(await queue.claim("w1")) == 1


async def test_heartbeat_renews_the_lease_and_reports_cancellation(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    clock.advance(20)
    assert await queue.heartbeat("w1", [job.id]) == {job.id: False}
    clock.advance(20)  # 40 s after the claim, 20 s after the heartbeat: lease still valid
    assert (await queue.rescue()).requeued == ()
    await queue.cancel(job.id)
    assert await queue.heartbeat("w1", [job.id]) == {job.id: True}
    assert await queue.heartbeat("someone-else", [job.id]) == {}


async def test_a_lapsed_lease_is_rescued_and_counts_an_attempt(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    for attempt in range(1, 4):
        [job] = await queue.claim("w1")
        clock.advance(31)
        report = await queue.rescue()
        if attempt < 3:
            assert report.requeued == (job.id,)
            rescued = await queue.get(job.id)
            assert rescued.status is JobStatus.QUEUED
            assert rescued.retry_count == attempt
            assert "stopped responding" in (rescued.error_message or "")
        else:
            assert report.failed == (job.id,)
            failed = await queue.get(job.id)
            assert failed.status is JobStatus.FAILED
            assert failed.error_message is not None
            assert failed.error_message.startswith("gave up after 3 attempts")
    # The old worker cannot complete a job it lost.
    with pytest.raises(LostJobError):
        await queue.complete(job.id, "w1")


async def test_the_hard_timeout_rescues_a_job_that_keeps_heart_beating(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    for _ in range(25):  # 25 × 25 s = 625 s > 600 s
        clock.advance(25)
        await queue.heartbeat("w1", [job.id])
    assert (await queue.rescue()).requeued == (job.id,)
    assert await queue.heartbeat("w1", [job.id]) == {}


async def test_complete_writes_results_and_status_in_one_transaction(
    queue: JobQueue, stores: StoreDirectory, database: Database, clock: FakeClock
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    cache = table_of(CacheEntry)

    async def write_then_crash(conn: object) -> None:
        await conn.execute(  # type: ignore[attr-defined]
            insert(cache).values(
                store_id=store,
                data_type="summary",
                period_start=JAN[0],
                period_end=JAN[1],
                source="test",
                payload={"x": 1},
                synced_at=clock.now,
            )
        )
        raise RuntimeError("crash halfway")

    with pytest.raises(RuntimeError):
        await queue.complete(job.id, "w1", write_then_crash)
    async with database.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(cache)) == 0
    assert (await queue.get(job.id)).status is JobStatus.PROCESSING

    async def write(conn: object) -> None:
        await conn.execute(  # type: ignore[attr-defined]
            insert(cache).values(
                store_id=store,
                data_type="summary",
                period_start=JAN[0],
                period_end=JAN[1],
                source="test",
                payload={"x": 2},
                synced_at=clock.now,
            )
        )

    done = await queue.complete(job.id, "w1", write)
    assert done.status is JobStatus.COMPLETED and done.completed_at == clock.now
    async with database.read() as conn:
        payloads = (await conn.execute(select(cache.c.payload))).scalars().all()
    assert payloads == [{"x": 2}]


async def test_complete_by_a_worker_that_lost_the_job_writes_nothing(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    clock.advance(31)
    await queue.rescue()
    called = False

    async def write(_conn: object) -> None:
        nonlocal called
        called = True

    with pytest.raises(LostJobError):
        await queue.complete(job.id, "w1", write)
    assert not called


async def test_retryable_failures_back_off_then_fail_with_the_message(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    retried = await queue.fail(job.id, "w1", "Shopify answered 503", retryable=True)
    assert retried.status is JobStatus.QUEUED and retried.retry_count == 1
    delay = (retried.run_after - clock.now).total_seconds()
    assert 5 <= delay <= 15  # base 10 s, jitter ×0.5–1.5
    assert await queue.claim("w1") == []
    clock.advance(delay)
    [job] = await queue.claim("w1")
    retried = await queue.fail(job.id, "w1", "throttled", retryable=True, retry_after=120)
    assert (retried.run_after - clock.now).total_seconds() == 120
    clock.advance(120)
    [job] = await queue.claim("w1")
    failed = await queue.fail(job.id, "w1", "Shopify answered 503", retryable=True)
    assert failed.status is JobStatus.FAILED
    assert failed.retry_count == 3
    assert failed.error_message == "gave up after 3 attempts: Shopify answered 503"


async def test_backoff_grows_exponentially(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock, settings: object
) -> None:
    queue.settings = queue.settings.model_copy(update={"max_attempts": 6})
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    delays = []
    for _ in range(4):
        [job] = await queue.claim("w1")
        retried = await queue.fail(job.id, "w1", "boom", retryable=True)
        delay = (retried.run_after - clock.now).total_seconds()
        delays.append(delay)
        clock.advance(delay)
    for n, delay in enumerate(delays):
        assert 10 * 2**n * 0.5 <= delay <= 10 * 2**n * 1.5


async def test_a_permanent_failure_fails_at_once(queue: JobQueue, stores: StoreDirectory) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    failed = await queue.fail(
        job.id, "w1", "the Shopify access token was rejected", retryable=False
    )
    assert failed.status is JobStatus.FAILED
    assert failed.retry_count == 1
    assert failed.error_message == "the Shopify access token was rejected"


async def test_a_deferral_does_not_use_an_attempt(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    resets = clock.now + timedelta(hours=5)
    deferred = await queue.fail(
        job.id, "w1", "budget used up", retryable=True, retry_at=resets, count_attempt=False
    )
    assert deferred.status is JobStatus.QUEUED
    assert deferred.retry_count == 0
    assert deferred.run_after == resets


async def test_cancel_queued_processing_and_finished_jobs(
    queue: JobQueue, stores: StoreDirectory, database: Database
) -> None:
    a, b = await add_store(stores, 1), await add_store(stores, 2)
    queued = (await queue.enqueue(a, *JAN)).job
    cancelled = await queue.cancel(queued.id)
    assert cancelled.status is JobStatus.CANCELLED

    await queue.enqueue(b, *JAN)
    [running] = await queue.claim("w1")
    requested = await queue.cancel(running.id)
    assert requested.status is JobStatus.PROCESSING and requested.cancel_requested
    stopped = await queue.mark_cancelled(running.id, "w1")
    assert stopped.status is JobStatus.CANCELLED

    before = await queue.events(stopped.id)
    with pytest.raises(InvalidStateError, match="already cancelled"):
        await queue.cancel(stopped.id)
    assert await queue.events(stopped.id) == before
    with pytest.raises(NotFoundError):
        await queue.cancel(12345)


async def test_a_change_noted_on_a_running_job_queues_its_period_again_at_completion(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    store = await add_store(stores)
    job = (await queue.enqueue(store, *JAN)).job
    assert not await queue.note_change(job.id, "queued: it has fetched nothing yet")
    await queue.claim("w1")
    assert await queue.note_change(job.id, "Shopify reported a change on 2026-01-05")
    await queue.complete(job.id, "w1")
    kinds = [e["kind"] for e in await queue.events(job.id)]
    assert kinds == ["queued", "claimed", "changed", "completed"]
    [again] = await queue.list_jobs(status=JobStatus.QUEUED)
    assert (again.store_id, again.period, again.reason) == (store, job.period, Reason.WEBHOOK)
    assert not await queue.note_change(job.id, "finished: the caller queues a new sync")

    # A change noted on an attempt that then failed is news to that attempt only: the next
    # one fetches after it, and its completion queues nothing more.
    await queue.claim("w1")
    assert await queue.note_change(again.id, "a change")
    await queue.fail(again.id, "w1", "Shopify answered 503", retryable=True)
    clock.advance(3600)
    await queue.claim("w1")
    await queue.complete(again.id, "w1")
    assert await queue.list_jobs(status=JobStatus.QUEUED) == []

    # Raced against the completion, the note lands before it (and the period is queued
    # again), or is refused (and the caller queues it): never lost in between.
    for n in range(2, 12):
        raced = (await queue.enqueue(await add_store(stores, n), *JAN)).job
        await queue.claim("w1")
        noted, _ = await asyncio.gather(
            queue.note_change(raced.id, "a change"), queue.complete(raced.id, "w1")
        )
        kinds = [e["kind"] for e in await queue.events(raced.id)]
        assert kinds[-2:] == (["changed", "completed"] if noted else ["claimed", "completed"])
        queued = await queue.list_jobs(status=JobStatus.QUEUED, store_id=raced.store_id)
        assert len(queued) == noted


async def test_retry_requeues_a_failed_job(queue: JobQueue, stores: StoreDirectory) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    await queue.fail(job.id, "w1", "bad token", retryable=False)
    again = await queue.retry(job.id)
    assert again.status is JobStatus.QUEUED
    assert again.retry_count == 0 and again.error_message is None
    with pytest.raises(InvalidStateError, match="only failed or cancelled"):
        await queue.retry(job.id)


async def test_retry_refuses_when_another_job_covers_the_period(
    queue: JobQueue, stores: StoreDirectory
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    await queue.fail(job.id, "w1", "bad token", retryable=False)
    twin = await queue.enqueue(store, *JAN)
    with pytest.raises(InvalidStateError, match=f"job {twin.job.id} already syncs"):
        await queue.retry(job.id)
    assert (await queue.get(job.id)).status is JobStatus.FAILED


async def test_release_hands_jobs_back_without_an_attempt(
    queue: JobQueue, stores: StoreDirectory
) -> None:
    store = await add_store(stores)
    await queue.enqueue(store, *JAN)
    [job] = await queue.claim("w1")
    assert await queue.release("w1", [job.id], "worker shutting down") == [job.id]
    back = await queue.get(job.id)
    assert back.status is JobStatus.QUEUED and back.retry_count == 0 and back.worker_id is None


async def test_prune_deletes_old_finished_jobs_and_their_events(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock, database: Database
) -> None:
    a, b = await add_store(stores, 1), await add_store(stores, 2)
    await queue.enqueue(a, *JAN)
    [old] = await queue.claim("w1")
    await queue.complete(old.id, "w1")
    clock.advance(8 * 86400)
    waiting = (await queue.enqueue(b, *JAN)).job
    assert await queue.prune(7) == 1
    with pytest.raises(NotFoundError):
        await queue.get(old.id)
    assert (await queue.get(waiting.id)).status is JobStatus.QUEUED
    async with database.read() as conn:
        events = table_of(JobEvent)
        left = await conn.scalar(
            select(func.count()).select_from(events).where(events.c.job_id == old.id)
        )
    assert left == 0


async def test_list_filters_and_event_log(queue: JobQueue, stores: StoreDirectory) -> None:
    a, b = await add_store(stores, 1), await add_store(stores, 2)
    ja = (await queue.enqueue(a, *JAN)).job
    jb = (await queue.enqueue(b, *JAN)).job
    await queue.claim("w1", limit=1)
    assert {j.id for j in await queue.list_jobs()} == {ja.id, jb.id}
    assert [j.id for j in await queue.list_jobs(store_id=b)] == [jb.id]
    processing = await queue.list_jobs(status=JobStatus.PROCESSING)
    assert len(processing) == 1
    kinds = [e["kind"] for e in await queue.events(processing[0].id)]
    assert kinds == ["queued", "claimed"]


async def test_stats_view_counts_and_durations(
    queue: JobQueue, stores: StoreDirectory, database: Database
) -> None:
    """The view uses the database's own clock, so this test uses the real one too."""
    real = JobQueue(database, queue.settings)
    a, b, c = [await add_store(stores, n) for n in (1, 2, 3)]
    for store in (a, b, c):
        await real.enqueue(store, *JAN)
    first, second = await real.claim("w1", limit=2)
    await real.complete(first.id, "w1")
    await real.fail(second.id, "w1", "nope", retryable=False)
    async with database.read() as conn:
        row = (await conn.execute(text("SELECT * FROM v_sync_queue_stats"))).mappings().one()
    assert (row["queued"], row["processing"], row["completed"], row["failed"]) == (1, 0, 1, 1)
    assert row["cancelled"] == 0
    assert row["failure_rate_24h"] == pytest.approx(0.5)
    assert row["oldest_queued_seconds"] is not None and row["oldest_queued_seconds"] >= 0
    assert row["avg_duration_seconds_24h"] is not None and row["avg_duration_seconds_24h"] >= 0


async def test_a_job_asked_to_cancel_is_never_requeued(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    a, b, c = [await add_store(stores, n) for n in (1, 2, 3)]
    for store in (a, b, c):
        await queue.enqueue(store, *JAN)
    by_failure, by_release, by_rescue = await queue.claim("w1", limit=3)
    for job in (by_failure, by_release, by_rescue):
        await queue.cancel(job.id)

    failed = await queue.fail(by_failure.id, "w1", "Shopify answered 503", retryable=True)
    assert failed.status is JobStatus.CANCELLED
    assert failed.error_message == "cancelled after a failed attempt: Shopify answered 503"

    assert await queue.release("w1", [by_release.id], "worker stopping") == [by_release.id]
    assert (await queue.get(by_release.id)).status is JobStatus.CANCELLED

    clock.advance(31)
    report = await queue.rescue()
    assert (report.cancelled, report.requeued) == ((by_rescue.id,), ())
    assert (await queue.get(by_rescue.id)).status is JobStatus.CANCELLED
    assert await queue.claim("w2", limit=3) == []
