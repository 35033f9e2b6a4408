"""The Shopify connector against the in-process simulator: exact figures, pacing, errors."""

from __future__ import annotations

import asyncio
import json
from bisect import bisect_left
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from storesync.errors import PermanentError
from storesync.periods import Period
from storesync.providers.events import ProviderEvent
from storesync.providers.sales import SalesTally
from storesync.providers.shopify_pacing import CostBucket
from storesync.providers.shopify_queries import MAX_QUERY_COST

from .helpers import DST_CASES, LISBON, NY, SYDNEY, Rig, requests, truth


def tz_of(rig: Rig, shop: str) -> ZoneInfo:
    assert rig.sim is not None
    return ZoneInfo(rig.sim.store(shop).timezone)


@pytest.mark.parametrize(("shop", "period"), DST_CASES, ids=lambda v: str(v))
async def test_figures_equal_the_truth(rig: Rig, shop: str, period: Period) -> None:
    figures = await rig.shopify(shop).fetch_figures(period, tz_of(rig, shop))
    expected, _ = await truth(rig, shop, period)
    assert figures == expected
    assert figures.orders > 0
    assert len(figures.daily) == period.days


def _midnight_day(rig: Rig, shop: str, after: date) -> date:
    """A day with orders at its first and last seconds, and one at the next day's first."""
    assert rig.sim is not None
    data = rig.sim.data(shop)
    created = data.orders.created
    day = after
    while day < data.last_day:
        start, end = data.midnight(day), data.midnight(day + timedelta(days=1))
        first = bisect_left(created, start)
        last = bisect_left(created, end) - 1
        if created[first] == start and created[last] == end - 1:
            if created[bisect_left(created, end)] == end:
                return day
        day += timedelta(days=1)
    raise AssertionError("no day with orders on both sides of both midnights")


async def test_orders_a_second_either_side_of_midnight(rig: Rig) -> None:
    day = _midnight_day(rig, NY, date(2025, 6, 1))
    tz = tz_of(rig, NY)
    client = rig.shopify(NY)
    for period in (
        Period(day, day),
        Period(day + timedelta(days=1), day + timedelta(days=1)),
        Period(day - timedelta(days=1), day + timedelta(days=1)),
    ):
        expected, _ = await truth(rig, NY, period)
        assert await client.fetch_figures(period, tz) == expected
    # The server returned the order at the next midnight too ("<" is inclusive in practice);
    # the client dropped it: the one-day figures above equal the truth.
    searches = await requests(rig, provider="shopify", operation="orders")
    assert searches and all(r["requested_cost"] <= MAX_QUERY_COST for r in searches)


async def test_bulk_operation_equals_the_truth_and_auto_switches(
    rig: Rig, tmp_path: object
) -> None:
    shop, period = NY, Period(date(2025, 1, 1), date(2025, 2, 28))
    tz = tz_of(rig, shop)
    expected, _ = await truth(rig, shop, period)
    events: list[ProviderEvent] = []

    async def record(event: ProviderEvent) -> None:
        events.append(event)

    assert await rig.shopify(shop, events=record).fetch_figures(period, tz, mode="bulk") == expected
    assert {e.data.get("status") for e in events if e.kind == "bulk"} >= {"CREATED", "COMPLETED"}
    # "auto" counts the orders first and goes bulk above the threshold.
    rig.settings = rig.settings.model_copy(update={"shopify_bulk_threshold": 100})
    assert rig.sim is not None
    rig.sim.requests.clear()
    assert await rig.shopify(shop).fetch_figures(period, tz) == expected
    operations = [
        r["operation"] for r in await requests(rig, provider="shopify", endpoint="graphql")
    ]
    assert operations[0] == "ordersCount"
    assert "bulkOperationRunQuery" in operations and "orders" not in operations


async def test_chunks_merged_through_checkpoints_equal_one_pass(rig: Rig) -> None:
    shop, period = LISBON, Period(date(2025, 2, 1), date(2025, 5, 31))  # DST on 30 March
    tz = tz_of(rig, shop)
    client = rig.shopify(shop)
    whole = await client.fetch_sales(period, tz)
    merged: SalesTally | None = None
    returning_per_chunk = 0
    for chunk in period.chunks(31):
        part = await client.fetch_sales(chunk, tz)
        returning_per_chunk += part.figures().returning_customers
        # As the pipeline stores it in the job's progress, and a retry resumes from it.
        stored = json.loads(json.dumps(part.to_checkpoint()))
        assert len(json.dumps(stored)) < 20_000
        restored = SalesTally.from_checkpoint(stored)
        if merged is None:
            merged = restored
        else:
            merged.merge(restored)
    assert merged is not None
    expected, _ = await truth(rig, shop, period)
    assert whole.figures() == expected
    assert merged.figures() == expected
    # Adding up the chunks' figures would count a customer once per chunk: merging does not.
    assert returning_per_chunk > expected.returning_customers


