"""The dashboard cache: ``store_sync_cache`` rows, their freshness, and the dashboard JSON.

One row per (store, data type, period), replaced on refresh. Data types:

- ``shopify``: :class:`~storesync.providers.figures.ShopifyFigures` as JSON
- ``klaviyo``: :class:`~storesync.providers.figures.KlaviyoFigures` as JSON

Freshness (SPEC "Freshness"): a period that ended more than ``attribution_window_days`` before
today (in the store's time zone) is *final*: ``expires_at`` is NULL and only a webhook (which
sets ``stale``) or a forced refresh replaces it. A more recent period expires
``cache_ttl_seconds`` after its sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storesync.periods import Period, today_in
from storesync.settings import Settings
from storesync.storage.dialect import upsert
from storesync.storage.engine import Database
from storesync.storage.models import CacheEntry, table_of

CACHE = table_of(CacheEntry)
SHOPIFY = "shopify"
KLAVIYO = "klaviyo"


class Freshness(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    MISSING = "missing"


def expires_at(
    settings: Settings, period: Period, tz: ZoneInfo, synced_at: datetime
) -> datetime | None:
    """When a sync of ``period`` made at ``synced_at`` stops being fresh (None: final)."""
    settled_before = today_in(tz, synced_at) - timedelta(days=settings.attribution_window_days)
    if period.end < settled_before:
        return None
    return synced_at + timedelta(seconds=settings.cache_ttl_seconds)


#: Report calls one Klaviyo refresh of a period costs: a campaign and a flow report.
KLAVIYO_REPORTS_PER_REFRESH = 2
#: The share of a Klaviyo account's daily report budget that scheduled refreshes may plan on;
#: the rest is left for forced refreshes and webhooks.
KLAVIYO_SCHEDULED_SHARE = 0.9


def klaviyo_refresh_seconds(settings: Settings, periods_per_store: int) -> float:
    """How long Klaviyo figures of a recent period stay fresh.

    Klaviyo allows ``klaviyo_daily_report_budget`` report calls a day per account (225).
    Refreshing a store's recent periods every ``cache_ttl_seconds`` would need
    ``2 × periods × 86,400 / ttl`` calls: 576 a day for 3 periods at 15 minutes, and the
    budget would run out by mid-morning. So Klaviyo's figures stay fresh for as long as the
    budget needs (2,560 s for 3 periods), never less than the TTL; Shopify's keep the TTL.
    """
    budget = settings.klaviyo_daily_report_budget * KLAVIYO_SCHEDULED_SHARE
    if budget <= 0:
        return float(settings.cache_ttl_seconds)
    paced = 86_400 * KLAVIYO_REPORTS_PER_REFRESH * max(1, periods_per_store) / budget
    return max(float(settings.cache_ttl_seconds), paced)


def klaviyo_expires_at(
    settings: Settings, period: Period, tz: ZoneInfo, synced_at: datetime, periods_per_store: int
) -> datetime | None:
    """:func:`expires_at` for Klaviyo figures, paced by the daily report budget."""
    if expires_at(settings, period, tz, synced_at) is None:
        return None
    return synced_at + timedelta(seconds=klaviyo_refresh_seconds(settings, periods_per_store))


@dataclass(frozen=True, slots=True)
class CacheRow:
    store_id: int
    data_type: str
    period: Period
    source: str
    payload: dict[str, Any]
    synced_at: datetime
    expires_at: datetime | None
    stale: bool
    job_id: int | None

    def is_fresh(self, now: datetime) -> bool:
        return not self.stale and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class CachedPeriod:
    """What the cache holds for one store and period."""

    period: Period
    rows: dict[str, CacheRow]

    def freshness(self, now: datetime, *, needs_klaviyo: bool) -> Freshness:
        wanted = [SHOPIFY, KLAVIYO] if needs_klaviyo else [SHOPIFY]
        if SHOPIFY not in self.rows:
            return Freshness.MISSING
        present = [self.rows[t] for t in wanted if t in self.rows]
        if len(present) < len(wanted) or not all(r.is_fresh(now) for r in present):
            return Freshness.STALE
        return Freshness.FRESH

    @property
    def synced_at(self) -> datetime | None:
        return min((r.synced_at for r in self.rows.values()), default=None)


async def write_rows(
    conn: AsyncConnection,
    dialect: str,
    *,
    store_id: int,
    period: Period,
    payloads: dict[str, dict[str, Any]],
    synced_at: datetime,
    expires: datetime | None,
    job_id: int | None,
    source: str = "sync",
) -> None:
    """Insert or replace the rows for ``payloads`` (inside the caller's transaction)."""
    if not payloads:
        return
    rows = [
        {
            "store_id": store_id,
            "data_type": data_type,
            "period_start": period.start,
            "period_end": period.end,
            "source": source,
            "payload": payload,
            "synced_at": synced_at,
            "expires_at": expires,
            "stale": False,
            "job_id": job_id,
        }
        for data_type, payload in payloads.items()
    ]
    statement = upsert(
        dialect,
        CACHE,
        key=["store_id", "data_type", "period_start", "period_end"],
        replace=["source", "payload", "synced_at", "expires_at", "job_id"],
        set_={"stale": False},
    )
    await conn.execute(statement.values(rows))


async def mark_stale(conn: AsyncConnection, store_id: int, days: list[date]) -> int:
    """Mark stale every cached period of the store that contains any of ``days`` (inside the
    caller's transaction); returns how many rows were marked."""
    if not days:
        return 0
    touches = or_(*(and_(CACHE.c.period_start <= d, CACHE.c.period_end >= d) for d in days))
    result = await conn.execute(
        update(CACHE).where(CACHE.c.store_id == store_id, touches).values(stale=True)
    )
    return int(result.rowcount)


class Cache:
    """Reads cached periods."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def get(self, store_id: int, period: Period) -> CachedPeriod:
        """What the cache holds for one store and period (empty when nothing)."""
        return (await self.get_many(store_id, [period]))[period]

    async def get_many(self, store_id: int, periods: list[Period]) -> dict[Period, CachedPeriod]:
        """What the cache holds for each of ``periods`` of one store, in one query."""
        condition = and_(
            CACHE.c.store_id == store_id,
            or_(
                *(
                    and_(CACHE.c.period_start == p.start, CACHE.c.period_end == p.end)
                    for p in periods
                )
            ),
        )
        found: dict[Period, dict[str, CacheRow]] = {p: {} for p in periods}
        async with self.database.read() as conn:
            for row in await self._rows(conn, condition, limit=None):
                found.setdefault(row.period, {})[row.data_type] = row
        return {p: CachedPeriod(p, rows) for p, rows in found.items()}

    async def list_rows(self, *, store_id: int | None = None, limit: int = 100) -> list[CacheRow]:
        """Rows newest first (the seed's "Ver cache")."""
        condition = CACHE.c.store_id == store_id if store_id is not None else None
        async with self.database.read() as conn:
            return await self._rows(conn, condition, limit=limit)

    async def recent(self, since: date) -> list[CacheRow]:
        """Rows of periods ending on or after ``since`` (what the scheduler looks at)."""
        async with self.database.read() as conn:
            return await self._rows(conn, CACHE.c.period_end >= since, limit=None)

    async def count(self) -> int:
        async with self.database.read() as conn:
            return int(await conn.scalar(select(func.count()).select_from(CACHE)) or 0)

    async def _rows(
        self, conn: AsyncConnection, condition: Any, limit: int | None = 100
    ) -> list[CacheRow]:
        query = select(CACHE).order_by(CACHE.c.synced_at.desc(), CACHE.c.id.desc())
        if condition is not None:
            query = query.where(condition)
        if limit is not None:
            query = query.limit(limit)
        return [
            CacheRow(
                store_id=int(r["store_id"]),
                data_type=r["data_type"],
                period=Period(r["period_start"], r["period_end"]),
                source=r["source"],
                payload=r["payload"],
                synced_at=r["synced_at"],
                expires_at=r["expires_at"],
                stale=bool(r["stale"]),
                job_id=r["job_id"],
            )
            for r in (await conn.execute(query)).mappings()
        ]


def dashboard_json(
    *,
    store_id: int,
    currency: str | None,
    current: CachedPeriod,
    previous: CachedPeriod | None,
    now: datetime,
    needs_klaviyo: bool,
) -> dict[str, Any]:
    """The dashboard document pinned by SPEC (``storesync cache show --json``, the API)."""
    shopify = current.rows.get(SHOPIFY)
    klaviyo = current.rows.get(KLAVIYO)
    freshness = current.freshness(now, needs_klaviyo=needs_klaviyo)
    document: dict[str, Any] = {
        "store_id": store_id,
        "period_start": current.period.start.isoformat(),
        "period_end": current.period.end.isoformat(),
        "currency": (shopify.payload.get("currency") if shopify else None) or currency,
        "synced_at": current.synced_at.isoformat() if current.synced_at else None,
        "shopify": shopify.payload if shopify else None,
        "klaviyo": klaviyo.payload if klaviyo else None,
        "summary": summary(current),
        "previous": None,
        "meta": {
            "synced_at": current.synced_at.isoformat() if current.synced_at else None,
            "stale": freshness is not Freshness.FRESH,
            "final": bool(current.rows)
            and all(r.expires_at is None for r in current.rows.values()),
            "missing": [
                t
                for t in ([SHOPIFY, KLAVIYO] if needs_klaviyo else [SHOPIFY])
                if t not in current.rows
            ],
        },
    }
    if previous is not None and SHOPIFY in previous.rows:
        document["previous"] = {
            "period_start": previous.period.start.isoformat(),
            "period_end": previous.period.end.isoformat(),
            "summary": summary(previous),
        }
    return document


def summary(cached: CachedPeriod) -> dict[str, Any] | None:
    """Total sales, orders, AOV, attributed revenue and its share of sales."""
    shopify = cached.rows.get(SHOPIFY)
    if shopify is None:
        return None
    total = Decimal(shopify.payload["total_sales"])
    klaviyo = cached.rows.get(KLAVIYO)
    attributed = Decimal(klaviyo.payload["attributed_revenue"]) if klaviyo else None
    share = None
    if attributed is not None and total > 0:
        share = str((attributed / total).quantize(Decimal("0.0001"), ROUND_HALF_UP))
    return {
        "total_sales": str(total),
        "orders": shopify.payload["orders"],
        "aov": shopify.payload["aov"],
        "attributed_revenue": str(attributed) if attributed is not None else None,
        "attributed_share": share,
    }
