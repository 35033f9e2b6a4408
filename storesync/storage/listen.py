"""PostgreSQL LISTEN/NOTIFY on a dedicated connection that survives restarts.

SQLAlchemy's pool hands connections in and out, which does not suit a connection that must stay
subscribed, so the listener keeps its own asyncpg connection and re-subscribes after any loss.
Callers are told about a reconnect (``on_reconnect``) because notifications sent while the
connection was down are lost: they should re-check state then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from storesync.storage.engine import Database
from storesync.storage.events import EVENTS_CHANNEL

log = logging.getLogger(__name__)

Callback = Callable[[str], None]


def asyncpg_dsn(database: Database) -> str:
    """The engine's URL as a DSN asyncpg accepts."""
    return database.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """Subscribes to channels and calls ``callback(payload)`` for every notification."""

    def __init__(
        self,
        database: Database,
        channels: dict[str, Callback],
        *,
        on_reconnect: Callable[[], None] | None = None,
        retry_seconds: float = 1.0,
    ) -> None:
        self._dsn = asyncpg_dsn(database)
        self._channels = channels
        self._on_reconnect = on_reconnect
        self._retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        """Start listening; returns once subscribed (or after the first failed attempt)."""
        self._task = asyncio.create_task(self._run(), name="pg-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        first = True
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot reach PostgreSQL to listen for notifications: %s", exc)
                await asyncio.sleep(self._retry_seconds)
                continue
            try:
                conn.add_termination_listener(_on_termination(lost))
                for channel, callback in self._channels.items():
                    await conn.add_listener(channel, _adapt(callback))
                self.connected.set()
                if not first and self._on_reconnect is not None:
                    self._on_reconnect()
                first = False
                while not lost.is_set():
                    # Also probe the connection: a silently dead socket never terminates.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=10)
                    if not lost.is_set():
                        try:
                            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=5)
                        except (OSError, TimeoutError, asyncpg.PostgresError):
                            lost.set()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("lost the PostgreSQL notification connection: %s", exc)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
            await asyncio.sleep(self._retry_seconds)


def _adapt(callback: Callback) -> Callable[[object, int, str, str], None]:
    def handler(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        callback(payload)

    return handler


def _on_termination(lost: asyncio.Event) -> Callable[[object], None]:
    def handler(_conn: object) -> None:
        lost.set()

    return handler


def event_relay(
    database: Database, *, on_reconnect: Callable[[], None] | None = None
) -> Listener | None:
    """On PostgreSQL, a listener feeding ``storesync_events`` into ``database.events``.

    Start it in any process that serves live events; ``on_reconnect`` hears when events may
    have been lost. On SQLite events are delivered in-process and no relay is needed (None).
    """
    if not database.is_postgres:
        return None
    return Listener(
        database, {EVENTS_CHANNEL: database.events.deliver_json}, on_reconnect=on_reconnect
    )