# --- Pacing ---------------------------------------------------------------------------------


async def test_pacing_gets_zero_throttled_for_many_times_the_bucket(rig: Rig) -> None:
    assert rig.sim is not None
    # A bucket barely above one page, refilling fast: the sync needs ~10× its capacity.
    rig.sim.configure({"bucket_size": 1000, "restore_rate": 8000})
    shop, period = NY, Period(date(2025, 5, 1), date(2025, 5, 31))
    client = rig.shopify(shop)
    figures = await client.fetch_figures(period, tz_of(rig, shop), mode="pages")
    expected, _ = await truth(rig, shop, period)
    assert figures == expected
    log = await requests(rig, provider="shopify", endpoint="graphql")
    spent = sum(r["requested_cost"] or 0 for r in log)
    assert spent > 8 * 1000
    assert [r for r in log if r["throttled"]] == []
    assert client.throttled == 0


async def test_clients_of_one_shop_share_the_bucket(rig: Rig) -> None:
    """Three syncs of one shop at once, pacing against one shared estimate: no THROTTLED."""
    assert rig.sim is not None
    rig.sim.configure({"bucket_size": 1000, "restore_rate": 10000})
    shared = CostBucket()
    tz = tz_of(rig, SYDNEY)
    periods = [Period(date(2025, m, 1), date(2025, m, 28)) for m in (5, 6, 7)]
    clients = [rig.shopify(SYDNEY, bucket=shared) for _ in periods]
    results = await asyncio.gather(
        *(c.fetch_figures(p, tz, mode="pages") for c, p in zip(clients, periods, strict=True))
    )
    for period, figures in zip(periods, results, strict=True):
        assert figures == (await truth(rig, SYDNEY, period))[0]
    assert await requests(rig, provider="shopify", throttled=True) == []


async def test_bucket_drained_by_another_app_still_completes(rig: Rig) -> None:
    assert rig.sim is not None
    sim = rig.sim
    sim.configure({"bucket_size": 1000, "restore_rate": 5000})
    shop, period = NY, Period(date(2025, 8, 1), date(2025, 8, 20))
    events: list[ProviderEvent] = []

    async def record(event: ProviderEvent) -> None:
        events.append(event)

    async def other_app() -> None:  # empties the bucket now and then, unannounced
        for _ in range(4):
            sim.drain_bucket(shop)
            await asyncio.sleep(0.3)

    competitor = asyncio.create_task(other_app())
    try:
        client = rig.shopify(shop, events=record)
        figures = await client.fetch_figures(period, tz_of(rig, shop), mode="pages")
    finally:
        competitor.cancel()
    assert figures == (await truth(rig, shop, period))[0]
    assert client.throttled > 0  # it was throttled, waited, and carried on
    throttled = [e for e in events if e.kind == "throttled"]
    assert throttled and all(e.data["wait_seconds"] <= 0.25 for e in throttled)


# --- Permanent errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"token_revoked": True}, "the Shopify access token was rejected"),
        ({"scopes": ["read_customers"]}, "lacks the read_orders scope"),
        ({"scopes": ["read_customers"], "scope_denial": "graphql"}, "lacks the read_orders scope"),
        ({"shop_state": "frozen"}, "is frozen"),
        ({"shop_state": "locked"}, "is locked"),
    ],
)
async def test_permanent_errors_fail_at_once(
    rig: Rig, patch: dict[str, object], message: str
) -> None:
    assert rig.sim is not None
    rig.sim.configure({"stores": {NY: patch}})
    client = rig.shopify(NY)
    with pytest.raises(PermanentError) as caught:
        await client.fetch_figures(Period(date(2025, 5, 1), date(2025, 5, 2)), tz_of(rig, NY))
    assert message in str(caught.value)
    assert rig.sim.store(NY).shopify_token not in str(caught.value)
    assert len(await requests(rig, provider="shopify")) == 1  # no retries


async def test_unknown_shop(rig: Rig) -> None:
    from storesync.providers.shopify import ShopifyClient

    client = ShopifyClient(
        rig.http, rig.settings, shop_domain="nope.myshopify.com", access_token="x"
    )
    with pytest.raises(PermanentError, match=r"nope\.myshopify\.com was not found"):
        await client.fetch_figures(Period(date(2025, 5, 1), date(2025, 5, 2)), ZoneInfo("UTC"))
