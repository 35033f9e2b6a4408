"""Over real TCP: a server thread and the ``python -m storesync.simulator`` subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import date

import httpx
import pytest

from storesync.periods import Period
from storesync.providers.figures import ShopifyFigures
from storesync.simulator import SimStore, Simulator

from .helpers import bounds_query, fetch_orders, figures_from_orders, gql, klaviyo_headers


async def test_paging_and_truth_over_tcp(tcp_url: str, ny: SimStore) -> None:
    period = Period(date(2025, 10, 25), date(2025, 11, 3))
    async with httpx.AsyncClient(base_url=tcp_url) as client:
        query, _, _ = bounds_query(period, ny.timezone)
        nodes = await fetch_orders(client, ny, query, first=80)
        truth = (
            await client.get(
                f"/_sim/truth/{ny.shop_domain}", params={"start": "2025-10-25", "end": "2025-11-03"}
            )
        ).json()
    assert figures_from_orders(nodes, period, ny) == ShopifyFigures.from_json(truth["shopify"])


async def test_drop_closes_the_connection(tcp_url: str, sim: Simulator, ny: SimStore) -> None:
    sim.configure({"faults": {"drop_rate": 1.0}})
    async with httpx.AsyncClient(base_url=tcp_url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await gql(client, ny, "{ shop { name } }")
        sim.configure({"faults": {"drop_rate": 0.0}})
        assert (await gql(client, ny, "{ shop { name } }")).status_code == 200


async def test_timeout_over_tcp(tcp_url: str, sim: Simulator, ny: SimStore) -> None:
    sim.configure({"faults": {"timeout_rate": 1.0, "timeout_seconds": 1.0}})
    async with httpx.AsyncClient(base_url=tcp_url, timeout=0.2) as client:
        started = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/api/flows", headers=klaviyo_headers(ny))
        assert time.perf_counter() - started < 0.9
        await client.post("/_sim/config", json={"faults": {"timeout_rate": 0.0}})
        assert (await client.get("/api/flows", headers=klaviyo_headers(ny))).status_code == 200


async def test_stall_over_tcp(tcp_url: str, ny: SimStore) -> None:
    async with httpx.AsyncClient(base_url=tcp_url, timeout=0.3) as client:
        await client.post("/_sim/config", json={"faults": {"stall": True}})
        with pytest.raises(httpx.ReadTimeout):
            await gql(client, ny, "{ shop { name } }")
        await client.post("/_sim/config", json={"faults": {"stall": False}})
        assert (await gql(client, ny, "{ shop { name } }")).status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_module_entry_point_serves_generated_stores() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "storesync.simulator",
            "--port",
            str(port),
            "--stores",
            "4",
            "--seed",
            "9",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{base}/_sim/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        listing = httpx.get(f"{base}/_sim/stores").json()
        assert listing["shopify_base_url"] == f"{base}/shops/{{shop}}"
        stores = [SimStore.from_json(s) for s in listing["stores"]]
        assert [s.shop_domain for s in stores] == [f"store-{i:04d}.myshopify.com" for i in range(4)]
        store = stores[2]
        response = httpx.post(
            listing["shopify_base_url"].format(shop=store.shop_domain)
            + "/admin/api/2025-10/graphql.json",
            json={"query": "{ shop { ianaTimezone currencyCode } }"},
            headers={"X-Shopify-Access-Token": store.shopify_token},
        )
        assert response.json()["data"]["shop"] == {
            "ianaTimezone": store.timezone,
            "currencyCode": store.currency,
        }
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_hang_until_the_client_gives_up(tcp_url: str, sim: Simulator, ny: SimStore) -> None:
    sim.configure({"faults": {"timeout_rate": 1.0, "timeout_seconds": 0.01, "hang": True}})
    async with httpx.AsyncClient(base_url=tcp_url, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/api/accounts", headers=klaviyo_headers(ny))
    for _ in range(40):  # the server notices the disconnect and logs the request
        if sim.requests.records(provider="klaviyo"):
            break
        await asyncio.sleep(0.05)
    record = sim.requests.records(provider="klaviyo")[-1]
    assert record.fault == "timeout" and record.status is None
