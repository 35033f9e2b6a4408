"""The one way to open a transaction: what reaches the caller when it goes wrong."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from storesync.storage import Database


async def test_a_transaction_cancelled_mid_statement_ends_cancelled(database: Database) -> None:
    """A worker stops its loops by cancelling them, often mid-statement; the cancellation must
    reach the loop, not become another error the loop would catch and carry on after."""
    started = asyncio.Event()

    async def slow_statement() -> None:
        async with database.transaction() as conn:
            started.set()
            sleep = "SELECT pg_sleep(5)" if database.is_postgres else "SELECT 1"
            await conn.execute(text(sleep))
            await asyncio.sleep(5)

    task = asyncio.create_task(slow_statement())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
