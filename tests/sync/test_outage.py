"""A database outage during a sync is the worker's to wait out, not a failure of the job.

Seen in the 1,000-store benchmark: PostgreSQL ran out of connections (and, once, restarted)
while syncs ran. A sync whose store lookup met the outage was failed for good with the
driver's message, and one whose Klaviyo step met it (the report budget is in the database)
spent an attempt on an "internal error". The pipeline must raise the outage instead, so that
the worker waits for the database and runs the job again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from storesync.queue import Job, JobStatus
from storesync.simulator import generate_stores
from storesync.sync.pipeline import SyncPipeline, SyncServices
from tests.sync.conftest import in_process_services, in_process_settings

PERIOD = (date(2026, 7, 1), date(2026, 7, 7))


async def down(*_args: object, **_kwargs: object) -> None:
    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("the database is down"))


@pytest.fixture
async def services(db_url: str, tmp_path: Path) -> AsyncIterator[SyncServices]:
    """Real services: the database, the queue, and the simulator mounted in-process."""
    store = dataclasses.replace(generate_stores(1)[0], bucket_size=20_000.0)
    settings = in_process_settings(db_url, tmp_path)
    async with in_process_services(settings, [store]) as services:
        yield services


async def claimed(services: SyncServices) -> Job:
    store = (await services.stores.list())[0]
    await services.queue.enqueue(store.id, *PERIOD)
    [job] = await services.queue.claim("w1")
    return job


async def test_an_outage_before_the_sync_is_raised_not_a_failed_job(
    services: SyncServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await claimed(services)
    monkeypatch.setattr(services.stores, "credentials", down)
    with pytest.raises(OperationalError):
        await SyncPipeline(services).run(job, "w1")
    still = await services.queue.get(job.id)
    assert (still.status, still.retry_count, still.error_message) == (JobStatus.PROCESSING, 0, None)


async def test_an_outage_under_a_provider_step_is_raised_not_an_attempt(
    services: SyncServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await claimed(services)
    monkeypatch.setattr(services.budget, "reserve", down)  # Klaviyo's budget is in the database
    with pytest.raises(OperationalError):
        await SyncPipeline(services).run(job, "w1")
    still = await services.queue.get(job.id)
    assert (still.status, still.retry_count, still.error_message) == (JobStatus.PROCESSING, 0, None)
    # The database back, the job runs again to completion.
    monkeypatch.undo()
    done = await SyncPipeline(services).run(still, "w1")
    assert done is not None and done.status is JobStatus.COMPLETED
