"""The /_sim control routes and the Simulator object's own interface."""

from __future__ import annotations

import httpx

from storesync.simulator import SimStore, Simulator, SimulatorConfig, create_app, demo_config

from .helpers import gql, klaviyo_headers


async def test_stores_listing(client: httpx.AsyncClient, sim: Simulator) -> None:
    body = (await client.get("/_sim/stores")).json()
    assert body["shopify_base_url"] == "http://simulator/shops/{shop}"
    assert body["klaviyo_base_url"] == "http://simulator"
    stores = [SimStore.from_json(s) for s in body["stores"]]
    assert stores == sim.stores
    revoked = next(s for s in stores if s.token_revoked)
    assert revoked.shopify_token.startswith("shpat_")


async def test_config_round_trip(client: httpx.AsyncClient, sim: Simulator) -> None:
    before = (await client.get("/_sim/config")).json()
    assert SimulatorConfig.from_json(before).to_json() == before
    after = (
        await client.post(
            "/_sim/config", json={"bucket_size": 2000, "klaviyo_limits": {"reports": {"daily": 10}}}
        )
    ).json()
    assert after["bucket_size"] == 2000.0 and after["klaviyo_limits"]["reports"]["daily"] == 10
    assert sim.config.klaviyo_limits.reports.daily == 10
    assert (await client.post("/_sim/config", json={"nope": 1})).status_code == 400
    assert (
        await client.post("/_sim/config", json={"stores": {"x.myshopify.com": {}}})
    ).status_code == 400


async def test_store_knobs_at_runtime(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    assert (await gql(client, ny, "{ shop { name } }")).status_code == 200
    await client.post(
        "/_sim/config",
        json={"stores": {ny.shop_domain: {"token_revoked": True, "klaviyo_key_revoked": True}}},
    )
    assert (await gql(client, ny, "{ shop { name } }")).status_code == 401
    assert (await client.get("/api/accounts", headers=klaviyo_headers(ny))).status_code == 401


async def test_request_log_filters_and_clear(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    await gql(client, ny, "{ shop { name } }")
    await gql(client, ny, "{ shop { name } }", token="wrong")
    await client.get("/api/flows", headers=klaviyo_headers(ny))
    everything = (await client.get("/_sim/requests")).json()["requests"]
    assert [r["provider"] for r in everything] == ["shopify", "shopify", "klaviyo"]
    assert everything[0]["requested_cost"] == 1 and everything[0]["operation"] == "shop"
    assert (
        everything[2]["endpoint"] == "flows" and everything[2]["account"] == ny.klaviyo_account_id
    )
    denied = (await client.get("/_sim/requests", params={"status": "401"})).json()["requests"]
    assert len(denied) == 1 and denied[0]["provider"] == "shopify"
    last = (
        await client.get("/_sim/requests", params={"provider": "shopify", "limit": "1"})
    ).json()["requests"]
    assert last[0]["status"] == 401
    assert (await client.get("/_sim/requests", params={"colour": "red"})).status_code == 400
    assert (await client.delete("/_sim/requests")).json() == {"cleared": 3}
    assert len(sim.requests) == 0


async def test_reset_and_limits(client: httpx.AsyncClient, sim: Simulator, ny: SimStore) -> None:
    sim.configure({"bucket_size": 1000, "restore_rate": 1e-9})
    await gql(client, ny, "{ orders(first: 100) { nodes { id } } }")
    limits = (await client.get("/_sim/limits")).json()
    assert limits["shopify"][ny.shop_domain]["currentlyAvailable"] < 1000
    await client.post("/_sim/reset")
    assert (await client.get("/_sim/limits")).json()["shopify"] == {}
    assert len(sim.requests) == 0


def test_public_entry_points() -> None:
    config = demo_config()
    assert len(config.stores) == 3
    assert len({s.currency for s in config.stores}) == 3
    assert len({s.timezone for s in config.stores}) == 3
    assert sum(s.token_revoked for s in config.stores) == 1
    app = create_app(config)
    assert app.simulator.config.stores[0].history_end is not None
    assert Simulator().stores[0].shop_domain == config.stores[0].shop_domain
