"""Shopify over the wire: auth, schema fidelity, paging, boundaries and figures."""

from __future__ import annotations

from collections import Counter
from datetime import date

import httpx
import pytest

from storesync.periods import Period
from storesync.simulator import SimStore, Simulator

from .helpers import (
    ORDERS_QUERY,
    bounds_query,
    fetch_orders,
    figures_from_orders,
    gql,
    shop_url,
)

SHOP_QUERY = "{ shop { name currencyCode ianaTimezone } }"


async def test_bad_token_is_401_with_shopifys_body(client: httpx.AsyncClient, ny: SimStore) -> None:
    response = await gql(client, ny, SHOP_QUERY, token="shpat_wrong")
    assert response.status_code == 401
    assert response.json() == {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }
    missing = await client.post(shop_url(ny), json={"query": SHOP_QUERY})
    assert missing.status_code == 401


async def test_revoked_token_is_401(client: httpx.AsyncClient, sim: Simulator) -> None:
    store = sim.store("revoked-shop.myshopify.com")
    response = await gql(client, store, SHOP_QUERY)
    assert response.status_code == 401


async def test_missing_scope_is_403(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"stores": {ny.shop_domain: {"scopes": ["read_products"]}}})
    response = await gql(client, sim.store(ny.shop_domain), SHOP_QUERY)
    assert response.status_code == 403
    assert "read_orders" in response.json()["errors"]


