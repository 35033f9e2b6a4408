"""The queue refuses what no sync could run: periods outside 1970..9998, backwards or too long,
and ids no database can hold (issue 18: a period ending 9999-12-31 crashed its job with an
OverflowError; year-1 periods were synced for real). Whatever the caller, nothing is queued.
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from storesync.errors import InputError, NotFoundError
from storesync.periods import EARLIEST, LATEST, Period
from storesync.queue import JobQueue, JobStatus
from storesync.queue.transitions import JOBS
from storesync.storage import Database
from storesync.stores import StoreDirectory
from tests.conftest import add_store

TOO_BIG = 2**63  # one past the largest BIGINT

REFUSED = [
    (date(1, 1, 1), date(1, 1, 31), "start 0001-01-01 is out of range"),
    (date(9999, 12, 1), date(9999, 12, 31), "start 9999-12-01 is out of range"),
    (date(9998, 12, 1), date(9999, 12, 31), "end 9999-12-31 is out of range"),
    (date(1969, 12, 31), date(1970, 1, 1), "start 1969-12-31 is out of range"),
    (date(2026, 3, 2), date(2026, 3, 1), "ends (2026-03-01) before it starts (2026-03-02)"),
    (date(2025, 1, 1), date(2026, 1, 2), "is 367 days long; the maximum is 366"),
]


@pytest.mark.parametrize(("start", "end", "message"), REFUSED)
def test_a_refused_period_says_why(start: date, end: date, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Period.checked(start, end, max_days=366)


def test_the_command_line_names_its_options_in_the_message() -> None:
    with pytest.raises(InputError, match="--end 9999-12-31 is out of range"):
        Period.parse("2026-01-01", "9999-12-31", max_days=None, names=("--start", "--end"))
    with pytest.raises(InputError, match="--start '0001-13-01' is not a date"):
        Period.parse("0001-13-01", "2026-01-01", max_days=None, names=("--start", "--end"))


@pytest.mark.parametrize("tz", ["Pacific/Kiritimati", "Etc/GMT+12", "America/New_York"])
def test_what_a_sync_computes_from_the_extreme_periods_does_not_overflow(tz: str) -> None:
    for period in (
        Period.checked(EARLIEST, EARLIEST + timedelta(days=365), max_days=366),
        Period.checked(LATEST - timedelta(days=365), LATEST, max_days=366),
    ):
        period.utc_bounds(ZoneInfo(tz))
        period.previous().utc_bounds(ZoneInfo(tz))
        assert sum(p.days for p in period.chunks(7)) == period.days


@pytest.mark.parametrize(("start", "end", "message"), REFUSED)
async def test_enqueue_refuses_an_invalid_period_and_queues_nothing(
    queue: JobQueue, stores: StoreDirectory, start: date, end: date, message: str
) -> None:
    store_id = await add_store(stores)
    with pytest.raises(InputError) as refused:
        await queue.enqueue(store_id, start, end)
    assert message in str(refused.value)
    assert await queue.list_jobs() == []


async def test_enqueue_many_refuses_a_batch_with_one_invalid_period(
    queue: JobQueue, stores: StoreDirectory
) -> None:
    store_id = await add_store(stores)
    good = Period(date(2026, 2, 1), date(2026, 2, 7))
    bad = Period(date(9999, 12, 1), date(9999, 12, 31))  # unchecked: Period() itself is plain
    with pytest.raises(InputError, match="start 9999-12-01 is out of range"):
        await queue.enqueue_many([(store_id, good), (store_id, bad)])
    assert await queue.list_jobs() == []


async def test_a_job_queued_before_the_check_cannot_be_retried(
    queue: JobQueue, stores: StoreDirectory, database: Database
) -> None:
    store_id = await add_store(stores)
    job = (await queue.enqueue(store_id, date(2026, 2, 1), date(2026, 2, 7))).job
    await queue.cancel(job.id)
    async with database.transaction() as conn:  # as an older version could have queued it
        await conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job.id)
            .values(period_start=date(1, 1, 1), period_end=date(1, 1, 2))
        )
    with pytest.raises(InputError, match=f"job {job.id} cannot be retried: start 0001-01-01"):
        await queue.retry(job.id)
    assert (await queue.get(job.id)).status is JobStatus.CANCELLED


async def test_ids_past_the_largest_bigint_do_not_exist(
    queue: JobQueue, stores: StoreDirectory
) -> None:
    await add_store(stores)
    for lookup in (queue.get, queue.events, queue.cancel, queue.retry):
        with pytest.raises(NotFoundError, match=f"job {TOO_BIG} does not exist"):
            await lookup(TOO_BIG)
        with pytest.raises(NotFoundError, match="job -9223372036854775809 does not exist"):
            await lookup(-TOO_BIG - 1)
    with pytest.raises(NotFoundError, match=f"store {TOO_BIG} does not exist"):
        await stores.get(TOO_BIG)
    with pytest.raises(NotFoundError, match=f"store {TOO_BIG} does not exist"):
        await stores.credentials(TOO_BIG)
    with pytest.raises(NotFoundError, match=f"store {TOO_BIG} does not exist"):
        await queue.enqueue(TOO_BIG, date(2026, 2, 1), date(2026, 2, 7))
