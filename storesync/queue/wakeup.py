"""Waking idle workers: PostgreSQL NOTIFY when it is there, a short poll otherwise.

Every change that makes a job claimable (enqueue, retry, rescue, release) publishes a
``job.queued`` event (see ``storesync.storage.events``). On PostgreSQL that is a NOTIFY
delivered at commit to every listening worker on any machine, so a waiting worker starts the
job within milliseconds. SQLite has no channel between processes: a worker polls every
``poll_interval_seconds``, and jobs queued by its own process wake it at once through the
in-process event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from storesync.storage.engine import Database
from storesync.storage.events import EVENTS_CHANNEL, Event
from storesync.storage.listen import Listener

#: Event types after which a job may be claimable.
WAKING_EVENTS = frozenset({"job.queued"})


class Wakeup:
    """An event an idle worker waits on, set by notifications or local enqueues."""

    def __init__(self, database: Database, poll_seconds: float) -> None:
        self._database = database
        self._poll_seconds = poll_seconds
        self._event = asyncio.Event()
        self._listener: Listener | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        if self._database.is_postgres:
            self._listener = Listener(
                self._database, {EVENTS_CHANNEL: self._on_payload}, on_reconnect=self.set
            )
            await self._listener.start()
        else:
            self._unsubscribe = self._database.events.subscribe(self._on_event)

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _on_payload(self, payload: str) -> None:
        # Cheaper than parsing every event: only a few types wake a worker.
        if '"job.queued"' in payload:
            with contextlib.suppress(ValueError):
                self._on_event(json.loads(payload))

    def _on_event(self, event: Event) -> None:
        if event.get("type") in WAKING_EVENTS:
            self.set()

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
