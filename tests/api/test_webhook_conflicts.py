"""A webhook's transaction rolled back by a clash with a concurrent one (a PostgreSQL deadlock
with a sync writing the same cache rows) is run again rather than answered 500; any other
database error still fails the delivery, with nothing recorded, so Shopify's retry counts."""

from __future__ import annotations

import importlib
from datetime import date
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.api.webhooks import WebhookProcessor
from storesync.queue import JobQueue
from storesync.storage import Database
from storesync.stores import StoreDirectory
from tests.conftest import add_store

# By path: ``storesync.api.webhooks`` as an attribute of the package is the routes' module.
webhooks = importlib.import_module("storesync.api.webhooks")


class DriverError(Exception):
    """A driver error carrying PostgreSQL's SQLSTATE, as asyncpg's do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def failing_first(
    monkeypatch: pytest.MonkeyPatch, sqlstate: str, times: int
) -> list[tuple[int, list[date]]]:
    """Make ``mark_stale`` raise ``sqlstate`` its first ``times`` calls; the calls made."""
    real = webhooks.mark_stale
    calls: list[tuple[int, list[date]]] = []

    async def mark_stale(conn: AsyncConnection, store_id: int, days: list[date]) -> int:
        calls.append((store_id, days))
        if len(calls) <= times:
            raise DBAPIError("UPDATE store_sync_cache …", {}, DriverError(sqlstate))
        return await real(conn, store_id, days)

    monkeypatch.setattr(webhooks, "mark_stale", mark_stale)
    return calls


async def deliver(processor: WebhookProcessor, webhook_id: str) -> Any:
    return await processor.handle(
        webhook_id=webhook_id,
        topic="orders/create",
        shop_domain="store-1.myshopify.com",
        payload={"id": 1, "created_at": "2025-03-04T10:00:00-05:00"},
        body_sha256=webhook_id.encode().hex().ljust(64, "0"),
    )


async def test_a_deadlocked_delivery_is_run_again(
    database: Database, queue: JobQueue, stores: StoreDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_store(stores, 1)
    calls = failing_first(monkeypatch, "40P01", times=2)
    processor = WebhookProcessor(database, queue)
    outcome = await deliver(processor, "w-1")
    assert outcome.status == "processed"
    assert len(calls) == 3  # two deadlocks, then through
    assert (await deliver(processor, "w-1")).status == "duplicate"  # recorded once


async def test_a_delivery_deadlocked_every_time_fails_and_is_not_recorded(
    database: Database, queue: JobQueue, stores: StoreDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_store(stores, 1)
    calls = failing_first(monkeypatch, "40P01", times=webhooks.CONFLICT_ATTEMPTS)
    processor = WebhookProcessor(database, queue)
    with pytest.raises(DBAPIError):
        await deliver(processor, "w-2")
    assert len(calls) == webhooks.CONFLICT_ATTEMPTS
    assert (await deliver(processor, "w-2")).status == "processed"  # Shopify's retry counts


async def test_other_database_errors_are_not_retried(
    database: Database, queue: JobQueue, stores: StoreDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_store(stores, 1)
    calls = failing_first(monkeypatch, "42P01", times=1)  # undefined_table: a bug
    with pytest.raises(DBAPIError):
        await deliver(WebhookProcessor(database, queue), "w-3")
    assert len(calls) == 1
