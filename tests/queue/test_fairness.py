"""Per-account fairness of claims and the per-account cap on users' syncs, on both databases.

Issue 18, item 3: one account queued 1,500 syncs and another account's sync waited 182 s
behind them, because equal priorities ran oldest first and nothing capped an account.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from storesync.errors import LimitExceededError
from storesync.periods import Period
from storesync.queue import JobQueue, JobStatus, Reason
from storesync.queue.fairness import QUEUE_FULL_RETRY_SECONDS
from storesync.settings import Settings
from storesync.storage import Database, connect
from storesync.storage.models import JobEvent, SyncJob, table_of
from storesync.stores import StoreDirectory
from tests.conftest import FakeClock, add_store

JOBS = table_of(SyncJob)
EVENTS = table_of(JobEvent)


def day(n: int) -> tuple[date, date]:
    start = date(2025, 1, 1) + timedelta(days=n)
    return start, start


def queue_with(
    database: Database, settings: Settings, clock: FakeClock, **changes: object
) -> JobQueue:
    return JobQueue(database, settings.model_copy(update=changes), clock=clock)


async def flood(queue: JobQueue, stores: list[int], per_store: int, clock: FakeClock) -> list[int]:
    """Users' syncs of distinct days on ``stores``, a second apart; their ids."""
    ids = []
    for n in range(per_store):
        for store in stores:
            ids.append((await queue.enqueue(store, *day(n))).job.id)
            clock.advance(1)
    return ids


# -- fair claims -------------------------------------------------------------------------------


