"""Change events (job queued, progress, completed, failed; cache updated) for live clients.

Writers call :func:`publish` inside their transaction. On PostgreSQL the event is a
``NOTIFY storesync_events`` carrying JSON, delivered at commit to every listening process on
any machine (see :func:`relay_notifications`). On SQLite, which has no channel between
processes, it is kept on the connection and handed to this process's :class:`EventBus` right
after the commit (the single-machine default runs the worker inside ``storesync serve``).
Either way nobody hears of a change that was rolled back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "storesync_events"
PENDING = "storesync_pending_events"

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to this process's subscribers (such as open SSE streams)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def deliver(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("an event subscriber failed")

    def deliver_json(self, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("ignoring a malformed event payload")
            return
        self.deliver(event)


async def publish(conn: AsyncConnection, *events: Event) -> None:
    """Announce ``events`` when (and only if) the caller's transaction commits."""
    if not events:
        return
    if conn.dialect.name == "postgresql":
        # One round trip for any number of events.
        await conn.execute(
            text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"),
            {"channel": EVENTS_CHANNEL, "payloads": [json.dumps(e, default=str) for e in events]},
        )
    else:
        conn.info.setdefault(PENDING, []).extend(events)


def take_pending(conn: AsyncConnection) -> list[Event]:
    """The events a committed SQLite transaction published (cleared)."""
    pending: list[Event] = conn.info.pop(PENDING, [])
    return pending
