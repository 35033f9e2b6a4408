"""The truth: a store's figures for a period, computed straight from the generated data.

The definitions are those of :mod:`storesync.providers.figures`; tests compare the
connectors' output with these values exactly. Period bounds are the exact UTC instants of the
period's local midnights (:meth:`~storesync.periods.Period.utc_bounds`), half-open; Klaviyo's
timeframe is the same instants. :func:`attributed_daily` gives the attributed conversions per
local day of the order, the figures of Query Metric Aggregates.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from storesync.periods import Period
from storesync.providers.figures import DailySales, KlaviyoFigures, MessageStats, ShopifyFigures
from storesync.simulator.config import SimStore
from storesync.simulator.data import TEST_FLAG, StoreData, generate
from storesync.simulator.klaviyo_data import WindowStats

_ONE_DAY = timedelta(days=1)


def cents(value: int) -> Decimal:
    """Integer cents as a two-place Decimal."""
    return Decimal(value).scaleb(-2)


@functools.lru_cache(maxsize=8)
def _cached(spec: SimStore) -> StoreData:
    return generate(spec)


def _data(store: SimStore | StoreData) -> StoreData:
    return _cached(store) if isinstance(store, SimStore) else store


def period_bounds(data: StoreData, period: Period) -> tuple[int, int]:
    """The period's ``[start, end)`` as UTC epoch seconds in the store's time zone."""
    start, end = period.utc_bounds(data.tz)
    return int(start.timestamp()), int(end.timestamp())


def shopify_truth(store: SimStore | StoreData, period: Period) -> ShopifyFigures:
    """Sales figures for orders created in ``period`` (test and cancelled orders excluded)."""
    data = _data(store)
    o = data.orders
    orders = total = gross = discounts = refunds = 0
    new: set[int] = set()
    seen: set[int] = set()
    daily = []
    for day in period.dates():
        lo, hi = data.created_range(data.midnight(day), data.midnight(day + _ONE_DAY))
        day_orders = day_total = 0
        for i in range(lo, hi):
            if o.flags[i] & TEST_FLAG or o.cancelled[i]:
                continue
            amounts = data.amounts(i)
            day_orders += 1
            day_total += amounts.current_total
            gross += amounts.subtotal + amounts.discounts
            discounts += amounts.discounts
            refunds += amounts.refunded
            customer = o.customer[i]
            if customer:
                (new if o.order_index[i] == 1 else seen).add(customer)
        orders += day_orders
        total += day_total
        daily.append(DailySales(day, day_orders, cents(day_total)))
    return ShopifyFigures(
        currency=data.spec.currency,
        orders=orders,
        total_sales=cents(total),
        gross_sales=cents(gross),
        discounts=cents(discounts),
        refunds=cents(refunds),
        new_customers=len(new),
        returning_customers=len(seen - new),
        daily=tuple(daily),
    )


def message_windows(
    data: StoreData, start: int, end: int, *, campaigns: bool
) -> list[tuple[str, int, WindowStats]]:
    """(owner id, message index, sums) of every campaign or flow message active in the window."""
    k = data.klaviyo
    owners = (
        [c.message for c in k.campaigns] if campaigns else [m for f in k.flows for m in f.messages]
    )
    out = []
    for index in owners:
        stats = k.messages[index].window(start, end)
        if stats is not None:
            out.append((k.messages[index].owner, index, stats))
    return out


def klaviyo_truth(store: SimStore | StoreData, period: Period) -> KlaviyoFigures:
    """Campaign and flow performance over the period's exact bounds (Placed Order conversions)."""
    data = _data(store)
    start, end = period_bounds(data, period)
    names = {c.id: c.name for c in data.klaviyo.campaigns} | {
        f.id: f.name for f in data.klaviyo.flows
    }
    return KlaviyoFigures(
        campaigns=_combine(data, names, message_windows(data, start, end, campaigns=True)),
        flows=_combine(data, names, message_windows(data, start, end, campaigns=False)),
    )


def _combine(
    data: StoreData, names: dict[str, str], rows: list[tuple[str, int, WindowStats]]
) -> tuple[MessageStats, ...]:
    totals: dict[str, list[int]] = {}
    channels: dict[str, set[str]] = {}
    for owner, index, s in rows:
        sums = totals.setdefault(owner, [0] * 7)
        values = (
            s.recipients,
            s.delivered,
            s.opens_unique,
            s.clicks_unique,
            s.conversions,
            s.conversion_cents,
            s.unsubscribes,
        )
        for n, value in enumerate(values):
            sums[n] += value
        channels.setdefault(owner, set()).add(data.klaviyo.messages[index].channel)
    out = []
    for owner in sorted(totals):
        r, d, o, c, conv, value, u = totals[owner]
        kinds = channels[owner]
        channel = kinds.pop() if len(kinds) == 1 else "mixed"
        out.append(MessageStats(owner, names[owner], channel, r, d, o, c, conv, cents(value), u))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AttributedDay:
    """Placed Order conversions attributed to one message on one local day of the order.

    Dated by the conversion (the order's creation in the store's time zone), as Query Metric
    Aggregates dates them, not by the message's send date as the values reports do.
    """

    day: date
    kind: str  # "campaign" | "flow"
    owner: str  # the campaign or flow id
    message: str
    channel: str
    conversions: int
    revenue: Decimal


def attributed_daily(store: SimStore | StoreData, period: Period) -> tuple[AttributedDay, ...]:
    """Every (day, message) of the period with attributed conversions, by day then message."""
    data = _data(store)
    k = data.klaviyo
    campaigns = {c.id for c in k.campaigns}
    out = []
    for day in period.dates():
        start, end = data.midnight(day), data.midnight(day + _ONE_DAY)
        for message in sorted(k.messages, key=lambda m: m.id):
            stats = message.window(start, end)
            if stats is None or not stats.conversions:
                continue
            kind = "campaign" if message.owner in campaigns else "flow"
            out.append(
                AttributedDay(
                    day,
                    kind,
                    message.owner,
                    message.id,
                    message.channel,
                    stats.conversions,
                    cents(stats.conversion_cents),
                )
            )
    return tuple(out)
