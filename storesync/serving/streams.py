"""Server-sent events: each open ``GET /api/events`` stream and the hub that feeds them.

Events come from ``database.events``, which carries every job transition and cache change of
this process and, on PostgreSQL, of every process on every machine (the event relay turns
``NOTIFY storesync_events`` into local deliveries). A stream forwards only the events of its
account's stores. Delivery is in-process and synchronous, so each stream has its own bounded
queue: a client too slow to keep up is disconnected (an ``overflow`` event, then the end of
the stream) rather than let its backlog grow without limit; ``EventSource`` reconnects.
When the PostgreSQL relay had to reconnect, every stream gets a ``resync`` event: events sent
meanwhile are lost, and the client should reload what it shows.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import select

from storesync.storage.engine import Database
from storesync.storage.events import Event
from storesync.storage.models import Store, table_of

STORES = table_of(Store)
KEEPALIVE_SECONDS = 15.0
BACKLOG = 1000
RECONNECT_MS = 3000


class StoreOwners:
    """Which account owns a store, remembered for a minute.

    A store never moves to another account, but SQLite may give a deleted store's id to a new
    store, so answers expire, and a deletion through the API forgets its store at once.
    """

    def __init__(self, database: Database, *, ttl_seconds: float = 60.0) -> None:
        self.database = database
        self.ttl = ttl_seconds
        self._owners: dict[int, tuple[int, float]] = {}

    async def account_of(self, store_id: int) -> int | None:
        known = self._owners.get(store_id)
        now = time.monotonic()
        if known is not None and now - known[1] < self.ttl:
            return known[0]
        async with self.database.read() as conn:
            owner = await conn.scalar(select(STORES.c.account_id).where(STORES.c.id == store_id))
        if owner is None:
            self._owners.pop(store_id, None)
            return None
        self._owners[store_id] = (int(owner), now)
        return int(owner)

    def forget(self, store_id: int) -> None:
        self._owners.pop(store_id, None)


#: Put in every inbox when events may have been missed (the PostgreSQL relay reconnected).
RESYNC: Event = {"type": "resync"}
#: Nothing arrived for a keepalive interval (never put in an inbox).
_IDLE: Event = {"type": "idle"}
ENDED = "the token was revoked or has expired, or the session ended: sign in again"


class _Subscription:
    """One stream's bounded inbox."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=BACKLOG)
        self.overflowed = False
        self.closed = False

    def offer(self, event: Event) -> None:
        try:
            self.inbox.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    def close(self) -> None:
        self.closed = True
        try:
            self.inbox.put_nowait(None)  # wake the stream if it is waiting
        except asyncio.QueueFull:
            pass  # it is not waiting: it will see ``closed`` at its next item


class StreamHub:
    """Opens account-filtered event streams and ends them all when the server stops."""

    def __init__(
        self,
        database: Database,
        owners: StoreOwners,
        *,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.database = database
        self.owners = owners
        self.keepalive = keepalive_seconds
        self._open: set[_Subscription] = set()
        self._closing = False

    def resync_all(self) -> None:
        """Tell every client that events may have been lost: it should reload what it shows.

        Called when the PostgreSQL relay reconnects; notifications sent while it was down are
        gone for good.
        """
        for subscription in list(self._open):
            subscription.offer(RESYNC)

    def close_all(self) -> None:
        """End every open stream (called when the server begins to shut down)."""
        self._closing = True
        for subscription in list(self._open):
            subscription.close()

    async def stream(
        self,
        account_id: int,
        account_name: str,
        *,
        still_allowed: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[str]:
        """The SSE frames for one client of ``account_id``, until it leaves or we stop.

        ``still_allowed`` is asked once per keepalive interval whether the client may go on
        listening (its token not revoked, its session not ended); when not, the stream ends
        with an ``ended`` event.
        """
        subscription = _Subscription()
        checked = time.monotonic()
        unsubscribe = self.database.events.subscribe(subscription.offer)
        self._open.add(subscription)
        try:
            # Subscribed before this first frame, so a client that waits for ``ready`` misses
            # nothing that happens afterwards.
            yield f"retry: {RECONNECT_MS}\n" + frame("ready", {"account": account_name})
            while not (self._closing or subscription.closed):
                try:
                    event = await asyncio.wait_for(subscription.inbox.get(), self.keepalive)
                except TimeoutError:
                    event = _IDLE
                if event is None:
                    return
                if still_allowed is not None and time.monotonic() - checked >= self.keepalive:
                    checked = time.monotonic()
                    if not await still_allowed():
                        yield frame("ended", {"detail": ENDED})
                        return
                if event is _IDLE:
                    yield ": keepalive\n\n"
                    continue
                if subscription.overflowed:
                    yield frame("overflow", {"detail": "too many events queued; reconnect"})
                    return
                if event is RESYNC:
                    yield frame("resync", {"detail": "events may have been missed; reload"})
                elif await self._visible(event, account_id):
                    yield frame(str(event.get("type", "message")), event)
        finally:
            unsubscribe()
            self._open.discard(subscription)

    async def _visible(self, event: Event, account_id: int) -> bool:
        store_id = event.get("store_id")
        if not isinstance(store_id, int):
            return False
        return await self.owners.account_of(store_id) == account_id


def frame(kind: str, data: dict[str, Any]) -> str:
    """One SSE message: ``event:`` and a single-line JSON ``data:``."""
    kind = "".join(kind.split())  # a line break would end the field early
    return f"event: {kind}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"
