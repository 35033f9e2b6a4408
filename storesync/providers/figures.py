"""The figures a sync produces, shared by the connectors, the simulator's oracle and the cache.

Definitions (they are part of the product; docs/metrics.md repeats them):

Shopify, for orders created in the period (dates inclusive, in the store's time zone), with test
orders and cancelled orders (``cancelledAt`` set) excluded:

- ``orders``: number of orders.
- ``total_sales``: sum of ``currentTotalPriceSet.shopMoney.amount`` (after edits and refunds).
- ``gross_sales``: sum of ``subtotalPriceSet`` + ``totalDiscountsSet`` (before discounts).
- ``discounts``: sum of ``totalDiscountsSet``.
- ``refunds``: sum of ``totalRefundedSet``.
- ``aov``: ``total_sales / orders`` rounded half-up to cents; 0 with no orders.
- ``new_customers``: distinct customers with an order in the period that is their first order
  (``customerJourneySummary.customerOrderIndex`` = 1; when Shopify gives no index, the
  customer's ``numberOfOrders`` = 1); ``returning_customers``: the other distinct customers with
  an order in the period. The order index is stable over time, unlike the customer's current
  ``numberOfOrders``. Orders without a customer count in neither.
- ``daily``: one entry per calendar day of the period in the store's time zone (days without
  orders included) with that day's ``orders`` and ``total_sales``.

Klaviyo, from the Reporting API with ``conversion_metric_id`` = the "Placed Order" metric, for
the period's exact bounds: per campaign and per flow the sums over its messages of
``recipients, delivered, opens_unique, clicks_unique, conversions, unsubscribes`` and
``conversion_value`` (money, rounded half-up to cents); ``open_rate = opens_unique / delivered``
and ``click_rate = clicks_unique / delivered`` (0 when nothing was delivered), rounded to four
places. ``campaign_revenue`` and ``flow_revenue`` are the sums of ``conversion_value``;
``attributed_revenue`` is their sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
RATE_PLACES = Decimal("0.0001")


def money(value: Decimal | str | int | float) -> Decimal:
    """Convert to a Decimal rounded half-up to cents (floats via their shortest repr)."""
    if isinstance(value, float):
        value = repr(value)
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def rate(numerator: int, denominator: int) -> Decimal:
    """A fraction 0–1 rounded to four places; 0 when the denominator is 0."""
    if denominator <= 0:
        return Decimal("0.0000")
    return (Decimal(numerator) / Decimal(denominator)).quantize(RATE_PLACES, ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class DailySales:
    """One day of the store's sales, in the store's time zone."""

    day: date
    orders: int
    total_sales: Decimal


@dataclass(frozen=True, slots=True)
class ShopifyFigures:
    """Sales figures for one store and period."""

    currency: str
    orders: int
    total_sales: Decimal
    gross_sales: Decimal
    discounts: Decimal
    refunds: Decimal
    new_customers: int
    returning_customers: int
    daily: tuple[DailySales, ...]

    @property
    def aov(self) -> Decimal:
        """Average order value: total sales / orders, 0 with no orders."""
        if self.orders == 0:
            return Decimal("0.00")
        return (self.total_sales / self.orders).quantize(CENT, rounding=ROUND_HALF_UP)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form; money as strings."""
        return {
            "currency": self.currency,
            "orders": self.orders,
            "total_sales": str(self.total_sales),
            "gross_sales": str(self.gross_sales),
            "discounts": str(self.discounts),
            "refunds": str(self.refunds),
            "aov": str(self.aov),
            "new_customers": self.new_customers,
            "returning_customers": self.returning_customers,
            "daily": [
                {"date": d.day.isoformat(), "orders": d.orders, "total_sales": str(d.total_sales)}
                for d in self.daily
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShopifyFigures:
        """Inverse of :meth:`to_json`."""
        return cls(
            currency=data["currency"],
            orders=int(data["orders"]),
            total_sales=Decimal(data["total_sales"]),
            gross_sales=Decimal(data["gross_sales"]),
            discounts=Decimal(data["discounts"]),
            refunds=Decimal(data["refunds"]),
            new_customers=int(data["new_customers"]),
            returning_customers=int(data["returning_customers"]),
            daily=tuple(
                DailySales(
                    date.fromisoformat(d["date"]), int(d["orders"]), Decimal(d["total_sales"])
                )
                for d in data["daily"]
            ),
        )


@dataclass(frozen=True, slots=True)
class MessageStats:
    """Reporting figures of one campaign or one flow over a period."""

    id: str
    name: str
    channel: str  # "email", "sms", or "mixed" for a flow with both
    recipients: int
    delivered: int
    opens_unique: int
    clicks_unique: int
    conversions: int
    conversion_value: Decimal
    unsubscribes: int

    @property
    def open_rate(self) -> Decimal:
        return rate(self.opens_unique, self.delivered)

    @property
    def click_rate(self) -> Decimal:
        return rate(self.clicks_unique, self.delivered)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "channel": self.channel,
            "recipients": self.recipients,
            "delivered": self.delivered,
            "opens_unique": self.opens_unique,
            "open_rate": str(self.open_rate),
            "clicks_unique": self.clicks_unique,
            "click_rate": str(self.click_rate),
            "conversions": self.conversions,
            "conversion_value": str(self.conversion_value),
            "unsubscribes": self.unsubscribes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MessageStats:
        return cls(
            id=data["id"],
            name=data["name"],
            channel=data["channel"],
            recipients=int(data["recipients"]),
            delivered=int(data["delivered"]),
            opens_unique=int(data["opens_unique"]),
            clicks_unique=int(data["clicks_unique"]),
            conversions=int(data["conversions"]),
            conversion_value=Decimal(data["conversion_value"]),
            unsubscribes=int(data["unsubscribes"]),
        )


@dataclass(frozen=True, slots=True)
class KlaviyoFigures:
    """Campaign and flow performance for one store's Klaviyo account and period.

    ``campaigns`` and ``flows`` are sorted by id so that two computations compare equal.
    """

    campaigns: tuple[MessageStats, ...] = field(default_factory=tuple)
    flows: tuple[MessageStats, ...] = field(default_factory=tuple)

    @property
    def campaign_revenue(self) -> Decimal:
        return sum((c.conversion_value for c in self.campaigns), Decimal("0.00"))

    @property
    def flow_revenue(self) -> Decimal:
        return sum((f.conversion_value for f in self.flows), Decimal("0.00"))

    @property
    def attributed_revenue(self) -> Decimal:
        return self.campaign_revenue + self.flow_revenue

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_revenue": str(self.campaign_revenue),
            "flow_revenue": str(self.flow_revenue),
            "attributed_revenue": str(self.attributed_revenue),
            "campaigns": [c.to_json() for c in self.campaigns],
            "flows": [f.to_json() for f in self.flows],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KlaviyoFigures:
        return cls(
            campaigns=tuple(MessageStats.from_json(c) for c in data["campaigns"]),
            flows=tuple(MessageStats.from_json(f) for f in data["flows"]),
        )
