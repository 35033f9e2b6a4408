"""The Klaviyo connector against the in-process simulator: exact figures, budget, errors."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from storesync.errors import PermanentError, RetryableError
from storesync.periods import Period
from storesync.providers.klaviyo_budget import ReportBudget
from storesync.providers.klaviyo_pacing import Window

from .helpers import CLIENT_LIMITS, DST_CASES, KOLKATA, NY, SYDNEY, Rig, requests, truth


def tz_of(rig: Rig, shop: str) -> ZoneInfo:
    assert rig.sim is not None
    return ZoneInfo(rig.sim.store(shop).timezone)


@pytest.mark.parametrize(("shop", "period"), DST_CASES, ids=lambda v: str(v))
async def test_figures_equal_the_truth(rig: Rig, shop: str, period: Period) -> None:
    figures = await rig.klaviyo(shop).fetch_performance(period, tz_of(rig, shop))
    _, expected = await truth(rig, shop, period)
    assert figures == expected
    assert figures.campaigns and figures.flows
    assert figures.attributed_revenue == figures.campaign_revenue + figures.flow_revenue > 0
    # Exactly one report call of each kind covered every campaign and flow of the period.
    reports = await requests(rig, provider="klaviyo", status=200)
    kinds = [r["endpoint"] for r in reports if r["endpoint"].endswith("-values-reports")]
    assert sorted(kinds) == ["campaign-values-reports", "flow-values-reports"]


async def test_ids_are_cached_between_syncs(rig: Rig) -> None:
    client = rig.klaviyo(SYDNEY)
    period = Period(date(2025, 9, 1), date(2025, 9, 30))
    first = await client.fetch_performance(period, tz_of(rig, SYDNEY))
    assert rig.sim is not None
    rig.sim.requests.clear()
    # A new client (another job, another worker) finds the account and metric in the cache.
    again = await rig.klaviyo(SYDNEY).fetch_performance(period, tz_of(rig, SYDNEY))
    assert again == first
    endpoints = {r["endpoint"] for r in await requests(rig, provider="klaviyo")}
    assert "accounts" not in endpoints and "metrics" not in endpoints


async def test_long_reports_are_paged_and_each_page_is_budgeted(rig: Rig) -> None:
    assert rig.sim is not None
    rig.sim.configure({"report_page_size": 4})
    shop, period = NY, Period(date(2025, 6, 1), date(2025, 7, 31))
    budget = ReportBudget(rig.database, daily_limit=225)
    figures = await rig.klaviyo(shop, budget=budget).fetch_performance(period, tz_of(rig, shop))
    assert figures == (await truth(rig, shop, period))[1]
    calls = [
        r for r in await requests(rig, provider="klaviyo") if "values-reports" in r["endpoint"]
    ]
    assert len(calls) > 2
    account = rig.sim.store(shop).klaviyo_account_id
    assert await budget.used(account) == len(calls)
    assert await budget.remaining(account) == 225 - len(calls)


async def test_the_226th_report_call_of_a_day_is_never_made(rig: Rig) -> None:
    assert rig.sim is not None
    rig.sim.configure({"report_page_size": 1})  # ~25 report calls a sync: spend 225 fast
    shop = KOLKATA
    account = rig.sim.store(shop).klaviyo_account_id
    budget = ReportBudget(rig.database, daily_limit=225)
    tz = tz_of(rig, shop)
    start = date(2025, 1, 1)
    deferral: RetryableError | None = None
    for n in range(60):
        period = Period(start + timedelta(days=n), start + timedelta(days=n + 20))
        try:
            await rig.klaviyo(shop, budget=budget).fetch_performance(period, tz)
        except RetryableError as error:
            deferral = error
            break
    assert deferral is not None, "the budget never ran out"
    reports = [
        r for r in await requests(rig, provider="klaviyo") if "values-reports" in r["endpoint"]
    ]
    assert 200 < len(reports) <= 225
    assert not any(r["throttled"] for r in reports)  # Klaviyo never had to refuse one
    assert await budget.used(account) <= 225

    # A sync that cannot fit is deferred before it makes a single call, until UTC midnight.
    rig.sim.requests.clear()
    with pytest.raises(RetryableError) as caught:
        await rig.klaviyo(shop, budget=budget).fetch_performance(Period(start, start), tz)
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    assert caught.value.retry_at == midnight
    assert "Klaviyo report budget used up until 00:00 UTC" in str(caught.value)
    assert await requests(rig, provider="klaviyo") == []


async def test_pacing_keeps_to_the_windows_without_a_429(rig: Rig) -> None:
    """Two syncs of one account at once against Klaviyo's real burst of one report a second."""
    assert rig.sim is not None
    rig.sim.configure({"klaviyo_limits": {"reports": {"burst": 1}, "flows": {"burst": 1}}})
    limits = replace(CLIENT_LIMITS, reports=Window(1, 30000), flows=Window(1, 6000))
    shop = SYDNEY
    periods = [
        Period(date(2025, 2, 1), date(2025, 2, 28)),
        Period(date(2025, 3, 1), date(2025, 3, 31)),
    ]
    results = await asyncio.gather(
        *(rig.klaviyo(shop, limits=limits).fetch_performance(p, tz_of(rig, shop)) for p in periods)
    )
    for period, figures in zip(periods, results, strict=True):
        assert figures == (await truth(rig, shop, period))[1]
    assert await requests(rig, provider="klaviyo", throttled=True) == []


async def test_report_limit_spent_elsewhere_defers_until_klaviyo_resets(rig: Rig) -> None:
    """Another integration of the account spent the day's reports: Klaviyo says 429 for hours."""
    assert rig.sim is not None
    rig.sim.configure({"klaviyo_limits": {"reports": {"daily": 1}}})
    with pytest.raises(RetryableError) as caught:
        await rig.klaviyo(NY).fetch_performance(
            Period(date(2025, 5, 1), date(2025, 5, 2)), tz_of(rig, NY)
        )
    assert "rate limit is used up" in str(caught.value)
    assert caught.value.retry_at is not None
    assert caught.value.retry_at > datetime.now(UTC) + timedelta(seconds=1)
    refused = await requests(rig, provider="klaviyo", endpoint="flow-values-reports")
    assert [r["status"] for r in refused] == [429]  # asked once, not hammered


@pytest.mark.parametrize(
    ("patch", "message", "endpoint"),
    [
        ({"klaviyo_key_revoked": True}, "the Klaviyo private key was rejected", "accounts"),
        (
            {"klaviyo_scopes": ["accounts:read", "metrics:read", "flows:read"]},
            "lacks the campaigns:read scope",
            "campaigns",
        ),
    ],
)
async def test_permanent_errors_fail_at_once(
    rig: Rig, patch: dict[str, object], message: str, endpoint: str
) -> None:
    assert rig.sim is not None
    rig.sim.configure({"stores": {NY: patch}})
    store = rig.sim.store(NY)
    budget = ReportBudget(rig.database, daily_limit=225)
    with pytest.raises(PermanentError) as caught:
        await rig.klaviyo(NY, budget=budget).fetch_performance(
            Period(date(2025, 5, 1), date(2025, 5, 2)), tz_of(rig, NY)
        )
    assert message in str(caught.value)
    assert store.klaviyo_private_key not in str(caught.value)
    failed = await requests(rig, provider="klaviyo", endpoint=endpoint)
    assert len(failed) == 1  # no retries
    assert await budget.used(store.klaviyo_account_id) == 0  # reserved calls given back
