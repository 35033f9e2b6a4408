"""Bulk operations: run, poll, download, one at a time."""

from __future__ import annotations

import json
from datetime import date

import httpx

from storesync.periods import Period
from storesync.simulator import SimStore, Simulator

from .helpers import FakeClock, bounds_query, gql

RUN = (
    "mutation($q: String!) { bulkOperationRunQuery(query: $q) {"
    " bulkOperation { id status } userErrors { field message } } }"
)
POLL = (
    "query($id: ID!) { node(id: $id) {"
    " ... on BulkOperation { id status errorCode objectCount url } } }"
)


def inner(search: str) -> str:
    return (
        f'{{ orders(query: "{search}") {{ edges {{ node {{ id createdAt test '
        "currentTotalPriceSet { shopMoney { amount currencyCode } } customer { id } } } } }"
    )


async def run(client: httpx.AsyncClient, store: SimStore, query: str) -> dict[str, object]:
    response = await gql(client, store, RUN, {"q": query})
    return response.json()["data"]["bulkOperationRunQuery"]  # type: ignore[no-any-return]


async def test_bulk_query_lifecycle(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore, clock: FakeClock
) -> None:
    sim.configure({"bulk_seconds": 2.0})
    period = Period(date(2025, 10, 1), date(2025, 10, 31))
    search, start, end = bounds_query(period, ny.timezone)
    payload = await run(client, ny, inner(search))
    assert payload["userErrors"] == []
    op = payload["bulkOperation"]
    assert op["status"] == "CREATED"  # type: ignore[index]
    busy = await run(client, ny, inner(""))
    assert busy["bulkOperation"] is None
    assert "already in progress" in busy["userErrors"][0]["message"]  # type: ignore[index]
    clock.advance(1)
    polled = (await gql(client, ny, POLL, {"id": op["id"]})).json()["data"]["node"]  # type: ignore[index]
    assert polled["status"] == "RUNNING" and polled["url"] is None
    current = await gql(client, ny, "{ currentBulkOperation { id status } }")
    assert current.json()["data"]["currentBulkOperation"]["id"] == op["id"]  # type: ignore[index]
    clock.advance(1.5)
    done = (await gql(client, ny, POLL, {"id": op["id"]})).json()["data"]["node"]  # type: ignore[index]
    assert done["status"] == "COMPLETED" and done["errorCode"] is None
    download = await client.get(done["url"])
    assert download.status_code == 200
    rows = [json.loads(line) for line in download.text.splitlines()]
    data = sim.data(ny.shop_domain)
    lo, hi = data.created_range(start, end + 1)  # inclusive end, as on the wire
    assert [r["id"] for r in rows] == [data.order_gid(i) for i in range(lo, hi)]
    assert int(done["objectCount"]) == len(rows)
    assert set(rows[0]) == {"id", "createdAt", "test", "currentTotalPriceSet", "customer"}
    log = sim.requests.records(endpoint="bulk_result")
    assert log and log[-1].status == 200 and log[-1].account == ny.shop_domain


async def test_empty_bulk_result_has_no_url(client: httpx.AsyncClient, ny: SimStore) -> None:
    payload = await run(client, ny, inner("created_at:>=2031-01-01"))
    node = (await gql(client, ny, POLL, {"id": payload["bulkOperation"]["id"]})).json()["data"][
        "node"
    ]  # type: ignore[index]
    assert node["status"] == "COMPLETED" and node["objectCount"] == "0" and node["url"] is None


async def test_invalid_bulk_query_is_a_user_error(client: httpx.AsyncClient, ny: SimStore) -> None:
    payload = await run(client, ny, "{ orders { edges { node { id nope } } } }")
    assert payload["bulkOperation"] is None
    error = payload["userErrors"][0]  # type: ignore[index]
    assert error["field"] == ["query"] and "nope" in error["message"]
    no_connection = await run(client, ny, "{ shop { name } }")
    assert "connection" in no_connection["userErrors"][0]["message"]  # type: ignore[index]


async def test_bulk_failure_fault(client: httpx.AsyncClient, sim: Simulator, ny: SimStore) -> None:
    sim.configure({"faults": {"bulk_failure_rate": 1.0}})
    payload = await run(client, ny, inner(""))
    node = (await gql(client, ny, POLL, {"id": payload["bulkOperation"]["id"]})).json()["data"][
        "node"
    ]  # type: ignore[index]
    assert node["status"] == "FAILED" and node["errorCode"] == "INTERNAL_SERVER_ERROR"


async def test_unknown_result_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/_sim/bulk/42.jsonl")).status_code == 404
