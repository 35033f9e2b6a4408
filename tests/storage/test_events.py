"""Change events reach subscribers after commit, never after a rollback, across processes on
PostgreSQL (through NOTIFY) and in-process on SQLite."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import pytest

from storesync.queue import JobQueue
from storesync.queue.transitions import announcement
from storesync.settings import Settings
from storesync.storage import Database, connect
from storesync.storage.events import publish
from storesync.storage.listen import event_relay
from storesync.stores import StoreDirectory
from tests.conftest import add_store


async def _collect(database: Database) -> tuple[list[dict[str, Any]], Any]:
    received: list[dict[str, Any]] = []
    relay = event_relay(database)
    if relay is not None:
        await relay.start()
    database.events.subscribe(received.append)
    return received, relay


async def _until(received: list[dict[str, Any]], count: int) -> None:
    for _ in range(100):
        if len(received) >= count:
            return
        await asyncio.sleep(0.05)


async def test_job_events_reach_a_subscriber(
    database: Database, settings: Settings, stores: StoreDirectory, backend: str
) -> None:
    # On PostgreSQL the writer is a separate engine: the event crosses connections via NOTIFY.
    writer = connect(settings) if backend == "postgresql" else database
    received, relay = await _collect(database)
    try:
        queue = JobQueue(writer, settings)
        store = await add_store(stores)
        job = (await queue.enqueue(store, date(2026, 1, 1), date(2026, 1, 2))).job
        await queue.claim("w1")
        await queue.set_progress(job.id, "w1", {"percent": 50})
        await queue.complete(job.id, "w1")
        await _until(received, 4)
        assert [(e["type"], e["job_id"]) for e in received] == [
            ("job.queued", job.id),
            ("job.started", job.id),
            ("job.progress", job.id),
            ("job.completed", job.id),
        ]
        assert received[2]["percent"] == 50 and received[0]["store_id"] == store
    finally:
        if relay is not None:
            await relay.stop()
        if writer is not database:
            await writer.dispose()


async def test_an_event_describes_the_job_as_changed(
    database: Database, settings: Settings, stores: StoreDirectory
) -> None:
    # On PostgreSQL the server builds the event's JSON from the changed row; it must be the
    # document that ``announcement`` builds in Python (SQLite's way) from the same job.
    received, relay = await _collect(database)
    try:
        queue = JobQueue(database, settings)
        store = await add_store(stores)
        queued = (await queue.enqueue(store, date(2026, 1, 1), date(2026, 1, 2))).job
        [started] = await queue.claim("w1")
        await queue.set_progress(queued.id, "w1", {"percent": 40, "chunk": 1})
        progressed = await queue.get(queued.id)
        failed = await queue.fail(queued.id, "w1", "Shopify said no", retryable=False)
        await _until(received, 4)
        assert received == [
            announcement("job.queued", queued),
            announcement("job.started", started),
            announcement("job.progress", progressed),
            announcement("job.failed", failed),
        ]
        assert received[2]["percent"] == 40
        assert received[3]["error_message"] == "Shopify said no"
    finally:
        if relay is not None:
            await relay.stop()


async def test_a_rolled_back_change_announces_nothing(database: Database) -> None:
    received, relay = await _collect(database)
    try:
        with pytest.raises(RuntimeError):
            async with database.transaction() as conn:
                await publish(conn, {"type": "test.never"})
                raise RuntimeError("roll back")
        async with database.transaction() as conn:
            await publish(conn, {"type": "test.once"})
        await _until(received, 1)
        await asyncio.sleep(0.2)
        assert [e["type"] for e in received] == ["test.once"]
    finally:
        if relay is not None:
            await relay.stop()
