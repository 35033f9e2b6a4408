"""The oracle: additivity, Klaviyo consistency, and the HTTP truth endpoint."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import httpx

from storesync.periods import Period
from storesync.providers.figures import KlaviyoFigures, ShopifyFigures
from storesync.simulator import SimStore, Simulator, klaviyo_truth, shopify_truth
from storesync.simulator.data import TEST_FLAG
from storesync.simulator.oracle import period_bounds


def test_shopify_truth_is_additive(sim: Simulator, ny: SimStore) -> None:
    whole = sim.shopify_truth(ny.shop_domain, Period(date(2025, 9, 1), date(2025, 10, 31)))
    first = sim.shopify_truth(ny.shop_domain, Period(date(2025, 9, 1), date(2025, 9, 30)))
    second = sim.shopify_truth(ny.shop_domain, Period(date(2025, 10, 1), date(2025, 10, 31)))
    assert whole.orders == first.orders + second.orders > 0
    for name in ("total_sales", "gross_sales", "discounts", "refunds"):
        assert getattr(whole, name) == getattr(first, name) + getattr(second, name)
    assert whole.daily == first.daily + second.daily
    assert whole.total_sales == sum(d.total_sales for d in whole.daily)
    assert whole.new_customers <= first.new_customers + second.new_customers


def test_dst_period_days_follow_the_local_calendar(sim: Simulator, ny: SimStore) -> None:
    # 2025-11-02: New York leaves daylight saving time (a 25-hour day).
    period = Period(date(2025, 11, 1), date(2025, 11, 3))
    truth = sim.shopify_truth(ny.shop_domain, period)
    assert [d.day for d in truth.daily] == list(period.dates())
    start, end = period_bounds(sim.data(ny.shop_domain), period)
    assert end - start == 3 * 86_400 + 3600


def test_figures_match_definitions_by_hand(sim: Simulator, ny: SimStore) -> None:
    period = Period(date(2025, 10, 5), date(2025, 10, 5))
    data = sim.data(ny.shop_domain)
    start, end = period_bounds(data, period)
    total = 0
    count = 0
    for i in range(len(data.orders)):
        created = data.orders.created[i]
        if start <= created < end and not data.orders.flags[i] & TEST_FLAG:
            if not data.orders.cancelled[i]:
                total += data.amounts(i).current_total
                count += 1
    truth = sim.shopify_truth(ny.shop_domain, period)
    assert truth.orders == count
    assert truth.total_sales == Decimal(total) / 100
    assert truth.aov == (truth.total_sales / count).quantize(Decimal("0.01"), ROUND_HALF_UP)


def test_klaviyo_revenue_never_exceeds_original_order_totals(sim: Simulator, ny: SimStore) -> None:
    data = sim.data(ny.shop_domain)
    for period in (
        Period(date(2025, 8, 1), date(2025, 8, 31)),
        Period(date(2025, 10, 1), date(2025, 10, 7)),
    ):
        truth = sim.klaviyo_truth(ny.shop_domain, period)
        start, end = period_bounds(data, period)
        lo, hi = data.created_range(start, end)
        originals = sum(
            data.amounts(i).total for i in range(lo, hi) if not data.orders.flags[i] & TEST_FLAG
        )
        assert Decimal(0) < truth.attributed_revenue <= Decimal(originals) / 100
        assert truth.campaigns and truth.flows
        assert {c.channel for c in truth.campaigns} == {"email", "sms"}
        assert "mixed" in {f.channel for f in truth.flows}
        for stats in (*truth.campaigns, *truth.flows):
            assert stats.delivered <= stats.recipients
            assert 0 <= stats.open_rate <= 1 and 0 <= stats.click_rate <= 1


def test_klaviyo_truth_is_additive_for_sums(sim: Simulator, lisbon: SimStore) -> None:
    whole = sim.klaviyo_truth(lisbon.shop_domain, Period(date(2025, 9, 1), date(2025, 9, 30)))
    a = sim.klaviyo_truth(lisbon.shop_domain, Period(date(2025, 9, 1), date(2025, 9, 15)))
    b = sim.klaviyo_truth(lisbon.shop_domain, Period(date(2025, 9, 16), date(2025, 9, 30)))
    assert whole.attributed_revenue == a.attributed_revenue + b.attributed_revenue
    recipients = sum(f.recipients for f in whole.flows)
    assert recipients == sum(f.recipients for f in (*a.flows, *b.flows))


def test_module_functions_accept_specs(sim: Simulator, ny: SimStore) -> None:
    period = Period(date(2025, 10, 1), date(2025, 10, 3))
    assert shopify_truth(ny, period) == sim.shopify_truth(ny.shop_domain, period)
    assert klaviyo_truth(ny, period) == sim.klaviyo_truth(ny.shop_domain, period)


async def test_truth_over_http(client: httpx.AsyncClient, sim: Simulator, ny: SimStore) -> None:
    response = await client.get(
        f"/_sim/truth/{ny.shop_domain}", params={"start": "2025-10-01", "end": "2025-10-10"}
    )
    assert response.status_code == 200
    body = response.json()
    period = Period(date(2025, 10, 1), date(2025, 10, 10))
    assert ShopifyFigures.from_json(body["shopify"]) == sim.shopify_truth(ny.shop_domain, period)
    assert KlaviyoFigures.from_json(body["klaviyo"]) == sim.klaviyo_truth(ny.shop_domain, period)
    bad = await client.get(
        f"/_sim/truth/{ny.shop_domain}", params={"start": "2025-10-10", "end": "2025-10-01"}
    )
    assert bad.status_code == 400 and "before it starts" in bad.json()["error"]
    missing = await client.get(
        "/_sim/truth/nope.myshopify.com", params={"start": "2025-10-01", "end": "2025-10-01"}
    )
    assert missing.status_code == 404
