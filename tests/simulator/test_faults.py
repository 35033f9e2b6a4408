"""Injected faults and latency, in-process (the httpx exceptions a network would cause)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from storesync.simulator import SimStore, Simulator

from .conftest import roomy_config
from .helpers import gql, klaviyo_headers

SHOP = "{ shop { name } }"


async def test_error_faults(client: httpx.AsyncClient, sim: Simulator, ny: SimStore) -> None:
    sim.configure({"faults": {"error_rate": 1.0}})
    statuses = {(await gql(client, ny, SHOP)).status_code for _ in range(12)}
    assert statuses <= {500, 502, 503} and len(statuses) > 1
    klaviyo = await client.get("/api/flows", headers=klaviyo_headers(ny))
    assert klaviyo.status_code in (500, 503) and klaviyo.json()["errors"][0]["status"] >= 500
    assert {r.fault for r in sim.requests} == {"error"}
    health = await client.get("/_sim/health")
    assert health.status_code == 200  # control routes are never faulted


async def test_throttle_faults(client: httpx.AsyncClient, sim: Simulator, ny: SimStore) -> None:
    sim.configure({"faults": {"throttle_rate": 1.0}})
    responses = [await gql(client, ny, SHOP) for _ in range(10)]
    assert {r.status_code for r in responses} == {200, 429}
    for response in responses:
        assert response.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert "throttleStatus" in response.json()["extensions"]["cost"]
    klaviyo = await client.get("/api/flows", headers=klaviyo_headers(ny))
    assert klaviyo.status_code == 429 and klaviyo.headers["Retry-After"] == "1"


async def test_drop_raises_like_a_closed_connection(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"faults": {"drop_rate": 1.0}})
    with pytest.raises(httpx.RemoteProtocolError):
        await gql(client, ny, SHOP)
    record = sim.requests.records(provider="shopify")[-1]
    assert record.fault == "drop" and record.status is None


async def test_timeout_raises_read_timeout(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"faults": {"timeout_rate": 1.0, "timeout_seconds": 0.05}})
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/api/accounts", headers=klaviyo_headers(ny))
    assert time.perf_counter() - started >= 0.05
    assert sim.requests.records(provider="klaviyo")[-1].fault == "timeout"


async def test_faults_are_reproducible_and_near_their_rate(ny: SimStore) -> None:
    async def sequence() -> list[str | None]:
        config = roomy_config()
        sim = Simulator(config)
        sim.configure({"faults": {"seed": 5, "error_rate": 0.1, "throttle_rate": 0.1}})
        transport = httpx.ASGITransport(app=sim.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as c:
            for _ in range(200):
                await gql(c, ny, SHOP)
        return [r.fault for r in sim.requests]

    first, second = await sequence(), await sequence()
    assert first == second
    faulted = sum(f is not None for f in first)
    assert 20 <= faulted <= 60


async def test_faults_can_target_one_provider(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"faults": {"error_rate": 1.0, "providers": ["klaviyo"]}})
    assert (await gql(client, ny, SHOP)).status_code == 200
    assert (await client.get("/api/flows", headers=klaviyo_headers(ny))).status_code >= 500


async def test_latency(client: httpx.AsyncClient, sim: Simulator, ny: SimStore) -> None:
    sim.configure({"latency": {"fixed_ms": 60, "jitter_ms": 20}})
    started = time.perf_counter()
    await gql(client, ny, SHOP)
    assert 0.06 <= time.perf_counter() - started < 1.0


async def test_stall_holds_requests_until_released(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    await client.post("/_sim/config", json={"faults": {"stall": True}})
    pending = asyncio.ensure_future(gql(client, ny, SHOP))
    await asyncio.sleep(0.2)
    assert not pending.done()
    await client.post("/_sim/config", json={"faults": {"stall": False}})
    response = await asyncio.wait_for(pending, 2)
    assert response.status_code == 200


async def test_bad_fault_config_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_sim/config", json={"faults": {"error_rate": 0.7, "drop_rate": 0.5}}
    )
    assert response.status_code == 400 and "add up" in response.json()["error"]
    unknown = await client.post("/_sim/config", json={"faults": {"explode": True}})
    assert unknown.status_code == 400
