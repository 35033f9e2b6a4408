"""Small facts learned from providers and worth keeping between syncs (table ``provider_cache``).

For example a Klaviyo account's "Placed Order" metric id: looking it up costs API calls and
it never changes, so every sync after the first reads it from here. Values are small JSON
objects; keys are namespaced strings such as ``klaviyo:<account>:placed_order_metric``.
Keys never contain credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, select

from storesync.storage.dialect import upsert
from storesync.storage.engine import Database
from storesync.storage.models import ProviderCache as ProviderCacheRow

_table = cast(Table, ProviderCacheRow.__table__)


class KeyValueCache(Protocol):
    """What the connectors need of a cache: JSON objects by key."""

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def put(self, key: str, value: dict[str, Any]) -> None: ...


class ProviderCache:
    """:class:`KeyValueCache` in the database, shared by every worker."""

    def __init__(
        self, database: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.database = database
        self._clock = clock

    async def get(self, key: str) -> dict[str, Any] | None:
        """The value stored under ``key``, or None."""
        async with self.database.read() as conn:
            result = await conn.execute(select(_table.c.value).where(_table.c.key == key))
            value = result.scalar_one_or_none()
        return dict(value) if value is not None else None

    async def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key`` (replacing any previous value)."""
        now = self._clock()
        async with self.database.transaction(immediate=True) as conn:
            statement = upsert(
                self.database.dialect,
                _table,
                key=[_table.c.key],
                replace=["value"],
                set_={"updated_at": now},
            )
            await conn.execute(statement.values(key=key, value=value, updated_at=now))


class MemoryCache:
    """:class:`KeyValueCache` in a dict, for one-off scripts and tests."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        value = self.values.get(key)
        return dict(value) if value is not None else None

    async def put(self, key: str, value: dict[str, Any]) -> None:
        self.values[key] = dict(value)
