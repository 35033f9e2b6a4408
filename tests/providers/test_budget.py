"""The Klaviyo report budget and the provider cache, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from storesync.errors import RetryableError
from storesync.providers.klaviyo_budget import ReportBudget, next_utc_midnight
from storesync.providers.provider_cache import ProviderCache
from storesync.settings import Settings
from storesync.storage import Database, connect


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_reserve_until_spent_then_defer_to_midnight(database: Database) -> None:
    clock = Clock()
    budget = ReportBudget(database, daily_limit=5, clock=clock)
    assert await budget.remaining("ACCT01") == 5
    assert await budget.reserve("ACCT01", 2) == 3
    assert await budget.reserve("ACCT01", 3) == 0
    with pytest.raises(RetryableError) as caught:
        await budget.reserve("ACCT01", 1)
    assert caught.value.retry_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert "Klaviyo report budget used up until 00:00 UTC" in str(caught.value)
    assert await budget.used("ACCT01") == 5  # the refused reservation took nothing
    # Another account has its own budget.
    assert await budget.reserve("OTHER1", 5) == 0
    # A new UTC day starts afresh.
    clock.now += timedelta(minutes=1)
    assert await budget.remaining("ACCT01") == 5


async def test_refund_gives_back_unused_calls(database: Database) -> None:
    budget = ReportBudget(database, daily_limit=10, clock=Clock())
    await budget.reserve("ACCT01", 4)
    await budget.refund("ACCT01", 3)
    assert await budget.used("ACCT01") == 1
    await budget.refund("ACCT01", 5)  # never below zero
    assert await budget.used("ACCT01") == 1


def test_next_utc_midnight() -> None:
    assert next_utc_midnight(datetime(2026, 1, 1, 0, 0, tzinfo=UTC)) == datetime(
        2026, 1, 2, tzinfo=UTC
    )


async def test_concurrent_reservations_never_overspend(settings: Settings) -> None:
    """Workers on separate connections (as on separate machines) race for the last calls."""
    databases = [connect(settings) for _ in range(4)]
    clock = Clock()
    try:
        budgets = [ReportBudget(d, daily_limit=25, clock=clock) for d in databases]

        async def try_reserve(n: int) -> bool:
            try:
                await budgets[n % len(budgets)].reserve("RACE01", 2)
            except RetryableError:
                return False
            return True

        results = await asyncio.gather(*(try_reserve(n) for n in range(40)))
        assert sum(results) == 12  # 12 × 2 = 24 ≤ 25; a 13th would make 26
        assert await budgets[0].used("RACE01") == 24
    finally:
        for database in databases:
            await database.dispose()


async def test_provider_cache_round_trip(database: Database) -> None:
    cache = ProviderCache(database)
    assert await cache.get("klaviyo:X:metric") is None
    await cache.put("klaviyo:X:metric", {"id": "abc"})
    await cache.put("klaviyo:X:metric", {"id": "def"})
    assert await cache.get("klaviyo:X:metric") == {"id": "def"}
