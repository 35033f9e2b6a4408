"""Klaviyo's per-minute report window, shared by every worker through the database.

Klaviyo allows an account 2 report calls a minute, and a sync makes 2. Each process paces its
own calls (:mod:`.klaviyo_pacing`), but one store's consecutive syncs usually run in different
worker processes: a process that has not seen the account's last calls would send into a spent
window and collect a 429. So a sync that leaves the window spent writes, in ``provider_cache``,
when the account may make report calls again, and the next sync reads it before its own.

A sync that would wait longer than :data:`DEFER_SECONDS` for the window does not wait while it
holds one of the queue's concurrency slots, because every other store would wait with it. It
raises :class:`~storesync.errors.RetryableError` with ``retry_at``, a deferral that costs no
attempt: the job goes back to the queue until then, and the slot goes to another store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from storesync.errors import RetryableError
from storesync.providers.klaviyo_pacing import BURST_WINDOW, WindowLimiter
from storesync.providers.provider_cache import KeyValueCache

#: The longest a sync waits for the report window in a slot; beyond it, the job is deferred.
DEFER_SECONDS = 5.0


def window_key(account: str) -> str:
    """The provider-cache key of an account's report window."""
    return f"klaviyo:{account}:reports_free_at"


class ReportWindow:
    """One account's report window: this process's limiter plus what other processes wrote."""

    def __init__(
        self,
        cache: KeyValueCache,
        limiter: WindowLimiter,
        account: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.limiter = limiter
        self.account = account
        self._clock = clock  # wall clock: the instant is read by other processes and machines

    async def wait_or_defer(self) -> None:
        """Return when the report calls may go within :data:`DEFER_SECONDS`; else defer.

        Raises :class:`RetryableError` (``retry_at``: when the window frees) for a longer wait.
        A shorter one is left to the limiter, which learns of the other processes' calls here.
        """
        stored = await self.cache.get(window_key(self.account))
        now = self._clock()
        shared = max(0.0, float(stored["free_at"]) - now) if stored else 0.0
        wait = max(shared, self.limiter.next_free_in())
        if wait > DEFER_SECONDS:
            until = datetime.fromtimestamp(now + wait, UTC)
            per_minute = self.limiter.window.steady
            raise RetryableError(
                f"this Klaviyo account's report calls for the minute are spent (Klaviyo allows "
                f"{per_minute} a minute); the sync continues at {until:%H:%M:%S} UTC",
                provider="klaviyo",
                retry_at=until,
            )
        if shared > 0:
            self.limiter.block_for(shared)

    async def publish(self) -> None:
        """After report calls: write when the window frees, if the minute's calls are spent."""
        wait = self.limiter.next_free_in()
        if wait > BURST_WINDOW:
            await self.cache.put(window_key(self.account), {"free_at": self._clock() + wait})