async def test_a_flooding_account_does_not_hold_back_another_accounts_sync(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    noisy = [await add_store(stores, n, account="noisy") for n in range(1, 4)]
    quiet = await add_store(stores, 10, account="quiet")
    await flood(queue, noisy, 20, clock)  # 60 syncs, all older than the quiet one's
    clock.advance(30)
    theirs = await queue.enqueue(quiet, *day(0))
    [first] = await queue.claim("w1")
    assert first.store_id in noisy  # nothing running yet: the oldest goes first
    [second] = await queue.claim("w1")
    assert second.id == theirs.job.id  # the noisy account has one running: the quiet one's turn


async def test_one_claim_of_several_jobs_takes_each_accounts_best_first(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    a = [await add_store(stores, n, account="a") for n in range(1, 4)]
    b = [await add_store(stores, n, account="b") for n in range(4, 6)]
    await flood(queue, a, 3, clock)
    await flood(queue, b, 1, clock)
    claimed = await queue.claim("w1", limit=3)  # the default global limit
    stores_claimed = {j.store_id for j in claimed}
    assert len(stores_claimed & set(b)) == 1  # b's best, though all of a's are older
    assert len(stores_claimed & set(a)) == 2


async def test_accounts_take_turns_as_slots_free(
    database: Database, settings: Settings, stores: StoreDirectory, clock: FakeClock
) -> None:
    queue = queue_with(database, settings, clock, max_concurrent_jobs=2)
    a = [await add_store(stores, n, account="a") for n in range(1, 5)]
    b = [await add_store(stores, n, account="b") for n in range(5, 9)]
    await flood(queue, a, 2, clock)  # a's 8 are all older than b's 8
    await flood(queue, b, 2, clock)
    order = []
    for _ in range(8):
        claimed = await queue.claim("w1", limit=2)
        order += ["a" if j.store_id in a else "b" for j in claimed]
        for job in claimed:
            await queue.complete(job.id, "w1")
    assert order.count("a") == order.count("b") == 8
    # Every claim of two took one job of each account.
    assert all(sorted(order[i : i + 2]) == ["a", "b"] for i in range(0, 16, 2))


async def test_within_one_account_the_order_is_priority_then_oldest(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    s1, s2, s3 = [await add_store(stores, n) for n in (1, 2, 3)]
    old_low = await queue.enqueue(s1, *day(0), reason=Reason.SCHEDULE)
    clock.advance(1)
    high = await queue.enqueue(s2, *day(0), reason=Reason.USER)
    clock.advance(1)
    newer_low = await queue.enqueue(s3, *day(0), reason=Reason.SCHEDULE)
    claimed = await queue.claim("w1", limit=3)
    assert [j.id for j in claimed] == [high.job.id, old_low.job.id, newer_low.job.id]


async def test_priorities_still_count_across_accounts(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    # A user's request of an account with one job running goes ahead of another account's
    # scheduled refresh: the penalty (10 points a job) is far less than 100 points.
    a1, a2 = await add_store(stores, 1, account="a"), await add_store(stores, 2, account="a")
    b = await add_store(stores, 3, account="b")
    await queue.enqueue(a1, *day(0))
    [running] = await queue.claim("w1")
    assert running.store_id == a1
    scheduled = await queue.enqueue(b, *day(0), reason=Reason.SCHEDULE)
    clock.advance(1)
    user = await queue.enqueue(a2, *day(0))
    assert [j.id for j in await queue.claim("w1", limit=2)] == [user.job.id, scheduled.job.id]


async def test_fairness_points_zero_serves_oldest_first_as_before(
    database: Database, settings: Settings, stores: StoreDirectory, clock: FakeClock
) -> None:
    queue = queue_with(database, settings, clock, account_fairness_points=0)
    noisy = [await add_store(stores, n, account="noisy") for n in range(1, 4)]
    quiet = await add_store(stores, 10, account="quiet")
    await flood(queue, noisy, 2, clock)
    await queue.enqueue(quiet, *day(0))
    claimed = await queue.claim("w1", limit=3)
    assert {j.store_id for j in claimed} == set(noisy)


async def test_aging_still_wins_over_the_penalty_in_the_end(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    # An account with a job running waits 10 points (10 minutes) longer, never forever.
    a1, a2 = await add_store(stores, 1, account="a"), await add_store(stores, 2, account="a")
    b = await add_store(stores, 3, account="b")
    await queue.enqueue(a1, *day(0))
    await queue.claim("w1")
    old = await queue.enqueue(a2, *day(0))
    clock.advance(11 * 60)
    await queue.enqueue(b, *day(0))
    [first] = await queue.claim("w1")
    assert first.id == old.job.id


async def test_fair_claims_keep_the_global_and_per_store_limits(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock, database: Database
) -> None:
    accounts = {n: f"account-{n % 3}" for n in range(1, 10)}
    ids = [await add_store(stores, n, account=accounts[n]) for n in accounts]
    await flood(queue, ids, 3, clock)
    claimed = await asyncio.gather(*(queue.claim(f"w{n}", limit=2) for n in range(6)))
    taken = [j for batch in claimed for j in batch]
    assert len(taken) == 3  # the default global limit, across concurrent claims
    assert len({j.store_id for j in taken}) == 3
    assert len({accounts[ids.index(j.store_id) + 1] for j in taken}) == 3  # one per account
    async with database.read() as conn:
        logged = await conn.scalar(
            select(func.count()).select_from(EVENTS).where(EVENTS.c.kind == "claimed")
        )
    assert logged == 3


# -- the cap on users' syncs ---------------------------------------------------------------------


async def count_jobs(database: Database) -> int:
    async with database.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(JOBS)) or 0)


async def test_an_account_at_its_cap_is_refused_and_nothing_is_written(
    database: Database, settings: Settings, stores: StoreDirectory, clock: FakeClock
) -> None:
    queue = queue_with(database, settings, clock, max_queued_jobs_per_account=3)
    mine = [await add_store(stores, n, account="mine") for n in (1, 2)]
    other = await add_store(stores, 3, account="other")
    for n in range(3):
        await queue.enqueue(mine[n % 2], *day(n))
    with pytest.raises(LimitExceededError, match="already has 3 syncs queued or running") as err:
        await queue.enqueue(mine[1], *day(3))
    assert err.value.retry_after == QUEUE_FULL_RETRY_SECONDS
    assert await count_jobs(database) == 3
    # A request for a period already queued gets that job: it adds nothing.
    again = await queue.enqueue(mine[0], *day(0))
    assert not again.created
    # Another account is not affected.
    assert (await queue.enqueue(other, *day(0))).created
    # The scheduler's and webhooks' refreshes are never refused.
    assert (await queue.enqueue(mine[0], *day(10), reason=Reason.SCHEDULE)).created
    assert (await queue.enqueue(mine[1], *day(10), reason=Reason.WEBHOOK)).created
    # Running jobs count; a finished one frees its place.
    [job] = await queue.claim("w1")
    assert (job.store_id, job.period_start) == (mine[0], day(0)[0])
    with pytest.raises(LimitExceededError):
        await queue.enqueue(mine[1], *day(3))
    await queue.complete(job.id, "w1")
    assert (await queue.enqueue(mine[1], *day(3))).created


async def test_the_cap_counts_users_jobs_only(
    database: Database, settings: Settings, stores: StoreDirectory, clock: FakeClock
) -> None:
    queue = queue_with(database, settings, clock, max_queued_jobs_per_account=2)
    store = await add_store(stores, 1)
    # A thousand stores' refreshes waiting must not lock a user out of their dashboard.
    await queue.enqueue_many([(store, _period(n)) for n in range(10)], reason=Reason.SCHEDULE)
    assert (await queue.enqueue(store, *day(100))).created
    assert (await queue.enqueue(store, *day(101))).created
    with pytest.raises(LimitExceededError):
        await queue.enqueue(store, *day(102))


async def test_retry_of_a_users_job_respects_the_cap(
    database: Database, settings: Settings, stores: StoreDirectory, clock: FakeClock
) -> None:
    queue = queue_with(database, settings, clock, max_queued_jobs_per_account=1)
    store = await add_store(stores, 1)
    first = await queue.enqueue(store, *day(0))
    await queue.cancel(first.job.id)
    await queue.enqueue(store, *day(1))
    with pytest.raises(LimitExceededError):
        await queue.retry(first.job.id)
    assert (await queue.get(first.job.id)).status is JobStatus.CANCELLED


async def test_concurrent_requests_of_one_account_stop_at_the_cap(
    database: Database, settings: Settings, stores: StoreDirectory, clock: FakeClock
) -> None:
    cap = 5
    queue = queue_with(database, settings, clock, max_queued_jobs_per_account=cap)
    store = await add_store(stores, 1)
    attempts = 20
    results = await asyncio.gather(
        *(queue.enqueue(store, *day(n)) for n in range(attempts)), return_exceptions=True
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, LimitExceededError)]
    assert len(created) + len(refused) == attempts  # nothing else went wrong
    # Exact on both: SQLite has one writer at a time, PostgreSQL takes the account's lock.
    assert len(created) == cap
    assert await count_jobs(database) == len(created)
    with pytest.raises(LimitExceededError):
        await queue.enqueue(store, *day(99))


def _period(n: int) -> Period:
    return Period(*day(n))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_flood_of_enqueues_does_not_hold_the_connection_pool(
    settings: Settings, stores: StoreDirectory
) -> None:
    # On PostgreSQL one account's enqueues take its advisory lock in turn. Waiting for it
    # while holding a pooled connection would let a flood take every connection and hold back
    # other accounts' requests: they must wait their turn without one.
    database = connect(settings, pool_size=2, max_overflow=0)
    try:
        queue = JobQueue(database, settings)
        noisy = await add_store(stores, 1, account="noisy")
        quiet = await add_store(stores, 2, account="quiet")
        finished: list[str] = []

        async def enqueue(store: int, n: int, name: str) -> None:
            await queue.enqueue(store, *day(n))
            finished.append(name)

        flood = [asyncio.create_task(enqueue(noisy, n, "noisy")) for n in range(30)]
        await asyncio.sleep(0.05)  # the flood is under way, its requests waiting in line
        await enqueue(quiet, 0, "quiet")
        await asyncio.gather(*flood)
    finally:
        await database.dispose()
    assert finished.index("quiet") < 10, finished


async def test_slots_above_an_accounts_running_cap_stay_free_for_other_accounts(
    database: Database, settings: Settings, stores: StoreDirectory, clock: FakeClock
) -> None:
    queue = queue_with(
        database, settings, clock, max_concurrent_jobs=4, max_running_jobs_per_account=2
    )
    noisy = [await add_store(stores, n, account="noisy") for n in range(1, 6)]
    quiet = await add_store(stores, 10, account="quiet")
    await flood(queue, noisy, 2, clock)
    claimed = await queue.claim("w1", limit=4)
    assert len(claimed) == 2 and {j.store_id for j in claimed} <= set(noisy)
    assert await queue.claim("w1", limit=4) == []  # the noisy account is at its cap
    theirs = await queue.enqueue(quiet, *day(0))
    [started] = await queue.claim("w1", limit=4)  # a kept slot: at once
    assert started.id == theirs.job.id
    await queue.complete(claimed[0].id, "w1")
    [next_noisy] = await queue.claim("w1", limit=4)  # one of its slots freed: its turn again
    assert next_noisy.store_id in noisy
