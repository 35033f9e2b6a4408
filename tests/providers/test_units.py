"""Unit tests of the connectors' building blocks: cost rules, pacing, the sales tally."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from storesync.periods import Period
from storesync.providers.http import parse_retry_after
from storesync.providers.klaviyo import timeframe
from storesync.providers.klaviyo_pacing import Window, WindowLimiter, group_of
from storesync.providers.sales import OrderRecord, SalesTally, pack_ids, unpack_ids
from storesync.providers.shopify_pacing import (
    PROBE_POLL_SECONDS,
    UNCONFIRMED_MARGIN_SECONDS,
    CostBucket,
    Grant,
    ThrottleStatus,
)
from storesync.providers.shopify_queries import (
    MAX_QUERY_COST,
    ORDERS_PAGE,
    created_between,
    orders_page_size,
    requested_cost,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- Shopify's cost rules -------------------------------------------------------------------


def test_cost_rules() -> None:
    assert requested_cost("{ shop { name currencyCode } }") == 1
    assert requested_cost("{ products(first: 10) { edges { node { title } } } }") == 12
    nested = "{ products(first: 5) { nodes { variants(first: 3) { nodes { id } } } } }"
    assert requested_cost(nested) == 2 + 5 * (1 + 2 + 3 * 1)
    assert requested_cost("mutation { a: tagsAdd(id: 1) { node { id } } }") == 10


def test_orders_page_fits_the_single_query_limit() -> None:
    first = orders_page_size()
    cost = requested_cost(ORDERS_PAGE, {"first": first})
    assert cost <= MAX_QUERY_COST
    assert requested_cost(ORDERS_PAGE, {"first": first + 1}) > MAX_QUERY_COST
    # Order + four money sets (2 each) + customer + journey summary = 11 per order.
    assert (
        requested_cost(ORDERS_PAGE, {"first": 1}) - requested_cost(ORDERS_PAGE, {"first": 0}) == 11
    )


def test_created_between_filter() -> None:
    start = datetime(2025, 3, 1, 5, tzinfo=UTC)
    end = datetime(2025, 4, 1, 4, tzinfo=UTC)
    assert created_between(start, end) == (
        "created_at:>='2025-03-01T05:00:00Z' AND created_at:<'2025-04-01T04:00:00Z'"
    )


# --- Shopify's bucket -----------------------------------------------------------------------


def test_bucket_waits_exactly_what_the_refill_needs() -> None:
    clock = FakeTime()
    bucket = CostBucket(clock)
    probe = bucket.take(900)  # unknown: one call goes, and its answer will tell
    assert isinstance(probe, Grant)
    assert bucket.take(900) == PROBE_POLL_SECONDS  # ...one probe at a time
    bucket.release(probe)
    bucket.observe(ThrottleStatus(maximum=1000, available=100, restore_rate=50), probe)
    assert bucket.take(900) == pytest.approx((900 - 100 + 1) / 50)  # nothing taken
    clock.now += 16
    first = bucket.take(900)
    assert isinstance(first, Grant)
    # A second caller, while the first is unanswered, waits for 900 more points (and a margin:
    # Shopify may charge the first a little later than we counted it).
    assert bucket.take(900) == pytest.approx((900 + 1) / 50 + UNCONFIRMED_MARGIN_SECONDS)


def test_bucket_ignores_a_stale_reading() -> None:
    clock = FakeTime()
    bucket = CostBucket(clock)
    bucket.observe(ThrottleStatus(maximum=1000, available=1000, restore_rate=50))
    older, newer = bucket.take(400), bucket.take(400)
    assert isinstance(older, Grant) and isinstance(newer, Grant)
    bucket.release(newer)  # the later call's answer is read first: both were charged
    bucket.observe(ThrottleStatus(maximum=1000, available=200, restore_rate=50), newer)
    bucket.release(older)
    bucket.observe(ThrottleStatus(maximum=1000, available=600, restore_rate=50), older)
    # The stale 600 is ignored; the older call, outstanding at the newer reading, stays deducted.
    assert bucket.available() == 200 - 400


def test_bucket_refills_up_to_its_size() -> None:
    clock = FakeTime()
    bucket = CostBucket(clock)
    bucket.observe(ThrottleStatus(maximum=1000, available=0, restore_rate=50))
    clock.now += 1000
    assert bucket.available() == 1000
    assert isinstance(bucket.take(1000), Grant)


# --- Klaviyo's windows ----------------------------------------------------------------------


def test_window_limiter_burst_and_steady() -> None:
    clock = FakeTime()
    limiter = WindowLimiter(Window(burst=2, steady=3), clock)
    assert limiter.try_acquire() == 0
    assert limiter.try_acquire() == 0
    assert limiter.try_acquire() == pytest.approx(1.05)  # burst full for a second
    clock.now += 1.1
    assert limiter.try_acquire() == 0
    # Three calls in the last minute: the next waits for the first to leave the minute.
    assert limiter.try_acquire() == pytest.approx(60.05 - 1.1)
    limiter.block_for(120)
    assert limiter.next_free_in() == pytest.approx(120)


def test_groups() -> None:
    assert group_of("/api/campaign-values-reports/") == "reports"
    assert group_of("/api/flow-values-reports") == "reports"
    assert group_of("/api/campaigns") == "campaigns"
    assert group_of("/api/accounts/") == "accounts"


def test_retry_after() -> None:
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("") is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=now) == 30


def test_timeframe_has_the_local_offsets_across_dst() -> None:
    frame = timeframe(Period(date(2025, 3, 1), date(2025, 3, 31)), ZoneInfo("America/New_York"))
    assert frame == {"start": "2025-03-01T00:00:00-05:00", "end": "2025-04-01T00:00:00-04:00"}


# --- The sales tally ------------------------------------------------------------------------


def _order(n: int, at: datetime, customer: int | None, first: bool | None) -> OrderRecord:
    return OrderRecord(
        id=f"gid://shopify/Order/{n}",
        created_at=at,
        cancelled=False,
        test=False,
        currency="EUR",
        total=Decimal("10.05") * n,
        subtotal=Decimal("9.00") * n,
        discounts=Decimal("1.10"),
        refunded=Decimal("0.50") if n % 3 == 0 else Decimal(0),
        customer=customer,
        first_order=first,
    )


def test_tally_merge_and_checkpoint_equal_one_pass() -> None:
    tz = ZoneInfo("Europe/Lisbon")
    period = Period(date(2025, 10, 20), date(2025, 10, 31))  # crosses the end of summer time
    start, _ = period.utc_bounds(tz)
    orders = [
        _order(n, start + timedelta(hours=7 * n), customer=n % 9 or None, first=n < 9)
        for n in range(1, 40)
    ]
    whole = SalesTally(period, tz)
    for order in orders:
        whole.add(order)

    merged: SalesTally | None = None
    for chunk in period.chunks(4):
        lo, hi = chunk.utc_bounds(tz)
        part = SalesTally(chunk, tz)
        for order in orders:
            if lo <= order.created_at < hi:
                part.add(order)
        # Each chunk goes through a JSON checkpoint, as a retried job would resume it.
        restored = SalesTally.from_checkpoint(json.loads(json.dumps(part.to_checkpoint())))
        if merged is None:
            merged = restored
        else:
            merged.merge(restored)
    assert merged is not None
    assert merged.figures() == whole.figures()
    figures = whole.figures()
    assert len(figures.daily) == period.days
    assert figures.orders == 39
    # Customers 1..8 placed their first order early and came back later: new once, not also
    # returning, even when the first order and the repeat are in different chunks.
    assert figures.new_customers == 8
    assert figures.returning_customers == 0


def test_pack_ids_round_trip() -> None:
    ids: set[int | str] = {5, 7_000_000_000_123, 42, "gid://other/Customer/x"}
    assert unpack_ids(json.loads(json.dumps(pack_ids(ids)))) == ids
    assert unpack_ids(pack_ids(set())) == set()
