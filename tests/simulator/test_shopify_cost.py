"""Shopify's cost model and leaky bucket."""

from __future__ import annotations

import httpx

from storesync.simulator import SimStore, Simulator

from .helpers import FakeClock, gql

EIGHT_SETS = " ".join(
    f"{name} {{ shopMoney {{ amount currencyCode }} }}"
    for name in ("totalPriceSet", "currentTotalPriceSet", "subtotalPriceSet",
                 "currentSubtotalPriceSet", "totalDiscountsSet", "currentTotalDiscountsSet",
                 "totalRefundedSet", "netPaymentSet")
)  # fmt: skip
# One order node: 1 + 8 sets x (set 1 + shopMoney 1) + customer 1 = 18 points.
HEAVY = (
    f"query($n: Int!) {{ orders(first: $n) {{ edges {{ node {{ id {EIGHT_SETS}"
    " customer { id numberOfOrders } } } pageInfo { hasNextPage endCursor } } }"
)


def cost(response: httpx.Response) -> dict[str, object]:
    return response.json()["extensions"]["cost"]  # type: ignore[no-any-return]


async def test_requested_cost_follows_shopifys_rules(
    client: httpx.AsyncClient, ny: SimStore
) -> None:
    assert cost(await gql(client, ny, HEAVY, {"n": 55}))["requestedQueryCost"] == 2 + 55 * 18
    assert cost(await gql(client, ny, "{ shop { name } }"))["requestedQueryCost"] == 1
    fragment = (
        "query { orders(first: 10) { nodes { ...F } } }"
        " fragment F on Order { id totalPriceSet { shopMoney { amount } } }"
    )
    assert cost(await gql(client, ny, fragment))["requestedQueryCost"] == 2 + 10 * 3
    paged = "{ orders(first: 3) { pageInfo { hasNextPage } } }"
    assert cost(await gql(client, ny, paged))["requestedQueryCost"] == 2


async def test_max_cost_exceeded_before_execution(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    response = await gql(client, ny, HEAVY, {"n": 250})
    body = response.json()
    assert response.status_code == 200 and "data" not in body
    error = body["errors"][0]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["extensions"]["cost"] == 2 + 250 * 18 and error["extensions"]["maxCost"] == 1000
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    status = body["extensions"]["cost"]["throttleStatus"]
    assert status["currentlyAvailable"] == status["maximumAvailable"]  # nothing was charged


async def test_actual_cost_counts_returned_nodes(client: httpx.AsyncClient, ny: SimStore) -> None:
    search = "created_at:>='2025-10-01T04:00:00Z' AND created_at:<='2025-10-01T05:00:00Z'"
    query = f'{{ orders(first: 50, query: "{search}") {{'
    query += " nodes { id totalPriceSet { shopMoney { amount } } } } }"
    response = await gql(client, ny, query)
    returned = len(response.json()["data"]["orders"]["nodes"])
    assert returned < 50
    assert cost(response) | {"throttleStatus": None} == {
        "requestedQueryCost": 2 + 50 * 3,
        "actualQueryCost": 2 + returned * 3,
        "throttleStatus": None,
    }


async def test_mutations_cost_ten(client: httpx.AsyncClient, ny: SimStore) -> None:
    mutation = (
        'mutation { bulkOperationRunQuery(query: "{ orders { edges { node { id } } } }")'
        " { bulkOperation { id } userErrors { message } } }"
    )
    response = await gql(client, ny, mutation)
    assert cost(response)["requestedQueryCost"] == 10 == cost(response)["actualQueryCost"]


async def test_bucket_throttles_when_drained_and_restores(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore, clock: FakeClock
) -> None:
    sim.configure({"bucket_size": 1000, "restore_rate": 50})
    first = await gql(client, ny, HEAVY, {"n": 52})  # requests 2 + 52 x 18 = 938
    assert "errors" not in first.json()
    left = 1000 - cost(first)["actualQueryCost"]  # type: ignore[operator]
    status = cost(first)["throttleStatus"]
    assert status == {"maximumAvailable": 1000.0, "currentlyAvailable": left, "restoreRate": 50.0}
    throttled = await gql(client, ny, HEAVY, {"n": 52})
    body = throttled.json()
    assert throttled.status_code == 200 and "data" not in body
    assert body["errors"] == [
        {"message": "Throttled",
         "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}
    ]  # fmt: skip
    assert body["extensions"]["cost"]["requestedQueryCost"] == 938
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == left
    clock.advance((938 - left) / 50 - 0.5)  # not quite enough
    assert "errors" in (await gql(client, ny, HEAVY, {"n": 52})).json()
    clock.advance(0.5)
    again = await gql(client, ny, HEAVY, {"n": 52})
    assert "errors" not in again.json()
    refunded = 938 - cost(again)["actualQueryCost"]  # type: ignore[operator]
    assert cost(again)["throttleStatus"]["currentlyAvailable"] == refunded  # type: ignore[index]
    clock.advance(1000)
    assert (
        cost(await gql(client, ny, "{ shop { name } }"))["throttleStatus"]["currentlyAvailable"]
        == 999
    )
    throttled_records = sim.requests.records(provider="shopify", throttled=True)
    assert len(throttled_records) == 2


async def test_refund_of_unused_cost(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"bucket_size": 1000, "restore_rate": 1e-9})
    query = (
        "{ orders(first: 250, query: \"created_at:>='2030-01-01T00:00:00Z'\") { nodes { id } } }"
    )
    response = await gql(client, ny, query)
    assert cost(response)["requestedQueryCost"] == 252 and cost(response)["actualQueryCost"] == 2
    assert cost(response)["throttleStatus"]["currentlyAvailable"] == 998


async def test_per_store_bucket_and_drain(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"stores": {ny.shop_domain: {"bucket_size": 20000, "restore_rate": 1000}}})
    store = sim.store(ny.shop_domain)
    status = cost(await gql(client, store, "{ shop { name } }"))["throttleStatus"]
    assert status["maximumAvailable"] == 20000.0 and status["restoreRate"] == 1000.0
    drained = await client.post(f"/_sim/buckets/{ny.shop_domain}/drain")
    assert drained.json()["currentlyAvailable"] == 0
    assert (await gql(client, store, "{ shop { name } }")).json()["errors"][0][
        "message"
    ] == "Throttled"
