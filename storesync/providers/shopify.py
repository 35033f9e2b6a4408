"""The Shopify connector: a store's sales for a period, from the Admin GraphQL API.

:class:`ShopifyClient` fetches the orders created in a period (the period's dates in the store's
time zone, converted to exact UTC bounds) and folds them into a :class:`SalesTally` as they
arrive. Small periods are read page by page, each page as large as Shopify's 1000-point query
limit allows; periods with more than ``STORESYNC_SHOPIFY_BULK_THRESHOLD`` orders (counted first
with ``ordersCount``) run as a bulk operation whose JSONL result is streamed.

Shopify's search filter is inclusive at its bounds in practice, so every order is checked
against ``[start, end)`` here too, and orders are de-duplicated by id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx

from storesync.errors import RetryableError
from storesync.periods import Period
from storesync.providers.events import ProviderEvent, ProviderEvents, emit
from storesync.providers.figures import ShopifyFigures
from storesync.providers.http import RetryPolicy
from storesync.providers.sales import CustomerKey, SalesTally, compact_id, parse_order
from storesync.providers.shopify_api import (
    PROVIDER,
    ShopifyGraphQL,
    ShopifyGraphQLError,
    shop_url,
)
from storesync.providers.shopify_bulk import BulkPolling, run_bulk_query, stream_jsonl
from storesync.providers.shopify_pacing import CostBucket, bucket_for
from storesync.providers.shopify_queries import (
    ORDERS_COUNT,
    ORDERS_PAGE,
    SHOP_CURRENCY,
    bulk_orders_query,
    created_between,
    orders_page_size,
)
from storesync.settings import Settings

FetchMode = Literal["auto", "pages", "bulk"]


class ShopifyClient:
    """Reads one shop's orders. Cheap to create; share the ``httpx.AsyncClient``.

    ``bucket`` defaults to the process-wide estimate for this shop, so that every client of the
    same shop paces against the same points.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        shop_domain: str,
        access_token: str,
        events: ProviderEvents | None = None,
        bucket: CostBucket | None = None,
        retry: RetryPolicy | None = None,
        bulk_polling: BulkPolling | None = None,
    ) -> None:
        self.http = http
        self.settings = settings
        self.shop_domain = shop_domain
        self.events = events
        self.retry = retry or RetryPolicy()
        self.bulk_polling = bulk_polling or BulkPolling()
        # Shopify's bucket is per app and shop, whatever the API version: key by shop URL.
        self.api = ShopifyGraphQL(
            http,
            settings,
            shop_domain=shop_domain,
            access_token=access_token,
            bucket=bucket or bucket_for(shop_url(settings, shop_domain)),
            events=events,
            retry=self.retry,
        )
        self.page_size = orders_page_size()

    def __repr__(self) -> str:  # never show the token
        return f"ShopifyClient({self.shop_domain!r})"

    @property
    def throttled(self) -> int:
        """THROTTLED answers this client has received (0 when pacing works)."""
        return self.api.stats.throttled

    async def fetch_figures(
        self, period: Period, tz: ZoneInfo, *, mode: FetchMode = "auto"
    ) -> ShopifyFigures:
        """The period's :class:`ShopifyFigures` (currency from the orders, else from the shop)."""
        tally = await self.fetch_sales(period, tz, mode=mode)
        return tally.figures(tally.currency or await self.shop_currency())

    async def fetch_sales(
        self, period: Period, tz: ZoneInfo, *, mode: FetchMode = "auto"
    ) -> SalesTally:
        """A :class:`SalesTally` of the orders created in ``period`` (dates in ``tz``).

        ``mode`` "auto" counts the orders first and uses a bulk operation above the configured
        threshold; "pages" and "bulk" force one way.
        """
        start, end = period.utc_bounds(tz)
        search = created_between(start, end)
        expected = await self._expected_orders(search) if mode == "auto" else None
        if mode == "bulk" or (
            expected is not None and expected > self.settings.shopify_bulk_threshold
        ):
            return await self._bulk_tally(period, tz, search)
        return await self._tally(period, tz, self._paged_orders(search, expected))

    async def shop_currency(self) -> str:
        """The shop's currency code (``shop { currencyCode }``)."""
        data = await self.api.query(SHOP_CURRENCY)
        return str(data["shop"]["currencyCode"])

    async def count_orders(self, period: Period, tz: ZoneInfo, *, limit: int) -> tuple[int, str]:
        """Shopify's count of orders created in the period, up to ``limit``, and its precision.

        The count includes test and cancelled orders; it sizes the work, not the figures.
        """
        start, end = period.utc_bounds(tz)
        return await self._count(created_between(start, end), limit)

    async def _count(self, search: str, limit: int) -> tuple[int, str]:
        data = await self.api.query(ORDERS_COUNT, {"query": search, "limit": limit})
        result = data.get("ordersCount") or {}
        return int(result.get("count") or 0), str(result.get("precision") or "EXACT")

    async def _expected_orders(self, search: str) -> int | None:
        """Shopify's count of matching orders (up to just above the bulk threshold), or None
        when this API version has no ``ordersCount``."""
        try:
            count, _precision = await self._count(search, self.settings.shopify_bulk_threshold + 1)
        except ShopifyGraphQLError:
            return None  # paging always works, if more slowly
        return count

    async def _paged_orders(
        self, search: str, expected: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        after: str | None = None
        # A page's requested cost grows with ``first``, and the bucket must hold all of it
        # before the call: ask for no more orders than the count says exist (two spare for
        # the inclusive boundaries); later pages, if orders arrived meanwhile, use full pages.
        first = self.page_size if expected is None else max(1, min(self.page_size, expected + 2))
        while True:
            data = await self.api.query(
                ORDERS_PAGE, {"first": first, "after": after, "query": search}
            )
            first = self.page_size
            orders = data["orders"]
            for edge in orders.get("edges") or []:
                yield edge["node"]
            for node in orders.get("nodes") or []:
                yield node
            info = orders["pageInfo"]
            if not info.get("hasNextPage"):
                return
            after = info["endCursor"]

    async def _bulk_tally(self, period: Period, tz: ZoneInfo, search: str) -> SalesTally:
        url, _objects = await run_bulk_query(
            self.api, bulk_orders_query(search), polling=self.bulk_polling
        )
        if url is None:
            return SalesTally(period, tz)
        reason = ""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                # A cut-off download restarts from the first line with a fresh tally.
                return await self._tally(
                    period,
                    tz,
                    stream_jsonl(self.http, url, timeout=self.settings.http_timeout_seconds),
                )
            except (httpx.TransportError, json.JSONDecodeError) as exc:
                reason = type(exc).__name__
            if attempt < self.retry.attempts:
                await emit(
                    self.events,
                    ProviderEvent(
                        PROVIDER,
                        "retried",
                        f"the bulk result download failed ({reason}); downloading it again",
                        {"reason": reason, "attempt": attempt, "wait_seconds": 0},
                    ),
                )
        raise RetryableError(
            f"Shopify's bulk result could not be downloaded ({reason})", provider=PROVIDER
        )

    async def _tally(
        self, period: Period, tz: ZoneInfo, nodes: AsyncIterator[dict[str, Any]]
    ) -> SalesTally:
        start, end = period.utc_bounds(tz)
        tally = SalesTally(period, tz)
        seen: set[CustomerKey] = set()
        async for node in nodes:
            if "__parentId" in node:
                continue  # a child row of a nested connection; the query selects none
            order = parse_order(node)
            key = compact_id(order.id, "Order")
            if key in seen:
                continue
            seen.add(key)
            if order.counts and _within(order.created_at, start, end):
                tally.add(order)
        return tally


def _within(instant: datetime, start: datetime, end: datetime) -> bool:
    return start <= instant < end
