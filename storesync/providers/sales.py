"""The streaming accumulator of a store's sales: :class:`SalesTally`.

Orders are added one at a time as pages (or bulk JSONL lines) arrive and then forgotten, so a
sync's memory does not grow with the number of orders, only with the number of distinct
customers and days. Tallies of consecutive chunks of a period merge into the tally of the whole
period, and a tally round-trips through a compact JSON checkpoint, so a chunked sync that is
retried resumes after the last chunk it finished.

The definitions are those of :mod:`storesync.providers.figures`.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from storesync.periods import Period
from storesync.providers.figures import DailySales, ShopifyFigures, money

CHECKPOINT_VERSION = 1
ZERO = Decimal("0")

#: A customer: the number of a ``gid://shopify/Customer/<n>`` id (compact), else the raw id.
CustomerKey = int | str


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """The fields of one Shopify order that the figures need."""

    id: str
    created_at: datetime
    cancelled: bool
    test: bool
    currency: str
    total: Decimal  # currentTotalPriceSet.shopMoney.amount
    subtotal: Decimal  # subtotalPriceSet
    discounts: Decimal  # totalDiscountsSet
    refunded: Decimal  # totalRefundedSet
    customer: CustomerKey | None
    first_order: bool | None  # None: no customer, or Shopify said nothing about the order index

    @property
    def counts(self) -> bool:
        """Whether the order counts in the figures (test and cancelled orders do not)."""
        return not self.test and not self.cancelled


def _shop_money(node: Mapping[str, Any], name: str) -> tuple[Decimal, str | None]:
    money_bag = node.get(name) or {}
    shop = money_bag.get("shopMoney") or {}
    amount = shop.get("amount")
    # Shopify serialises amounts as decimal strings; str() also keeps an exact Decimal exact.
    return (Decimal(str(amount)) if amount is not None else ZERO), shop.get("currencyCode")


def compact_id(gid: str, kind: str) -> CustomerKey:
    """A compact key for a global id: the number of ``gid://shopify/<kind>/<n>``, else itself.

    Keys are kept for every distinct customer (and, during one fetch, every order), so an int
    instead of a 30-character string matters for large periods.
    """
    prefix = f"gid://shopify/{kind}/"
    if gid.startswith(prefix) and gid[len(prefix) :].isdigit():
        return int(gid[len(prefix) :])
    return gid


def _first_order(node: Mapping[str, Any]) -> bool | None:
    journey = node.get("customerJourneySummary") or {}
    index = journey.get("customerOrderIndex")
    if index is not None:
        return int(index) == 1
    customer = node.get("customer") or {}
    count = customer.get("numberOfOrders")
    if count is not None:
        return int(count) == 1  # UnsignedInt64 arrives as a string
    return None


def parse_order(node: Mapping[str, Any]) -> OrderRecord:
    """An :class:`OrderRecord` from an order node of the GraphQL answer or a bulk JSONL line."""
    total, currency = _shop_money(node, "currentTotalPriceSet")
    subtotal, _ = _shop_money(node, "subtotalPriceSet")
    discounts, _ = _shop_money(node, "totalDiscountsSet")
    refunded, _ = _shop_money(node, "totalRefundedSet")
    customer = node.get("customer") or {}
    customer_id = customer.get("id")
    return OrderRecord(
        id=str(node["id"]),
        created_at=datetime.fromisoformat(str(node["createdAt"]).replace("Z", "+00:00")),
        cancelled=node.get("cancelledAt") is not None,
        test=bool(node.get("test")),
        currency=currency or node.get("currencyCode") or "",
        total=total,
        subtotal=subtotal,
        discounts=discounts,
        refunded=refunded,
        customer=compact_id(str(customer_id), "Customer") if customer_id else None,
        first_order=_first_order(node) if customer_id else None,
    )


@dataclass(slots=True)
class SalesTally:
    """Running totals of the orders of one store over one period in time zone ``tz``."""

    period: Period
    tz: ZoneInfo
    currency: str | None = None
    orders: int = 0
    total_sales: Decimal = ZERO
    gross_sales: Decimal = ZERO
    discounts: Decimal = ZERO
    refunds: Decimal = ZERO
    daily_orders: dict[date, int] = field(default_factory=dict)
    daily_sales: dict[date, Decimal] = field(default_factory=dict)
    #: Customers with an order in the period that is their first order ever.
    new_customers: set[CustomerKey] = field(default_factory=set)
    #: Customers with an order in the period that is not their first (may overlap the above).
    repeat_customers: set[CustomerKey] = field(default_factory=set)

    def add(self, order: OrderRecord) -> None:
        """Count one order that belongs to the period (the caller filters and de-duplicates)."""
        if self.currency is None and order.currency:
            self.currency = order.currency
        self.orders += 1
        self.total_sales += order.total
        self.gross_sales += order.subtotal + order.discounts
        self.discounts += order.discounts
        self.refunds += order.refunded
        day = order.created_at.astimezone(self.tz).date()
        self.daily_orders[day] = self.daily_orders.get(day, 0) + 1
        self.daily_sales[day] = self.daily_sales.get(day, ZERO) + order.total
        if order.customer is not None and order.first_order is not None:
            target = self.new_customers if order.first_order else self.repeat_customers
            target.add(order.customer)

    def merge(self, other: SalesTally) -> None:
        """Add the tally of another (disjoint) part of the period into this one.

        A customer whose first order falls in one part and who orders again in another is
        counted once, as new: returning customers are computed only when figures are made.
        """
        if other.tz.key != self.tz.key:
            raise ValueError(f"cannot merge tallies in {other.tz.key} into {self.tz.key}")
        if self.currency is None:
            self.currency = other.currency
        elif other.currency is not None and other.currency != self.currency:
            raise ValueError(f"cannot merge {other.currency} sales into {self.currency} sales")
        self.period = Period(
            min(self.period.start, other.period.start), max(self.period.end, other.period.end)
        )
        self.orders += other.orders
        self.total_sales += other.total_sales
        self.gross_sales += other.gross_sales
        self.discounts += other.discounts
        self.refunds += other.refunds
        for day, count in other.daily_orders.items():
            self.daily_orders[day] = self.daily_orders.get(day, 0) + count
        for day, amount in other.daily_sales.items():
            self.daily_sales[day] = self.daily_sales.get(day, ZERO) + amount
        self.new_customers |= other.new_customers
        self.repeat_customers |= other.repeat_customers

    def figures(self, currency: str | None = None) -> ShopifyFigures:
        """The period's :class:`ShopifyFigures`, with every day of the period in ``daily``.

        ``currency`` is the shop's currency; it defaults to the one the orders carried.
        """
        code = currency or self.currency
        if not code:
            raise ValueError("the shop's currency is unknown: pass it (no order carried one)")
        return ShopifyFigures(
            currency=code,
            orders=self.orders,
            total_sales=money(self.total_sales),
            gross_sales=money(self.gross_sales),
            discounts=money(self.discounts),
            refunds=money(self.refunds),
            new_customers=len(self.new_customers),
            returning_customers=len(self.repeat_customers - self.new_customers),
            daily=tuple(
                DailySales(
                    day, self.daily_orders.get(day, 0), money(self.daily_sales.get(day, ZERO))
                )
                for day in self.period.dates()
            ),
        )

    def to_checkpoint(self) -> dict[str, Any]:
        """A compact, JSON-serialisable snapshot (see :meth:`from_checkpoint`)."""
        return {
            "v": CHECKPOINT_VERSION,
            "period": [self.period.start.isoformat(), self.period.end.isoformat()],
            "tz": self.tz.key,
            "currency": self.currency,
            "orders": self.orders,
            "total_sales": str(self.total_sales),
            "gross_sales": str(self.gross_sales),
            "discounts": str(self.discounts),
            "refunds": str(self.refunds),
            "daily": {
                day.isoformat(): [count, str(self.daily_sales.get(day, ZERO))]
                for day, count in sorted(self.daily_orders.items())
            },
            "new": pack_ids(self.new_customers),
            "repeat": pack_ids(self.repeat_customers),
        }

    @classmethod
    def from_checkpoint(cls, data: Mapping[str, Any]) -> SalesTally:
        """Rebuild a tally from :meth:`to_checkpoint`'s output."""
        if data.get("v") != CHECKPOINT_VERSION:
            raise ValueError(f"unsupported sales checkpoint version {data.get('v')!r}")
        start, end = (date.fromisoformat(d) for d in data["period"])
        daily = {date.fromisoformat(day): value for day, value in data["daily"].items()}
        return cls(
            period=Period(start, end),
            tz=ZoneInfo(data["tz"]),
            currency=data["currency"],
            orders=int(data["orders"]),
            total_sales=Decimal(data["total_sales"]),
            gross_sales=Decimal(data["gross_sales"]),
            discounts=Decimal(data["discounts"]),
            refunds=Decimal(data["refunds"]),
            daily_orders={day: int(v[0]) for day, v in daily.items()},
            daily_sales={day: Decimal(v[1]) for day, v in daily.items()},
            new_customers=unpack_ids(data["new"]),
            repeat_customers=unpack_ids(data["repeat"]),
        )


def pack_ids(ids: Iterable[CustomerKey]) -> dict[str, Any]:
    """Customer keys as compact JSON: sorted numeric ids delta-encoded, zlib'd, base64'd."""
    numbers = sorted(i for i in ids if isinstance(i, int))
    others = sorted(i for i in ids if isinstance(i, str))
    deltas = [b - a for a, b in zip([0, *numbers], numbers, strict=False)]
    raw = ",".join(map(str, deltas)).encode()
    packed = base64.b64encode(zlib.compress(raw, 9)).decode("ascii") if raw else ""
    return {"n": len(numbers), "z": packed, "s": others}


def unpack_ids(data: Mapping[str, Any]) -> set[CustomerKey]:
    """Inverse of :func:`pack_ids`."""
    ids: set[CustomerKey] = set(data.get("s", []))
    if data.get("z"):
        running = 0
        for delta in zlib.decompress(base64.b64decode(data["z"])).decode().split(","):
            running += int(delta)
            ids.add(running)
    if sum(1 for i in ids if isinstance(i, int)) != int(data.get("n", 0)):
        raise ValueError("corrupt sales checkpoint: customer ids do not add up")
    return ids
