"""Deterministic store data: orders (columnar) and the Klaviyo account built around them.

A store's orders are generated day by day, in the store's time zone, from random generators
seeded by the store's seed (each day's orders from the seed and the date, customers and
attribution from sequential generators). Orders are stored as parallel ``array`` columns
sorted by creation time (about 60 bytes an order), so a store with 200,000 orders costs about
12 MB and a period is located by bisection. Money is kept in integer cents of the shop
currency; :class:`~decimal.Decimal` values are made at the edges.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from storesync.simulator.config import CURRENCIES, SimStore
from storesync.simulator.klaviyo_data import KlaviyoData, plan_account

FINANCIAL_STATUSES = ("PAID", "PENDING", "AUTHORIZED", "PARTIALLY_REFUNDED", "REFUNDED", "VOIDED")
PAID, PENDING, AUTHORIZED, PARTIALLY_REFUNDED, REFUNDED, VOIDED = range(6)
CANCEL_REASONS = ("CUSTOMER", "INVENTORY", "FRAUD", "DECLINED", "OTHER")
TEST_FLAG = 1  # flags: bit 0 test, bits 1-3 financial status, bits 4-6 cancel reason + 1

_PRICES_USD = (9, 12, 18, 24, 29, 35, 42, 49, 59, 75, 89, 120, 149, 199)
_HOUR_WEIGHTS = (1, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.5, 3.2, 3.6, 4.0, 4.2, 4.0, 3.6, 3.4,
                 3.4, 3.6, 4.0, 4.6, 4.8, 4.2, 3.0, 1.8)  # fmt: skip
_HOUR_CUM = [sum(_HOUR_WEIGHTS[: i + 1]) for i in range(24)]
_WEEKDAY = (0.95, 1.0, 1.0, 1.05, 1.1, 1.0, 0.9)
_FOREIGN = {"USD": ("CAD", "EUR"), "EUR": ("USD", "GBP"), "GBP": ("EUR", "USD"),
            "BRL": ("USD",), "CAD": ("USD",), "AUD": ("NZD", "USD")}  # fmt: skip
_RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "BRL": 5.0, "CAD": 1.36, "AUD": 1.5, "NZD": 1.65}


def _column(code: str) -> array[int]:
    return array(code)


@dataclass(slots=True)
class Orders:
    """Parallel columns, one entry per order, sorted by ``created`` (then by position)."""

    created: array[int] = field(default_factory=lambda: _column("q"))
    updated: array[int] = field(default_factory=lambda: _column("q"))
    cancelled: array[int] = field(default_factory=lambda: _column("q"))  # 0: not cancelled
    flags: array[int] = field(default_factory=lambda: _column("B"))
    customer: array[int] = field(default_factory=lambda: _column("i"))  # 0: guest order
    order_index: array[int] = field(default_factory=lambda: _column("i"))
    gross: array[int] = field(default_factory=lambda: _column("i"))  # line items, cents
    discount: array[int] = field(default_factory=lambda: _column("i"))
    shipping: array[int] = field(default_factory=lambda: _column("i"))
    tax: array[int] = field(default_factory=lambda: _column("i"))
    refunded: array[int] = field(default_factory=lambda: _column("i"))
    presentment: array[int] = field(default_factory=lambda: _column("B"))
    attributed: array[int] = field(default_factory=lambda: _column("i"))  # message, -1: none

    def __len__(self) -> int:
        return len(self.created)


@dataclass(frozen=True, slots=True)
class Amounts:
    """One order's money in cents of the shop currency (Shopify's field names in comments)."""

    subtotal: int  # subtotalPriceSet: line items after discounts
    discounts: int  # totalDiscountsSet
    shipping: int  # totalShippingPriceSet
    tax: int  # totalTaxSet
    total: int  # totalPriceSet
    refunded: int  # totalRefundedSet
    current_total: int  # currentTotalPriceSet
    current_subtotal: int
    current_discounts: int
    current_tax: int
    net_payment: int  # netPaymentSet


@dataclass(slots=True)
class StoreData:
    """A store's generated data."""

    spec: SimStore
    tz: ZoneInfo
    first_day: date
    last_day: date
    orders: Orders
    customer_orders: array[int]  # by customer number: non-test orders placed
    presentment: tuple[tuple[str, Decimal], ...]  # index 0: the shop currency
    klaviyo: KlaviyoData
    id_base: int
    customer_base: int
    _by_updated: array[int] | None = None
    _updated_rank: array[int] | None = None

    def midnight(self, day: date) -> int:
        """Local midnight starting ``day``, as a UTC epoch second."""
        return int(datetime.combine(day, time.min, tzinfo=self.tz).timestamp())

    def created_range(self, start: int, end: int) -> tuple[int, int]:
        """Positions of orders created in ``[start, end)``."""
        return bisect_left(self.orders.created, start), bisect_left(self.orders.created, end)

    def order_gid(self, index: int) -> str:
        return f"gid://shopify/Order/{self.id_base + index}"

    def order_index_of(self, legacy_id: int) -> int | None:
        index = legacy_id - self.id_base
        return index if 0 <= index < len(self.orders) else None

    def customer_gid(self, number: int) -> str:
        return f"gid://shopify/Customer/{self.customer_base + number}"

    def financial_status(self, index: int) -> str:
        return FINANCIAL_STATUSES[(self.orders.flags[index] >> 1) & 7]

    def cancel_reason(self, index: int) -> str | None:
        reason = (self.orders.flags[index] >> 4) & 7
        return CANCEL_REASONS[reason - 1] if reason else None

    def is_test(self, index: int) -> bool:
        return bool(self.orders.flags[index] & TEST_FLAG)

    def amounts(self, index: int) -> Amounts:
        o = self.orders
        gross, discount, refunded = o.gross[index], o.discount[index], o.refunded[index]
        subtotal = gross - discount
        shipping, tax = o.shipping[index], o.tax[index]
        total = subtotal + shipping + tax

        def left(part: int) -> int:  # the part of ``part`` not refunded, pro rata
            return part - (refunded * part // total if total else 0)

        received = (PAID, PARTIALLY_REFUNDED, REFUNDED)
        status = (o.flags[index] >> 1) & 7
        return Amounts(
            subtotal=subtotal,
            discounts=discount,
            shipping=shipping,
            tax=tax,
            total=total,
            refunded=refunded,
            current_total=total - refunded,
            current_subtotal=left(subtotal),
            current_discounts=left(discount),
            current_tax=left(tax),
            net_payment=total - refunded if status in received else 0,
        )

    def updated_order(self) -> tuple[array[int], array[int]]:
        """Order positions sorted by (updatedAt, position), and each order's rank in it."""
        if self._by_updated is None or self._updated_rank is None:
            updated = self.orders.updated
            ordering = array("i", sorted(range(len(updated)), key=lambda i: (updated[i], i)))
            rank = array("i", bytes(4 * len(ordering)))
            for position, index in enumerate(ordering):
                rank[index] = position
            self._by_updated, self._updated_rank = ordering, rank
        return self._by_updated, self._updated_rank


def default_history_end() -> date:
    """Today in UTC plus one day, so that "today" has data in every time zone."""
    return datetime.now(UTC).date() + timedelta(days=1)


def generate(spec: SimStore) -> StoreData:
    """Generate a store's data from its spec (deterministic for a given ``history_end``)."""
    tz = ZoneInfo(spec.timezone)
    last_day = spec.history_end or default_history_end()
    first_day = last_day - timedelta(days=spec.history_days - 1)
    days = [first_day + timedelta(days=i) for i in range(spec.history_days + 1)]
    midnights = [int(datetime.combine(d, time.min, tzinfo=tz).timestamp()) for d in days]
    key = f"{spec.seed}:{spec.shop_domain}"
    klaviyo = plan_account(key, spec.orders_per_day, midnights, first_day.toordinal())
    scale, tax_rate = CURRENCIES[spec.currency]
    foreign = _FOREIGN[spec.currency]
    rates = [Decimal(str(round(_RATES[code] / _RATES[spec.currency], 4))) for code in foreign]
    presentment = ((spec.currency, Decimal(1)), *zip(foreign, rates, strict=True))
    gen = _Generator(spec, klaviyo, scale, tax_rate, len(foreign))
    for i in range(spec.history_days):
        gen.day(days[i], midnights[i], midnights[i + 1], i / spec.history_days)
    klaviyo.finish()
    return StoreData(
        spec=spec,
        tz=tz,
        first_day=first_day,
        last_day=last_day,
        orders=gen.orders,
        customer_orders=gen.customer_orders,
        presentment=presentment,
        klaviyo=klaviyo,
        id_base=5_000_000_000_000 + (spec.seed % 997) * 10_000_000,
        customer_base=7_000_000_000_000 + (spec.seed % 997) * 10_000_000,
    )


class _Generator:
    """The day-by-day order generator (holds the sequential state: customers, attribution)."""

    def __init__(
        self, spec: SimStore, klaviyo: KlaviyoData, scale: float, tax_rate: float, foreign: int
    ) -> None:
        self.spec = spec
        self.klaviyo = klaviyo
        self.prices = [max(100, round(p * scale) * 100 - 10) for p in _PRICES_USD]
        self.free_shipping = round(60 * scale) * 100
        self.shipping_fee = round(6.99 * scale * 100)
        self.fixed_discount = round(10 * scale) * 100
        self.tax_bp = round(tax_rate * 10_000)
        self.foreign = foreign
        self.orders = Orders()
        self.customer_orders = array("i", [0])
        self.customers = random.Random(f"{spec.seed}:customers")  # noqa: S311 - simulated data
        self.attribution = random.Random(f"{spec.seed}:attribution")  # noqa: S311

    def day(self, day: date, start: int, end: int, progress: float) -> None:
        # Integer seeds: much cheaper than strings, and still one stream per store and day.
        rng = random.Random(self.spec.seed << 24 ^ day.toordinal() << 1)  # noqa: S311
        season = 1.3 if day.month in (11, 12) else 1.0
        expected = self.spec.orders_per_day * _WEEKDAY[day.weekday()] * (0.8 + 0.4 * progress)
        expected *= season * rng.uniform(0.8, 1.2)
        count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
        span, draw = end - start, rng.random
        times = []
        for _ in range(count):
            hour = bisect_left(_HOUR_CUM, draw() * _HOUR_CUM[-1])
            times.append(start + int(span * (hour + draw()) / 24))
        if self.spec.orders_per_day > 0:
            # Orders a second either side of local midnight catch off-by-one bounds.
            if rng.random() < 0.3:
                times.append(start)
            if rng.random() < 0.3:
                times.append(end - 1)
        times.sort()
        placed = new = 0
        for created in times:
            test, first = self.order(rng, created)
            placed += not test
            new += first
        flow_rng = random.Random(self.spec.seed << 24 ^ day.toordinal() << 1 | 1)  # noqa: S311
        self.klaviyo.add_flow_day(flow_rng, start, end, placed, new)

    def order(self, rng: random.Random, created: int) -> tuple[bool, bool]:
        o = self.orders
        test = rng.random() < 0.01
        # Customer: a guest, a returning customer or a new one.
        draw = self.customers.random()
        known = len(self.customer_orders) - 1
        if draw < 0.1:
            customer = 0
        elif draw < 0.55 and known:
            customer = 1 + int(self.customers.random() * known)
        else:
            self.customer_orders.append(0)
            customer = known + 1
        index = self.customer_orders[customer] + 1 if customer else 0
        if customer and not test:
            self.customer_orders[customer] = index
        # Line items, discount, shipping, tax.
        gross, prices, random_ = 0, self.prices, rng.random
        for _ in range(1 + (random_() < 0.35) + (random_() < 0.12) + (random_() < 0.04)):
            gross += prices[int(random_() * len(prices))] * (2 if random_() < 0.2 else 1)
        draw = rng.random()
        if draw < 0.18:
            discount = gross * rng.choice((10, 15, 20)) // 100
        elif draw < 0.23:
            discount = min(gross, self.fixed_discount)
        else:
            discount = 0
        subtotal = gross - discount
        shipping = 0 if subtotal >= self.free_shipping or rng.random() < 0.1 else self.shipping_fee
        tax = (subtotal * self.tax_bp + 5_000) // 10_000
        total = subtotal + shipping + tax
        # Refunds, cancellations and the financial status they imply.
        cancelled = reason = refunded = 0
        draw = rng.random()
        if draw < 0.02:
            cancelled = created + rng.randint(600, 3 * 86_400)
            reason = 1 + rng.randrange(len(CANCEL_REASONS))
            refunded = total if rng.random() < 0.7 else 0
            status = REFUNDED if refunded else VOIDED
        elif draw < 0.05 or (draw < 0.11 and total < 2):
            refunded, status = total, REFUNDED
        elif draw < 0.11:
            refunded = max(1, min(total - 1, int(total * rng.uniform(0.1, 0.7))))
            status = PARTIALLY_REFUNDED
        else:
            draw = rng.random()
            status = PENDING if draw < 0.03 else AUTHORIZED if draw < 0.05 else PAID
        changed = cancelled or (created + rng.randint(3600, 10 * 86_400) if refunded else 0)
        o.created.append(created)
        o.updated.append(changed or created + rng.randint(5, 900))
        o.cancelled.append(cancelled)
        o.flags.append((TEST_FLAG if test else 0) | status << 1 | reason << 4)
        o.customer.append(customer)
        o.order_index.append(index)
        o.gross.append(gross)
        o.discount.append(discount)
        o.shipping.append(shipping)
        o.tax.append(tax)
        o.refunded.append(refunded)
        o.presentment.append(1 + int(random_() * self.foreign) if random_() < 0.08 else 0)
        attributed = -1 if test else self.klaviyo.attribute(self.attribution, created)
        o.attributed.append(attributed)
        if attributed >= 0:
            self.klaviyo.messages[attributed].add_conversion(created, total)
        return test, bool(customer and index == 1 and not test)
