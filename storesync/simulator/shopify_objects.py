"""Resolvers: Python objects whose attribute names are the Shopify schema's field names.

graphql-core's default resolver reads ``getattr(source, field)`` (calling it with the
arguments when it is a method), so each GraphQL type maps to a small class or dict here. The
same objects feed bulk operations' JSONL rows (:mod:`storesync.simulator.shopify_bulk`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError

from storesync.simulator.data import Amounts, StoreData
from storesync.simulator.shopify_search import (
    OrderFilter,
    decode_cursor,
    encode_cursor,
    page,
    parse_search,
    select,
)

if TYPE_CHECKING:
    from storesync.simulator.shopify_bulk import BulkOperations

Info = Any  # graphql's GraphQLResolveInfo (generic in graphql-core 3.3, not in 3.2)


def wire_amount(cents: int) -> str:
    """A Decimal amount as Shopify writes it: no trailing zeros beyond one ("12.0", "12.5")."""
    whole, frac = divmod(cents, 100)
    text = f"{whole}.{frac:02d}"
    return text[:-1] if text.endswith("0") else text


def wire_time(epoch: float) -> str:
    """A DateTime as Shopify writes it (UTC, seconds, ``Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(slots=True)
class ShopContext:
    """Per-request state the resolvers need."""

    data: StoreData
    now: float
    max_page_size: int
    visible_since: int | None  # set when the token lacks read_all_orders
    bulk: BulkOperations
    base_url: str
    search_warnings: list[dict[str, Any]] = field(default_factory=list)
    filters: list[OrderFilter] = field(default_factory=list)


class OrderNode:
    """An ``Order``."""

    graphql_type = "Order"
    __slots__ = ("_amounts", "_data", "_index")

    def __init__(self, data: StoreData, index: int) -> None:
        self._data = data
        self._index = index
        self._amounts: Amounts | None = None

    def _bag(self, cents: int) -> dict[str, Any]:
        data = self._data
        code, rate = data.presentment[data.orders.presentment[self._index]]
        shown = cents
        if rate != 1:
            shown = int((Decimal(cents) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        return {
            "shopMoney": {"amount": wire_amount(cents), "currencyCode": data.spec.currency},
            "presentmentMoney": {"amount": wire_amount(shown), "currencyCode": code},
        }

    @property
    def money(self) -> Amounts:
        if self._amounts is None:
            self._amounts = self._data.amounts(self._index)
        return self._amounts

    @property
    def id(self) -> str:
        return self._data.order_gid(self._index)

    @property
    def legacyResourceId(self) -> str:
        return str(self._data.id_base + self._index)

    @property
    def name(self) -> str:
        return f"#{1001 + self._index}"

    @property
    def createdAt(self) -> str:
        return wire_time(self._data.orders.created[self._index])

    @property
    def processedAt(self) -> str:
        return self.createdAt

    @property
    def updatedAt(self) -> str:
        return wire_time(self._data.orders.updated[self._index])

    @property
    def cancelledAt(self) -> str | None:
        cancelled = self._data.orders.cancelled[self._index]
        return wire_time(cancelled) if cancelled else None

    @property
    def cancelReason(self) -> str | None:
        return self._data.cancel_reason(self._index)

    @property
    def closed(self) -> bool:
        return bool(self._data.orders.cancelled[self._index])

    @property
    def test(self) -> bool:
        return self._data.is_test(self._index)

    @property
    def displayFinancialStatus(self) -> str:
        return self._data.financial_status(self._index)

    @property
    def currencyCode(self) -> str:
        return self._data.spec.currency

    @property
    def presentmentCurrencyCode(self) -> str:
        return self._data.presentment[self._data.orders.presentment[self._index]][0]

    @property
    def totalPriceSet(self) -> dict[str, Any]:
        return self._bag(self.money.total)

    @property
    def currentTotalPriceSet(self) -> dict[str, Any]:
        return self._bag(self.money.current_total)

    @property
    def subtotalPriceSet(self) -> dict[str, Any]:
        return self._bag(self.money.subtotal)

    @property
    def currentSubtotalPriceSet(self) -> dict[str, Any]:
        return self._bag(self.money.current_subtotal)

    @property
    def totalDiscountsSet(self) -> dict[str, Any]:
        return self._bag(self.money.discounts)

    @property
    def currentTotalDiscountsSet(self) -> dict[str, Any]:
        return self._bag(self.money.current_discounts)

    @property
    def totalRefundedSet(self) -> dict[str, Any]:
        return self._bag(self.money.refunded)

    @property
    def netPaymentSet(self) -> dict[str, Any]:
        return self._bag(self.money.net_payment)

    @property
    def totalTaxSet(self) -> dict[str, Any]:
        return self._bag(self.money.tax)

    @property
    def currentTotalTaxSet(self) -> dict[str, Any]:
        return self._bag(self.money.current_tax)

    @property
    def totalShippingPriceSet(self) -> dict[str, Any]:
        return self._bag(self.money.shipping)

    @property
    def customer(self) -> dict[str, Any] | None:
        number = self._data.orders.customer[self._index]
        return customer_object(self._data, number) if number else None

    @property
    def customerJourneySummary(self) -> dict[str, Any]:
        index = self._data.orders.order_index[self._index]
        return {"customerOrderIndex": index or None, "daysToConversion": 1, "ready": True}


def customer_object(data: StoreData, number: int) -> dict[str, Any]:
    """A ``Customer``; ``numberOfOrders`` is today's count (it changes as they buy again)."""
    return {
        "__typename": "Customer",
        "id": data.customer_gid(number),
        "legacyResourceId": str(data.customer_base + number),
        "numberOfOrders": str(data.customer_orders[number]),
    }


def shop_object(data: StoreData, now: float) -> dict[str, Any]:
    """The ``Shop``."""
    local = datetime.fromtimestamp(now, data.tz)
    offset = local.utcoffset()
    return {
        "__typename": "Shop",
        "id": f"gid://shopify/Shop/{data.id_base // 1_000_000}",
        "name": data.spec.name,
        "myshopifyDomain": data.spec.shop_domain,
        "currencyCode": data.spec.currency,
        "ianaTimezone": data.spec.timezone,
        "timezoneAbbreviation": local.tzname() or "UTC",
        "timezoneOffsetMinutes": int(offset.total_seconds() // 60) if offset else 0,
    }


def parse_gid(gid: str) -> tuple[str, int]:
    """(type, number) of a ``gid://shopify/Type/123`` id, or a GraphQL error like Shopify's."""
    parts = gid.split("/")
    if len(parts) != 5 or parts[:3] != ["gid:", "", "shopify"] or not parts[4].isdigit():
        raise GraphQLError(f"Invalid global id '{gid}'")
    return parts[3], int(parts[4])


class QueryRoot:
    """``QueryRoot``."""

    def __init__(self, ctx: ShopContext) -> None:
        self.ctx = ctx

    def _visible(self, index: int) -> bool:
        since = self.ctx.visible_since
        return since is None or self.ctx.data.orders.created[index] >= since

    def orders(
        self,
        _info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        reverse: bool = False,
        sortKey: str = "PROCESSED_AT",
        query: str | None = None,
        savedSearchId: str | None = None,
    ) -> dict[str, Any]:
        ctx, data = self.ctx, self.ctx.data
        if first is None and last is None:
            raise GraphQLError("you must provide one of first or last")
        for name, value in (("first", first), ("last", last)):
            if value is not None and not 0 <= value <= ctx.max_page_size:
                raise GraphQLError(
                    f"The value of the argument `{name}` must be between 0 and {ctx.max_page_size}."
                )
        flt = parse_search(query, data.tz)
        ctx.filters.append(flt)
        if flt.warnings:
            ctx.search_warnings.append(
                {"path": ["orders"], "query": query, "warnings": flt.warnings}
            )
        sel = select(data, flt, sortKey, reverse, ctx.visible_since)
        after_index = decode_cursor(data, after) if after else None
        before_index = decode_cursor(data, before) if before else None
        indices, has_next, has_previous = page(sel, first, last, after_index, before_index)
        nodes = [OrderNode(data, i) for i in indices]
        cursors = [encode_cursor(data, i, sortKey) for i in indices]
        return {
            "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)],
            "nodes": nodes,
            "pageInfo": {
                "hasNextPage": has_next,
                "hasPreviousPage": has_previous,
                "startCursor": cursors[0] if cursors else None,
                "endCursor": cursors[-1] if cursors else None,
            },
        }

    def ordersCount(
        self,
        _info: Info,
        query: str | None = None,
        savedSearchId: str | None = None,
        limit: int | None = 10000,
    ) -> dict[str, Any]:
        flt = parse_search(query, self.ctx.data.tz)
        self.ctx.filters.append(flt)
        count = select(self.ctx.data, flt, "ID", False, self.ctx.visible_since).count(limit)
        if limit is not None and count > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": count, "precision": "EXACT"}

    def order(self, info: Info, id: str) -> OrderNode | None:
        node = self.node(info, id)
        return node if isinstance(node, OrderNode) else None

    def node(self, _info: Info, id: str) -> Any:
        kind, number = parse_gid(id)
        data = self.ctx.data
        if kind == "Order":
            index = data.order_index_of(number)
            return OrderNode(data, index) if index is not None and self._visible(index) else None
        if kind == "Customer":
            customer = number - data.customer_base
            return (
                customer_object(data, customer)
                if 0 < customer < len(data.customer_orders)
                else None
            )
        if kind == "BulkOperation":
            return self.ctx.bulk.node(self.ctx, number)
        if kind == "Shop":
            return shop_object(data, self.ctx.now)
        return None

    def nodes(self, info: Info, ids: list[str]) -> list[Any]:
        return [self.node(info, i) for i in ids]

    def shop(self, _info: Info) -> dict[str, Any]:
        return shop_object(self.ctx.data, self.ctx.now)

    def currentBulkOperation(self, _info: Info, type: str = "QUERY") -> Any:
        return self.ctx.bulk.current(self.ctx) if type == "QUERY" else None


class MutationRoot:
    """``Mutation``: bulk operations only."""

    def __init__(self, ctx: ShopContext) -> None:
        self.ctx = ctx

    def bulkOperationRunQuery(
        self, _info: Info, query: str, groupObjects: bool = True
    ) -> dict[str, Any]:
        return self.ctx.bulk.run(self.ctx, query)

    def bulkOperationCancel(self, _info: Info, id: str) -> dict[str, Any]:
        kind, number = parse_gid(id)
        if kind != "BulkOperation":
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
            }
        return self.ctx.bulk.cancel(self.ctx, number)
