"""API requests per minute per account: a token bucket per account, in this process.

Each account has a bucket of ``api_requests_per_minute`` tokens that refills at that many a
minute; every authenticated request takes one, so an account may burst up to a minute's worth
and then goes at the steady rate. An empty bucket answers 429 with ``Retry-After``: the
seconds until a token is back. The buckets live in the server process (no database write on
the hot path of every request), so with several ``storesync serve`` processes behind a load
balancer each allows the rate: set the limit per process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from storesync.errors import LimitExceededError

#: Buckets idle for this long are full again: forgetting them changes nothing.
_FORGET_AFTER_SECONDS = 120.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RequestRateLimiter:
    """Takes one request from an account's budget, or raises :class:`LimitExceededError`."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._swept = clock()

    def take(self, account_id: int) -> None:
        """Count one request of ``account_id``; refuse it when its budget is spent."""
        if not self.per_minute:
            return
        now = self.clock()
        self._sweep(now)
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(account_id)
        if bucket is None:
            bucket = self._buckets[account_id] = _Bucket(float(self.per_minute), now)
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / rate)
            raise LimitExceededError(
                f"too many requests: this account may make {self.per_minute} API requests a "
                f"minute (STORESYNC_API_REQUESTS_PER_MINUTE); try again in {wait} s",
                retry_after=wait,
            )
        bucket.tokens -= 1.0

    def _sweep(self, now: float) -> None:
        """Drop buckets idle long enough to be full: memory stays bounded by active accounts."""
        if now - self._swept < _FORGET_AFTER_SECONDS:
            return
        self._swept = now
        idle = [a for a, b in self._buckets.items() if now - b.at > _FORGET_AFTER_SECONDS]
        for account_id in idle:
            del self._buckets[account_id]
