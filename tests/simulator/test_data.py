"""Generated data: determinism, shape, the edge cases the connectors must meet, and size."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import date, datetime

from storesync.simulator import SimStore, generate_stores
from storesync.simulator.data import TEST_FLAG, generate

END = date(2025, 6, 30)


def spec(**kw: object) -> SimStore:
    base: dict[str, object] = {"shop_domain": "det.myshopify.com", "orders_per_day": 30,
                               "seed": 7, "history_end": END, "history_days": 90}  # fmt: skip
    return SimStore(**(base | kw))  # type: ignore[arg-type]


def test_same_seed_same_data() -> None:
    a, b = generate(spec()), generate(spec())
    assert a.orders.created == b.orders.created
    assert a.orders.gross == b.orders.gross
    assert a.orders.customer == b.orders.customer
    assert [c.id for c in a.klaviyo.campaigns] == [c.id for c in b.klaviyo.campaigns]
    assert a.klaviyo.messages[0].ts == b.klaviyo.messages[0].ts


def test_other_seed_other_data() -> None:
    assert generate(spec()).orders.created != generate(spec(seed=8)).orders.created


def test_credentials_are_derived_deterministically() -> None:
    one, two = spec(), spec()
    assert one.shopify_token == two.shopify_token and one.shopify_token.startswith("shpat_")
    assert one.klaviyo_private_key.startswith("pk_") and len(one.klaviyo_account_id) == 6
    assert spec(seed=8).shopify_token != one.shopify_token


def test_orders_cover_the_edge_cases() -> None:
    data = generate(spec(timezone="America/New_York"))
    o = data.orders
    n = len(o)
    assert 0.8 * 90 * 30 < n < 1.4 * 90 * 30
    assert list(o.created) == sorted(o.created)
    midnights = {data.midnight(d) for d in (data.first_day.fromordinal(x) for x in
                 range(data.first_day.toordinal(), data.last_day.toordinal() + 2))}  # fmt: skip
    at_midnight = sum(1 for t in o.created if t in midnights)
    before_midnight = sum(1 for t in o.created if t + 1 in midnights)
    assert at_midnight > 5 and before_midnight > 5
    assert any(o.flags[i] & TEST_FLAG for i in range(n))
    assert any(o.cancelled[i] for i in range(n))
    assert any(o.customer[i] == 0 for i in range(n))  # guest orders
    statuses = {data.financial_status(i) for i in range(n)}
    assert {"PAID", "PARTIALLY_REFUNDED", "REFUNDED", "VOIDED", "PENDING"} <= statuses
    assert any(o.discount[i] for i in range(n))
    assert any(o.presentment[i] for i in range(n))  # some orders in another currency


def test_customer_order_index_counts_non_test_orders() -> None:
    data = generate(spec())
    o = data.orders
    seen: dict[int, int] = defaultdict(int)
    for i in range(len(o)):
        customer = o.customer[i]
        if not customer:
            assert o.order_index[i] == 0
            continue
        if o.flags[i] & TEST_FLAG:
            assert o.order_index[i] == seen[customer] + 1
            continue
        seen[customer] += 1
        assert o.order_index[i] == seen[customer]
    for customer, count in seen.items():
        assert data.customer_orders[customer] == count
    assert max(seen.values()) > 2  # repeat customers exist


def test_money_is_consistent() -> None:
    data = generate(spec(currency="GBP"))
    for i in range(0, len(data.orders), 7):
        m = data.amounts(i)
        assert m.total == m.subtotal + m.shipping + m.tax
        assert 0 <= m.refunded <= m.total
        assert m.current_total == m.total - m.refunded


def test_history_ends_on_the_given_day() -> None:
    data = generate(spec(timezone="Asia/Kolkata"))
    last = datetime.fromtimestamp(data.orders.created[-1], data.tz).date()
    first = datetime.fromtimestamp(data.orders.created[0], data.tz).date()
    assert last == END and first == data.first_day


def test_a_200k_order_store_is_compact_and_quick() -> None:
    started = time.perf_counter()
    data = generate(spec(orders_per_day=500, history_days=400))
    elapsed = time.perf_counter() - started
    n = len(data.orders)
    assert n > 200_000
    columns = [getattr(data.orders, f) for f in data.orders.__slots__]  # type: ignore[attr-defined]
    size = sum(c.buffer_info()[1] * c.itemsize for c in columns)
    assert size / n < 80  # bytes per order
    assert elapsed < 6


def test_generating_many_store_specs_is_cheap() -> None:
    started = time.perf_counter()
    stores = generate_stores(1000, seed=3)
    assert time.perf_counter() - started < 2
    assert len({s.shop_domain for s in stores}) == 1000
    assert len({s.currency for s in stores}) >= 4 and len({s.timezone for s in stores}) >= 8
    assert generate_stores(5, seed=3) == stores[:5]
