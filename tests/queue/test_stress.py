"""The queue's guarantees under real concurrency, on SQLite and PostgreSQL.

Several OS processes share one database. Each worker process records, for every job it ran,
when it started (after ``claim`` returned) and when it ended (before ``complete`` was called),
with ``time.time_ns()``. Those intervals lie strictly inside the database's processing window
of the job, so any overlap found in them is an overlap the database allowed.

The last tests race two operations on one job inside one process (separate connections) and
check that the answers agree; SQLite serialises writers, PostgreSQL must get it from its locks.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from storesync.queue import Job, JobQueue, JobStatus, LostJobError
from storesync.storage import Database, connect
from storesync.storage.crypto import SecretBox
from storesync.storage.models import SyncJob, table_of
from storesync.stores import StoreDirectory
from tests.conftest import FakeClock, add_store
from tests.queue import stress_worker

WORKERS = 4
STORES = 50
JOBS = 500
LIMIT = 3
ACCOUNTS = 4
DEADLINE_SECONDS = 120


def run_processes(target: Any, args: list[tuple[Any, ...]]) -> None:
    """Run ``target`` in one spawned process per argument tuple, all released by one barrier.

    Fails as soon as one process fails (its traceback is on stderr), or when they overrun.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args), timeout=DEADLINE_SECONDS)
    processes = [ctx.Process(target=target, args=(*a, barrier)) for a in args]
    for process in processes:
        process.start()
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
            if any(p.exitcode not in (None, 0) for p in processes):
                break
            time.sleep(0.05)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
    codes = [p.exitcode for p in processes]
    assert codes == [0] * len(processes), f"exit codes {codes} (negative: killed after overrun)"


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def seed_jobs(url: str, data_dir: Path, stores: int, per_store: int) -> list[int]:
    """Add ``stores`` stores with ``per_store`` one-day jobs each; return the job ids."""
    settings = stress_worker.stress_settings(url, str(data_dir), LIMIT)
    database = connect(settings)
    try:
        directory = StoreDirectory(database, SecretBox.from_settings(settings))
        queue = JobQueue(database, settings)
        ids = []
        for n in range(1, stores + 1):
            # Several accounts: the claims' fair order (accounts take turns) is under test too.
            store = await add_store(directory, n, account=f"account-{n % ACCOUNTS}")
            for day in range(per_store):
                start = date(2026, 1, 1) + timedelta(days=day)
                ids.append((await queue.enqueue(store, start, start)).job.id)
        return ids
    finally:
        await database.dispose()


async def all_jobs(url: str, data_dir: Path) -> list[Job]:
    settings = stress_worker.stress_settings(url, str(data_dir), LIMIT)
    database = connect(settings)
    try:
        return await JobQueue(database, settings).list_jobs(limit=10 * JOBS)
    finally:
        await database.dispose()


