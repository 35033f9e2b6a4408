"""A job whose code raises an unexpected error gives its slot back at once (issue 18).

Seen: a period ending 9999-12-31 made the sync raise OverflowError; the worker logged it and
left the job ``processing``, holding one of the global slots until its lease lapsed, three
times over, and it ended as "worker stopped responding". Another account's sync waited
minutes. Now an error outside the providers' own handling fails the attempt at once, with
the error in the job's log, and is retried up to ``max_attempts`` like any unexpected
failure; a job whose period could never be synced (queued before periods were checked)
fails at once for good.

Each test runs a real worker (in this process with the simulator mounted, or as a
``storesync worker`` subprocess) with ONE global slot and a long lease: the next job can only
start before the lease would lapse if the broken one gave its slot back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from storesync.periods import Period
from storesync.queue import Job, JobStatus
from storesync.queue.transitions import JOBS
from storesync.settings import Settings
from storesync.simulator import generate_stores
from storesync.storage import connect
from storesync.sync import pipeline
from storesync.sync.pipeline import SyncServices
from storesync.worker import Worker
from tests.cli.helpers import as_json, last_line, storesync
from tests.harness import SimulatorProcess, read_job, start_worker, stop, wait_for
from tests.sync.conftest import add_stores, in_process_services, in_process_settings

BROKEN = Period(date(2026, 7, 1), date(2026, 7, 7))
HEALTHY = Period(date(2026, 7, 8), date(2026, 7, 14))
#: Far longer than the test may take: a slot held until the lease lapses fails it.
LEASE_SECONDS = 120.0
PROMPTLY = 30.0


@pytest.fixture
async def services(db_url: str, tmp_path: Path) -> AsyncIterator[SyncServices]:
    """Real services on one global slot: the database, the queue, the simulator in-process."""
    sim_stores = [dataclasses.replace(s, bucket_size=20_000.0) for s in generate_stores(2)]
    settings = in_process_settings(
        db_url,
        tmp_path,
        max_concurrent_jobs=1,
        max_attempts=3,
        retry_base_seconds=0,  # retried at once: all attempts fit in the test
        lease_seconds=LEASE_SECONDS,
        poll_interval_seconds=0.1,
    )
    async with in_process_services(settings, sim_stores) as services:
        yield services


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> float:
    """Seconds until ``check`` holds (the test fails after :data:`PROMPTLY`)."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > PROMPTLY:
            raise AssertionError(f"still waiting for {what} after {PROMPTLY:g} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - began


def _break_the_sync_of(period: Period, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in our own code, before any provider call: resuming the progress raises."""
    resume = pipeline.SyncProgress.resume

    def broken(saved: Any, **kwargs: Any) -> Any:
        if kwargs["period"] == period:
            raise OverflowError("date value out of range")
        return resume(saved, **kwargs)

    monkeypatch.setattr(pipeline.SyncProgress, "resume", broken)


def _break_the_runner_of(worker: Worker, job_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug that escapes the pipeline itself (say, in recording an outcome)."""
    run = worker.pipeline.run

    async def broken(job: Job, worker_id: str) -> Job | None:
        if job.id == job_id:
            raise RuntimeError("the pipeline itself broke")
        return await run(job, worker_id)

    monkeypatch.setattr(worker.pipeline, "run", broken)


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("pipeline", "internal error: OverflowError: date value out of range"),
        ("runner", "internal error: RuntimeError: the pipeline itself broke"),
    ],
)
async def test_an_unexpected_error_frees_the_slot_at_once_and_is_recorded(
    services: SyncServices, monkeypatch: pytest.MonkeyPatch, where: str, error: str
) -> None:
    first, second = [s.id for s in await services.stores.list()]
    queue = services.queue
    broken = (await queue.enqueue(first, BROKEN.start, BROKEN.end)).job
    healthy = (await queue.enqueue(second, HEALTHY.start, HEALTHY.end)).job  # waits behind it
    worker = Worker(services, concurrency=1, schedule=False)
    if where == "pipeline":
        _break_the_sync_of(BROKEN, monkeypatch)
    else:
        _break_the_runner_of(worker, broken.id, monkeypatch)

    running = asyncio.create_task(worker.run())
    try:

        async def healthy_completed() -> bool:
            return (await queue.get(healthy.id)).status is JobStatus.COMPLETED

        async def broken_failed() -> bool:
            return (await queue.get(broken.id)).status is JobStatus.FAILED

        # Three attempts of the broken job, then the other job, long before a lease lapses.
        await _until(healthy_completed, "the healthy job to complete")
        await _until(broken_failed, "the broken job to fail")
    finally:
        worker.stop()
        worker.stop()  # no grace period
        await running

    job = await queue.get(broken.id)
    assert job.retry_count == services.settings.max_attempts
    assert job.error_message == f"gave up after 3 attempts: {error}"
    events = await queue.events(broken.id)
    kinds = [e["kind"] for e in events]
    assert kinds == ["queued", "claimed", "retried", "claimed", "retried", "claimed", "failed"]
    assert all(error in e["message"] for e in events if e["kind"] in ("retried", "failed"))
    assert not any("stopped responding" in (e["message"] or "") for e in events)
    assert (await queue.get(healthy.id)).retry_count == 0


