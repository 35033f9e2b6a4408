"""Both connectors over real TCP (the simulator's command line in a subprocess) and in-process,
with and without 20 % of the answers faulted (5xx, 429/THROTTLED, timeouts, dropped connections).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from storesync.errors import PermanentError
from storesync.periods import Period
from storesync.providers.events import ProviderEvent

from .helpers import DST_CASES, FAULTS_20, NY, STORES, Rig, control, requests, truth

TZ = {s.shop_domain: ZoneInfo(s.timezone) for s in STORES}


async def sync_both(
    rig: Rig, shop: str, period: Period, events: list[ProviderEvent] | None = None
) -> None:
    """What a sync job does: both providers at once; then compare with the oracle."""

    async def record(event: ProviderEvent) -> None:
        if events is not None:
            events.append(event)

    shopify_client = rig.shopify(shop, events=record)
    klaviyo_client = rig.klaviyo(shop, events=record)
    shopify, klaviyo = await asyncio.gather(
        shopify_client.fetch_figures(period, TZ[shop]),
        klaviyo_client.fetch_performance(period, TZ[shop]),
    )
    expected_shopify, expected_klaviyo = await truth(rig, shop, period)
    assert shopify == expected_shopify
    assert klaviyo == expected_klaviyo


async def test_over_tcp_figures_equal_the_truth(tcp_rig: Rig) -> None:
    await asyncio.gather(*(sync_both(tcp_rig, shop, period) for shop, period in DST_CASES))
    assert await requests(tcp_rig, throttled=True) == []


async def test_over_tcp_with_20_percent_faults(tcp_rig: Rig) -> None:
    await control(tcp_rig.http, tcp_rig.base, "POST", "/_sim/config", {"faults": FAULTS_20})
    for shop, period in DST_CASES:
        await sync_both(tcp_rig, shop, period)
    log = await requests(tcp_rig)
    faults = Counter(r["fault"] for r in log if r["fault"])
    assert set(faults) == {"error", "throttle", "timeout", "drop"}, faults
    assert sum(faults.values()) / len(log) > 0.1


async def test_in_process_with_20_percent_faults(rig: Rig) -> None:
    assert rig.sim is not None
    rig.sim.configure({"faults": FAULTS_20})
    events: list[ProviderEvent] = []
    for shop, period in DST_CASES[1:4]:
        await sync_both(rig, shop, period, events)
    # In-process, a request the client gave up on is cancelled before the simulator logs it,
    # so the faults are counted from the connectors' own events.
    reasons = Counter(str(e.data.get("reason")) for e in events if e.kind == "retried")
    assert any("timed out" in r for r in reasons), reasons
    assert any("HTTP 5" in r for r in reasons), reasons
    assert any("connection failed" in r for r in reasons), reasons
    assert any(e.kind == "throttled" for e in events)


async def test_over_tcp_bad_token_fails_at_once(tcp_rig: Rig) -> None:
    await control(
        tcp_rig.http,
        tcp_rig.base,
        "POST",
        "/_sim/config",
        {"stores": {NY: {"token_revoked": True}}},
    )
    try:
        with pytest.raises(PermanentError, match="the Shopify access token was rejected"):
            await tcp_rig.shopify(NY).fetch_figures(DST_CASES[0][1], TZ[NY])
        assert len(await requests(tcp_rig, provider="shopify")) == 1
    finally:
        await control(
            tcp_rig.http,
            tcp_rig.base,
            "POST",
            "/_sim/config",
            {"stores": {NY: {"token_revoked": False}}},
        )
