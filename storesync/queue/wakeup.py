"""Waking idle workers: PostgreSQL NOTIFY when it is there, a short poll otherwise.

On PostgreSQL every enqueue, retry and rescue sends ``NOTIFY storesync_queue`` in its
transaction, so a waiting worker on any machine starts the job within milliseconds. SQLite has
no such channel between processes: a worker polls every ``poll_interval_seconds``, and jobs
queued by its own process wake it at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from storesync.storage.engine import Database
from storesync.storage.listen import Listener

WAKE_CHANNEL = "storesync_queue"


class Wakeup:
    """An event an idle worker waits on, set by notifications or local enqueues."""

    def __init__(self, database: Database, poll_seconds: float) -> None:
        self._database = database
        self._poll_seconds = poll_seconds
        self._event = asyncio.Event()
        self._listener: Listener | None = None

    async def start(self) -> None:
        if self._database.is_postgres:
            self._listener = Listener(
                self._database,
                {WAKE_CHANNEL: lambda _payload: self.set()},
                on_reconnect=self.set,
            )
            await self._listener.start()

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Sleep until woken or ``timeout`` (default: the poll interval). True if woken.

        With a live LISTEN connection the poll is only a safety net (jobs whose ``run_after``
        came due send no notification), so it may be long; without one it is the mechanism.
        """
        if timeout is None:
            listening = self._listener is not None and self._listener.connected.is_set()
            timeout = 5.0 if listening else self._poll_seconds
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
            woken = True
        self._event.clear()
        return woken
