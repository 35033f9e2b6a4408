"""Pacing for Klaviyo's per-account rate limits, so that a sync is (almost) never refused.

Klaviyo limits each account per endpoint group with two fixed windows, a burst window of one
second and a steady window of one minute (see the table in API-FACTS.md), and every private
key of the account shares them. :class:`WindowLimiter` keeps the send times of the last minute
and, before a call, waits until one more call fits in *every* window of that length ending now.
That sliding check is stricter than Klaviyo's fixed windows (any fixed window is one such
interval), so calls paced by it fit Klaviyo's windows wherever their boundaries fall. A call
is counted from its answer once it has one (:meth:`WindowLimiter.answered`): it reached
Klaviyo at some moment before that, however long it waited on the way.

Answers feed the limiter too: a 429's ``Retry-After`` blocks the group until then, and
``RateLimit-Remaining: 0`` with ``RateLimit-Reset`` blocks it until the steady window resets
(another integration of the same account may be spending the quota).

:func:`limiter_for` shares one limiter per account and endpoint group in the process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

BURST_WINDOW = 1.0
STEADY_WINDOW = 60.0
#: Slack for the time a request spends in transit: two calls one window apart when sent may
#: arrive a little closer together.
MARGIN = 0.05


@dataclass(frozen=True, slots=True)
class Window:
    """Calls allowed per burst window (1 s) and per steady window (60 s)."""

    burst: int
    steady: int


def _window(burst: int, steady: int) -> Window:
    return Window(burst, steady)


@dataclass(frozen=True, slots=True)
class KlaviyoRateLimits:
    """Limits per endpoint group; the defaults are Klaviyo's published numbers."""

    reports: Window = field(default_factory=lambda: _window(1, 2))
    metrics: Window = field(default_factory=lambda: _window(10, 150))
    campaigns: Window = field(default_factory=lambda: _window(10, 150))
    flows: Window = field(default_factory=lambda: _window(3, 60))
    accounts: Window = field(default_factory=lambda: _window(1, 15))
    aggregates: Window = field(default_factory=lambda: _window(3, 60))

    def for_group(self, group: str) -> Window:
        """The limits of ``group`` (one of the field names)."""
        window: Window = getattr(self, group)
        return window


#: Endpoint path prefix → rate-limit group.
GROUPS: Mapping[str, str] = {
    "/api/campaign-values-reports": "reports",
    "/api/flow-values-reports": "reports",
    "/api/metric-aggregates": "aggregates",
    "/api/metrics": "metrics",
    "/api/campaigns": "campaigns",
    "/api/flows": "flows",
    "/api/accounts": "accounts",
}


def group_of(path: str) -> str:
    """The rate-limit group of an API path (``/api/…``)."""
    for prefix, group in GROUPS.items():
        if path.startswith(prefix):
            return group
    return "metrics"  # Klaviyo's common "M" tier


class WindowLimiter:
    """Burst and steady windows of one endpoint group of one account."""

    def __init__(self, window: Window, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0

    def _delay(self, now: float) -> float:
        while self._sent and self._sent[0] <= now - STEADY_WINDOW - MARGIN:
            self._sent.popleft()
        delay = max(0.0, self._blocked_until - now)
        for length, limit in (
            (BURST_WINDOW, self.window.burst),
            (STEADY_WINDOW, self.window.steady),
        ):
            recent = [t for t in self._sent if t > now - length - MARGIN]
            if len(recent) >= limit:
                # Wait until the oldest call that keeps the window full leaves it.
                oldest = recent[len(recent) - limit]
                delay = max(delay, oldest + length + MARGIN - now)
        return delay

    def try_acquire(self) -> float:
        """Take a slot now and return 0, or return the seconds to wait before trying again."""
        with self._lock:
            now = self._clock()
            delay = self._delay(now)
            if delay <= 0:
                self._sent.append(now)
            return delay

    async def acquire(self) -> float:
        """Wait until a call fits, take its slot; return the seconds waited."""
        waited = 0.0
        while True:
            delay = self.try_acquire()
            if delay <= 0:
                return waited
            waited += delay
            await asyncio.sleep(delay)

    def answered(self) -> None:
        """Count the latest call from now, when its answer came, rather than from when it was
        let go: Klaviyo counts a call when it arrives, which may be well after it was let go
        on a busy machine, and a window measured from the answer holds whatever the delay."""
        with self._lock:
            if self._sent:
                self._sent[-1] = max(self._sent[-1], self._clock())

    def block_for(self, seconds: float) -> None:
        """Send nothing in this group for ``seconds`` (a 429, or an exhausted window)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    def next_free_in(self) -> float:
        """Seconds until a call would fit (0: now)."""
        with self._lock:
            return self._delay(self._clock())


_LIMITERS: dict[tuple[str, str, Window], WindowLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(account: str, group: str, limits: KlaviyoRateLimits) -> WindowLimiter:
    """The process-wide limiter of ``group`` for ``account`` (created with ``limits``)."""
    window = limits.for_group(group)
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get((account, group, window))
        if limiter is None:
            limiter = _LIMITERS[(account, group, window)] = WindowLimiter(window)
        return limiter
