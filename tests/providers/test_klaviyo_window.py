"""Klaviyo's report window shared between worker processes: defer rather than wait in a slot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storesync.errors import RetryableError
from storesync.providers.klaviyo_pacing import Window, WindowLimiter
from storesync.providers.klaviyo_window import DEFER_SECONDS, ReportWindow, window_key
from storesync.providers.provider_cache import MemoryCache

KLAVIYO = Window(burst=1, steady=2)  # Klaviyo's report limits per account


class Clock:
    """One instant for both clocks a window reads (the limiter's and the wall clock)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def process(cache: MemoryCache, clock: Clock) -> ReportWindow:
    """The report window as one worker process sees it: its own limiter, the shared cache."""
    return ReportWindow(cache, WindowLimiter(KLAVIYO, clock), "AbC123", clock=clock)


async def spend_the_minute(window: ReportWindow, clock: Clock) -> None:
    await window.wait_or_defer()
    assert window.limiter.try_acquire() == 0
    clock.now += 1.1
    assert window.limiter.try_acquire() == 0
    await window.publish()


async def test_a_spent_minute_defers_the_next_sync_in_another_process() -> None:
    cache, clock = MemoryCache(), Clock()
    await spend_the_minute(process(cache, clock), clock)
    clock.now += 2
    other = process(cache, clock)  # has not seen the two calls
    with pytest.raises(RetryableError) as caught:
        await other.wait_or_defer()
    # The first call leaves the minute 60.05 s after it was sent, 3.1 s ago.
    expected = datetime.fromtimestamp(clock.now + 60.05 - 3.1, UTC)
    assert caught.value.retry_at is not None
    assert abs((caught.value.retry_at - expected).total_seconds()) < 0.01
    assert "report calls for the minute are spent" in str(caught.value)


async def test_a_short_wait_is_paced_in_the_slot() -> None:
    cache, clock = MemoryCache(), Clock()
    await spend_the_minute(process(cache, clock), clock)
    clock.now += 60.05 - 1.1 - DEFER_SECONDS / 2  # the window frees within DEFER_SECONDS
    other = process(cache, clock)
    await other.wait_or_defer()
    # Its limiter now knows to wait for the other process's calls to leave the minute.
    assert other.limiter.next_free_in() == pytest.approx(DEFER_SECONDS / 2)


async def test_a_window_with_room_left_is_not_written() -> None:
    cache, clock = MemoryCache(), Clock()
    window = process(cache, clock)
    await window.wait_or_defer()
    assert window.limiter.try_acquire() == 0
    clock.now += 1.1
    await window.publish()  # one call of two this minute: the next sync may go at once
    assert await cache.get(window_key("AbC123")) is None
    await process(cache, clock).wait_or_defer()


def test_a_call_counts_from_its_answer() -> None:
    clock = Clock()
    limiter = WindowLimiter(KLAVIYO, clock)
    assert limiter.try_acquire() == 0
    clock.now += 0.8  # it waited on the way: Klaviyo may have counted it only now
    limiter.answered()
    clock.now += 0.3
    # A second from the answer, not from the send (plus the limiter's margin).
    assert limiter.try_acquire() == pytest.approx(0.8 + 1.05 - 1.1)