async def test_missing_scope_graphql_style(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    sim.configure({"stores": {ny.shop_domain: {"scopes": [], "scope_denial": "graphql"}}})
    store = sim.store(ny.shop_domain)
    ok = await gql(client, store, SHOP_QUERY)
    assert ok.status_code == 200 and ok.json()["data"]["shop"]["currencyCode"] == "USD"
    denied = await gql(client, store, "{ orders(first: 1) { nodes { id } } }")
    body = denied.json()
    assert denied.status_code == 200 and body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


@pytest.mark.parametrize(("state", "status"), [("frozen", 402), ("locked", 423)])
async def test_frozen_and_locked_shops(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore, state: str, status: int
) -> None:
    sim.configure({"stores": {ny.shop_domain: {"shop_state": state}}})
    response = await gql(client, sim.store(ny.shop_domain), SHOP_QUERY)
    assert response.status_code == status


async def test_unknown_shop_and_version_are_404(client: httpx.AsyncClient, ny: SimStore) -> None:
    headers = {"X-Shopify-Access-Token": ny.shopify_token}
    body = {"query": SHOP_QUERY}
    unknown = await client.post(
        "/shops/nope.myshopify.com/admin/api/2025-10/graphql.json", json=body, headers=headers
    )
    assert unknown.status_code == 404
    bad_version = await client.post(
        f"/shops/{ny.shop_domain}/admin/api/2025-11/graphql.json", json=body, headers=headers
    )
    assert bad_version.status_code == 404


async def test_host_header_routing(client: httpx.AsyncClient, ny: SimStore) -> None:
    response = await client.post(
        "/admin/api/2025-10/graphql.json",
        json={"query": SHOP_QUERY},
        headers={"X-Shopify-Access-Token": ny.shopify_token, "Host": ny.shop_domain},
    )
    assert response.status_code == 200
    assert response.json()["data"]["shop"]["ianaTimezone"] == "America/New_York"


async def test_unknown_field_is_a_graphql_error(client: httpx.AsyncClient, ny: SimStore) -> None:
    response = await gql(client, ny, "{ orders(first: 1) { nodes { id totalPrice } } }")
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["message"] == "Field 'totalPrice' doesn't exist on type 'Order'"
    assert error["extensions"] == {
        "code": "undefinedField",
        "typeName": "Order",
        "fieldName": "totalPrice",
    }
    assert "data" not in response.json()


async def test_unknown_argument_and_syntax_errors(client: httpx.AsyncClient, ny: SimStore) -> None:
    response = await gql(client, ny, "{ orders(first: 1, since: 3) { nodes { id } } }")
    assert response.json()["errors"][0]["extensions"]["code"] == "argumentNotAccepted"
    broken = await gql(client, ny, "{ orders(first: 1) { nodes { id }")
    assert broken.status_code == 200 and "Syntax Error" in broken.json()["errors"][0]["message"]
    not_json = await client.post(
        shop_url(ny), content=b"{", headers={"X-Shopify-Access-Token": ny.shopify_token}
    )
    assert not_json.status_code == 400


async def test_first_or_last_is_required(client: httpx.AsyncClient, ny: SimStore) -> None:
    response = await gql(client, ny, "{ orders { nodes { id } } }")
    assert response.json()["errors"][0]["message"] == "you must provide one of first or last"
    too_many = await gql(client, ny, "{ orders(first: 251) { nodes { id } } }")
    assert "between 0 and 250" in too_many.json()["errors"][0]["message"]


async def test_money_and_scalars_on_the_wire(client: httpx.AsyncClient, ny: SimStore) -> None:
    query = """{ orders(first: 40, query: "financial_status:paid") { nodes {
        id legacyResourceId name createdAt displayFinancialStatus currencyCode
        totalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } }
        customer { id numberOfOrders } } } }"""
    nodes = (await gql(client, ny, query)).json()["data"]["orders"]["nodes"]
    assert len(nodes) == 40
    for node in nodes:
        assert node["id"] == f"gid://shopify/Order/{node['legacyResourceId']}"
        assert node["createdAt"].endswith("Z") and node["displayFinancialStatus"] == "PAID"
        amount = node["totalPriceSet"]["shopMoney"]["amount"]
        assert isinstance(amount, str) and "." in amount and not amount.endswith("00")
        assert node["totalPriceSet"]["shopMoney"]["currencyCode"] == "USD"
        if node["customer"]:
            assert isinstance(node["customer"]["numberOfOrders"], str)
    assert (
        any(n["totalPriceSet"]["presentmentMoney"]["currencyCode"] != "USD" for n in nodes) or True
    )


async def test_paging_returns_every_order_exactly_once(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    period = Period(date(2025, 10, 1), date(2025, 10, 14))
    query, start, end = bounds_query(period, ny.timezone)
    nodes = await fetch_orders(client, ny, query, first=37)
    ids = [n["id"] for n in nodes]
    assert len(ids) == len(set(ids))
    data = sim.data(ny.shop_domain)
    lo, hi = data.created_range(start, end + 1)  # the end bound is inclusive on the wire
    assert set(ids) == {data.order_gid(i) for i in range(lo, hi)}


async def test_boundaries_are_inclusive_on_both_sides(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    data = sim.data(ny.shop_domain)
    # A day whose local midnight has an order exactly on it.
    day = next(
        d
        for d in (date.fromordinal(date(2025, 9, 1).toordinal() + k) for k in range(60))
        if data.midnight(d) in set(data.orders.created)
    )
    first = Period(day.fromordinal(day.toordinal() - 1), day.fromordinal(day.toordinal() - 1))
    second = Period(day, day)
    q1, _, _ = bounds_query(first, ny.timezone)
    q2, _, _ = bounds_query(second, ny.timezone)
    ids1 = {n["id"] for n in await fetch_orders(client, ny, q1, first=80)}
    ids2 = {n["id"] for n in await fetch_orders(client, ny, q2, first=80)}
    shared = ids1 & ids2
    assert shared  # the order at midnight comes back from both queries
    boundary = {
        data.order_gid(i)
        for i in range(len(data.orders))
        if data.orders.created[i] == data.midnight(day)
    }
    assert shared == boundary
    strict = q1.replace(">=", ">")
    assert {n["id"] for n in await fetch_orders(client, ny, strict, first=80)} == ids1


async def test_wire_figures_equal_the_oracle(client: httpx.AsyncClient, sim: Simulator) -> None:
    for domain, period in (
        ("ny-shop.myshopify.com", Period(date(2025, 10, 30), date(2025, 11, 5))),  # DST change
        ("lisbon-shop.myshopify.com", Period(date(2025, 10, 20), date(2025, 10, 31))),
    ):
        store = sim.store(domain)
        query, _, _ = bounds_query(period, store.timezone)
        nodes = await fetch_orders(client, store, query, first=60)
        assert figures_from_orders(nodes, period, store) == sim.shopify_truth(domain, period)


async def test_reverse_last_before_and_updated_sort(
    client: httpx.AsyncClient, ny: SimStore
) -> None:
    query = "created_at:>='2025-10-01T00:00:00Z' AND created_at:<'2025-10-03T00:00:00Z'"
    forward = [n["id"] for n in await fetch_orders(client, ny, query, first=80)]
    rev = await gql(
        client,
        ny,
        "query($q: String) { orders(first: 250, query: $q, reverse: true) { nodes { id } } }",
        {"q": query},
    )
    assert [n["id"] for n in rev.json()["data"]["orders"]["nodes"]] == forward[::-1]
    tail = await gql(
        client,
        ny,
        "query($q: String) { orders(last: 5, query: $q) {"
        " nodes { id } pageInfo { hasNextPage hasPreviousPage } } }",
        {"q": query},
    )
    page = tail.json()["data"]["orders"]
    assert [n["id"] for n in page["nodes"]] == forward[-5:]
    assert page["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}
    updated = await gql(
        client, ny,
        "{ orders(first: 100, sortKey: UPDATED_AT,"
        " query: \"updated_at:>='2025-10-01T00:00:00Z'\") { nodes { updatedAt } } }",
    )  # fmt: skip
    stamps = [n["updatedAt"] for n in updated.json()["data"]["orders"]["nodes"]]
    assert stamps == sorted(stamps) and stamps[0] >= "2025-10-01T00:00:00Z"


async def test_cursors_are_opaque_and_checked(client: httpx.AsyncClient, ny: SimStore) -> None:
    response = await gql(client, ny, ORDERS_QUERY, {"q": "", "after": "garbage", "first": 5})
    assert response.json()["errors"][0]["message"] == "Invalid cursor for current pagination sort."


async def test_node_lookup_and_orders_count(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    data = sim.data(ny.shop_domain)
    gid = data.order_gid(10)
    response = await gql(
        client, ny, "query($id: ID!) { node(id: $id) { id ... on Order { name } } }", {"id": gid}
    )
    assert response.json()["data"]["node"] == {"id": gid, "name": "#1011"}
    count = await gql(
        client, ny, '{ ordersCount(query: "test:true", limit: null) { count precision } }'
    )
    tests = sum(1 for i in range(len(data.orders)) if data.is_test(i))
    assert count.json()["data"]["ordersCount"] == {"count": tests, "precision": "EXACT"}
    capped = await gql(client, ny, "{ ordersCount(limit: 10) { count precision } }")
    assert capped.json()["data"]["ordersCount"] == {"count": 10, "precision": "AT_LEAST"}


async def test_unknown_search_terms_warn(client: httpx.AsyncClient, ny: SimStore) -> None:
    response = await gql(client, ny, '{ orders(first: 1, query: "tag:vip") { nodes { id } } }')
    search = response.json()["extensions"]["search"]
    assert search[0]["warnings"][0]["field"] == "tag"


async def test_request_log_records_bounds(
    client: httpx.AsyncClient, sim: Simulator, ny: SimStore
) -> None:
    period = Period(date(2025, 10, 1), date(2025, 10, 1))
    query, _, _ = bounds_query(period, ny.timezone)
    await fetch_orders(client, ny, query, first=80)
    records = sim.requests.records(provider="shopify", operation="orders")
    assert records and records[-1].created_at_min == "2025-10-01T04:00:00Z"
    assert records[-1].created_at_max == "2025-10-02T04:00:00Z"
    assert records[-1].account == ny.shop_domain and records[-1].status == 200
    counts = Counter((r.created_at_min, r.created_at_max) for r in records)
    assert counts[("2025-10-01T04:00:00Z", "2025-10-02T04:00:00Z")] == len(records)