def peak_overlap(intervals: list[tuple[int, int]]) -> int:
    """The largest number of intervals open at one instant (an end at t closes before a
    start at t opens: the true order of such a tie is end < complete < claim < start)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    open_now = peak = 0
    for _, delta in events:
        open_now += delta
        peak = max(peak, open_now)
    return peak


@pytest.mark.slow
def test_four_processes_never_exceed_the_limits_and_finish_every_job_once(
    db_url: str, tmp_path: Path
) -> None:
    job_ids = asyncio.run(seed_jobs(db_url, tmp_path, STORES, JOBS // STORES))
    assert len(set(job_ids)) == JOBS

    outputs = [tmp_path / f"worker-{n}.jsonl" for n in range(WORKERS)]
    run_processes(
        stress_worker.run_worker,
        [
            (db_url, str(tmp_path), f"worker-{n}", str(out), LIMIT, n)
            for n, out in enumerate(outputs)
        ],
    )
    records = [r for out in outputs for r in read_lines(out)]

    # Every job finished exactly once.
    counts = Counter(r["job"] for r in records)
    assert [j for j, c in counts.items() if c > 1] == []
    assert set(counts) == set(job_ids)
    jobs = asyncio.run(all_jobs(db_url, tmp_path))
    assert len(jobs) == JOBS
    assert {j.status for j in jobs} == {JobStatus.COMPLETED}
    assert all(j.retry_count == 0 and j.completed_at is not None for j in jobs)
    owner = {r["job"]: r["worker"] for r in records}
    assert {j.id: j.worker_id for j in jobs} == owner

    # Never more than the limit at once, across all processes.
    assert all(r["start"] < r["end"] for r in records)
    peak = peak_overlap([(r["start"], r["end"]) for r in records])
    assert peak <= LIMIT
    # The test means something only if the workers did contend for the slots.
    assert peak == LIMIT
    assert len({r["worker"] for r in records}) > 1

    # Never two jobs of one store at once.
    by_store: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r in records:
        by_store[r["store"]].append((r["start"], r["end"]))
    overlapping = {store: iv for store, iv in by_store.items() if peak_overlap(iv) > 1}
    assert overlapping == {}


@pytest.mark.slow
def test_concurrent_enqueues_from_several_processes_create_one_job_per_period(
    db_url: str, tmp_path: Path
) -> None:
    keys = asyncio.run(_ten_store_periods(db_url, tmp_path))
    rounds = 5  # each process enqueues all 10 keys at once, 5 times: 50 calls per process
    outputs = [tmp_path / f"enqueuer-{n}.jsonl" for n in range(WORKERS)]
    run_processes(
        stress_worker.run_enqueuer,
        [(db_url, str(tmp_path), str(out), keys, rounds) for out in outputs],
    )
    answers = [r for out in outputs for r in read_lines(out)]
    assert len(answers) == WORKERS * rounds * len(keys)

    ids_by_key: dict[tuple[Any, ...], set[int]] = defaultdict(set)
    created_by_key: Counter[tuple[Any, ...]] = Counter()
    for answer in answers:
        key = tuple(answer["key"])
        ids_by_key[key].add(answer["job"])
        created_by_key[key] += answer["created"]
    assert {k: len(ids) for k, ids in ids_by_key.items()} == {tuple(k): 1 for k in keys}
    assert created_by_key == Counter({tuple(k): 1 for k in keys})

    jobs = asyncio.run(all_jobs(db_url, tmp_path))
    assert len(jobs) == len(keys)
    in_database = {
        (j.store_id, j.period_start.isoformat(), j.period_end.isoformat()): j.id for j in jobs
    }
    assert in_database == {k: ids.pop() for k, ids in ids_by_key.items()}
    assert {j.status for j in jobs} == {JobStatus.QUEUED}


async def _ten_store_periods(url: str, data_dir: Path) -> list[tuple[int, str, str]]:
    """Ten (store, start, end) keys: five stores × two months."""
    settings = stress_worker.stress_settings(url, str(data_dir), LIMIT)
    database = connect(settings)
    try:
        directory = StoreDirectory(database, SecretBox.from_settings(settings))
        stores = [await add_store(directory, n) for n in range(1, 6)]
    finally:
        await database.dispose()
    periods = [("2026-01-01", "2026-01-31"), ("2026-02-01", "2026-02-28")]
    return [(store, start, end) for store in stores for start, end in periods]


async def test_one_connection_enqueues_many_jobs(queue: JobQueue, stores: StoreDirectory) -> None:
    """A worker process enqueues far more than five jobs over one pooled connection.

    PostgreSQL runs a prepared statement with a generic plan from its sixth execution on; the
    de-duplicating INSERT must still find the partial unique index then (its predicate must
    not depend on bound parameters).
    """
    store = await add_store(stores)
    for day in range(12):
        start = date(2026, 1, 1) + timedelta(days=day)
        assert (await queue.enqueue(store, start, start)).created
    again = await queue.enqueue(store, date(2026, 1, 1), date(2026, 1, 1))
    assert not again.created
    assert len(await queue.list_jobs(limit=100)) == 12


@pytest.mark.slow
async def test_a_claim_never_takes_a_job_cancelled_while_it_ran(
    queue: JobQueue, stores: StoreDirectory, database: Database, clock: FakeClock
) -> None:
    """An operator cancels the only due job while a worker's claim is choosing it.

    Whichever wins, the answers must agree: if ``cancel`` said "cancelled", the job stays
    cancelled and the claim must not hand it out. Many waiting jobs that are not yet due make
    the claim's scan take a few milliseconds, so the cancel often lands in the middle of it.
    """
    # The filler has an account of its own: its 100,000 jobs would be over the cap of users'
    # syncs of the account that enqueues below.
    due, waiting = await add_store(stores, 1), await add_store(stores, 2, account="filler")
    later = clock.now + timedelta(days=1)
    filler = [
        {
            "store_id": waiting,
            "status": "queued",
            "period_start": date(1900, 1, 1) + timedelta(days=n),
            "period_end": date(1900, 1, 1) + timedelta(days=n),
            "queued_at": later,
            "run_after": later,
        }
        for n in range(100_000)
    ]
    async with database.transaction() as conn:
        await conn.execute(insert(table_of(SyncJob)), filler)
    started = time.perf_counter()
    assert await queue.claim("w0") == []
    scan = time.perf_counter() - started
    rng = random.Random(7)

    async def cancel_soon(job_id: int) -> JobStatus:
        await asyncio.sleep(rng.uniform(0, scan))
        return (await queue.cancel(job_id)).status

    broken = []
    for day in range(30):
        start = date(2026, 1, 1) + timedelta(days=day)
        job = (await queue.enqueue(due, start, start)).job
        answer, claimed = await asyncio.gather(cancel_soon(job.id), queue.claim("w1"))
        final = await queue.get(job.id)
        if answer is JobStatus.CANCELLED and (claimed or final.status is not answer):
            events = [e["kind"] for e in await queue.events(job.id)]
            broken.append((job.id, final.status.value, final.error_message, events))
        if final.status is JobStatus.PROCESSING:
            await queue.complete(job.id, "w1")
    assert broken == []


@pytest.mark.slow
async def test_a_worker_whose_job_was_rescued_cannot_fail_it(
    queue: JobQueue, stores: StoreDirectory, clock: FakeClock
) -> None:
    """A worker reports a failure just as the rescuer takes its lapsed job back.

    Whichever wins, the answers must agree: if the rescue requeued the job, the worker no
    longer holds it, so its ``fail`` must raise :class:`LostJobError` and change nothing.
    """
    store = await add_store(stores)
    rng = random.Random(7)

    async def soon(action: Awaitable[Any]) -> Any:
        await asyncio.sleep(rng.uniform(0, 0.004))
        return await action

    async def fail(job_id: int) -> str:
        try:
            return (await queue.fail(job_id, "w1", "boom", retryable=False)).status.value
        except LostJobError:
            return "lost"

    broken = []
    for day in range(40):
        start = date(2026, 1, 1) + timedelta(days=day)
        await queue.enqueue(store, start, start)
        [job] = await queue.claim("w1")
        clock.advance(31)  # past the 30 s lease
        answer, report = await asyncio.gather(soon(fail(job.id)), soon(queue.rescue()))
        final = await queue.get(job.id)
        if job.id in report.requeued and (answer != "lost" or final.status is not JobStatus.QUEUED):
            events = [e["kind"] for e in await queue.events(job.id)]
            broken.append((job.id, answer, final.status.value, final.retry_count, events))
        if final.status is JobStatus.QUEUED:
            await queue.cancel(job.id)
    assert broken == []