async def test_a_job_with_a_period_no_sync_can_compute_fails_at_once(
    services: SyncServices,
) -> None:
    """Queued by an older version (the period written directly), it fails for good on its
    first attempt, saying why, and the next job runs."""
    first, second = [s.id for s in await services.stores.list()]
    queue = services.queue
    legacy = (await queue.enqueue(first, BROKEN.start, BROKEN.end)).job
    async with services.database.transaction() as conn:
        await conn.execute(
            update(JOBS)
            .where(JOBS.c.id == legacy.id)
            .values(period_start=date(9999, 12, 1), period_end=date(9999, 12, 31))
        )
    healthy = (await queue.enqueue(second, HEALTHY.start, HEALTHY.end)).job
    worker = Worker(services, concurrency=1, schedule=False)
    running = asyncio.create_task(worker.run())
    try:

        async def healthy_completed() -> bool:
            return (await queue.get(healthy.id)).status is JobStatus.COMPLETED

        await _until(healthy_completed, "the healthy job to complete")
    finally:
        worker.stop()
        worker.stop()
        await running
    job = await queue.get(legacy.id)
    assert (job.status, job.retry_count) == (JobStatus.FAILED, 1)
    assert job.error_message == (
        "start 9999-12-01 is out of range: use a date from 1970-01-01 to 9998-12-31"
    )


def test_a_storesync_worker_process_frees_the_slot_of_a_job_it_cannot_sync(
    env: dict[str, str], simulator: SimulatorProcess, tmp_path: Path
) -> None:
    """The issue's own scenario, with the real ``storesync worker``: a job of a period ending
    9999-12-31 (queued before the check) ahead of another store's job, one global slot."""
    env = {
        **env,
        "STORESYNC_MAX_CONCURRENT_JOBS": "1",
        "STORESYNC_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    first, second = list(add_stores(env, simulator, via_cli=False).values())[:2]
    legacy = int(last_line(storesync(env, "sync", str(first), "--start", "2026-07-01",
                                     "--end", "2026-07-07")))  # fmt: skip
    asyncio.run(_set_period(env, legacy, date(9998, 12, 25), date(9999, 12, 31)))
    healthy = int(last_line(storesync(env, "sync", str(second), "--start", "2026-07-08",
                                      "--end", "2026-07-14")))  # fmt: skip

    began = time.monotonic()
    worker = start_worker(env, "--no-scheduler", log=tmp_path / "worker.log")
    try:
        wait_for(
            lambda: read_job(env["STORESYNC_DATABASE_URL"], healthy)["status"] == "completed",
            timeout=PROMPTLY * 2,
            what="the healthy job to complete",
        )
    finally:
        stop(worker)
    assert time.monotonic() - began < LEASE_SECONDS / 2
    job = read_job(env["STORESYNC_DATABASE_URL"], legacy)
    assert (job["status"], job["retry_count"]) == ("failed", 1)
    assert job["error_message"] == (
        "end 9999-12-31 is out of range: use a date from 1970-01-01 to 9998-12-31"
    )
    kinds = [e["kind"] for e in as_json(storesync(env, "logs", str(legacy), "--json"))]
    assert kinds == ["queued", "claimed", "failed"]


async def _set_period(env: dict[str, str], job_id: int, start: date, end: date) -> None:
    settings = Settings(
        database_url=env["STORESYNC_DATABASE_URL"],
        data_dir=Path(env["STORESYNC_DATA_DIR"]),
        secret_key=env["STORESYNC_SECRET_KEY"],  # type: ignore[arg-type]
    )
    database = connect(settings)
    try:
        async with database.transaction() as conn:
            await conn.execute(
                update(JOBS).where(JOBS.c.id == job_id).values(period_start=start, period_end=end)
            )
    finally:
        await database.dispose()
