"""The queue's reads for the pages, the API, the scheduler and the audit, on both databases."""

from __future__ import annotations

from datetime import date, timedelta

from storesync.audit import read_trace
from storesync.periods import Period
from storesync.queue import JobQueue, JobStatus
from storesync.queue.reads import (
    account_jobs,
    active_periods,
    latest_job,
    periods_failed_since,
    stores_job_state,
)
from storesync.storage import Database
from storesync.stores import StoreDirectory
from tests.conftest import FakeClock, add_store

JAN = Period(date(2026, 1, 1), date(2026, 1, 31))
FEB = Period(date(2026, 2, 1), date(2026, 2, 28))


async def test_the_reads_see_each_job_where_it_is(
    queue: JobQueue, stores: StoreDirectory, database: Database, clock: FakeClock
) -> None:
    mine = await add_store(stores, 1, account="mine")
    theirs = await add_store(stores, 2, account="theirs")
    failed = (await queue.enqueue(mine, JAN.start, JAN.end)).job
    [claimed] = await queue.claim("w1", only=failed.id)
    await queue.fail(claimed.id, "w1", "token revoked", retryable=False)
    running = (await queue.enqueue(mine, FEB.start, FEB.end)).job
    await queue.claim("w1", only=running.id)
    waiting = (await queue.enqueue(theirs, JAN.start, JAN.end)).job

    assert await active_periods(database) == {(mine, FEB), (theirs, JAN)}
    assert await periods_failed_since(database, clock.now - timedelta(hours=1)) == {(mine, JAN)}
    assert await periods_failed_since(database, clock.now + timedelta(seconds=1)) == set()
    last = await latest_job(database, mine, JAN)
    assert last is not None and last.id == failed.id and last.status is JobStatus.FAILED
    assert await latest_job(database, theirs, FEB) is None

    state = await stores_job_state(database, [mine, theirs])
    assert state.syncing == {mine}
    assert state.last_finished == {mine: ("failed", "token revoked")}

    since = clock.now - timedelta(hours=24)
    account = (await stores.get(mine)).account_id
    seen = await account_jobs(database, account, since=since, shown=5, failures_shown=3)
    assert seen.counts == {
        "queued": 0,
        "processing": 1,
        "completed": 0,
        "failed": 1,
        "cancelled": 0,
    }  # the other account's waiting job is not counted
    assert [j.job.id for j in seen.running] == [running.id]
    assert seen.running[0].store_name == "Store 1"
    assert [j.job.id for j in seen.failures] == [failed.id]
    assert seen.waiting == []
    other = (await stores.get(theirs)).account_id
    seen = await account_jobs(database, other, since=since, shown=5, failures_shown=3)
    assert [j.job.id for j in seen.waiting] == [waiting.id]
    assert [j.id for j in await queue.list_jobs(account_id=other)] == [waiting.id]


async def test_the_audit_reads_every_job_and_event_in_order(
    queue: JobQueue, stores: StoreDirectory, database: Database
) -> None:
    store = await add_store(stores)
    job = (await queue.enqueue(store, JAN.start, JAN.end)).job
    await queue.claim("w1")
    await queue.complete(job.id, "w1")
    trace = await read_trace(database)
    assert list(trace.jobs) == [job.id]
    traced = trace.jobs[job.id]
    assert (traced.store_id, traced.period_start, traced.status) == (store, JAN.start, "completed")
    assert [e.kind for e in trace.events] == ["queued", "claimed", "completed"]
    assert [e.seq for e in trace.events] == sorted(e.seq for e in trace.events)
    assert traced.claims == [trace.events[1]] and traced.wait is not None
