"""The failure throttle by itself, on a clock the test moves: the window slides, addresses
are counted apart, and the memory it keeps is bounded."""

from __future__ import annotations

import pytest

from storesync.serving.throttle import FailureThrottle, TooManyFailures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_slides_and_retry_after_says_when() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=3, window_seconds=60, clock=clock)
    for _ in range(3):
        throttle.check("a")
        throttle.failed("a")
        clock.now += 10  # failures at 1000, 1010, 1020; now 1030
    with pytest.raises(TooManyFailures) as refused:
        throttle.check("a")
    assert refused.value.retry_after == 30  # the failure at 1000 leaves the window at 1060
    throttle.check("b")  # another address is not affected
    clock.now = 1000.0 + 60.0
    throttle.check("a")  # the oldest failure has left the window: one more try
    throttle.failed("a")
    with pytest.raises(TooManyFailures) as again:
        throttle.check("a")
    assert again.value.retry_after == 10  # the failure at 1010 leaves at 1070
    clock.now += 3600
    throttle.check("a")


def test_the_addresses_remembered_are_bounded() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=1, window_seconds=60, clock=clock, max_addresses=100)
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle._failures) == 100
    with pytest.raises(TooManyFailures):
        throttle.check("10.0.3.231")  # the newest are kept
    throttle.check("10.0.0.0")  # the oldest were forgotten
